"""``diffgrasp plan``: depth image files + calibration in, ranked grasps JSON out."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .common import add_planner_arguments, format_grasp_table, format_timings, planner_options, write_json
from .workspace_args import add_workspace_arguments, estimate_from_args

EXIT_NO_GRASP = 3


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan", help="plan grasps from depth image files and camera calibration",
        description="Fuse one or more depth images (with intrinsics and the camera pose in the "
                    "workspace frame) into a TSDF and write ranked grasps as JSON — the same path a "
                    "live camera takes. Alternatively plan from a saved 40^3 TSDF grid (--tsdf). "
                    f"Exit status: 0 grasps found, {EXIT_NO_GRASP} no grasp found, 1 bad input.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--depth", type=Path, nargs="+",
                        help="depth images: .npy (float metres or integer sensor units), 16-bit .png/.tif "
                             "(millimetres unless --depth-scale), float .tif/.exr (metres); any size, with that "
                             "stream's intrinsics")
    source.add_argument("--tsdf", type=Path, help=".npy TSDF grid, 40x40x40 in the standard convention")
    parser.add_argument("--calibration", type=Path, nargs="+",
                        help="YAML/JSON with 'intrinsics' and 'T_workspace_camera' (one per depth image, "
                             "or one for all), e.g. written by `diffgrasp calibrate` (its workspace size too)")
    parser.add_argument("--intrinsics", type=Path,
                        help="intrinsics YAML/JSON (fx, fy, cx, cy, width, height, or a ROS camera_info file)")
    parser.add_argument("--extrinsics", type=Path, nargs="+",
                        help="camera pose(s) T_workspace_camera (4x4 matrix or position + orientation xyzw)")
    parser.add_argument("--workspace", choices=("calibrated", "auto"), default="calibrated",
                        help="calibrated: the camera pose from --calibration / --extrinsics (checked against "
                             "the table in the depth); auto: fit the table in the depth and put the "
                             "workspace on it over the objects (frames of one static camera; needs only "
                             "--intrinsics). Default: calibrated")
    parser.add_argument("--depth-scale", type=float, default=None,
                        help="metres per unit for integer depth images (default: 0.001, i.e. millimetres)")
    parser.add_argument("--depth-mode", default="passthrough",
                        help="depth processing before fusion: passthrough, restore (real depth) or graft (clean simulated depth; default: passthrough)")
    parser.add_argument("--min-depth", type=float, default=0.1, help="nearest valid depth in metres (default: 0.1)")
    parser.add_argument("--max-depth", type=float, default=2.0, help="farthest valid depth in metres (default: 2.0)")
    parser.add_argument("--target", type=float, nargs=6, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
                        help="grasp only the object in this box (workspace metres, lower and upper corner), as a "
                             "GraspPlanning request's target does")
    parser.add_argument("--target-category", help="the target's category (leap:template=... refuses a template of "
                                                  "another one), e.g. mug")
    parser.add_argument("--out", type=Path, default=Path("grasps.json"), help="output JSON (default: grasps.json)")
    parser.add_argument("--draw", type=Path, help="draw the ranked grasps (best first) on the first view as PNG")
    parser.add_argument("--color", type=Path, help="colour image registered to the first depth image: guides "
                                                   "--depth-mode restore and is drawn on by --draw (default: the "
                                                   "depth, colour-mapped)")
    add_workspace_arguments(parser)
    add_planner_arguments(parser)
    parser.set_defaults(run=run)


def _calibrations(args, count: int):
    from ..camera.files import load_calibration, load_extrinsics
    from ..camera.intrinsics import CameraIntrinsics

    if args.calibration:
        calibrations = [load_calibration(p) for p in args.calibration]
    elif args.intrinsics and args.extrinsics:
        intrinsics = CameraIntrinsics.load(args.intrinsics)
        calibrations = [(intrinsics, load_extrinsics(p)) for p in args.extrinsics]
    else:
        raise ValueError("camera calibration missing: give --calibration, or --intrinsics and --extrinsics, "
                         "or --intrinsics with --workspace auto (the table fitted in the depth)")
    if len(calibrations) == 1:
        calibrations *= count
    if len(calibrations) != count:
        raise ValueError(f"{count} depth images but {len(calibrations)} camera calibrations")
    return calibrations


def _load_frames(args, intrinsics_per_image) -> tuple[list, list]:
    """The measured frames (clipped to the depth range) and the processed frames planning uses."""
    from ..camera.files import load_depth_image
    from ..camera.frame import DepthFrame
    from ..depth import DepthProcessor
    from ..grasping.draw import load_color_image

    measured = DepthProcessor("passthrough", args.min_depth, args.max_depth)
    processor = DepthProcessor(args.depth_mode, args.min_depth, args.max_depth, device=args.device)
    frames = [measured.process(DepthFrame(load_depth_image(path, args.depth_scale), intrinsics, frame_id=path.stem))
              for path, intrinsics in zip(args.depth, intrinsics_per_image)]
    colors = [None] * len(frames)
    if args.color and args.depth_mode == "restore":  # the colour image belongs to the first view
        colors[0] = load_color_image(args.color, (frames[0].intrinsics.width, frames[0].intrinsics.height))
    return frames, [processor.process(frame, color) for frame, color in zip(frames, colors)]


def _camera_poses(args, frames) -> tuple[list[np.ndarray], object, list[str]]:
    """The camera poses, the table area to plan over, and warnings about them."""
    from ..scene.calibration import read_workspace_area
    from ..scene.table import check_camera_pose
    from ..scene.workspace import TableArea

    if args.workspace == "auto":
        estimate = estimate_from_args(args, frames)
        return [estimate.T_workspace_camera] * len(frames), estimate.area, estimate.warnings
    poses = [T for _, T in _calibrations(args, len(frames))]
    area = read_workspace_area(args.calibration[0]) if args.calibration else None
    area = area or TableArea()
    warnings = []
    for frame, T in zip(frames, poses):
        centre = (0.5 * area.size_x_m, 0.5 * area.size_y_m)
        check = check_camera_pose(frame, T, area.table_height_m, centre)
        warnings += [f"{frame.frame_id}: {w}" for w in check.warnings]
    return poses, area, warnings


def run(args: argparse.Namespace) -> int:
    import time

    from ..grasping import make_planner
    from ..scene.workspace import TableArea
    from ..visualisation.record import FORMAT_VERSION, CameraView, scene_record

    if args.workspace == "auto" and (args.calibration or args.extrinsics):
        raise ValueError("--workspace auto estimates the camera pose: give --intrinsics without "
                         "--extrinsics / --calibration")
    if args.draw is not None:  # refused before planning, so that a run that cannot draw writes nothing
        _check_draw(args)
    target = _target(args)
    start = time.perf_counter()
    planner = make_planner(args.method, args.robot, **planner_options(args))
    load_s = time.perf_counter() - start
    report: dict = {"version": FORMAT_VERSION, "robot": args.robot}
    if args.tsdf is not None:
        if target is not None:
            raise ValueError("--target needs the depth frames: plan from --depth, not --tsdf")
        grid = _load_tsdf(args.tsdf, planner.workspace)
        first, result = (planner.plan_from_tsdf(grid) for _ in range(2))
        report["sources"] = [str(args.tsdf)]
        report["scene"] = scene_record(TableArea.of(planner.workspace), result.scene.points_m, [])
    else:
        if args.workspace == "auto" and not args.intrinsics:
            raise ValueError("--workspace auto needs --intrinsics (the depth camera's)")
        from ..camera.intrinsics import CameraIntrinsics

        intrinsics = ([CameraIntrinsics.load(args.intrinsics)] * len(args.depth) if args.workspace == "auto"
                      else [K for K, _ in _calibrations(args, len(args.depth))])
        # The table is fitted in the sensor's own depth: restoration invents depth where it had none.
        measured, frames = _load_frames(args, intrinsics)
        poses, area, warnings = _camera_poses(args, measured)
        first, result = (planner.plan_from_depth(frames, poses, area, target) for _ in range(2))
        result.warnings = warnings + result.warnings
        report["sources"] = [str(p) for p in args.depth]
        report["inputs"] = [{"source": str(p), "T_workspace_camera": np.round(T, 9).tolist()}
                            for p, T in zip(args.depth, poses)]
        report["workspace"] = area.to_dict()
        report["workspace_estimated"] = args.workspace == "auto"
        report["scene"] = scene_record(area, _surface_points(result, frames, poses, area),
                                       [CameraView(f.intrinsics, T) for f, T in zip(frames, poses)])
    report["timings_cold_s"] = {"model_load": load_s, "first_plan": first.total_s}
    if args.draw is not None:  # before the JSON: a picture that cannot be written leaves no JSON behind
        _draw(args, result, frames[0], poses[0])
    write_json(args.out, {**report, **result.to_dict()})
    for warning in result.warnings:
        print(f"diffgrasp plan: warning: {warning}", file=sys.stderr)
    print(f"diffgrasp plan: {len(report['sources'])} input(s), method {args.method}, robot {args.robot}: "
          f"{format_timings(result.timings_s)} (second plan; model load {1000 * load_s:.0f} ms and first plan "
          f"{1000 * report['timings_cold_s']['first_plan']:.0f} ms apart)")
    print(format_grasp_table(result))
    if args.draw is not None:
        print(f"wrote {args.draw}")
    print(f"wrote {args.out}")
    return 0 if result.found else EXIT_NO_GRASP


def _target(args: argparse.Namespace):
    """The ``--target`` box (with ``--target-category``), or None."""
    from ..scene.scene import TargetBox

    if args.target is None:
        if args.target_category:
            raise ValueError("--target-category names the category of a --target box: give the box too")
        return None
    return TargetBox(np.array(args.target[:3]), np.array(args.target[3:]), category=args.target_category or None)


def _surface_points(result, frames, poses, area) -> np.ndarray:
    """The surface for the viewer: the fused scene's, else (an area planned in several cubes) the observed
    points in the area."""
    from ..geometry import transform_points

    if result.scene is not None:
        return result.scene.points_m
    points = np.concatenate([transform_points(T, f.to_points(stride=2)) for f, T in zip(frames, poses)])
    return points[area.inside(points)]


def _load_tsdf(path: Path, workspace) -> np.ndarray:
    """The grid of a ``--tsdf`` file, checked here where a bad one can be named."""
    from ..camera.files import load_npy
    from ..scene.tsdf import standard_grid

    if not path.is_file():
        raise FileNotFoundError(f"TSDF file not found: {path}")
    grid = load_npy(path, "TSDF grid")
    try:
        return standard_grid(grid, workspace)
    except ValueError as error:  # dtype, shape or values outside the standard convention
        raise ValueError(f"{path}: {error}") from None


def _check_draw(args) -> None:
    if args.tsdf is not None:
        raise ValueError("--draw needs a camera view: plan from --depth, not --tsdf")
    if args.draw.suffix.lower() not in (".png", ".jpg", ".jpeg"):  # cv2.imwrite raises cv2.error for others
        raise ValueError(f"--draw {args.draw}: the picture is written as .png (or .jpg), "
                         f"not {args.draw.suffix or 'a file without extension'}")


def _draw(args, result, frame, T_workspace_camera) -> None:
    import cv2

    from ..grasping.draw import depth_picture, draw_grasps, load_color_image
    from ..robots.registry import get_robot

    size = (frame.intrinsics.width, frame.intrinsics.height)
    rgb = load_color_image(args.color, size) if args.color else depth_picture(frame.depth_m)
    picture = draw_grasps(rgb, result.grasps, frame.intrinsics, T_workspace_camera, get_robot(args.robot).gripper)
    args.draw.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.draw), picture):
        raise ValueError(f"cannot write the picture {args.draw}")
