"""Foundation latency figures, medians over repeated runs on this machine.

    .venv/bin/python benchmarks/pipeline_latency.py [--runs 7] [--json out.json] [--allow-dirty]

Measures, on simulated pile scenes (single side view, the project's object set):
- TSDF integration per frame: the standard 40^3 volume alone, and the full SceneBuilder (40^3 grid +
  80^3 cloud volume) the planners use — the ratio is the price of the fine cloud;
- depth frame -> ranked grasps with the baseline planner (fusion + planning), with its breakdown;
- `diffgrasp demo` wall time (a fresh process: imports, scene, render, plan, one pick, outputs).
Warm-up runs are excluded from the in-process figures; the demo runs are cold processes (each given
``DEMO_TIMEOUT_S``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from diffgrasp_ros import make_planner
from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results
from diffgrasp_ros.scene import STANDARD_WORKSPACE, SceneBuilder, TSDFVolume
from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.sim.object_set import default_objects
from diffgrasp_ros.sim.world import ClutterWorld

DEMO_TIMEOUT_S = 300.0  # a cold `diffgrasp demo` takes seconds; a hung one fails the benchmark

def summary(samples_s: list[float]) -> dict:
    ms = sorted(1000.0 * s for s in samples_s)
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "max_ms": ms[-1], "runs": len(ms)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="measured runs per figure (default: 7, min 5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.json)
    runs = max(5, args.runs)

    planner = make_planner("baseline")
    figures: dict[str, dict] = {}
    grid_only, full, plan_total, fusion, planning, counts = [], [], [], [], [], []
    with ClutterWorld(default_objects("all"), seed=0) as world:
        for run in range(runs + 1):  # run 0 warms up (open3d import, allocations)
            world.generate("pile")
            view = world.camera.render(side_view())
            t_grid = timed(lambda: TSDFVolume(STANDARD_WORKSPACE, 40).integrate(view.depth, view.T_workspace_camera))
            t_full = timed(lambda: SceneBuilder().integrate(view.depth, view.T_workspace_camera))
            start = time.perf_counter()
            result = planner.plan_from_depth(view.depth, view.T_workspace_camera)
            t_plan = time.perf_counter() - start
            if run == 0:
                continue
            grid_only.append(t_grid)
            full.append(t_full)
            plan_total.append(t_plan)
            fusion.append(result.timings_s["fusion"])
            planning.append(result.timings_s["plan"])
            counts.append(len(result.grasps))

    figures["tsdf integration per frame, 40^3 (incl. alloc)"] = summary(grid_only)
    figures["tsdf integration per frame, 40^3+80^3 (incl. alloc)"] = summary(full)
    figures["depth frame -> ranked grasps, baseline"] = summary(plan_total)
    figures["  of which fusion (integrate + extract)"] = summary(fusion)
    figures["  of which baseline planning"] = summary(planning)

    demo_wall = []
    with tempfile.TemporaryDirectory() as out:
        for seed in range(runs):
            demo_wall.append(timed(lambda: subprocess.run(
                [sys.executable, "-m", "diffgrasp_ros.cli.main", "demo", "--seed", str(seed), "--out", out],
                check=True, capture_output=True, timeout=DEMO_TIMEOUT_S)))
    figures["diffgrasp demo wall time (cold process)"] = summary(demo_wall)

    ratio = statistics.median(full) / statistics.median(grid_only)
    print(f"diffgrasp pipeline latency — {runs} runs each, medians (min … max)")
    for name, f in figures.items():
        print(f"  {name:<52} {f['median_ms']:8.1f} ms  ({f['min_ms']:.1f} … {f['max_ms']:.1f})")
    print(f"  SceneBuilder / 40^3-only integration ratio:{'':>12}{ratio:.2f}x")
    print(f"  grasps returned per plan (median):              {statistics.median(counts):.0f}")
    if args.json:
        args.json.write_text(json.dumps({"context": context,
                                         "runs": runs, "figures": figures, "scenebuilder_vs_grid_ratio": ratio,
                                         "median_grasps": statistics.median(counts)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
