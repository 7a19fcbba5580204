"""Depth restoration on the real frames of ../shared/real: ground truth and hidden holes, with baselines.

    .venv/bin/python benchmarks/real_depth.py [--methods raw nearest telea navier_stokes joint_bilateral
        plane_fill learned] [--weights models/depth_restore] [--seeds 0 1 2 3 4] [--no-color]
        [--out benchmarks/results/real_depth] [--allow-dirty]

Every frame is first limited to the pipeline's working range ([0.1, 2.0] m, as ``DepthProcessor`` does).
Methods: ``raw`` (the input unchanged; scored only where the raw depth is valid), the classical fills of
``depth.classical`` (``nearest``, ``telea``, ``navier_stokes``, ``joint_bilateral``: the issue's baselines),
``plane_fill`` (the learned restoration's first, classical stage alone, ``depth.plane_fill`` with the
model's fill settings: how much of the restoration's result is the fill's and how much the network's)
and ``learned`` (``DepthRestorer.from_pretrained(--weights).restore(depth, color=colour)``). With
``--no-color`` every method gets depth alone (the colour-guided fills then fall back to position only).

- Ground truth (``cleargrasp_d435``, native 1280×720): MAE, RMSE, δ<1.05 per region (see
  ``evaluation.real_depth``), per frame and pooled over pixels; on ``kept`` (raw-valid, not transparent,
  off the truth's depth edges) also the median |output − raw| and item 1's check against raw.
- Hidden holes (all frames): ``--seeds`` trials per frame, valid pixels hidden in another frame's
  sensor-hole shape (``depth.holes.sensor_hole_masks``: not sixdof_graspnet's range crops), MAE over the
  hidden pixels, mean per frame, then mean over frames; learnable frames (ucn_tabletop,
  posecnn_tabletop) and evaluation-only frames (sixdof_graspnet, cleargrasp_d435) apart, each method
  also as a ratio to the best classical fill of the group.

Writes ``<out>.json`` and ``<out>.md``, and appends the evaluation-only figures to
``benchmarks/results/real_depth_evaluation_log.jsonl`` (every look at the evaluation frames is logged, from
a dirty tree and with ``--out`` elsewhere too: the log is an audit trail, each line with its provenance).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 report_paths, write_report)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "real"
EVALUATION_LOG = REPO / "benchmarks" / "results" / "real_depth_evaluation_log.jsonl"
CLASSICAL = ("nearest", "telea", "navier_stokes", "joint_bilateral")
METHODS = ("raw", *CLASSICAL, "plane_fill", "learned")
# item 1: where raw is valid (the ``kept`` region), the output equals the input
MAX_MEDIAN_CHANGE_MM, MAX_MAE_OVER_RAW_MM = 0.5, 0.3


def make_methods(names: list[str], weights: Path | None) -> dict:
    from diffgrasp_ros.depth.classical import CLASSICAL_FILLS

    methods = {}
    for name in names:
        if name == "raw":
            methods[name] = lambda depth_m, color_rgb: depth_m
        elif name == "learned":
            from diffgrasp_ros.depth.restoration import DEFAULT_WEIGHTS, DepthRestorer

            restorer = DepthRestorer.from_pretrained(weights or DEFAULT_WEIGHTS)
            methods[name] = lambda depth_m, color_rgb: restorer.restore(depth_m, color=color_rgb)
        elif name == "plane_fill":
            from diffgrasp_ros.depth.inputs import check_frame
            from diffgrasp_ros.depth.plane_fill import plane_fill
            from diffgrasp_ros.depth.restoration import DEFAULT_WEIGHTS, RestorationConfig

            fill_config = RestorationConfig.from_json(Path(weights or DEFAULT_WEIGHTS) / "config.json").fill

            def fill_only(depth_m, color_rgb, fill_config=fill_config):
                check_frame(depth_m, color_rgb)
                return plane_fill(depth_m, color_rgb, fill_config)

            methods[name] = fill_only
        else:
            methods[name] = CLASSICAL_FILLS[name]
    return methods


def ground_truth_section(frames, methods: dict) -> dict:
    from diffgrasp_ros.evaluation.real_depth import GT_REGIONS, RAW_REGIONS, ground_truth_errors, pooled_errors

    per_frame = {}
    for frame in frames:
        per_frame[frame.key] = {
            name: ground_truth_errors(frame, method(frame.depth_m, frame.color_rgb),
                                      RAW_REGIONS if name == "raw" else GT_REGIONS)
            for name, method in methods.items()}
        print(f"ground truth {frame.key}: " + ", ".join(f"{n} {r['all']['mae_mm']:.1f}" for n, r in
                                                        per_frame[frame.key].items() if "all" in r) + " mm (all)",
              flush=True)
    keys = list(per_frame)
    pooled = {name: {region: pooled_errors([per_frame[k][name][region] for k in keys])
                     for region in per_frame[keys[0]][name]} for name in methods}
    checks = {}
    for name in methods if "raw" in methods else ():
        if name == "raw":
            continue
        kept = {k: (per_frame[k][name]["kept"], per_frame[k]["raw"]["kept"]) for k in keys}
        frame_checks = {k: {"median_change_mm": out["median_change_mm"],
                            "mae_over_raw_mm": out["mae_mm"] - raw["mae_mm"]} for k, (out, raw) in kept.items()}
        checks[name] = {"frames": frame_checks,
                        "passes": all(c["median_change_mm"] <= MAX_MEDIAN_CHANGE_MM
                                      and c["mae_over_raw_mm"] <= MAX_MAE_OVER_RAW_MM for c in frame_checks.values())}
    return {"frames": per_frame, "pooled": pooled, "kept_check": checks}


def hidden_hole_section(frames, hole_frames, methods: dict, seeds: list[int]) -> dict:
    from diffgrasp_ros.depth.holes import sensor_hole_masks
    from diffgrasp_ros.evaluation.real_depth import hidden_hole_trials, score_hidden_holes

    sources = dict(zip([f.key for f in hole_frames], sensor_hole_masks(hole_frames)))
    trials = hidden_hole_trials(frames, sources, seeds)
    fills = {name: method for name, method in methods.items() if name != "raw"}  # raw has no depth there
    per_frame = []
    for frame, frame_trials in zip(frames, trials):
        scores = {name: score_hidden_holes(frame, frame_trials, method) for name, method in fills.items()}
        per_frame.append({"frame": frame.key, "learnable": frame.learnable, "size": list(frame.depth_m.shape[::-1]),
                          "methods": scores})
        print(f"hidden holes {frame.key}: " + ", ".join(f"{n} {r['mae_mm']:.1f}" for n, r in scores.items()) + " mm",
              flush=True)
    summary = {group: _hidden_summary([r for r in per_frame if r["learnable"] == (group == "learnable")], list(fills))
               for group in ("evaluation", "learnable")}
    return {"seeds": seeds, "hole_sources": sorted(sources), "summary": summary, "frames": per_frame}


def _hidden_summary(records: list[dict], names: list[str]) -> dict:
    """Per method: the mean over frames, its ratio to the best classical fill's, the median time per
    frame and the worst median change of the valid pixels over all trials."""
    if not records:
        return {}
    mean = {name: float(np.mean([r["methods"][name]["mae_mm"] for r in records])) for name in names}
    best = min((mean[n] for n in names if n in CLASSICAL), default=None)
    return {name: {"mae_mm": mean[name], "ratio_to_best_classical": mean[name] / best if best else None,
                   "median_s_per_frame": float(np.median([t["seconds"] for r in records
                                                          for t in r["methods"][name]["trials"]])),
                   "worst_kept_median_change_mm": max(t["kept_median_change_mm"] for r in records
                                                      for t in r["methods"][name]["trials"])}
            for name in names}


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gt_table(table: dict, with_change: bool) -> list[str]:
    from diffgrasp_ros.evaluation.real_depth import GT_REGIONS

    change = " | median abs(out − raw) on kept [mm] |" if with_change else " |"
    lines = ["| method | " + " | ".join(GT_REGIONS) + change,
             "| --- |" + " --- |" * (len(GT_REGIONS) + with_change)]
    for name, regions in table.items():
        cells = [f"{_f(e['mae_mm'])} / {_f(e['rmse_mm'])} / {_f(e['delta_105'], 3)}" if (e := regions.get(r)) else ""
                 for r in GT_REGIONS]
        if with_change:
            cells.append(_f(regions["kept"].get("median_change_mm"), 2))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(report: dict) -> str:
    ctx, hidden, gt = report["context"], report["hidden_holes"], report["ground_truth"]
    lines = ["# Depth restoration on real frames (../shared/real)", "", *provenance_markdown(ctx),
             f"- working range: {report['working_range_m']} m (raw depth outside "
             "it is invalid, as in the pipeline)",
             f"- inputs: {'depth and colour' if report.get('color', True) else 'depth alone (--no-color)'}", "",
             "## Hidden holes: MAE over hidden pixels [mm], mean over frames", "",
             f"{len(hidden['seeds'])} trials per frame (seeds {hidden['seeds']}), hole shapes from "
             f"{len(hidden['hole_sources'])} frames with sensor holes (never the frame's own). Ratio: to the best "
             "classical fill of the group. Evaluation-only frames: sixdof_graspnet, cleargrasp_d435; learnable: "
             "ucn_tabletop, posecnn_tabletop. Last column: over every trial, the median change of the valid "
             "pixels the method was given, outside a 3 px band around the raw depth's jumps over 2 cm.", "",
             "| method | evaluation-only frames | ratio | learnable frames | ratio | s / frame (median) "
             "| worst median abs(out − raw) on the given valid pixels [mm] |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    evaluation, learnable = hidden["summary"]["evaluation"], hidden["summary"]["learnable"]
    for name, e in evaluation.items():
        le = learnable[name]
        lines.append(f"| {name} | {_f(e['mae_mm'], 2)} | {_f(e['ratio_to_best_classical'], 3)} | {_f(le['mae_mm'], 2)} "
                     f"| {_f(le['ratio_to_best_classical'], 3)} | {e['median_s_per_frame']:.3f} "
                     f"| {max(e['worst_kept_median_change_mm'], le['worst_kept_median_change_mm']):.2f} |")
    lines += ["", "## Ground truth (cleargrasp_d435, 1280×720), pooled over both frames", "",
              "Cells: MAE [mm] / RMSE [mm] / δ<1.05 over the pixels with ground truth in each region: all; raw_valid; "
              "raw_invalid; transparent (mask.png); kept = raw-valid, not transparent, outside a 3 px band around "
              "the ground truth's depth jumps over 2 cm.", "", *_gt_table(gt["pooled"], with_change=False)]
    if gt["kept_check"]:
        lines += [f"Item 1 on `kept`, every frame: median abs(out − raw) ≤ {MAX_MEDIAN_CHANGE_MM} mm and "
                  f"MAE ≤ raw's + {MAX_MAE_OVER_RAW_MM} mm.", ""]
        for name, check in gt["kept_check"].items():
            worst = max(c["median_change_mm"] for c in check["frames"].values())
            over = max(c["mae_over_raw_mm"] for c in check["frames"].values())
            lines.append(f"- {name}: {'pass' if check['passes'] else 'FAIL'} (worst median change {worst:.2f} mm, "
                         f"worst MAE − raw's {over:+.2f} mm)")
        lines.append("")
    methods = list(evaluation)
    lines += ["## Per frame", "", "### Hidden holes [mm]", "", "| frame | group | " + " | ".join(methods) + " |",
              "| --- | --- |" + " --- |" * len(methods)]
    for r in hidden["frames"]:
        lines.append(f"| {r['frame']} | {'learnable' if r['learnable'] else 'evaluation'} | "
                     + " | ".join(_f(r["methods"][n]["mae_mm"], 2) for n in methods) + " |")
    lines.append("")
    for key, table in gt["frames"].items():
        lines += [f"### Ground truth {key}", "", *_gt_table(table, with_change=True)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--weights", type=Path, default=None,
                        help="restoration model folder (default: the shipped one)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="hidden-hole trials per frame")
    parser.add_argument("--min-depth-m", type=float, default=0.1)
    parser.add_argument("--max-depth-m", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default: 1)")
    parser.add_argument("--no-color", action="store_true",
                        help="give every method depth alone, as a pipeline without a colour stream does")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "real_depth")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"real_depth: {REAL} not found (../shared/real beside the repository)")
    context = prepare_results(args, *report_paths(args.out), code_paths=[p for p in (args.weights, REAL) if p])

    import cv2
    import torch

    from diffgrasp_ros.camera.real_frames import load_real_frames, within_range
    from diffgrasp_ros.depth.holes import has_sensor_holes

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    raw_frames = load_real_frames(REAL)
    frames = [within_range(f, args.min_depth_m, args.max_depth_m) for f in raw_frames]
    methods = make_methods(args.methods, args.weights)
    if args.no_color:
        import warnings

        warnings.filterwarnings("ignore", message="no colour image")  # asked for
        methods = {name: (lambda method: lambda depth_m, color_rgb: method(depth_m, None))(method)
                   for name, method in methods.items()}
    report = {"context": context, "working_range_m": [args.min_depth_m, args.max_depth_m], "methods": args.methods,
              "color": not args.no_color}
    # hole shapes from the sensor's own invalid pixels, before the working range adds far background
    report["hidden_holes"] = hidden_hole_section(frames, [f for f in raw_frames if has_sensor_holes(f)], methods,
                                                 args.seeds)
    report["ground_truth"] = ground_truth_section([f for f in frames if f.gt_depth_m is not None], methods)
    text = markdown(report)
    write_report(args.out, report, text + "\n")
    with EVALUATION_LOG.open("a") as log:
        log.write(json.dumps({"context": context,
                              "hidden_holes_evaluation": report["hidden_holes"]["summary"]["evaluation"],
                              "ground_truth_pooled": report["ground_truth"]["pooled"]}) + "\n")
    print(text.split("## Per frame")[0])


if __name__ == "__main__":
    main()
