"""Dataset generation rates, and how well the analytic labels agree with the simulated ones.

    .venv/bin/python benchmarks/datagen_rates.py [--runs 3] [--workers 2] [--out benchmarks/results/datagen_rates]
        [--allow-dirty]

The README's "Dataset generation" figures, measured as `diffgrasp datagen` makes data
(`training.datagen.generate_dataset` on the training objects, scenes alternating pile and packed; scene
generation, rendering, fusion and labelling included, `--workers` processes):

- rates: per run, `--chunks` × `--scenes-per-chunk` scenes (default 8 × 4 = 32, each 12 surface points × 4
  yaws × 2 depths plus up to 16 baseline grasps, as `diffgrasp datagen` by default) labelled `sim`, the same
  scenes labelled `analytic`, and (`--dense-points`, 0 skips it) `analytic` with that many surface points per
  scene; run i uses seed i, and the three alternate so that load on the machine falls on all of them. Labelled
  grasps per second: median and range over `--runs` runs;
- agreement: `--agreement-chunks` × `--scenes-per-chunk` other scenes (seed `--agreement-seed`) labelled
  `both`: precision, recall and accuracy of the analytic labels against the simulated ones (taken as the
  truth) and the share of positive grasps.

The datasets go to a temporary folder and are deleted. Writes `<out>.json` and `<out>.md`. With the defaults
about 6 minutes on 2 cores; the figures in the README were medians of 6–8 runs (`--runs 7`, ~12 minutes).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 report_paths, write_report)

REPO = Path(__file__).resolve().parents[1]
KINDS = ("pile", "packed")


def generate(config, chunks: int, object_sets: dict, workers: int):
    """One dataset in a temporary folder: its ``DatagenReport``."""
    from diffgrasp_ros.training.datagen import generate_dataset

    with tempfile.TemporaryDirectory(prefix="datagen_rates_") as folder:
        return generate_dataset(Path(folder), config, chunks, object_sets, workers, progress=False)


def rate_row(runs: list[dict]) -> dict:
    rates = [r["grasps_per_s"] for r in runs]
    return {"runs": runs, "grasps_per_s_median": statistics.median(rates), "grasps_per_s_min": min(rates),
            "grasps_per_s_max": max(rates), "grasps_median": statistics.median(r["grasps"] for r in runs),
            "seconds_median": statistics.median(r["seconds"] for r in runs)}


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = ["# Dataset generation: rates and analytic-vs-simulated label agreement", "",
             *provenance_markdown(report["context"]),
             f"- objects: {', '.join(report['objects'])}; {s['workers']} worker(s); per run {s['chunks']} chunks × "
             f"{s['scenes_per_chunk']} scenes, {s['yaws']} yaws × {s['depths']} depths per surface point, up to "
             f"{s['baseline_grasps']} baseline grasps per scene", "",
             "## Labelled grasps per second (scene generation, rendering and fusion included)", "",
             "| labels | surface points per scene | runs | grasps per run | grasps / s (median) | min – max "
             "| s per run (median) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["rates"]:
        lines.append(f"| {row['labels']} | {row['points_per_scene']} | {len(row['runs'])} | {row['grasps_median']:.0f} "
                     f"| {row['grasps_per_s_median']:.0f} | {row['grasps_per_s_min']:.0f} – "
                     f"{row['grasps_per_s_max']:.0f} | {row['seconds_median']:.1f} |")
    a = report["agreement"]
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    lines += ["", f"## Analytic labels against simulated ones ({a['scenes']} other scenes, seed {a['seed']})", "",
              "| grasps | positive (simulated) | precision | recall | accuracy | seconds |",
              "| --- | --- | --- | --- | --- | --- |",
              f"| {a['grasps']} | {pct(a['positive_share'])} | {pct(a['precision'])} | {pct(a['recall'])} "
              f"| {pct(a['accuracy'])} | {a['seconds']:.1f} |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per labelling mode (default: 3)")
    parser.add_argument("--chunks", type=int, default=8, help="chunks per run (default: 8)")
    parser.add_argument("--scenes-per-chunk", type=int, default=4, help="scenes per chunk (default: 4)")
    parser.add_argument("--dense-points", type=int, default=48,
                        help="surface points per scene of the extra analytic run (default: 48; 0 skips it)")
    parser.add_argument("--agreement-chunks", type=int, default=12,
                        help="chunks of the dataset labelled both ways (default: 12)")
    parser.add_argument("--agreement-seed", type=int, default=1000, help="its seed (default: 1000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "datagen_rates",
                        help="write <out>.json and <out>.md (default: benchmarks/results/datagen_rates)")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    if min(args.runs, args.chunks, args.scenes_per_chunk, args.agreement_chunks, args.workers) < 1:
        parser.error("--runs, --chunks, --scenes-per-chunk, --agreement-chunks and --workers must be at least 1")

    from diffgrasp_ros.sim.object_splits import training_objects
    from diffgrasp_ros.training.datagen import DatagenConfig

    object_sets = {kind: training_objects(kind) for kind in KINDS}
    context = prepare_results(args, *report_paths(args.out),
                              code_paths=list(dict.fromkeys(s.root for s in object_sets.values())))

    def config(labels: str, seed: int, points: int = 12) -> DatagenConfig:
        return DatagenConfig(labels=labels, scenes_per_chunk=args.scenes_per_chunk, seed=seed, kinds=KINDS,
                             points_per_scene=points)

    modes = [("sim", 12), ("analytic", 12)] + ([("analytic", args.dense_points)] if args.dense_points else [])
    runs: dict[tuple[str, int], list[dict]] = {mode: [] for mode in modes}
    for i in range(args.runs):
        for labels, points in modes:
            r = generate(config(labels, i, points), args.chunks, object_sets, args.workers)
            runs[labels, points].append({"seed": i, "scenes": r.scenes, "grasps": r.grasps, "positives": r.positives,
                                         "seconds": r.seconds, "grasps_per_s": r.grasps_per_second})
            print(f"run {i + 1}/{args.runs}, {labels}, {points} points per scene: {r.grasps} grasps of {r.scenes} "
                  f"scenes in {r.seconds:.1f} s = {r.grasps_per_second:.0f} grasps/s", flush=True)
    both = generate(config("both", args.agreement_seed), args.agreement_chunks, object_sets, args.workers)
    agreement = both.agreement
    print(f"agreement: {agreement}", flush=True)
    defaults = config("sim", 0)
    report = {
        "context": context,
        "objects": [f"{kind}: {s.name} ({len(s.objects)})" for kind, s in object_sets.items()],
        "settings": {"runs": args.runs, "chunks": args.chunks, "scenes_per_chunk": args.scenes_per_chunk,
                     "workers": args.workers, "yaws": defaults.yaws, "depths": defaults.depths,
                     "baseline_grasps": defaults.baseline_grasps},
        "rates": [{"labels": labels, "points_per_scene": points, **rate_row(rows)}
                  for (labels, points), rows in runs.items()],
        "agreement": {"seed": args.agreement_seed, "scenes": both.scenes, "grasps": both.grasps,
                      "seconds": both.seconds,
                      "positive_share": (agreement.true_positives + agreement.false_negatives) / agreement.count
                      if agreement.count else None,
                      "precision": agreement.precision, "recall": agreement.recall, "accuracy": agreement.accuracy,
                      "true_positives": agreement.true_positives, "false_positives": agreement.false_positives,
                      "false_negatives": agreement.false_negatives, "true_negatives": agreement.true_negatives},
    }
    text = markdown(report)
    write_report(args.out, report, text)
    print(text)


if __name__ == "__main__":
    main()
