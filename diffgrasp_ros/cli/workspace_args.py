"""Arguments that place the workspace from the depth (``plan --workspace auto``, ``calibrate``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_workspace_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workspace estimation (the table fitted in the depth)")
    group.add_argument("--workspace-size", type=float, nargs=2, metavar=("X", "Y"),
                       help="workspace size on the table in metres (default: the objects' footprint plus "
                            "4 cm, at least 0.30 x 0.30)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workspace-pixel", type=float, nargs=2, metavar=("U", "V"),
                       help="centre the workspace on the object at this pixel of the (first) depth image")
    where.add_argument("--workspace-region", type=float, nargs=4, metavar=("U0", "V0", "U1", "V1"),
                       help="centre the workspace on the objects inside this image rectangle (pixels)")
    where.add_argument("--workspace-mask", type=Path,
                       help="centre the workspace on the objects under this mask image (non-zero pixels)")


def estimate_from_args(args: argparse.Namespace, frames):
    """``scene.table.estimate_workspace`` with the command line's size and selection."""
    from ..scene.table import estimate_workspace

    mask = None
    if args.workspace_mask is not None:
        import cv2

        if not args.workspace_mask.is_file():
            raise FileNotFoundError(f"mask image not found: {args.workspace_mask}")
        mask = cv2.imread(str(args.workspace_mask), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise ValueError(f"{args.workspace_mask}: cannot decode the mask image")
        mask = mask != 0
        if not mask.any():
            raise ValueError(f"{args.workspace_mask}: the mask selects nothing (every pixel is zero)")
    return estimate_workspace(frames, size_m=args.workspace_size, mask=mask, region=args.workspace_region,
                              pixel=args.workspace_pixel)
