"""Planning latency per method on validation scenes: depth frame in -> ranked grasps out.

    .venv/bin/python benchmarks/planning_latency.py [--methods baseline igd igd:rounds=1] [--scenes 10]
        [--repeats 3] [--threads 1] [--robot franka] [--json out.json] [--allow-dirty]

Renders `--scenes` pile and as many packed scenes from the validation objects (single side view, the
benchmark's dex noise), then plans each `--repeats` times with every method (after one warm-up plan).
Prints per method the p50 / p95 of fusion + planning over all calls, the median of every stage the
planner times (igd: encoder, affordance, diffusion, classifier, filters, ranking) and the ratio of its p50
to the first method's, all measured in the same run. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, method_code_paths, prepare_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["baseline", "igd"],
                        help="method specs; the first is the reference of the ratios (default: baseline igd)")
    parser.add_argument("--scenes", type=int, default=10, help="scenes per scene type (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="plans per scene and method (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--robot", default="franka",
                        help="embodiment the planners plan for (default: franka; leap needs xarm_leap or ur5_leap)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.json, code_paths=method_code_paths(args.methods))

    import torch

    from diffgrasp_ros import make_planner
    from diffgrasp_ros.evaluation.clutter_removal import round_seed
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.noise import apply_depth_noise
    from diffgrasp_ros.sim.object_splits import validation_objects
    from diffgrasp_ros.sim.world import ClutterWorld

    torch.set_num_threads(args.threads)
    T = side_view()
    frames = []
    for kind in ("pile", "packed"):
        objects = validation_objects(kind).objects
        for i in range(args.scenes):
            with ClutterWorld(objects, seed=round_seed(7, i)) as world:
                world.generate(kind, 5)
                frames.append(apply_depth_noise(world.camera.render(T).depth, "dex", np.random.default_rng(i)))

    figures = {}
    for method in args.methods:
        planner = make_planner(method, args.robot)
        planner.plan_from_depth(frames[0], T)  # warm-up: lazy imports, allocator
        timings = [planner.plan_from_depth(f, T).timings_s for f in frames for _ in range(args.repeats)]
        total = [t["fusion"] + t["plan"] for t in timings]
        stages = list(dict.fromkeys(k for t in timings for k in t))
        figures[method] = {"p50_ms": 1e3 * float(np.percentile(total, 50)),
                           "p95_ms": 1e3 * float(np.percentile(total, 95)),
                           "stages_p50_ms": {k: 1e3 * float(np.median([t.get(k, 0.0) for t in timings]))
                                             for k in stages}}
    reference = figures[args.methods[0]]["p50_ms"]
    print(f"{len(frames)} scenes x {args.repeats} plans per method, side view, dex noise, "
          f"{args.threads} torch thread(s), robot {args.robot}")
    for method, f in figures.items():
        f["ratio_to_first"] = f["p50_ms"] / reference
        stages = ", ".join(f"{k} {v:.0f}" for k, v in f["stages_p50_ms"].items())
        print(f"{method:>24}: p50 {f['p50_ms']:6.1f} ms, p95 {f['p95_ms']:6.1f} ms, "
              f"{f['ratio_to_first']:.2f}x {args.methods[0]} | stage p50 [ms]: {stages}")
    if args.json:
        args.json.write_text(json.dumps({"context": context, "methods": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
