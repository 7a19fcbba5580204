"""IGD against the baseline and its ablations, from the JSON of one `diffgrasp bench` run.

    diffgrasp bench --scene pile packed --rounds 100 --noise dex --workers 2 --json bench.json \
        --method baseline igd igd:rounds=1 igd:evaluator=affordance ...
    python benchmarks/igd_report.py bench.json --labels labels.json [--out report.md] [--allow-dirty]

Prints, per scene type, GSR / DR / latency of every method with its difference to the full model
(`--full`, default `igd`) and to the baseline, then the median time of each planner stage. Every
method ran on the same scenes in the same run, so the differences are paired. `--labels` maps a
method spec to a readable name (e.g. a weights path to "without DAM, 3k steps"). The header gives the
bench run's provenance (a warning first when it ran from a dirty tree) and this report's own command.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 write_text)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _delta(x: float | None, ref: float | None) -> str:
    return "" if x is None or ref is None else f"{100 * (x - ref):+.1f}"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{1000 * x:.0f}"


def report(bench: dict, full: str, baseline: str, labels: dict[str, str], context: dict) -> str:
    lines = ["The bench run:", "", *provenance_markdown(bench), "",
             "This report:", "", *provenance_markdown(context), ""]
    for result in bench["results"]:
        s, summary = result["settings"], result["summary"]
        for needed in (full, baseline):
            if needed not in summary:
                raise SystemExit(f"method {needed!r} is not in the run (it has {sorted(summary)})")
        ref, base = summary[full], summary[baseline]
        lines += [f"## {s['scene']}: {s['rounds']} rounds, seed {s['seed']}, {s['views']} view, noise {s['noise']}", "",
                  f"| method | GSR % | Δ GSR vs {full} | Δ GSR vs {baseline} | DR % | Δ DR vs {full} | grasps ok / tried "
                  "| latency p50 / p95 [ms] |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for method, m in summary.items():
            name = labels.get(method, method)
            lines.append(f"| {name} | {_pct(m['gsr'])} | {_delta(m['gsr'], ref['gsr'])} | "
                         f"{_delta(m['gsr'], base['gsr'])} | {_pct(m['dr'])} | {_delta(m['dr'], ref['dr'])} | "
                         f"{m['successes']} / {m['attempts']} | {_ms(m['latency_p50_s'])} / {_ms(m['latency_p95_s'])} |")
        stages = list(dict.fromkeys(k for m in summary.values() for k in m.get("stage_p50_s", {})))
        lines += ["", "Median time per planner stage [ms]:", "",
                  "| method | " + " | ".join(stages) + " |", "| --- |" + " --- |" * len(stages)]
        for method, m in summary.items():
            lines.append(f"| {labels.get(method, method)} | "
                         + " | ".join(_ms(m.get("stage_p50_s", {}).get(k)) for k in stages) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", type=Path, help="--json output of diffgrasp bench")
    parser.add_argument("--full", default="igd", help="the full model's method spec (default: igd)")
    parser.add_argument("--baseline", default="baseline", help="the baseline's method spec (default: baseline)")
    parser.add_argument("--labels", type=Path, help="JSON {method spec: name} for the table")
    parser.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.out)
    labels = json.loads(args.labels.read_text()) if args.labels else {}
    text = report(json.loads(args.bench_json.read_text()), args.full, args.baseline, labels, context)
    if args.out:
        write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
