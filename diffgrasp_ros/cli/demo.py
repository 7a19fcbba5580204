"""``diffgrasp demo``: a simulated scene, perceived, planned and picked, end to end."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .common import add_planner_arguments, format_grasp_table, format_timings, planner_options, write_json

if TYPE_CHECKING:
    from ..execution.arm_executor import ArmExecutionReport

EXECUTORS = ("arm", "hand")  # the default first


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="simulate a cluttered table, perceive it, plan grasps and execute the best",
        description="Generate a simulated clutter scene (VGN/GIGA/IGD protocol), render depth, fuse a "
                    "TSDF, plan ranked grasps, execute them with the robot's whole arm (the best grasp it "
                    "reaches and plans a collision-free pick for; LEAP robots take the parallel grasps "
                    "between thumb and fingers) or with the free-floating hand, and write grasps.json and "
                    "scene.png to --out.",
    )
    parser.add_argument("--scene", choices=("pile", "packed"), default="pile", help="scene type (default: pile)")
    parser.add_argument("--objects", type=Path, default=None,
                        help="folder of object URDF/OBJ/STL files (default: the project's own object set)")
    parser.add_argument("--views", choices=("side", "multi"), default="side",
                        help="single side view or 6 views around the table (default: side)")
    parser.add_argument("--seed", type=int, default=0, help="scene random seed (default: 0)")
    parser.add_argument("--picks", type=int, default=3,
                        help="pick attempts, re-perceiving after each; stops early when the table is "
                             "clear (default: 3)")
    parser.add_argument("--out", type=Path, default=Path("demo_output"),
                        help="output folder for grasps.json and scene.png (default: ./demo_output)")
    parser.add_argument("--executor", choices=EXECUTORS, default="arm",
                        help="arm: the robot's arm, standing next to the table (reachability IK, mplib motion "
                             "planning, position control in the simulation; default); hand: the free-floating "
                             "hand of the benchmark protocol")
    add_planner_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..camera.intrinsics import CameraIntrinsics
    from ..execution import make_sim_executor
    from ..grasping import make_planner
    from ..grasping.draw import draw_grasps
    from ..sim.camera import SimCamera, view_poses
    from ..sim.object_set import default_objects, find_objects
    from ..sim.world import ClutterWorld

    if args.picks < 1:
        raise ValueError("--picks must be at least 1")
    wall_start = time.perf_counter()
    import open3d  # noqa: F401  (1.4 s to load: up front, so per-pick timings are steady-state)

    planner = make_planner(args.method, args.robot, **planner_options(args))
    objects = find_objects(args.objects) if args.objects else default_objects("all")
    poses = view_poses(args.views)
    picks = []
    with ClutterWorld(objects, seed=args.seed) as world:
        start = time.perf_counter()
        placed = world.generate(args.scene)
        scene_s = time.perf_counter() - start
        executor = make_sim_executor(args.executor, world, planner.robot)
        K = world.camera.intrinsics
        picture_camera = SimCamera(world.p, CameraIntrinsics(K.width, K.height, 2 * K.fx, 2 * K.fy, K.cx, K.cy))
        print(f"diffgrasp demo: {args.scene} scene, seed {args.seed}, {placed} objects "
              f"({len(objects)} models), {args.views} view, method {args.method}, robot {args.robot}, "
              f"executed by the {args.executor}")
        if planner.robot.hand == "leap":
            print("  LEAP hand: grasps are planned for a parallel gripper and retargeted onto the hand, its TCP "
                  "(robots.leap.T_PALM_TCP) on the grasp frame, thumb and fingers closing along its y axis")
        for attempt in range(args.picks):
            if attempt > 0 and world.num_objects == 0:
                break
            start = time.perf_counter()
            views = [world.camera.render(T) for T in poses]
            render_s = time.perf_counter() - start
            plan = planner.plan_from_depth([v.depth for v in views], [v.T_workspace_camera for v in views])
            plan.timings_s = {"render": render_s, **plan.timings_s}
            report = executor.execute(plan)
            pick = {"plan": plan.to_dict(), "executed": report.message, "success": report.success}
            if args.executor == "arm":
                plan.timings_s.update(ik=report.reachability_time_s, motion_planning=report.motion_planning_time_s,
                                      execute=report.duration_s - report.planning_time_s)
                pick["arm"] = arm_summary(report)
            else:
                plan.timings_s["execute"] = report.duration_s
            if attempt == 0:
                # The picture: the first view, zoomed in on the workspace, before anything moved.
                first_plan, first_picture = plan, picture_camera.render(poses[0])
            picks.append({**pick, "objects_left": world.num_objects})
            print(f"\npick {attempt + 1}: {format_timings(plan.timings_s)}")
            print(format_grasp_table(plan))
            print(f"  -> {report.message}; objects left: {world.num_objects}")
            if args.executor == "arm" and plan.found:
                print(f"     {format_arm_summary(pick['arm'])}")

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "grasps.json", {
        "scene": args.scene, "seed": args.seed, "objects_placed": placed, "views": args.views,
        "method": args.method, "robot": args.robot, "executor": args.executor, "picks": picks,
    })
    picture = draw_grasps(first_picture.rgb, first_plan.grasps, first_picture.depth.intrinsics,
                          first_picture.T_workspace_camera, planner.robot.gripper)
    cv2.imwrite(str(args.out / "scene.png"), picture)
    successes = sum(p["success"] for p in picks)
    print(f"\nscene generation {1000 * scene_s:.0f} ms; {successes}/{len(picks)} picks succeeded; "
          f"wall time {time.perf_counter() - wall_start:.1f} s")
    print(f"wrote {args.out / 'grasps.json'} and {args.out / 'scene.png'}")
    return 0


def arm_summary(report: ArmExecutionReport) -> dict:
    """What the arm made of a plan, for grasps.json (``rank``: index in the ranking, 0 = best)."""
    return {"rank": report.rank, "ranked": report.ranked, "reachable": report.reachable,
            "reachable_fraction": report.reachable_fraction, "ik_s": report.reachability_time_s,
            "motion_planning_s": report.motion_planning_time_s,
            "attempts": [{"rank": a.rank, "status": a.status.value, "message": a.message,
                          "planning_time_s": a.planning_time_s} for a in report.attempts]}


def format_arm_summary(arm: dict) -> str:
    executed = "no grasp executed" if arm["rank"] is None else f"executed grasp {arm['rank']} (0 = best)"
    return (f"arm: {executed}; {arm['reachable']}/{arm['ranked']} ranked grasps reachable "
            f"({100 * arm['reachable_fraction']:.0f} %); IK {1000 * arm['ik_s']:.0f} ms, motion planning "
            f"{1000 * arm['motion_planning_s']:.0f} ms over {len(arm['attempts'])} attempt(s)")
