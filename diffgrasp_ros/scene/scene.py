"""The perceived workspace handed from scene building to grasp planning."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workspace import STANDARD_WORKSPACE, Workspace


class EmptySceneError(ValueError):
    """Nothing was observed in the workspace."""


@dataclass
class Scene:
    """A TSDF grid in the standard convention plus the surface as points with outward normals.

    ``tsdf_grid`` is (R, R, R) float32 indexed ``[x, y, z]`` over the workspace cube: observed voxels
    within the truncation band hold ``(tsdf + 1) / 2`` (0.5 on the surface, > 0.5 in front of it),
    every other voxel holds 0 — the grid VGN, GIGA and IGD consume. ``points_m`` / ``normals`` are in
    the workspace frame; normals point out of the surface, towards free space.
    """

    tsdf_grid: np.ndarray
    points_m: np.ndarray
    normals: np.ndarray
    workspace: Workspace = STANDARD_WORKSPACE

    def __post_init__(self):
        R = self.workspace.resolution
        if self.tsdf_grid.shape != (R, R, R):
            raise ValueError(f"TSDF grid must be {R}x{R}x{R}, got {self.tsdf_grid.shape}")
        if self.points_m.shape != self.normals.shape or self.points_m.ndim != 2 or (
            self.points_m.shape[1] != 3
        ):
            raise ValueError("points and normals must both be (N, 3)")

    @property
    def is_empty(self) -> bool:
        return len(self.points_m) == 0

    def object_points_mask(self, clearance_m: float = 0.005) -> np.ndarray:
        """Surface points above the table top (the table itself is not graspable)."""
        return self.points_m[:, 2] > self.workspace.table_height_m + clearance_m
