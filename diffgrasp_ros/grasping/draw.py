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
