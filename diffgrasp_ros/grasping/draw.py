"""Draw ranked grasps onto a camera image (the demo's picture)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..camera.intrinsics import CameraIntrinsics
from ..geometry import invert, transform_points
from ..robots.gripper import ParallelGripper
from .grasp import Grasp


def _glyph(gripper: ParallelGripper, width_m: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Line segments of a gripper outline in the grasp frame: stem, palm bar, two fingers."""
    h, d = 0.5 * width_m, gripper.finger_depth_m
    p = lambda y, z: np.array([0.0, y, z])  # noqa: E731
    return [(p(0, -0.04), p(0, 0)), (p(-h, 0), p(h, 0)), (p(-h, 0), p(-h, d)), (p(h, 0), p(h, d))]


def score_colour_bgr(score: float) -> tuple[int, int, int]:
    """Red (0) through yellow to green (1)."""
    s = float(np.clip(score, 0.0, 1.0))
    return (0, int(255 * min(1.0, 2 * s)), int(255 * min(1.0, 2 * (1 - s))))


def draw_grasps(rgb: np.ndarray, grasps: Sequence[Grasp], intrinsics: CameraIntrinsics,
                T_workspace_camera: np.ndarray, gripper: ParallelGripper, max_drawn: int = 10) -> np.ndarray:
    """A BGR image with up to ``max_drawn`` grasps, coloured by score, best drawn last and labelled."""
    import cv2

    image = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    T_camera_workspace = invert(T_workspace_camera)
    K = intrinsics.K
    shown = list(enumerate(grasps[:max_drawn]))
    for rank, grasp in reversed(shown):
        colour = score_colour_bgr(grasp.score)
        thickness = 3 if rank == 0 else 1
        T_camera_grasp = T_camera_workspace @ grasp.T_frame_grasp
        for a, b in _glyph(gripper, max(grasp.width_m, 0.01)):
            ends = transform_points(T_camera_grasp, np.stack([a, b]))
            if np.any(ends[:, 2] <= 0.0):
                continue
            uv = (ends @ K.T)[:, :2] / ends[:, 2:]
            cv2.line(image, tuple(np.round(uv[0]).astype(int)), tuple(np.round(uv[1]).astype(int)),
                     colour, thickness, cv2.LINE_AA)
        label_at = transform_points(T_camera_grasp, np.array([[0.0, 0.0, -0.045]]))[0]
        if label_at[2] > 0:
            u, v = (K @ label_at)[:2] / label_at[2]
            cv2.putText(image, str(rank + 1), (int(u) + 3, int(v)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        colour, 1, cv2.LINE_AA)
    return image


def depth_picture(depth_m: np.ndarray, range_m: tuple[float, float] | None = None) -> np.ndarray:
    """An RGB picture of a depth image to draw grasps on when there is no colour image: near is warm,
    far is cool (turbo colour map over ``range_m``, by default the valid depth's 1st to 99th percentile),
    invalid pixels are black."""
    import cv2

    valid = depth_m > 0
    if range_m is None:
        if not valid.any():
            return np.zeros((*depth_m.shape, 3), np.uint8)
        range_m = np.percentile(depth_m[valid], [1, 99])
    near, far = range_m
    scaled = np.clip((far - depth_m) / max(far - near, 1e-6), 0.0, 1.0)
    bgr = cv2.applyColorMap((255 * scaled).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[~valid] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_color_image(path, size: tuple[int, int]) -> np.ndarray:
    """An RGB image file as (H, W, 3) uint8, checked against the depth's (width, height)."""
    import cv2
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"colour image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot decode the colour image")
    if (bgr.shape[1], bgr.shape[0]) != tuple(size):
        raise ValueError(f"{path}: the colour image is {bgr.shape[1]}x{bgr.shape[0]} but the depth is "
                         f"{size[0]}x{size[1]}: give the colour image registered to the depth")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
