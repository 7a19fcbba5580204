"""Arm motion-planning latency per robot (mplib backend), medians over repeated runs on this machine.

    .venv/bin/python benchmarks/arm_planning.py [--robots franka xarm_leap ur5_leap] [--runs 5] [--json out.json]

Scene: a 4 x 5 x 6 cm box at the workspace centre and the table, as a point cloud (2-4 mm spacing).
Grasps: top-down on the box at four yaws (0, 45, 90, 135 degrees). Per robot and run it measures
- transit: home -> pre-grasp (IK + RRTConnect against the whole cloud), p50 over grasps and runs;
- pick: the whole ``plan_pick`` (pre-grasp, straight approach, close, straight lift, retreat home);
and, once per grasp, executes the planned pick in PyBullet and counts the successful ones.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from arm_helpers import box_scene_cloud, top_down_grasp  # noqa: E402  (the test scene, shared)

from diffgrasp_ros.execution.motion import SceneObstacles, make_motion_planner, plan_pick, pregrasp_pose  # noqa: E402
from diffgrasp_ros.robots import robot_names  # noqa: E402
from diffgrasp_ros.robots.arm import load_arm  # noqa: E402
from diffgrasp_ros.sim.arm import SimulatedArm  # noqa: E402
from diffgrasp_ros.sim.object_set import ObjectModel  # noqa: E402
from diffgrasp_ros.sim.world import ClutterWorld  # noqa: E402

YAWS_DEG = (0.0, 45.0, 90.0, 135.0)
# TCP height: 5 mm above the box top for the Franka Hand (fingers 0.05 m deep); LEAP's palm frame
# needs the palm higher, the open thumb reaching 0.12 m ahead of it.
TCP_Z_M = {"parallel": 0.115, "leap": 0.2}


def grasps(hand_kind: str):
    for yaw in YAWS_DEG:
        g = top_down_grasp(TCP_Z_M[hand_kind])
        g.T_frame_grasp[:3, :3] = Rotation.from_euler("z", yaw, degrees=True).as_matrix() @ g.T_frame_grasp[:3, :3]
        yield yaw, g


def box_world(folder: Path) -> tuple[ClutterWorld, ObjectModel]:
    from conftest import write_box_urdf

    model = ObjectModel("box", write_box_urdf(folder, "box", (0.04, 0.05, 0.06)))
    return ClutterWorld([model]), model


def bench_robot(name: str, runs: int, folder: Path) -> dict:
    arm = load_arm(name)
    start = time.perf_counter()
    planner = make_motion_planner("mplib", arm)
    init_s = time.perf_counter() - start
    cloud = box_scene_cloud()
    transit, pick_s, planned = [], [], 0
    for _ in range(runs):
        for _, g in grasps(arm.hand_kind):
            planner.set_scene(SceneObstacles(cloud))
            motion = planner.plan_to_pose(arm.home_q, pregrasp_pose(g.T_frame_grasp, 0.10), hand_q=arm.hand_open_q)
            transit.append(motion.planning_time_s)
            pick = plan_pick(planner, arm.home_q, g, cloud)
            pick_s.append(pick.planning_time_s)
            planned += pick.success
    world, model = box_world(folder)
    successes, reasons = 0, []
    with world:
        sim = SimulatedArm(world, arm)
        for yaw, g in grasps(arm.hand_kind):
            world.clear()
            world.add_object(model, (0.15, 0.15, 0.081), Rotation.identity(), 1.0)
            world.wait_for_objects_to_rest()
            pick = plan_pick(planner, sim.q_arm, g, cloud)
            if not pick.success:
                reasons.append(f"{yaw:.0f} deg: not planned ({pick.message})")
                continue
            outcome = sim.execute_pick(pick)
            successes += outcome.success
            reasons.append(f"{yaw:.0f} deg: {outcome.reason}")
    ms = lambda xs: 1000.0 * statistics.median(xs)  # noqa: E731
    return {"robot": name, "planner_init_s": init_s, "transit_p50_ms": ms(transit), "pick_p50_ms": ms(pick_s),
            "picks_planned": f"{planned}/{len(pick_s)}", "sim_picks_succeeded": f"{successes}/{len(YAWS_DEG)}",
            "sim_outcomes": reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", nargs="+", default=robot_names(), choices=robot_names())
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.robots:
            r = bench_robot(name, args.runs, Path(folder))
            results.append(r)
            print(f"{name:10s} transit p50 {r['transit_p50_ms']:7.1f} ms   pick p50 {r['pick_p50_ms']:7.1f} ms   "
                  f"planned {r['picks_planned']}   sim picks {r['sim_picks_succeeded']}   "
                  f"(planner init {r['planner_init_s']:.2f} s)")
            for line in r["sim_outcomes"]:
                print(f"    {line}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
