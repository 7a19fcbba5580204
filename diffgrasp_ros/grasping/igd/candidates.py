"""Where grasp centres are looked for: free voxels within finger reach of the observed objects."""
from __future__ import annotations

import numpy as np

from ...scene.workspace import Workspace


def candidate_mask(tsdf: np.ndarray, workspace: Workspace, reach_voxels: int = 5, stride: int = 1) -> np.ndarray:
    """(R, R, R) bool: voxel centres inside the grasp bounds, not behind an observed surface, and within
    ``reach_voxels`` of a surface voxel above the table (a TCP farther away holds nothing); only every
    ``stride``-th voxel along each axis (the affordance of 10-20 k centres costs ~1 s on one core)."""
    from scipy.ndimage import binary_dilation

    centres = workspace.voxel_centres()
    above = centres[..., 2] > workspace.table_height_m + workspace.voxel_size_m
    surface = (tsdf > 0.0) & (np.abs(tsdf - 0.5) < 0.25) & above
    near = binary_dilation(surface, np.ones((3, 3, 3), bool), iterations=reach_voxels)
    free = (tsdf == 0.0) | (tsdf >= 0.5)
    bounds = workspace.contains_grasp(centres.reshape(-1, 3)).reshape(tsdf.shape)
    lattice = np.zeros_like(near)
    lattice[::stride, ::stride, ::stride] = True
    return near & free & bounds & lattice
