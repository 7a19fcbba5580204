"""One command from a real frame to grasps, on every frame of ../shared/real at its native resolution.

    .venv/bin/python benchmarks/real_frames_cli.py [--depth-modes passthrough restore] [--method igd]
        [--out benchmarks/results/real_frames_cli.md] [--allow-dirty]

Runs `diffgrasp plan --depth D --intrinsics K --workspace auto --color C --draw OUT.png` (in this
process, through the CLI's own entry point) for every frame and depth mode, and tabulates the exit
status, the grasps found, the warnings and the warm plan time. Pictures go to a temporary folder.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results, provenance_markdown

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "real"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth-modes", nargs="+", default=["passthrough", "restore"])
    parser.add_argument("--method", default=None, help="planner (default: the CLI's default)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "real_frames_cli.md")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"real_frames_cli: {REAL} not found")
    context = prepare_results(args, args.out, code_paths=[REAL])

    from diffgrasp_ros.cli.main import main as diffgrasp

    frames = sorted(d for d in REAL.glob("*/*") if (d / "depth.png").is_file())
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.depth_modes:
            for frame in frames:
                out = Path(tmp) / f"{frame.parent.name}_{frame.name}_{mode}"
                argv = ["plan", "--depth", str(frame / "depth.png"), "--intrinsics", str(frame / "camera.json"),
                        "--workspace", "auto", "--depth-mode", mode, "--color", str(frame / "color.png"),
                        "--draw", str(out.with_suffix(".png")), "--out", str(out.with_suffix(".json"))]
                if args.method:
                    argv += ["--method", args.method]
                stderr = io.StringIO()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
                    code = diffgrasp(argv)
                report = json.loads(out.with_suffix(".json").read_text()) if code in (0, 3) else {}
                grasps = len(report.get("grasps", []))
                failures += code != 0 or grasps == 0 or not out.with_suffix(".png").is_file()
                rows.append(f"| {frame.parent.name}/{frame.name} | {mode} | {code} | {grasps} "
                            f"| {report.get('total_s', 0.0):.2f} "
                            f"| {'; '.join(report.get('warnings', [])) or stderr.getvalue().strip()[:120]} |")
                print(rows[-1], flush=True)
    text = "\n".join([
        "# `diffgrasp plan --workspace auto --draw` on every real frame", "", *provenance_markdown(context), "",
        f"{len(rows) - failures} of {len(rows)} runs exited 0 with at least one grasp and a picture.", "",
        "| frame | depth mode | exit | grasps | plan [s] (warm) | warnings / error |",
        "| --- | --- | --- | --- | --- | --- |", *rows]) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text.split("| frame")[0])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
