"""The perceived workspace handed from scene building to grasp planning."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workspace import STANDARD_WORKSPACE, Workspace


class EmptySceneError(ValueError):
    """Nothing was observed in the workspace."""


@dataclass(frozen=True)
class TargetBox:
    """The object a request wants grasped, as an axis-aligned box in the workspace frame (metres), and its
    category when the request names one (a template transfer refuses a template of another category)."""

    lo_m: np.ndarray
    hi_m: np.ndarray
    category: str | None = None

    def __post_init__(self):
        lo, hi = np.asarray(self.lo_m, float).reshape(3), np.asarray(self.hi_m, float).reshape(3)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
            raise ValueError(f"a target box needs finite corners with lo <= hi, got {lo} and {hi}")
        object.__setattr__(self, "lo_m", lo)
        object.__setattr__(self, "hi_m", hi)

    def contains(self, points_m: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """(N,) bool: which of the (N, 3) points lie in the box grown by ``margin_m`` on every side."""
        points_m = np.asarray(points_m).reshape(-1, 3)
        return ((points_m >= self.lo_m - margin_m) & (points_m <= self.hi_m + margin_m)).all(axis=1)


@dataclass
class Scene:
    """A TSDF grid in the standard convention plus the surface as points with outward normals.

    ``tsdf_grid`` is (R, R, R) float32 indexed ``[x, y, z]`` over the workspace cube: observed voxels
    within the truncation band hold ``(tsdf + 1) / 2`` (0.5 on the surface, > 0.5 in front of it),
    every other voxel holds 0 — the grid VGN, GIGA and IGD consume. ``points_m`` / ``normals`` are in
    the workspace frame; normals point out of the surface, towards free space. ``target``: the object a
    request wants grasped (planners seed there and answer only grasps that touch it), or None: any.
    """

    tsdf_grid: np.ndarray
    points_m: np.ndarray
    normals: np.ndarray
    workspace: Workspace = STANDARD_WORKSPACE
    target: TargetBox | None = None

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

    def target_points_mask(self, clearance_m: float = 0.005) -> np.ndarray:
        """The object points a grasp should be on: all of them, or those in the ``target`` box. (Collision
        checks use every object point.)"""
        mask = self.object_points_mask(clearance_m)
        return mask if self.target is None else mask & self.target.contains(self.points_m)
