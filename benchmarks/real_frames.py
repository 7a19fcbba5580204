"""Real depth frames: workspace estimation, every method's plan, and a geometric judge of the grasps.

    .venv/bin/python benchmarks/real_frames.py [--methods baseline igd] [--depth-mode passthrough]
        [--sets all|development|evaluation] [--top-k 5] [--out benchmarks/results/real_frames] [--allow-dirty]

For every frame of ../shared/real (see its README): the workspace is estimated from the depth
(`scene.table.estimate_workspace`, default size), each method plans over it from the processed depth
(timed on a second plan), and its top-k grasps are judged by `evaluation.plausibility` against the
observed points (on `cleargrasp_d435`, against `gt_depth.png`). Top-1 and top-k plausibility per
method are reported with evaluation-only frames (`sixdof_graspnet`, `cleargrasp_d435`: never tuned on)
and development frames (`ucn_tabletop`, `posecnn_tabletop`) in separate tables. Writes `<out>.json`
and `<out>.md`; every run that touches evaluation frames is appended to
`benchmarks/results/real_frames_evaluation_log.jsonl` (from a dirty tree and with `--out` elsewhere too: the
log is an audit trail, each line with its provenance).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, method_code_paths, prepare_results,
                                                 provenance_markdown, report_paths, write_report)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "real"
EVALUATION_LOG = REPO / "benchmarks" / "results" / "real_frames_evaluation_log.jsonl"


def judge_frame(real, planners: dict, processor, top_k: int) -> dict:
    from diffgrasp_ros.camera.frame import DepthFrame
    from diffgrasp_ros.evaluation.plausibility import judge_grasps, observed_points
    from diffgrasp_ros.scene.table import estimate_workspace

    frame = DepthFrame(real.depth_m, real.intrinsics, frame_id=real.name)
    judged_depth = real.gt_depth_m if real.gt_depth_m is not None else frame.depth_m
    processed = processor.process(frame)
    start = time.perf_counter()
    estimate = estimate_workspace(processed)
    record = {"set": real.set_name, "frame": real.name,
              "size": [frame.intrinsics.width, frame.intrinsics.height],
              "workspace": {**estimate.area.to_dict(), **estimate.diagnostics(),
                            "estimate_s": time.perf_counter() - start},
              "methods": {}}
    points = observed_points(judged_depth, frame.intrinsics, estimate.T_workspace_camera)
    for method, planner in planners.items():
        planner.plan_from_depth(processed, estimate.T_workspace_camera, estimate.area)  # warm
        result = planner.plan_from_depth(processed, estimate.T_workspace_camera, estimate.area)
        judgements = judge_grasps(result.grasps[:top_k], points, estimate.area.table_height_m)
        record["methods"][method] = {
            "grasps": len(result.grasps), "message": result.message, "warnings": result.warnings,
            "plan_s": result.total_s,
            "judgements": [{"plausible": j.plausible, "points_between": j.points_between,
                            "points_in_hand": j.points_in_hand, "span_y_m": j.span_y_m, "reason": j.reason}
                           for j in judgements],
        }
    return record


def summarise(records: list[dict], methods: list[str], top_k: int) -> dict:
    from diffgrasp_ros.evaluation.plausibility import GraspJudgement, plausibility_summary

    out = {}
    for method in methods:
        per_frame = [[GraspJudgement(j["plausible"], j["points_between"], j["points_in_hand"], j["span_y_m"],
                                     j["reason"]) for j in r["methods"][method]["judgements"]] for r in records]
        summary = plausibility_summary(per_frame, k=top_k)
        summary["plan_s_median"] = float(np.median([r["methods"][method]["plan_s"] for r in records]))
        out[method] = summary
    return out


def markdown(report: dict) -> str:
    ctx, k = report["context"], report["top_k"]
    lines = ["# Real-frame benchmark: grasp plausibility on ../shared/real", "", *provenance_markdown(ctx),
             f"- depth mode: {report['depth_mode']}", ""]
    for group, title in (("evaluation", "Evaluation-only frames (sixdof_graspnet, cleargrasp_d435; never tuned on)"),
                         ("development", "Development frames (ucn_tabletop, posecnn_tabletop)")):
        if group not in report["summary"]:
            continue
        lines += [f"## {title}", "", f"| method | top-1 plausible | top-{k} plausible | plan [s] (median) |",
                  "| --- | --- | --- | --- |"]
        for method, s in report["summary"][group].items():
            lines.append(f"| {method} | {s['top1_frames']} / {s['frames']} ({100 * s['top1']:.0f} %) "
                         f"| {100 * s['topk']:.0f} % | {s['plan_s_median']:.2f} |")
        lines.append("")
    lines += ["## Per frame", "", "| frame | table share / residual [mm] | workspace [m] | objects inside | "
              + " | ".join(f"{m}: top-{k}" for m in report["methods"]) + " |",
              "| --- | --- | --- | --- | " + " | ".join("---" for _ in report["methods"]) + " |"]
    for r in report["frames"]:
        w = r["workspace"]
        cells = []
        for m in report["methods"]:
            flags = "".join("+" if j["plausible"] else "-" for j in r["methods"][m]["judgements"])
            cells.append(flags or "(none)")
        lines.append(f"| {r['set']}/{r['frame']} | {100 * w['table_inlier_share']:.0f} % / "
                     f"{1000 * w['table_residual_m']:.1f} | {w['size_x_m']:.2f} x {w['size_y_m']:.2f} "
                     f"| {100 * w['object_share_inside']:.0f} % | " + " | ".join(cells) + " |")
    lines += ["", "`+` plausible, `-` not, in rank order (see `evaluation/plausibility.py`)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["baseline", "igd"])
    parser.add_argument("--depth-mode", default="passthrough", help="passthrough or restore (default: passthrough)")
    parser.add_argument("--sets", choices=("all", "development", "evaluation"), default="all")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "real_frames")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"real_frames: {REAL} not found (../shared/real beside the repository)")
    context = prepare_results(args, *report_paths(args.out), code_paths=[*method_code_paths(args.methods), REAL])

    import torch

    from diffgrasp_ros.camera.real_frames import EVALUATION_SETS, LEARNABLE_SETS, load_real_frames
    from diffgrasp_ros.depth import DepthProcessor
    from diffgrasp_ros.grasping import make_planner

    torch.set_num_threads(args.threads)
    groups = {"evaluation": EVALUATION_SETS, "development": LEARNABLE_SETS}
    if args.sets != "all":
        groups = {args.sets: groups[args.sets]}
    planners = {m: make_planner(m) for m in args.methods}
    processor = DepthProcessor(args.depth_mode)
    records, summary = [], {}
    for group, sets in groups.items():
        group_records = []
        for real in load_real_frames(REAL, sets):
            record = judge_frame(real, planners, processor, args.top_k)
            record["group"] = group
            flags = {m: "".join("+" if j["plausible"] else "-" for j in record["methods"][m]["judgements"])
                     for m in args.methods}
            print(f"{record['set']}/{record['frame']}: " + ", ".join(f"{m} {f or '(none)'}" for m, f in flags.items()),
                  flush=True)
            group_records.append(record)
        summary[group] = summarise(group_records, args.methods, args.top_k)
        records += group_records
    report = {"context": context, "depth_mode": args.depth_mode, "top_k": args.top_k, "methods": args.methods,
              "summary": summary, "frames": records}
    write_report(args.out, report, markdown(report))
    if "evaluation" in summary:
        with EVALUATION_LOG.open("a") as log:
            log.write(json.dumps({"context": context, "depth_mode": args.depth_mode,
                                  "summary": summary["evaluation"]}) + "\n")
    print(markdown(report).split("## Per frame")[0])


if __name__ == "__main__":
    main()
