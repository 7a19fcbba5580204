"""``diffgrasp demo``: a simulated scene, perceived, planned and picked, end to end."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .common import add_planner_arguments, format_grasp_table, format_timings, planner_options, write_json

if TYPE_CHECKING:
    import numpy as np

    from ..camera.intrinsics import CameraIntrinsics
    from ..execution.arm_executor import ArmExecutionReport, SimArmExecutor
    from ..grasping.grasp import PlanResult
    from ..robots.gripper import ParallelGripper
    from ..scene.workspace import Workspace
    from ..sim.camera import RenderedView
    from ..visualisation.record import ArmTrajectory

EXECUTORS = ("arm", "hand")  # the default first


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="simulate a cluttered table, perceive it, plan grasps and execute the best",
        description="Generate a simulated clutter scene (VGN/GIGA/IGD protocol), render depth, fuse a "
                    "TSDF, plan ranked grasps, execute them with the robot's whole arm (the best grasp it "
                    "reaches and plans a collision-free pick for; LEAP robots take the parallel grasps "
                    "between thumb and fingers) or with the free-floating hand, and write grasps.json, "
                    "picks.png (each pick before and after, on the scene as planned) and scene.png (the "
                    "first pick's before panel) to --out.",
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
                        help="output folder for grasps.json, picks.png and scene.png (default: ./demo_output)")
    parser.add_argument("--executor", choices=EXECUTORS, default="arm",
                        help="arm: the robot's arm, standing next to the table (reachability IK, mplib motion "
                             "planning, position control in the simulation; default); hand: the free-floating "
                             "hand of the benchmark protocol")
    add_planner_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..execution import make_sim_executor
    from ..grasping import make_planner
    from ..grasping.draw import contact_sheet
    from ..sim.camera import SimCamera, view_poses
    from ..sim.object_set import default_objects, find_objects
    from ..sim.world import ClutterWorld
    from ..visualisation.record import FORMAT_VERSION, trajectory_record

    if args.picks < 1:
        raise ValueError("--picks must be at least 1")
    wall_start = time.perf_counter()
    import open3d  # noqa: F401  (1.4 s to load: up front, so per-pick timings are steady-state)

    planner = make_planner(args.method, args.robot, **planner_options(args))
    objects = find_objects(args.objects) if args.objects else default_objects("all")
    poses = view_poses(args.views)
    picks, pictures = [], []
    with ClutterWorld(objects, seed=args.seed) as world:
        start = time.perf_counter()
        placed = world.generate(args.scene)
        scene_s = time.perf_counter() - start
        executor = make_sim_executor(args.executor, world, planner.robot)
        K = world.camera.intrinsics
        picture_camera = SimCamera(world.p, picture_intrinsics(K))
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
            # The picture: the first view, zoomed in on the workspace, of the scene as it is planned in.
            before = picture_camera.render(poses[0])
            plan = planner.plan_from_depth([v.depth for v in views], [v.T_workspace_camera for v in views])
            plan.timings_s = {"render": render_s, **plan.timings_s}
            report = executor.execute(plan)
            after = picture_camera.render(poses[0])
            executed = executed_rank(args.executor, report)
            pick = {"plan": plan.to_dict(), "executed": report.message, "executed_rank": executed,
                    "success": report.success, "scene": viewer_scene(plan, views, world.workspace)}
            if args.executor == "arm":
                plan.timings_s.update(ik=report.reachability_time_s, motion_planning=report.motion_planning_time_s,
                                      execute=report.duration_s - report.planning_time_s)
                pick["arm"] = arm_summary(report)
                if report.pick is not None:
                    pick["trajectory"] = trajectory_record(arm_trajectory(executor, report))
            else:
                plan.timings_s["execute"] = report.duration_s
            pictures.append(pick_pictures(attempt + 1, plan, before, after, executed, outcome_text(report),
                                          planner.robot.gripper))
            picks.append({**pick, "objects_left": world.num_objects})
            print(f"\npick {attempt + 1}: {format_timings(plan.timings_s)}")
            print(format_grasp_table(plan))
            print(f"  -> {report.message}; objects left: {world.num_objects}")
            if args.executor == "arm" and plan.found:
                print(f"     {format_arm_summary(pick['arm'])}")

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "grasps.json", {
        "version": FORMAT_VERSION, "scene": args.scene, "seed": args.seed, "objects_placed": placed,
        "views": args.views, "method": args.method, "robot": args.robot, "executor": args.executor, "picks": picks,
        "picture_camera": {"intrinsics": picture_camera.intrinsics.to_dict(),
                           "T_workspace_camera": poses[0].tolist()},
    })
    cv2.imwrite(str(args.out / "scene.png"), pictures[0][1][0])
    cv2.imwrite(str(args.out / "picks.png"), contact_sheet(pictures))
    successes = sum(p["success"] for p in picks)
    print(f"\nscene generation {1000 * scene_s:.0f} ms; {successes}/{len(picks)} picks succeeded; "
          f"wall time {time.perf_counter() - wall_start:.1f} s")
    print(f"wrote {args.out / 'grasps.json'}, {args.out / 'picks.png'} (each pick before and after) and "
          f"{args.out / 'scene.png'} (pick 1 before)")
    return 0


def viewer_scene(plan: PlanResult, views: list[RenderedView], workspace: Workspace) -> dict:
    """The ``scene`` of a pick for ``diffgrasp view``: the fused surface as planned, the cameras."""
    import numpy as np

    from ..scene.workspace import TableArea
    from ..visualisation.record import CameraView, scene_record

    points = plan.scene.points_m if plan.scene is not None else np.zeros((0, 3))
    return scene_record(TableArea.of(workspace), points,
                        [CameraView(v.depth.intrinsics, v.T_workspace_camera) for v in views])


def arm_trajectory(executor: SimArmExecutor, report: ArmExecutionReport) -> ArmTrajectory:
    """The executed pick's trajectory with the TCP along it (as the grasp executor node publishes it)."""
    from ..visualisation.record import ArmTrajectory

    motion, _ = report.pick.trajectory()
    arm = executor.arm
    T_workspace_tcp = arm.T_workspace_base @ executor.reachability.fk(motion.positions[:, :len(arm.arm_joint_names)])
    return ArmTrajectory(arm.arm_joint_names, arm.hand_joint_names, motion.times_s, motion.positions,
                         T_workspace_tcp, arm.T_workspace_base, report.rank)


def picture_intrinsics(K: CameraIntrinsics) -> CameraIntrinsics:
    """The demo pictures' camera: the first view's, zoomed in twice on the workspace."""
    from ..camera.intrinsics import CameraIntrinsics

    return CameraIntrinsics(K.width, K.height, 2 * K.fx, 2 * K.fy, K.cx, K.cy)


def executed_rank(executor: str, report) -> int | None:
    """Index in the plan's ranking (0 = best) of the grasp the executor executed, None if none was: the
    hand executes the best, the arm the best it reaches and plans a pick for (``report.rank``)."""
    if executor == "arm":
        return report.rank
    return 0 if report.grasp is not None else None


def outcome_text(report) -> str:
    """"held", "failed: <reason>" or "not executed: <why>", from the executor report."""
    if report.success:
        return "held"
    if report.outcome is not None and "failed: " in report.message:
        return "failed: " + report.message.split("failed: ", 1)[1]
    return f"not executed: {report.message.removeprefix('nothing to execute: ')}"


def pick_pictures(number: int, plan: PlanResult, before: RenderedView, after: RenderedView,
                  executed: int | None, outcome: str, gripper: ParallelGripper) -> tuple[str, list[np.ndarray]]:
    """A contact-sheet row: its caption and the before panel (the ranked grasps on the scene they were
    planned in, the executed one marked, with its outcome) and the after panel (the scene after the pick,
    the executed grasp where it was)."""
    from ..grasping.draw import FAILED_BGR, HELD_BGR, draw_grasps, title_panel

    intrinsics = before.depth.intrinsics
    panel_before = draw_grasps(before.rgb, plan.grasps, intrinsics, before.T_workspace_camera, gripper,
                               executed=executed, outcome=outcome)
    title = (f"{len(plan.grasps)} grasps, colour = score (red 0, green 1)" if plan.grasps
             else "no grasp found")
    panel_before = title_panel(panel_before, f"before pick {number}: {title}")
    panel_after = draw_grasps(after.rgb, plan.grasps, intrinsics, after.T_workspace_camera, gripper,
                              max_drawn=0, executed=executed)
    colour = HELD_BGR if outcome == "held" else FAILED_BGR
    panel_after = title_panel(panel_after, f"after pick {number}: {outcome}", colour)
    if executed is None:
        caption = f"pick {number}: no grasp executed ({outcome})"
    else:
        caption = (f"pick {number}: executed grasp {executed + 1} (score {plan.grasps[executed].score:.2f}): "
                   f"{outcome}")
    return caption, [panel_before, panel_after]


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
