"""Planning latency per method on validation scenes: depth frame in -> ranked grasps out.

    .venv/bin/python benchmarks/planning_latency.py [--methods baseline igd igd:rounds=1] [--scenes 10]
        [--repeats 3] [--threads 1] [--robot franka] [--reference-tree DIR] [--json out.json] [--allow-dirty]

Renders `--scenes` pile and as many packed scenes from the validation objects (single side view, the
benchmark's dex noise), then plans each `--repeats` times with every method (after one warm-up plan).
Prints per method the p50 / p95 of fusion + planning over all calls, the median of every stage the
planner times (igd: encoder, affordance, diffusion, classifier, filters, ranking) and the ratio of its p50
to the first method's, all measured in the same run. Run it on an otherwise idle machine.

`--reference-tree DIR` (a checkout of another commit, e.g. `git worktree add --detach DIR COMMIT`) also
plans the same frames with that code, in a subprocess right after, and reports its latencies and how far
its grasps are from this tree's: a speed change that keeps the plans keeps every benchmark's quality.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def render_frames(scenes: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``scenes`` pile and as many packed depth images (validation objects, side view, dex noise)."""
    from diffgrasp_ros.evaluation.clutter_removal import round_seed
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.noise import apply_depth_noise
    from diffgrasp_ros.sim.object_splits import validation_objects
    from diffgrasp_ros.sim.world import ClutterWorld

    T = side_view()
    frames = []
    for kind in ("pile", "packed"):
        objects = validation_objects(kind).objects
        for i in range(scenes):
            with ClutterWorld(objects, seed=round_seed(7, i)) as world:
                world.generate(kind, 5)
                frames.append(apply_depth_noise(world.camera.render(T).depth, "dex", np.random.default_rng(i)))
    return frames, T


def plan_frames(frames, T, methods: list[str], robot: str, repeats: int, threads: int) -> dict:
    """Per method: every plan's stage timings and the grasps of each frame's first plan. Uses only what
    every commit since the latency benchmark has (``make_planner``, ``plan_from_depth``), so a reference
    tree can run it too."""
    import torch

    from diffgrasp_ros import make_planner

    torch.set_num_threads(threads)
    plans = {}
    for method in methods:
        planner = make_planner(method, robot)
        planner.plan_from_depth(frames[0], T)  # warm-up: lazy imports, allocator
        timings, grasps = [], []
        for frame in frames:
            for repeat in range(repeats):
                result = planner.plan_from_depth(frame, T)
                timings.append(result.timings_s)
                if repeat == 0:
                    grasps.append([{"T": g.T_frame_grasp.tolist(), "width_m": g.width_m, "score": g.score}
                                   for g in result.grasps])
        plans[method] = {"timings_s": timings, "grasps": grasps}
    return plans


def latency(timings: list[dict]) -> dict:
    total = [t["fusion"] + t["plan"] for t in timings]
    stages = list(dict.fromkeys(k for t in timings for k in t))
    return {"p50_ms": 1e3 * float(np.percentile(total, 50)), "p95_ms": 1e3 * float(np.percentile(total, 95)),
            "stages_p50_ms": {k: 1e3 * float(np.median([t.get(k, 0.0) for t in timings])) for k in stages}}


def agreement(plans: list[list[dict]], reference: list[list[dict]]) -> dict:
    """How far one tree's grasps are from another's on the same frames, rank by rank."""
    same_count = sum(len(a) == len(b) for a, b in zip(plans, reference))
    pairs = [(a, b) for frame, ref in zip(plans, reference) for a, b in zip(frame, ref)]

    def largest(values) -> float:
        return float(max(values, default=0.0))

    return {"frames": len(plans), "frames_with_the_same_number_of_grasps": same_count,
            "grasps_compared": len(pairs),
            "max_position_difference_m": largest(np.abs(np.subtract(a["T"], b["T"]))[:3, 3].max() for a, b in pairs),
            "max_rotation_entry_difference": largest(np.abs(np.subtract(a["T"], b["T"]))[:3, :3].max()
                                                     for a, b in pairs),
            "max_width_difference_m": largest(abs(a["width_m"] - b["width_m"]) for a, b in pairs),
            "max_score_difference": largest(abs(a["score"] - b["score"]) for a, b in pairs)}


def reference_plans(tree: Path, frames, T, args) -> dict:
    """``plan_frames`` run by the code of ``tree`` (first on the path), in a subprocess."""
    with tempfile.TemporaryDirectory() as scratch:
        frames_path, out = Path(scratch) / "frames.npz", Path(scratch) / "plans.json"
        K = frames[0].intrinsics
        np.savez(frames_path, T=T, intrinsics=[K.width, K.height, K.fx, K.fy, K.cx, K.cy],
                 depth_m=np.stack([f.depth_m for f in frames]), frame_id=frames[0].frame_id)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
        subprocess.run([sys.executable, __file__, "--plan-frames", str(frames_path), str(out),
                        "--methods", *args.methods, "--robot", args.robot, "--repeats", str(args.repeats),
                        "--threads", str(args.threads)], env=env, cwd=tree, check=True)
        return json.loads(out.read_text())


def run_reference_worker(args) -> None:
    import diffgrasp_ros
    from diffgrasp_ros.camera import CameraIntrinsics, DepthFrame

    frames_path, out = (Path(p) for p in args.plan_frames)
    data = np.load(frames_path)
    width, height, fx, fy, cx, cy = data["intrinsics"]
    K = CameraIntrinsics(int(width), int(height), fx, fy, cx, cy)
    frames = [DepthFrame(depth, K, str(data["frame_id"])) for depth in data["depth_m"]]
    print(f"reference tree: planning with {Path(diffgrasp_ros.__file__).parent}", flush=True)
    out.write_text(json.dumps(plan_frames(frames, data["T"], args.methods, args.robot, args.repeats, args.threads)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["baseline", "igd"],
                        help="method specs; the first is the reference of the ratios (default: baseline igd)")
    parser.add_argument("--scenes", type=int, default=10, help="scenes per scene type (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="plans per scene and method (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--robot", default="franka",
                        help="embodiment the planners plan for (default: franka; leap needs xarm_leap or ur5_leap)")
    parser.add_argument("--reference-tree", type=Path, metavar="DIR",
                        help="also plan the same frames with the code checked out in DIR and compare")
    parser.add_argument("--plan-frames", nargs=2, metavar=("FRAMES", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, method_code_paths, prepare_results

    add_provenance_arguments(parser)
    args = parser.parse_args()
    if args.plan_frames:
        return run_reference_worker(args)
    context = prepare_results(args, args.json, code_paths=method_code_paths(args.methods))
    if args.reference_tree:
        context["reference_tree"] = {"path": str(args.reference_tree), "commit": subprocess.run(
            ["git", "-C", str(args.reference_tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}

    frames, T = render_frames(args.scenes)
    plans = plan_frames(frames, T, args.methods, args.robot, args.repeats, args.threads)
    reference = reference_plans(args.reference_tree, frames, T, args) if args.reference_tree else None
    figures = {method: latency(plan["timings_s"]) for method, plan in plans.items()}
    first = figures[args.methods[0]]["p50_ms"]
    print(f"{len(frames)} scenes x {args.repeats} plans per method, side view, dex noise, "
          f"{args.threads} torch thread(s), robot {args.robot}")
    for method, f in figures.items():
        f["ratio_to_first"] = f["p50_ms"] / first
        stages = ", ".join(f"{k} {v:.0f}" for k, v in f["stages_p50_ms"].items())
        print(f"{method:>24}: p50 {f['p50_ms']:6.1f} ms, p95 {f['p95_ms']:6.1f} ms, "
              f"{f['ratio_to_first']:.2f}x {args.methods[0]} | stage p50 [ms]: {stages}")
        if reference:
            f["reference_tree"] = {**latency(reference[method]["timings_s"]),
                                   "agreement": agreement(plans[method]["grasps"], reference[method]["grasps"])}
            r = f["reference_tree"]
            stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stages_p50_ms"].items())
            print(f"{'reference tree':>24}: p50 {r['p50_ms']:6.1f} ms, p95 {r['p95_ms']:6.1f} ms "
                  f"(this tree {f['p50_ms'] / r['p50_ms']:.2f}x) | stage p50 [ms]: {stages}")
            print(f"{'':>24}  same plans? {json.dumps(r['agreement'])}")
    if args.json:
        args.json.write_text(json.dumps({"context": context, "methods": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
