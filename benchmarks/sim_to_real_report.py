"""The sim-to-real table: grasp models trained on different depth, evaluated on simulated D435 depth.

    diffgrasp bench --scene pile packed --rounds 30 --noise stereo --materials mixed --workers 2 \
        --method baseline igd:weights=RUN_CLEAN igd:weights=RUN_GRAFT --json raw.json
    diffgrasp bench ... the same ... --depth-mode restore --json restored.json
    python benchmarks/sim_to_real_report.py raw.json restored.json --labels labels.json \
        --compare igd:weights=RUN_GRAFT igd:weights=RUN_CLEAN [--out report.md] [--allow-dirty]

Prints GSR / DR per method (rows) for every run and scene type (columns), then the GSR and DR
differences between the two ``--compare`` methods: they ran on the same scenes with the same sensor
noise, so rounds are resampled as pairs for a 95 % bootstrap interval. The runs must come from the same
code (their code hashes, or for runs recorded before code hashes their clean commits, must agree): the
report refuses to put runs of different code in one table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (MixedCodeError, add_provenance_arguments, check_same_code,
                                                 prepare_results, provenance_markdown, recorded_code, write_text)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _column(run: dict, result: dict) -> str:
    s = result["settings"]
    return f"{s['scene']}, depth {s.get('depth_mode', 'passthrough')}"


def paired_differences(rounds_a: list[dict], rounds_b: list[dict], resamples: int = 10_000,
                       seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """GSR(a) - GSR(b) and DR(a) - DR(b), each with a 95 % bootstrap interval, resampling rounds (a
    resampled round keeps both methods' outcomes on it)."""
    if [r["index"] for r in rounds_a] != [r["index"] for r in rounds_b]:
        raise SystemExit("the two methods did not run the same rounds")
    def counts(key: str) -> np.ndarray:
        return np.array([[r[key] for r in rounds_a], [r[key] for r in rounds_b]], dtype=float)

    successes, attempts, placed = counts("successes"), counts("attempts"), counts("objects_placed")

    def diffs(idx: np.ndarray) -> np.ndarray:
        s, t, n = successes[:, idx].sum(-1), attempts[:, idx].sum(-1), placed[:, idx].sum(-1)
        gsr, dr = s / np.maximum(t, 1), s / np.maximum(n, 1)
        return np.array([gsr[0] - gsr[1], dr[0] - dr[1]])

    rng = np.random.default_rng(seed)
    n = successes.shape[1]
    boot = np.array([diffs(rng.integers(0, n, n)) for _ in range(resamples)])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    full = diffs(np.arange(n))
    return {name: (float(full[i]), float(low[i]), float(high[i])) for i, name in enumerate(("GSR", "DR"))}


def report(runs: list[dict], labels: dict[str, str], compare: tuple[str, str] | None, context: dict) -> str:
    columns, cells, methods = [], {}, []
    for run in runs:
        for result in run["results"]:
            column = _column(run, result)
            columns.append(column)
            for method, summary in result["summary"].items():
                if method not in methods:
                    methods.append(method)
                cells[method, column] = summary
    lines = []
    for i, run in enumerate(runs, 1):
        lines += [f"Run {i}:", "", *provenance_markdown(run), ""]
    lines += ["This report:", "", *provenance_markdown(context), "",
              "GSR / DR (%), latency p50 (ms, depth processing included):", "",
              "| model | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for method in methods:
        row = []
        for column in columns:
            s = cells.get((method, column))
            row.append("n/a" if s is None else f"{_pct(s['gsr'])} / {_pct(s['dr'])}, "
                                                f"{1000 * (s['latency_p50_s'] or 0):.0f} ms")
        lines.append(f"| {labels.get(method, method)} | " + " | ".join(row) + " |")
    if compare:
        a, b = compare
        lines += ["", f"Paired differences, {labels.get(a, a)} minus {labels.get(b, b)} "
                      "(points, 95 % bootstrap interval over rounds):", ""]
        for run in runs:
            for result in run["results"]:
                rounds = result["rounds"]
                if a not in rounds or b not in rounds:
                    raise SystemExit(f"--compare methods must both be in every run; {_column(run, result)} "
                                     f"has {sorted(rounds)}")
                parts = [f"{name} {100 * d:+.1f} ({100 * low:+.1f} … {100 * high:+.1f})"
                         for name, (d, low, high) in paired_differences(rounds[a], rounds[b]).items()]
                lines.append(f"- {_column(run, result)}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench --json files")
    parser.add_argument("--labels", type=Path, help="JSON: method spec -> readable name")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="methods to difference, A - B")
    parser.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.out)
    labels = json.loads(args.labels.read_text()) if args.labels else {}
    runs = [json.loads(p.read_text()) for p in args.runs]
    try:
        check_same_code({str(path): recorded_code(run) for path, run in zip(args.runs, runs)},
                        "re-run every bench run of the table from one clean commit (each JSON holds its command)")
    except MixedCodeError as error:
        raise SystemExit(f"sim_to_real_report: error: {error}") from None
    text = report(runs, labels, tuple(args.compare) if args.compare else None, context)
    if args.out:
        write_text(args.out, text)
    print(text, end="")


if __name__ == "__main__":
    main()
