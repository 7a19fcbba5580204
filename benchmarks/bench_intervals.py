"""GSR and DR with 95 % intervals, from the JSON of one `diffgrasp bench` run.

    python benchmarks/bench_intervals.py bench.json [--resamples 10000] [--out intervals.md] [--allow-dirty]

A round's attempts are not independent (the same scene, the objects left by the previous grasp), so the
intervals come from a bootstrap over rounds: rounds drawn with replacement, GSR and DR pooled as the
benchmark pools them, the 2.5th and 97.5th percentiles. Methods of one run saw the same scenes, so each
difference to the first method is bootstrapped on the same draws (paired).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 write_text)


def _pooled(counts: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GSR and DR of each bootstrap draw: ``counts`` (rounds, 3) successes, attempts, placed; ``draws``
    (resamples, rounds) round indices."""
    sums = counts[draws].sum(1)  # (resamples, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, 0] / sums[:, 1], sums[:, 0] / sums[:, 2]


def _interval(values: np.ndarray) -> str:
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def intervals_report(bench: dict, resamples: int, context: dict) -> str:
    lines = ["The bench run:", "", *provenance_markdown(bench), "", "This report:", "",
             *provenance_markdown(context), ""]
    rng = np.random.default_rng(0)
    for result in bench["results"]:
        rounds = result["rounds"]
        methods = list(rounds)
        counts = {m: np.array([[r["successes"], r["attempts"], r["objects_placed"]] for r in rounds[m]], float)
                  for m in methods}
        n = len(rounds[methods[0]])
        if any(len(c) != n for c in counts.values()):
            raise SystemExit("bench_intervals.py: the methods ran different numbers of rounds")
        draws = rng.integers(0, n, (resamples, n))
        first = _pooled(counts[methods[0]], draws)
        lines += [f"## {result['settings']['scene']}: {n} rounds, {resamples} bootstrap resamples over rounds", "",
                  f"| method | GSR | 95 % interval | DR | 95 % interval | GSR − {methods[0]} (95 %) | "
                  f"DR − {methods[0]} (95 %) |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for m in methods:
            summary = result["summary"][m]
            gsr, dr = _pooled(counts[m], draws)
            paired = ("", "") if m == methods[0] else (_interval(gsr - first[0]), _interval(dr - first[1]))
            lines.append(f"| {m} | {100 * summary['gsr']:.1f} | {_interval(gsr)} | {100 * summary['dr']:.1f} | "
                         f"{_interval(dr)} | {paired[0]} | {paired[1]} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", type=Path, help="the JSON of a diffgrasp bench run")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default: 10000)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.out)
    text = intervals_report(json.loads(args.bench.read_text()), args.resamples, context)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
