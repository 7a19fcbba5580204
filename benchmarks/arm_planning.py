"""Arm motion-planning latency and simulated pick success per robot (mplib backend), on this machine.

    .venv/bin/python benchmarks/arm_planning.py [--robots franka xarm_leap ur5_leap] [--runs 5] [--json out.json]
        [--allow-dirty]

Planning scene: the 4 x 5 x 6 cm box at the workspace centre and the table as a point cloud
(``sim.pick_scene.box_scene_cloud``, 2-4 mm spacing); grasps top-down on the box at four yaws (0, 45,
90, 135 degrees), the TCP 5 mm above its top. Per robot and run it measures
- transit: home -> pre-grasp (IK + RRTConnect against the whole cloud), p50 over grasps and runs;
- pick: the whole ``plan_pick`` (pre-grasp, straight approach, close, straight lift, retreat home).
Then, per object (that box and ``cylinder_01`` of the shipped set, a 3.4 cm x 10 cm cylinder) and yaw,
it stands the object on the table, perceives it with the six simulated cameras, plans the pick against
that cloud and executes it in PyBullet, counting the objects lifted and held.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results
from diffgrasp_ros.execution.motion import SceneObstacles, make_motion_planner, plan_pick, pregrasp_pose
from diffgrasp_ros.grasping.grasp import Grasp
from diffgrasp_ros.robots import robot_names
from diffgrasp_ros.robots.arm import load_arm
from diffgrasp_ros.sim.arm import SimulatedArm
from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR, ObjectModel
from diffgrasp_ros.sim.pick_scene import (BOX_CENTRE_M, BOX_SIZE_M, box_scene_cloud, perceived_cloud, stand_object,
                                          top_down_pose, top_z_m, write_box_urdf)
from diffgrasp_ros.sim.world import ClutterWorld

YAWS_DEG = (0.0, 45.0, 90.0, 135.0)
ABOVE_TOP_M = 0.005  # TCP above the object's top: a parallel gripper's fingers reach 4.5 cm down


def grasp(x: float, y: float, z: float, yaw_deg: float) -> Grasp:
    return Grasp(top_down_pose(x, y, z, np.radians(yaw_deg)), 0.04, 1.0, "top_down")


def bench_robot(name: str, runs: int, objects: list[ObjectModel]) -> dict:
    arm = load_arm(name)
    start = time.perf_counter()
    planner = make_motion_planner("mplib", arm)
    init_s = time.perf_counter() - start
    cloud = box_scene_cloud()
    box_top = BOX_CENTRE_M[2] + 0.5 * BOX_SIZE_M[2]
    transit, pick_s, planned = [], [], 0
    for _ in range(runs):
        for yaw in YAWS_DEG:
            g = grasp(BOX_CENTRE_M[0], BOX_CENTRE_M[1], box_top + ABOVE_TOP_M, yaw)
            planner.set_scene(SceneObstacles(cloud))
            motion = planner.plan_to_pose(arm.home_q, pregrasp_pose(g.T_frame_grasp, 0.10), hand_q=arm.hand_open_q)
            transit.append(motion.planning_time_s)
            pick = plan_pick(planner, arm.home_q, g, cloud)
            pick_s.append(pick.planning_time_s)
            planned += pick.success
    held, outcomes = {}, []
    with ClutterWorld(objects) as world:
        sim = SimulatedArm(world, arm)
        for model in objects:
            held[model.name] = 0
            for yaw in YAWS_DEG:
                world.clear()
                body = stand_object(world, model)
                x, y, _ = world.object_pose(body)[0]
                pick = plan_pick(planner, sim.q_arm, grasp(x, y, top_z_m(world, body) + ABOVE_TOP_M, yaw),
                                 perceived_cloud(world))
                if not pick.success:
                    outcomes.append(f"{model.name} {yaw:.0f} deg: not planned ({pick.message})")
                    continue
                outcome = sim.execute_pick(pick)
                held[model.name] += outcome.success
                outcomes.append(f"{model.name} {yaw:.0f} deg: {outcome.reason}")
    ms = lambda xs: 1000.0 * statistics.median(xs)  # noqa: E731
    return {"robot": name, "planner_init_s": init_s, "transit_p50_ms": ms(transit), "pick_p50_ms": ms(pick_s),
            "picks_planned": f"{planned}/{len(pick_s)}",
            "sim_picks_held": {m: f"{n}/{len(YAWS_DEG)}" for m, n in held.items()}, "sim_outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", nargs="+", default=robot_names(), choices=robot_names())
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here, with the run's provenance")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.json)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        objects = [ObjectModel("box", write_box_urdf(Path(folder), "box", BOX_SIZE_M)),
                   ObjectModel("cylinder_01", DEFAULT_OBJECTS_DIR / "train" / "cylinder_01.urdf")]
        for name in args.robots:
            r = bench_robot(name, args.runs, objects)
            results.append(r)
            held = ", ".join(f"{m} {n}" for m, n in r["sim_picks_held"].items())
            print(f"{name:10s} transit p50 {r['transit_p50_ms']:7.1f} ms   pick p50 {r['pick_p50_ms']:7.1f} ms   "
                  f"planned {r['picks_planned']}   held in sim: {held}   (planner init {r['planner_init_s']:.2f} s)",
                  flush=True)
            for line in r["sim_outcomes"]:
                print(f"    {line}")
    if args.json:
        args.json.write_text(json.dumps({"context": context, "robots": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
