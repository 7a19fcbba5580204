"""The workspace frame and grid of the standard simulated clutter-removal protocol (VGN / GIGA / IGD).

The workspace frame has its origin at a corner of a ``size``-metre cube, z up; the table top is the
plane z = ``table_height``. TSDF grids cover the cube with ``resolution``³ voxels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workspace:
    size_m: float = 0.30
    table_height_m: float = 0.05
    resolution: int = 40
    # Grasp centres (TCP positions) must lie inside these bounds.
    grasp_lower_m: tuple[float, float, float] = (0.02, 0.02, 0.055)
    grasp_upper_m: tuple[float, float, float] = (0.28, 0.28, 0.30)
    frame_id: str = "workspace"

    @property
    def voxel_size_m(self) -> float:
        return self.size_m / self.resolution

    @property
    def truncation_m(self) -> float:
        return 4.0 * self.voxel_size_m

    @property
    def centre_m(self) -> np.ndarray:
        return np.full(3, self.size_m / 2.0)

    def voxel_centres(self) -> np.ndarray:
        """(R, R, R, 3) voxel centres, indexed ``[i, j, k]`` along x, y, z."""
        c = (np.arange(self.resolution) + 0.5) * self.voxel_size_m
        return np.stack(np.meshgrid(c, c, c, indexing="ij"), axis=-1)

    def contains_grasp(self, positions: np.ndarray) -> np.ndarray:
        positions = np.atleast_2d(positions)
        return np.all((positions >= self.grasp_lower_m) & (positions <= self.grasp_upper_m), axis=1)

    def inside(self, positions: np.ndarray) -> np.ndarray:
        positions = np.atleast_2d(positions)
        return np.all((positions >= 0.0) & (positions <= self.size_m), axis=1)


STANDARD_WORKSPACE = Workspace()
