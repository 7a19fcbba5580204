"""The simulated depth camera and the standard viewpoints of the clutter-removal protocol."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera.frame import DepthFrame
from ..camera.intrinsics import SIM_CAMERA, CameraIntrinsics
from ..geometry import camera_on_sphere, invert
from ..scene.workspace import STANDARD_WORKSPACE, Workspace


def side_view(workspace: Workspace = STANDARD_WORKSPACE) -> np.ndarray:
    """``T_workspace_camera`` of the single side view: 2·size from (c, c, size/3), 60° off vertical, azimuth −90°."""
    c = workspace.size_m / 2.0
    target = (c, c, workspace.size_m / 3.0)
    return camera_on_sphere(target, 2.0 * workspace.size_m, np.deg2rad(60.0), np.deg2rad(-90.0))


def multi_views(count: int = 6, workspace: Workspace = STANDARD_WORKSPACE) -> list[np.ndarray]:
    """Evenly spaced views at 2·size from the table centre, 30° off vertical."""
    c = workspace.size_m / 2.0
    return [
        camera_on_sphere((c, c, 0.0), 2.0 * workspace.size_m, np.deg2rad(30.0), 2.0 * np.pi * k / count)
        for k in range(count)
    ]


def view_poses(mode: str, workspace: Workspace = STANDARD_WORKSPACE) -> list[np.ndarray]:
    if mode == "side":
        return [side_view(workspace)]
    if mode == "multi":
        return multi_views(6, workspace)
    raise ValueError(f"unknown view mode {mode!r}: expected 'side' or 'multi'")


@dataclass
class RenderedView:
    depth: DepthFrame
    rgb: np.ndarray  # (H, W, 3) uint8
    T_workspace_camera: np.ndarray


class SimCamera:
    """Renders the PyBullet world with a pinhole model; depth clipped to [near, far], 0 outside."""

    def __init__(self, client, intrinsics: CameraIntrinsics = SIM_CAMERA, near_m: float = 0.1,
                 far_m: float = 2.0, frame_id: str = "sim_camera_optical_frame"):
        self.client = client
        self.intrinsics = intrinsics
        self.near_m, self.far_m = near_m, far_m
        self.frame_id = frame_id
        self._projection = self._gl_projection(intrinsics, near_m, far_m).flatten(order="F")

    @staticmethod
    def _gl_projection(K: CameraIntrinsics, near: float, far: float) -> np.ndarray:
        # Pinhole projection into pixel units, then an orthographic map of the pixel rectangle to
        # OpenGL clip space (y flipped: image rows grow downwards). PyBullet's renderer returns row r
        # for image coordinate v = r + 1 (measured against tilted planes), hence cy + 1.
        perspective = np.array([
            [K.fx, 0.0, -K.cx, 0.0],
            [0.0, K.fy, -(K.cy + 1.0), 0.0],
            [0.0, 0.0, near + far, near * far],
            [0.0, 0.0, -1.0, 0.0],
        ])
        left, right, bottom, top = 0.0, float(K.width), float(K.height), 0.0
        ortho = np.diag([2.0 / (right - left), 2.0 / (top - bottom), -2.0 / (far - near), 1.0])
        ortho[:3, 3] = [-(right + left) / (right - left), -(top + bottom) / (top - bottom),
                        -(far + near) / (far - near)]
        return ortho @ perspective

    def render(self, T_workspace_camera: np.ndarray, stamp: float = 0.0) -> RenderedView:
        import pybullet

        view = invert(T_workspace_camera)
        view[2, :] *= -1  # OpenCV optical frame (z forward) to OpenGL (z backward)
        K = self.intrinsics
        _, _, rgba, z_buffer, _ = self.client.getCameraImage(
            width=K.width, height=K.height, viewMatrix=view.flatten(order="F"),
            projectionMatrix=self._projection, renderer=pybullet.ER_TINY_RENDERER,
        )
        z_buffer = np.asarray(z_buffer, dtype=np.float64).reshape(K.height, K.width)
        near, far = self.near_m, self.far_m
        depth = far * near / (far - (far - near) * z_buffer)
        depth[(depth <= near) | (depth >= far * (1.0 - 1e-4))] = 0.0
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(K.height, K.width, 4)[..., :3]
        frame = DepthFrame(depth.astype(np.float32), K, self.frame_id, stamp)
        return RenderedView(frame, np.ascontiguousarray(rgb), np.array(T_workspace_camera))
