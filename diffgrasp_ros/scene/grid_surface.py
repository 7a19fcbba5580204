"""Surface points and normals from a TSDF grid in the standard convention (no open3d volume needed)."""
from __future__ import annotations

import numpy as np

from .workspace import Workspace


def surface_from_grid(grid: np.ndarray, workspace: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """Zero crossings of ``grid - 0.5`` between neighbouring observed voxels, with gradient normals.

    Only pairs where both voxels are observed (> 0) count, so the edge of the truncation band (where
    observed values meet the zeros of unobserved space) produces no false surface.
    """
    sdf = grid.astype(np.float64) - 0.5
    observed = grid > 0.0
    gradient = np.stack(np.gradient(sdf, workspace.voxel_size_m), axis=-1)
    centres = workspace.voxel_centres()
    points, normals = [], []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        a, b = sdf[lo], sdf[hi]
        crossing = observed[lo] & observed[hi] & (np.sign(a) != np.sign(b)) & (a != b)
        if not crossing.any():
            continue
        t = (a[crossing] / (a[crossing] - b[crossing]))[:, None]
        points.append(centres[lo][crossing] * (1 - t) + centres[hi][crossing] * t)
        normals.append(gradient[lo][crossing] * (1 - t) + gradient[hi][crossing] * t)
    if not points:
        return np.zeros((0, 3)), np.zeros((0, 3))
    points, normals = np.concatenate(points), np.concatenate(normals)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    ok = norm[:, 0] > 1e-9
    return points[ok], normals[ok] / norm[ok]
