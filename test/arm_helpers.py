"""The scene the arm tests plan and pick in: a box on the table, its cloud, and top-down grasps of it."""
from __future__ import annotations

import numpy as np

from diffgrasp_ros.grasping.grasp import Grasp

BOX_CENTRE, BOX_HALF = np.array([0.15, 0.15, 0.08]), np.array([0.02, 0.025, 0.03])  # on the table (z = 0.05)
TOP_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # approach -z, closing along x


def box_scene_cloud() -> np.ndarray:
    """Table grid over the workspace plus the surface of a 4 x 5 x 6 cm box, 2-4 mm spacing."""
    xs = np.linspace(0.0, 0.3, 81)
    tx, ty = np.meshgrid(xs, xs)
    table = np.c_[tx.ravel(), ty.ravel(), np.full(tx.size, 0.05)]
    g = np.linspace(-1.0, 1.0, 11)
    unit = np.array(np.meshgrid(g, g, g)).reshape(3, -1).T
    surface = BOX_CENTRE + unit[np.abs(unit).max(axis=1) > 0.99] * BOX_HALF
    return np.vstack([table, surface])


def top_down_grasp(z: float) -> Grasp:
    T = np.eye(4)
    T[:3, :3] = TOP_DOWN
    T[:3, 3] = (BOX_CENTRE[0], BOX_CENTRE[1], z)
    return Grasp(T, 0.04, 0.9, "test")
