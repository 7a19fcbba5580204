"""A series of `diffgrasp bench` runs, one after the other, in one report: the README's arm-against-hand tables.

    .venv/bin/python benchmarks/bench_series.py arm_vs_hand_packed_baseline [--allow-dirty]
    .venv/bin/python benchmarks/bench_series.py arm_vs_hand_packed

Each series is the same benchmark for the three robots, executed by the free-floating hand of the published
protocol and by the robot's whole arm (`--executor hand` / `arm`). For the LEAP robots the hand is the
simulated LEAP hand executing the retargeted parallel grasps. Every run is a `diffgrasp bench` process of
its own (time-limited), so each section of the report carries that run's command, commit, date and machine;
the report's header names the series command. Writes `benchmarks/results/<series>.json` and `.md` (`--out`
overrides the stem).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 report_paths, write_report)

REPO = Path(__file__).resolve().parents[1]
ROBOTS = ("franka", "xarm_leap", "ur5_leap")
EXECUTORS = ("hand", "arm")
COMMON = ["--scene", "packed", "--seed", "0", "--views", "side", "--objects-per-round", "5"]
SERIES = {
    "arm_vs_hand_packed_baseline": {
        "title": "Arm vs free-floating hand: packed scenes, baseline",
        "options": [*COMMON, "--method", "baseline", "--noise", "none", "--workers", "1"]},
    "arm_vs_hand_packed": {
        "title": "Arm vs free-floating hand: packed scenes, igd with dex noise",
        "options": [*COMMON, "--method", "igd", "--noise", "dex", "--workers", "2"]},
}
RUN_TIMEOUT_S = 4 * 3600.0  # a run's rounds have their own limits; this only stops a run that never ends


def bench_argv(options: list[str], robot: str, executor: str, out: Path) -> list[str]:
    return ["bench", *options, "--robot", robot, "--executor", executor,
            "--json", str(out.with_suffix(".json")), "--markdown", str(out.with_suffix(".md"))]


def run_bench(argv: list[str]) -> None:
    command = [sys.executable, "-m", "diffgrasp_ros.cli.main", *argv]
    print(f"$ diffgrasp {shlex.join(argv)}", flush=True)
    done = subprocess.run(command, cwd=REPO, timeout=RUN_TIMEOUT_S)
    if done.returncode != 0:
        raise SystemExit(f"bench_series.py: `diffgrasp {shlex.join(argv)}` failed with exit code {done.returncode}")


def section(markdown: str, robot: str, executor: str) -> list[str]:
    """A run's report as a section: its title replaced, its headings one level down."""
    lines = markdown.splitlines()
    body = lines[1:] if lines and lines[0].startswith("# ") else lines
    return [f"## {robot}, executed by the {executor}",
            *(f"#{line}" if line.startswith("#") else line for line in body)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("series", choices=sorted(SERIES))
    parser.add_argument("--rounds", type=int, default=10, help="rounds per run (default: 10)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report stem (default: benchmarks/results/<series>)")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    series = SERIES[args.series]
    out = args.out or REPO / "benchmarks" / "results" / args.series
    context = prepare_results(args, *report_paths(out))

    runs, lines = [], [f"# {series['title']}", "", *provenance_markdown(context), "",
                       "Six `diffgrasp bench` runs, one after the other: each robot executing with the "
                       "free-floating hand of the published protocol and with its whole arm (for the LEAP robots "
                       "the hand is the simulated LEAP hand). Each section names its own run.", ""]
    with tempfile.TemporaryDirectory(prefix="bench_series_") as folder:
        for robot in ROBOTS:
            for executor in EXECUTORS:
                stem = Path(folder) / f"{robot}_{executor}"
                argv = bench_argv([*series["options"], "--rounds", str(args.rounds)], robot, executor, stem)
                if args.allow_dirty:
                    argv.append("--allow-dirty")
                run_bench(argv)
                runs.append({"robot": robot, "executor": executor,
                             **json.loads(stem.with_suffix(".json").read_text())})
                lines += [*section(stem.with_suffix(".md").read_text(), robot, executor), ""]
    write_report(out, {"context": context, "series": args.series, "runs": runs}, "\n".join(lines))
    print(f"wrote {out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
