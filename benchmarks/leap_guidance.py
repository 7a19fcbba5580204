"""Guided LEAP grasp generation: does the grasp follow the requested approach / region, and does it hold?

    .venv/bin/python benchmarks/leap_guidance.py [--variants leap leap:approach=top leap:approach=+x
        leap:region=AUTO] [--scenes 10] [--weights FOLDER] [--guidance SCALE] [--robot xarm_leap]
        [--seed 7] [--json out.json] [--allow-dirty]

Renders `--scenes` pile and as many packed scenes from the validation objects (single side view, the
benchmark's dex noise), and for every variant (a method spec) rebuilds each scene from its seed in a
fresh world, plans once and executes the best grasp with the free-floating LEAP hand. `region=AUTO`
asks for a 4 cm sphere around the centre (bounding box, ground truth) of one object picked by the scene
seed. Per variant: the share of scenes with a grasp; the best grasp's approach-axis angle to the
requested direction as mean / median / share within 30° (the table shows it, or "top" and "+x" for
variants without one; the JSON has all three for every variant); the success rate of executing it;
planning latency p50 (fusion + planning); for region variants, the share of best grasps with the TCP
inside the sphere and of scenes where the object held is the target. `--weights` and `--guidance` are
passed to every variant.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, method_code_paths, prepare_results

REFERENCES = ("top", "+x")  # directions every variant is also measured against
REGION_RADIUS_M = 0.04
WITHIN_DEG = 30.0


def angle_deg(axis: np.ndarray, direction: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(axis @ direction / np.linalg.norm(axis), -1.0, 1.0))))


def run_variant(spec: str, scene: dict, args, objects) -> dict:
    """Plan once in a fresh copy of ``scene`` with ``spec`` and execute the best grasp."""
    from diffgrasp_ros import make_planner
    from diffgrasp_ros.execution.sim_executor import SimHandExecutor
    from diffgrasp_ros.grasping.leap.planner import parse_direction
    from diffgrasp_ros.grasping.planner import parse_method
    from diffgrasp_ros.robots.registry import get_robot
    from diffgrasp_ros.sim.camera import view_poses
    from diffgrasp_ros.sim.noise import apply_depth_noise
    from diffgrasp_ros.sim.world import ClutterWorld

    name, options = parse_method(spec)
    options.update({k: v for k, v in (("weights", args.weights), ("guidance", args.guidance)) if v is not None})
    row = {"variant": spec, "kind": scene["kind"], "scene_seed": scene["seed"]}
    with ClutterWorld(objects, seed=scene["seed"]) as world:
        world.generate(scene["kind"], 5)
        bodies = sorted(world.object_ids)
        target = bodies[np.random.default_rng(scene["seed"]).integers(len(bodies))]
        lower, upper = world.p.getAABB(target)
        centre = 0.5 * (np.asarray(lower) + np.asarray(upper))
        row.update(objects=len(bodies), target=target, target_centre_m=centre.tolist())  # same for all variants
        if options.get("region") == "AUTO":
            options["region"] = ":".join(f"{v:.4f}" for v in (*centre, REGION_RADIUS_M))
            row["region"] = [*centre.tolist(), REGION_RADIUS_M]
        planner = make_planner(name, args.robot, **options)
        poses = view_poses("side")
        frames = [apply_depth_noise(world.camera.render(T).depth, "dex", np.random.default_rng(scene["noise"]))
                  for T in poses]
        plan = planner.plan_from_depth(frames, poses)
        row.update(latency_s=plan.timings_s["fusion"] + plan.timings_s["plan"], found=plan.found,
                   grasps=len(plan.grasps), message=plan.message)
        requested = parse_direction(options.get("approach"), "approach")
        if plan.found:
            best = plan.best
            row["angles_deg"] = {ref: angle_deg(best.approach_axis, parse_direction(ref, ref)) for ref in REFERENCES}
            if requested is not None:
                row["angles_deg"]["requested"] = angle_deg(best.approach_axis, requested)
            row.update(position_m=best.position_m.tolist(), approach_axis=best.approach_axis.tolist())
            if "region" in row:
                row["in_region"] = bool(np.linalg.norm(best.position_m - centre) <= REGION_RADIUS_M)
        report = SimHandExecutor(world, get_robot(args.robot)).execute(plan)
        row.update(success=report.success, outcome=report.message,
                   object_id=None if report.outcome is None else report.outcome.object_id)
        if "region" in row:
            row["on_target"] = bool(report.success and row["object_id"] == target)
    return row


def summarise(rows: list[dict]) -> dict:
    found = [r for r in rows if r["found"]]
    summary = {"scenes": len(rows), "found": len(found) / len(rows),
               "success": float(np.mean([r["success"] for r in rows])),
               "latency_p50_ms": 1e3 * float(np.percentile([r["latency_s"] for r in rows], 50)), "angles": {}}
    for ref in ("requested", *REFERENCES):
        angles = [r["angles_deg"][ref] for r in found if ref in r["angles_deg"]]
        if angles:
            summary["angles"][ref] = {"mean_deg": float(np.mean(angles)), "median_deg": float(np.median(angles)),
                                      f"within_{WITHIN_DEG:.0f}": float(np.mean(np.array(angles) <= WITHIN_DEG))}
    if rows and "region" in rows[0]:
        summary["in_region"] = float(np.mean([r["in_region"] for r in found])) if found else 0.0  # of best grasps
        summary["on_target"] = float(np.mean([r["on_target"] for r in rows]))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+",
                        default=["leap", "leap:approach=top", "leap:approach=+x", "leap:region=AUTO"],
                        help="method specs; region=AUTO: a sphere around one object of each scene")
    parser.add_argument("--scenes", type=int, default=10, help="scenes per scene type (default: 10)")
    parser.add_argument("--robot", default="xarm_leap", help="embodiment (default: xarm_leap)")
    parser.add_argument("--weights", help="LEAP model folder passed as weights=... to every variant")
    parser.add_argument("--guidance", type=float, help="guidance scale passed to every variant")
    parser.add_argument("--seed", type=int, default=7, help="scene seed (default: 7, as planning_latency.py)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--json", type=Path, help="also write per-scene rows and summaries here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    weights = [Path(args.weights)] if args.weights else []
    context = prepare_results(args, args.json, code_paths=[*method_code_paths(args.variants), *weights])

    import torch

    from diffgrasp_ros.evaluation.clutter_removal import round_seed
    from diffgrasp_ros.sim.object_splits import validation_objects

    torch.set_num_threads(args.threads)
    scenes = [{"kind": kind, "seed": round_seed(args.seed, i), "noise": i}
              for kind in ("pile", "packed") for i in range(args.scenes)]
    objects = {kind: validation_objects(kind).objects for kind in ("pile", "packed")}
    rows = {spec: [run_variant(spec, s, args, objects[s["kind"]]) for s in scenes] for spec in args.variants}
    summaries = {spec: summarise(r) for spec, r in rows.items()}

    print(f"{len(scenes)} scenes ({args.scenes} pile + {args.scenes} packed), side view, dex noise, "
          f"robot {args.robot}, best grasp executed with the free-floating hand")
    print(f"{'variant':>26} {'found':>6} {'success':>8} {'p50 ms':>7} | {'angle to':>9} {'mean':>6} "
          f"{'median':>6} {'<30°':>5} | {'in-sphere':>9} {'on-target':>9}")
    for spec, s in summaries.items():
        region = (f"{s['in_region']:9.2f} {s['on_target']:9.2f}" if "in_region" in s else "")
        shown = {"requested": s["angles"]["requested"]} if "requested" in s["angles"] else s["angles"]
        lines = [f"{ref:>9} {a['mean_deg']:6.1f} {a['median_deg']:6.1f} {a['within_30']:5.2f}"
                 for ref, a in shown.items()] or [f"{'-':>9} {'':>6} {'':>6} {'':>5}"]
        for i, line in enumerate(lines):
            head = (f"{spec:>26} {s['found']:6.2f} {s['success']:8.2f} {s['latency_p50_ms']:7.0f}" if i == 0
                    else " " * 50)
            print(f"{head} | {line} |" + (f" {region}" if i == 0 else ""))
    if args.json:
        args.json.write_text(json.dumps({"context": context, "args": {k: str(v) for k, v in vars(args).items()},
                                         "summary": summaries, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
