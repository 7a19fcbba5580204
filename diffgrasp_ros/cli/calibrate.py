"""``diffgrasp calibrate``: the camera pose from the table in the depth, written as a calibration file."""
from __future__ import annotations

import argparse
from pathlib import Path

from .workspace_args import add_workspace_arguments, estimate_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="estimate the camera pose T_workspace_camera from the table in depth images",
        description="Fit the table plane in depth images of one static camera (open3d RANSAC) and put the "
                    "workspace on it: z up the table normal, the table top at z = 0.05 m, x along the optical "
                    "axis projected onto the table, centred over the objects (or a given pixel, region or "
                    "mask). Writes a calibration file that `diffgrasp plan --calibration` and the "
                    "scene_builder node read. Exit status: 0 written, 1 bad input or no table found.",
    )
    parser.add_argument("--depth", type=Path, nargs="+", required=True,
                        help="depth images of one static camera (16-bit .png/.tif in mm, .npy, .exr)")
    parser.add_argument("--intrinsics", type=Path, required=True, help="the depth camera's intrinsics YAML/JSON")
    parser.add_argument("--depth-scale", type=float, default=None,
                        help="metres per unit for integer depth images (default: 0.001, i.e. millimetres)")
    parser.add_argument("--min-depth", type=float, default=0.1, help="nearest valid depth in metres (default: 0.1)")
    parser.add_argument("--max-depth", type=float, default=2.0, help="farthest valid depth in metres (default: 2.0)")
    parser.add_argument("--out", type=Path, default=Path("calibration.yaml"),
                        help="calibration file to write (default: calibration.yaml)")
    add_workspace_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..camera.files import load_depth_image
    from ..camera.frame import DepthFrame
    from ..camera.intrinsics import CameraIntrinsics
    from ..depth import DepthProcessor
    from ..scene.calibration import write_calibration

    intrinsics = CameraIntrinsics.load(args.intrinsics)
    processor = DepthProcessor("passthrough", args.min_depth, args.max_depth)
    frames = [processor.process(DepthFrame(load_depth_image(p, args.depth_scale), intrinsics, frame_id=p.stem))
              for p in args.depth]
    estimate = estimate_from_args(args, frames)
    for warning in estimate.warnings:
        print(f"diffgrasp calibrate: warning: {warning}")
    write_calibration(args.out, intrinsics, estimate, source=", ".join(str(p) for p in args.depth))
    d = estimate.diagnostics()
    print(f"diffgrasp calibrate: table fitted to {100 * d['table_inlier_share']:.0f} % of the depth "
          f"(residual {1000 * d['table_residual_m']:.1f} mm); workspace {estimate.area.size_x_m:.2f} x "
          f"{estimate.area.size_y_m:.2f} m over {d['object_points']} object points "
          f"({100 * d['object_share_inside']:.0f} % inside)")
    print(f"wrote {args.out}")
    return 0
