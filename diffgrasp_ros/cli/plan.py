"""``diffgrasp plan``: depth image files + calibration in, ranked grasps JSON out."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .common import add_planner_arguments, format_grasp_table, format_timings, planner_options, write_json

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
                        help="depth images: .npy (float metres or integer sensor units) or 16-bit .png/.tif")
    source.add_argument("--tsdf", type=Path, help=".npy TSDF grid, 40x40x40 in the standard convention")
    parser.add_argument("--calibration", type=Path, nargs="+",
                        help="YAML/JSON with 'intrinsics' and 'T_workspace_camera' (one per depth image, "
                             "or one for all)")
    parser.add_argument("--intrinsics", type=Path,
                        help="intrinsics YAML/JSON (fx, fy, cx, cy, width, height, or a ROS camera_info file)")
    parser.add_argument("--extrinsics", type=Path, nargs="+",
                        help="camera pose(s) T_workspace_camera (4x4 matrix or position + orientation xyzw)")
    parser.add_argument("--depth-scale", type=float, default=None,
                        help="metres per unit for integer depth images (default: 0.001, i.e. millimetres)")
    parser.add_argument("--depth-mode", default="passthrough",
                        help="depth processing before fusion: passthrough, restore (real depth) or graft (clean simulated depth; default: passthrough)")
    parser.add_argument("--min-depth", type=float, default=0.1, help="nearest valid depth in metres (default: 0.1)")
    parser.add_argument("--max-depth", type=float, default=2.0, help="farthest valid depth in metres (default: 2.0)")
    parser.add_argument("--out", type=Path, default=Path("grasps.json"), help="output JSON (default: grasps.json)")
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
        raise ValueError("camera calibration missing: give --calibration, or --intrinsics and --extrinsics")
    if len(calibrations) == 1:
        calibrations *= count
    if len(calibrations) != count:
        raise ValueError(f"{count} depth images but {len(calibrations)} camera calibrations")
    return calibrations


def run(args: argparse.Namespace) -> int:
    from ..camera.files import load_depth_image
    from ..camera.frame import DepthFrame
    from ..depth import DepthProcessor
    from ..grasping import make_planner

    planner = make_planner(args.method, args.robot, **planner_options(args))
    if args.tsdf is not None:
        if not args.tsdf.is_file():
            raise FileNotFoundError(f"TSDF file not found: {args.tsdf}")
        result = planner.plan_from_tsdf(np.load(args.tsdf, allow_pickle=False))
        sources = [str(args.tsdf)]
    else:
        processor = DepthProcessor(args.depth_mode, args.min_depth, args.max_depth)
        calibrations = _calibrations(args, len(args.depth))
        frames, poses = [], []
        for path, (intrinsics, T_workspace_camera) in zip(args.depth, calibrations):
            frame = DepthFrame(load_depth_image(path, args.depth_scale), intrinsics, frame_id=path.stem)
            frames.append(processor.process(frame))
            poses.append(T_workspace_camera)
        result = planner.plan_from_depth(frames, poses)
        sources = [str(p) for p in args.depth]
    write_json(args.out, {"sources": sources, "robot": args.robot, **result.to_dict()})
    print(f"diffgrasp plan: {len(sources)} input(s), method {args.method}, robot {args.robot}: "
          f"{format_timings(result.timings_s)}")
    print(format_grasp_table(result))
    print(f"wrote {args.out}")
    return 0 if result.found else EXIT_NO_GRASP
