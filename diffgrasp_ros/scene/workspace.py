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


@dataclass(frozen=True)
class TableArea:
    """A planning area of any size on a table: ``size_x_m`` x ``size_y_m`` in the workspace frame's
    convention (origin at a corner, z up, the table top at ``table_height_m``), ``height_m`` tall.

    Planners see it through standard ``Workspace`` cubes placed over the objects (``scene.tiling``),
    so models keep the voxel size they were trained on.
    """

    size_x_m: float = STANDARD_WORKSPACE.size_m
    size_y_m: float = STANDARD_WORKSPACE.size_m
    height_m: float = STANDARD_WORKSPACE.size_m
    table_height_m: float = STANDARD_WORKSPACE.table_height_m
    frame_id: str = "workspace"

    def __post_init__(self):
        # `not 0 < size < inf` also refuses NaN, which every comparison passes as False.
        if not all(0 < size < np.inf for size in (self.size_x_m, self.size_y_m, self.height_m)):
            raise ValueError(f"a table area needs positive finite sizes, got size_x_m={self.size_x_m}, "
                             f"size_y_m={self.size_y_m}, height_m={self.height_m}")
        if not np.isfinite(self.table_height_m):
            raise ValueError(f"a table area needs a finite table_height_m, got {self.table_height_m}")

    @classmethod
    def of(cls, workspace: Workspace) -> "TableArea":
        return cls(workspace.size_m, workspace.size_m, workspace.size_m, workspace.table_height_m,
                   workspace.frame_id)

    @property
    def size_m(self) -> tuple[float, float, float]:
        return (self.size_x_m, self.size_y_m, self.height_m)

    def inside(self, positions: np.ndarray) -> np.ndarray:
        positions = np.atleast_2d(positions)
        return np.all((positions >= 0.0) & (positions <= self.size_m), axis=1)

    def to_dict(self) -> dict:
        return {"size_x_m": self.size_x_m, "size_y_m": self.size_y_m, "height_m": self.height_m,
                "table_height_m": self.table_height_m, "frame_id": self.frame_id}

    @classmethod
    def from_dict(cls, data: dict) -> "TableArea":
        if not isinstance(data, dict):
            raise ValueError(f"a workspace must be a mapping of sizes, got {type(data).__name__}")
        unknown = set(data) - {"size_x_m", "size_y_m", "height_m", "table_height_m", "frame_id"}
        if unknown:
            raise ValueError(f"unknown workspace keys {sorted(map(str, unknown))}")
        values = {}
        for key, value in data.items():
            if key == "frame_id":
                values[key] = str(value)
                continue
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
                number = None
            if number is None or isinstance(value, bool):  # YAML's yes/no: float() would take them for 1, 0
                raise ValueError(f"workspace {key} must be a number of metres, got {value!r}")
            values[key] = number
        return cls(**values)
