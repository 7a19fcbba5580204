"""Real sensor hole shapes, and hiding valid depth in them: the hidden-hole protocol's (and
self-supervised training's) way to get holes whose true depth is known.

A real frame's holes have no truth, but its valid pixels do. Hiding valid pixels in the shape of
*another* real frame's holes gives holes that look like the sensor's (shadows beside objects, dark and
shiny patches, speckle) with the hidden raw depth as the answer.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Sets whose invalid pixels are not the sensor's holes: sixdof_graspnet's depth was range-cropped to
# ~0.36-0.9 m by its authors, so most of its holes are a crop of the background, not a sensor failure.
RANGE_CROPPED_SETS = ("sixdof_graspnet",)


def has_sensor_holes(frame) -> bool:
    """Are this frame's invalid pixels the sensor's own holes (see ``RANGE_CROPPED_SETS``)?"""
    return frame.set_name not in RANGE_CROPPED_SETS


def sensor_hole_masks(frames: Sequence) -> list[np.ndarray]:
    """The hole shapes of the frames with sensor holes (``has_sensor_holes``), in their order: bool
    (H, W) masks of the raw invalid pixels (depth == 0) without the regions that touch the image border.

    Those are mostly the D4xx's stereo band (the left 40-75 px that only one camera sees) and
    out-of-view or out-of-range background: moved inside an image they would make a hole no sensor
    makes (a 75 px wide strip across it), and they would dominate every score. What is left are the
    shadows beside objects, dark, shiny and transparent surfaces and speckle. Pass only learnable
    frames (``RealFrame.learnable``) when the masks are for training.
    """
    return [interior_holes(frame.depth_m <= 0.0) for frame in frames if has_sensor_holes(frame)]


def interior_holes(invalid: np.ndarray) -> np.ndarray:
    """``invalid`` without its 8-connected regions that touch the image border."""
    invalid = np.asarray(invalid, bool)
    if invalid.ndim != 2:
        raise ValueError(f"a hole mask must be (H, W), got shape {invalid.shape}")
    count, labels = cv2.connectedComponents(invalid.astype(np.uint8), connectivity=8)
    if count <= 1:
        return invalid.copy()
    on_border = np.zeros(count, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        on_border[edge] = True
    on_border[0] = True  # label 0 is the valid pixels
    return ~on_border[labels]


def hide_holes(valid_mask: np.ndarray, source_mask: np.ndarray, rng: np.random.Generator, *,
               flip: bool = False) -> np.ndarray:
    """The valid pixels to hide: ``source_mask``'s hole shape laid onto a ``valid_mask``-sized target.

    The source is treated as a torus and read from a uniformly random offset: a larger source is
    cropped, a smaller one tiled, one of the same size shifted (at offset 0, frames of one scene would
    get their holes where their own holes already are, and hide little). Wrapping cuts a
    shape at the seam; ``sensor_hole_masks`` leaves no holes at the border, so seams rarely cut one.
    ``flip`` mirrors the source at random in each axis (augmentation for training; off by default,
    because a D4xx's shadows fall on one side of objects). Returns a bool mask, a subset of
    ``valid_mask``.
    """
    valid_mask, source_mask = np.asarray(valid_mask), np.asarray(source_mask)
    if valid_mask.ndim != 2 or source_mask.ndim != 2:
        raise ValueError(f"masks must be (H, W), got {valid_mask.shape} and {source_mask.shape}")
    if source_mask.size == 0:
        raise ValueError("the source hole mask is empty")
    source = source_mask.astype(bool, copy=False)
    if flip:
        source = source[:: rng.choice((-1, 1)), :: rng.choice((-1, 1))]
    (height, width), (source_height, source_width) = valid_mask.shape, source.shape
    rows = (np.arange(height) + rng.integers(source_height)) % source_height
    cols = (np.arange(width) + rng.integers(source_width)) % source_width
    return source[np.ix_(rows, cols)] & valid_mask.astype(bool, copy=False)


def discontinuity_band(depth_m: np.ndarray, jump_m: float = 0.02, width_px: int = 3) -> np.ndarray:
    """Pixels within ``width_px`` (Chebyshev distance) of a depth discontinuity: a pair of valid
    4-neighbours whose depths differ by more than ``jump_m`` (both pixels of the pair count as on it).
    Jumps to or from invalid pixels are not discontinuities. Returns a bool (H, W) mask."""
    depth_m = np.asarray(depth_m, np.float32)
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth_m.shape}")
    if not jump_m > 0 or width_px < 0:
        raise ValueError(f"need jump_m > 0 and width_px >= 0, got {jump_m}, {width_px}")
    valid = depth_m > 0.0
    edge = np.zeros(depth_m.shape, bool)
    across = valid[:, 1:] & valid[:, :-1] & (np.abs(depth_m[:, 1:] - depth_m[:, :-1]) > jump_m)
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = valid[1:] & valid[:-1] & (np.abs(depth_m[1:] - depth_m[:-1]) > jump_m)
    edge[1:] |= down
    edge[:-1] |= down
    if width_px == 0:
        return edge
    kernel = np.ones((2 * width_px + 1, 2 * width_px + 1), np.uint8)
    return cv2.dilate(edge.astype(np.uint8), kernel).astype(bool)
