"""Planning over a table area of any size with standard 0.30 m workspace cubes ("tiles").

The learned planners were trained on a 40³ grid over 0.30 m: a larger grid would change their voxel
size, a coarser one their input. So a large area is covered by standard tiles placed over the objects
only — empty table costs nothing, and planning time grows with the objects' footprint, not the table's.
Tiles keep a margin inside their grasp bounds, so every object that fits a tile lies wholly in one.
"""
from __future__ import annotations

import numpy as np

from .workspace import STANDARD_WORKSPACE, TableArea, Workspace


def object_points_mask(points: np.ndarray, area: TableArea, clearance_m: float = 0.01) -> np.ndarray:
    """Workspace-frame points above the table (by ``clearance_m``) inside the area."""
    height = points[:, 2] - area.table_height_m
    return area.inside(points) & (height > clearance_m)


def cut_off_share(points: np.ndarray, area: TableArea, band_m: float = 0.10, clearance_m: float = 0.01) -> float:
    """Of the points above the table in and around the area (a ``band_m`` band outside its bounds), the
    share outside: objects that the area's bounds cut off."""
    height = points[:, 2] - area.table_height_m
    above = (height > clearance_m) & (height <= area.height_m)
    xy = points[:, :2]
    near = above & np.all((xy >= -band_m) & (xy <= np.array([area.size_x_m, area.size_y_m]) + band_m), axis=1)
    if not near.any():
        return 0.0
    inside = near & area.inside(points)
    return float(1.0 - inside.sum() / near.sum())


def tile_origins(object_xy_m: np.ndarray, tile: Workspace = STANDARD_WORKSPACE, margin_m: float = 0.03,
                 cell_m: float = 0.01) -> np.ndarray:
    """(n, 2) corners of the tiles that cover the objects' footprint (``object_xy_m``, workspace frame).

    Greedy strip cover: the left-most uncovered footprint cell opens a strip as wide as a tile's usable
    span (its size less ``margin_m`` on each side); within it, the lowest uncovered cell opens a tile,
    which is then centred on the footprint cells it covers.
    """
    span = tile.size_m - 2.0 * margin_m - cell_m  # of cell centres whose whole cells fit the usable span
    if len(object_xy_m) == 0:
        return np.zeros((0, 2))
    cells = np.unique(np.floor(np.asarray(object_xy_m) / cell_m).astype(np.int64), axis=0)
    centres = (cells + 0.5) * cell_m
    uncovered = np.ones(len(centres), bool)
    origins = []
    while uncovered.any():
        x0 = centres[uncovered, 0].min()
        in_strip = uncovered & (centres[:, 0] <= x0 + span + 1e-9)
        y0 = centres[in_strip, 1].min()
        window = in_strip & (centres[:, 1] <= y0 + span + 1e-9)
        lo, hi = centres[window].min(axis=0), centres[window].max(axis=0)
        centre = 0.5 * (lo + hi)
        covered = np.all(np.abs(centres - centre) <= 0.5 * span + 1e-9, axis=1)
        uncovered &= ~covered
        origins.append(centre - 0.5 * tile.size_m)
    return np.array(origins)
