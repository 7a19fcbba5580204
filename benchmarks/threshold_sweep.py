"""The quality threshold's trade of GSR against DR, from one `diffgrasp bench` run without it.

    diffgrasp bench --scene pile packed --rounds 100 --seed 100 --noise dex --workers 2 --json tune.json \
        --method igd:min_quality=0
    python benchmarks/threshold_sweep.py tune.json --method igd:min_quality=0 [--thresholds 0 0.1 0.2 ...]
        [--out sweep.md] [--allow-dirty]

Per scene type: GSR and DR at each threshold (``evaluation.thresholds``: a round stops at its first attempt
whose best grasp scores below it, exact for the hand executor) and the success rate of the executed grasps
by score. Choose the threshold on tuning scenes (another --seed than the reported benchmark's).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 write_text)
from diffgrasp_ros.evaluation.thresholds import calibration, rates_at


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def sweep_report(bench: dict, method: str, thresholds: list[float], bins: list[float], context: dict) -> str:
    lines = ["The bench run:", "", *provenance_markdown(bench), "", "This report:", "",
             *provenance_markdown(context), ""]
    for result in bench["results"]:
        if method not in result["rounds"]:
            raise SystemExit(f"threshold_sweep.py: the bench run has no method {method!r}; it has "
                             f"{sorted(result['rounds'])}")
        rounds = result["rounds"][method]
        scene = result["settings"]["scene"]
        lines += [f"## {scene}: {method}, {len(rounds)} rounds", "",
                  "| threshold | GSR | DR | attempts | rounds ended by the threshold |", "| --- | --- | --- | --- | --- |"]
        for t in thresholds:
            r = rates_at(rounds, t)
            lines.append(f"| {t:g} | {_pct(r.gsr)} | {_pct(r.dr)} | {r.attempts} | {r.rounds_ended_by_threshold} |")
        lines += ["", "| score | executed grasps | held |", "| --- | --- | --- |"]
        lines += [f"| [{low:g}, {high:g}) | {n} | {_pct(rate)} |" for low, high, n, rate in calibration(rounds, bins)]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", type=Path, help="the JSON of a diffgrasp bench run")
    parser.add_argument("--method", default="igd", help="the method spec in that run (default: igd)")
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5])
    parser.add_argument("--bins", type=float, nargs="+", default=list(np.round(np.linspace(0.0, 1.0, 11), 2)) + [1.01],
                        help="score bin edges of the calibration table")
    parser.add_argument("--out", type=Path, help="also write the report here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.out)
    text = sweep_report(json.loads(args.bench.read_text()), args.method, args.thresholds, args.bins, context)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
