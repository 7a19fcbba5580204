"""Rigid transforms as 4x4 homogeneous matrices (``T_a_b`` maps points in frame b to frame a)."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def make_transform(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    if rotation is not None:
        T[:3, :3] = rotation
    T[:3, 3] = translation
    return T


def invert(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return make_transform(R.T, -R.T @ t)


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ T[:3, :3].T + T[:3, 3]


def pose_from_quaternion(position, quaternion_xyzw) -> np.ndarray:
    return make_transform(Rotation.from_quat(quaternion_xyzw).as_matrix(), position)


def quaternion_xyzw(T: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(T[:3, :3]).as_quat()


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Pose ``T_world_camera`` of an optical camera (x right, y down, z forward) at ``eye`` facing ``target``."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking along `up`: any perpendicular x will do
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_transform(np.column_stack([x, y, z]), eye)


def camera_on_sphere(target, radius: float, polar: float, azimuth: float) -> np.ndarray:
    """``T_world_camera`` looking at ``target`` from ``radius`` metres, ``polar`` rad off vertical."""
    target = np.asarray(target, dtype=float)
    eye = target + radius * np.array(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)]
    )
    return look_at(eye, target)


def is_rigid_transform(T: np.ndarray, tol: float = 1e-4) -> bool:
    T = np.asarray(T)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return (
        np.allclose(R.T @ R, np.eye(3), atol=tol)
        and abs(np.linalg.det(R) - 1.0) < tol
        and np.allclose(T[3], [0, 0, 0, 1], atol=tol)
    )
