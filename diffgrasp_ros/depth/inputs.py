"""The depth (and colour) a hole fill takes: the one check of the learned restoration and the classical fills."""
from __future__ import annotations

import numpy as np


def check_frame(depth_m, color=None) -> None:
    """Reject a frame a restoration or a fill cannot take, saying why: dtype, shape, non-finite depth, no
    valid depth, colour that is not an RGB image of the depth's size."""
    if not isinstance(depth_m, np.ndarray) or depth_m.dtype != np.float32 or depth_m.ndim != 2:
        what = f"{depth_m.dtype} {depth_m.shape}" if isinstance(depth_m, np.ndarray) else type(depth_m).__name__
        raise ValueError(f"depth_m must be an (H, W) float32 array in metres, got {what}")
    if depth_m.size == 0:
        raise ValueError(f"depth_m is empty ({depth_m.shape[1]}x{depth_m.shape[0]})")
    bad = int(np.count_nonzero(~np.isfinite(depth_m)))
    if bad:
        raise ValueError(f"depth_m has {bad} NaN/inf values: mark invalid depth with 0 "
                         "(a DepthFrame does this itself)")
    if not (depth_m > 0.0).any():
        raise ValueError("depth frame has no valid pixels to fill holes from")
    if color is not None:
        if not isinstance(color, np.ndarray) or color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] != 3:
            what = f"{color.dtype} {color.shape}" if isinstance(color, np.ndarray) else type(color).__name__
            raise ValueError(f"color must be an (H, W, 3) uint8 RGB image, got {what}")
        if color.shape[:2] != depth_m.shape:
            raise ValueError(f"color {color.shape[1]}x{color.shape[0]} and depth {depth_m.shape[1]}x"
                             f"{depth_m.shape[0]} must be the same size: give the (H, W, 3) uint8 RGB image "
                             "registered to the depth")
