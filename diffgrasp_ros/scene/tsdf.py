"""TSDF fusion of depth frames over the workspace with open3d.

Two uniform volumes are fused side by side: the standard coarse grid (40³ over 0.30 m, truncation
4 voxels) that learned models consume, and a finer one (80³, 3.75 mm voxels by default) whose surface
gives the point cloud used by geometric planners and collision checks. 120³ would cost 3x more
(allocating its voxels alone takes ~40 ms here) for detail the planners downsample away. (open3d's ScalableTSDFVolume is broken in 0.20, and
UniformTSDFVolume is the one the published protocol uses.)
"""
from __future__ import annotations

import numpy as np

from ..camera.frame import DepthError, DepthFrame
from ..geometry import invert, is_rigid_transform
from .grid_surface import surface_from_grid
from .scene import Scene
from .workspace import STANDARD_WORKSPACE, Workspace


def _o3d():
    import open3d as o3d

    return o3d


class TSDFVolume:
    """One open3d ``UniformTSDFVolume`` over the workspace cube."""

    def __init__(self, workspace: Workspace, resolution: int, depth_trunc_m: float = 2.0):
        o3d = _o3d()
        self.workspace = workspace
        self.resolution = resolution
        self.voxel_size_m = workspace.size_m / resolution
        self.depth_trunc_m = depth_trunc_m
        self._volume = o3d.pipelines.integration.UniformTSDFVolume(
            length=workspace.size_m,
            resolution=resolution,
            sdf_trunc=4.0 * self.voxel_size_m,
            color_type=o3d.pipelines.integration.TSDFVolumeColorType.NoColor,
        )

    def integrate(self, frame: DepthFrame, T_workspace_camera: np.ndarray) -> None:
        o3d = _o3d()
        K = frame.intrinsics
        depth = o3d.geometry.Image(np.ascontiguousarray(frame.depth_m, dtype=np.float32))
        color = o3d.geometry.Image(np.zeros((K.height, K.width, 3), dtype=np.uint8))
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            color, depth, depth_scale=1.0, depth_trunc=self.depth_trunc_m,
            convert_rgb_to_intensity=False,
        )
        intrinsic = o3d.camera.PinholeCameraIntrinsic(K.width, K.height, K.fx, K.fy, K.cx, K.cy)
        self._volume.integrate(rgbd, intrinsic, invert(T_workspace_camera))

    def grid(self) -> np.ndarray:
        """The volume in the standard grid convention (see ``Scene``), indexed [x, y, z]."""
        R = self.resolution
        tsdf_weight = np.asarray(self._volume.extract_volume_tsdf()).reshape(R, R, R, 2)
        tsdf, weight = tsdf_weight[..., 0], tsdf_weight[..., 1]
        observed = (weight > 0) & (tsdf < 0.98) & (tsdf >= -0.98)
        return np.where(observed, (tsdf + 1.0) * 0.5, 0.0).astype(np.float32)

    def surface_points(self) -> tuple[np.ndarray, np.ndarray]:
        cloud = self._volume.extract_point_cloud()
        points = np.asarray(cloud.points, dtype=np.float64)
        normals = np.asarray(cloud.normals, dtype=np.float64) if cloud.has_normals() else None
        if normals is None or len(normals) != len(points):
            normals = np.zeros_like(points)
        return points, normals


class SceneBuilder:
    """Fuses posed depth frames into a ``Scene`` of the workspace."""

    def __init__(self, workspace: Workspace = STANDARD_WORKSPACE, cloud_resolution: int = 80,
                 depth_trunc_m: float = 2.0):
        self.workspace = workspace
        self.cloud_resolution = cloud_resolution
        self.depth_trunc_m = depth_trunc_m
        self.reset()

    def reset(self) -> None:
        self._grid_volume = TSDFVolume(self.workspace, self.workspace.resolution, self.depth_trunc_m)
        self._cloud_volume = TSDFVolume(self.workspace, self.cloud_resolution, self.depth_trunc_m)
        self.frames_integrated = 0

    def integrate(self, frame: DepthFrame, T_workspace_camera: np.ndarray) -> None:
        T_workspace_camera = np.asarray(T_workspace_camera, dtype=float)
        if not is_rigid_transform(T_workspace_camera):
            raise ValueError("T_workspace_camera must be a 4x4 rigid transform")
        if not frame.valid_mask.any():
            raise DepthError("depth frame has no valid pixels: nothing to integrate")
        self._grid_volume.integrate(frame, T_workspace_camera)
        self._cloud_volume.integrate(frame, T_workspace_camera)
        self.frames_integrated += 1

    def scene(self) -> Scene:
        points, normals = self._cloud_volume.surface_points()
        keep = self.workspace.inside(points) if len(points) else np.zeros(0, dtype=bool)
        return Scene(self._grid_volume.grid(), points[keep], normals[keep], self.workspace)


def standard_grid(tsdf_grid: np.ndarray, workspace: Workspace = STANDARD_WORKSPACE) -> np.ndarray:
    """``tsdf_grid`` as the (R, R, R) float32 grid of the standard convention; ValueError when it is not one."""
    dtype = np.asarray(tsdf_grid).dtype
    if dtype.kind not in "biuf":  # complex, strings, records, dates: no TSDF values
        raise ValueError(f"a TSDF grid holds real numbers, got dtype {dtype}")
    grid = np.asarray(tsdf_grid, dtype=np.float32)
    if grid.ndim == 4 and grid.shape[0] == 1:
        grid = grid[0]
    R = workspace.resolution
    if grid.shape != (R, R, R):
        raise ValueError(f"TSDF grid must be {R}x{R}x{R} (or 1x{R}x{R}x{R}), got {grid.shape}")
    if not np.all(np.isfinite(grid)) or grid.min() < 0.0 or grid.max() > 1.0:
        raise ValueError("TSDF grid values must be finite and in [0, 1] (standard convention)")
    return grid


def scene_from_grid(tsdf_grid: np.ndarray, workspace: Workspace = STANDARD_WORKSPACE) -> Scene:
    """A ``Scene`` from a TSDF grid alone (standard convention), e.g. handed over by another simulator."""
    grid = standard_grid(tsdf_grid, workspace)
    points, normals = surface_from_grid(grid, workspace)
    return Scene(grid, points, normals, workspace)
