import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffgrasp_ros.camera import SIM_CAMERA, DepthError, DepthFrame
from diffgrasp_ros.scene import STANDARD_WORKSPACE, SceneBuilder, scene_from_grid
from diffgrasp_ros.scene.grid_surface import surface_from_grid
from diffgrasp_ros.sim.camera import side_view, view_poses


def surface_height(grid, i, j):
    """Height of the upper-most 0.5 crossing in column (i, j) of a standard grid."""
    ws = STANDARD_WORKSPACE
    column = grid[i, j]
    for k in range(ws.resolution - 1, 0, -1):
        a, b = column[k - 1], column[k]
        if a > 0 and b > 0 and a < 0.5 <= b:
            t = (0.5 - a) / (b - a)
            return (k - 1 + 0.5 + t) * ws.voxel_size_m
    return None


@pytest.fixture()
def offset_box_world(empty_world, box_objects):
    """A 4x5x6 cm box standing at x = 0.08 m, y = 0.15 m (asymmetric in x on purpose)."""
    table = empty_world.workspace.table_height_m
    empty_world.add_object(box_objects[0], (0.08, 0.15, table + 0.031), Rotation.identity(), 1.0)
    empty_world.wait_for_objects_to_rest()
    return empty_world


def test_grid_is_indexed_xyz_and_puts_surfaces_at_the_right_height(offset_box_world):
    view = offset_box_world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    scene = builder.scene()
    ws = STANDARD_WORKSPACE
    i_box = int(0.08 / ws.voxel_size_m)
    i_free, j = int(0.22 / ws.voxel_size_m), int(0.15 / ws.voxel_size_m)
    assert surface_height(scene.tsdf_grid, i_box, j) == pytest.approx(0.05 + 0.06, abs=0.004)
    assert surface_height(scene.tsdf_grid, i_free, j) == pytest.approx(0.05, abs=0.004)
    # The fine cloud sees the box top as well, with upward normals there.
    top = scene.points_m[np.abs(scene.points_m[:, 2] - 0.11) < 0.002]
    assert len(top) > 50
    assert np.allclose(top[:, :2].mean(axis=0), (0.08, 0.15), atol=0.01)
    assert np.median(scene.normals[np.abs(scene.points_m[:, 2] - 0.11) < 0.002][:, 2]) > 0.9


def test_multi_view_fusion_sees_more_of_the_scene(offset_box_world):
    counts = {}
    for mode in ("side", "multi"):
        builder = SceneBuilder()
        for T in view_poses(mode):
            view = offset_box_world.camera.render(T)
            builder.integrate(view.depth, view.T_workspace_camera)
        counts[mode] = int((builder.scene().tsdf_grid > 0).sum())
    assert counts["multi"] > 1.2 * counts["side"]


def test_grid_only_surface_matches_the_fused_cloud(offset_box_world):
    view = offset_box_world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    fused = builder.scene()
    from_grid = scene_from_grid(fused.tsdf_grid)
    assert len(from_grid.points_m) > 100
    # Every grid surface point lies near the finer fused surface (no false surface at band edges).
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(fused.points_m).query(from_grid.points_m)
    assert np.percentile(distance, 95) < STANDARD_WORKSPACE.voxel_size_m


def test_surface_from_an_empty_grid_is_empty():
    points, normals = surface_from_grid(np.zeros((40, 40, 40), np.float32), STANDARD_WORKSPACE)
    assert points.shape == normals.shape == (0, 3)


@pytest.mark.parametrize("grid, match", [
    (np.zeros((32, 32, 32)), "40x40x40"),
    (np.full((40, 40, 40), 2.0), r"\[0, 1\]"),
    (np.full((40, 40, 40), np.nan), "finite"),
])
def test_bad_tsdf_grids_are_rejected(grid, match):
    with pytest.raises(ValueError, match=match):
        scene_from_grid(grid)


def test_all_invalid_depth_is_rejected_before_fusion():
    builder = SceneBuilder()
    with pytest.raises(DepthError, match="no valid pixels"):
        builder.integrate(DepthFrame(np.zeros((480, 640), np.float32), SIM_CAMERA), side_view())
    assert builder.frames_integrated == 0


def test_non_rigid_camera_pose_is_rejected():
    frame = DepthFrame(np.full((480, 640), 0.5, np.float32), SIM_CAMERA)
    with pytest.raises(ValueError, match="rigid"):
        SceneBuilder().integrate(frame, np.diag([2.0, 1.0, 1.0, 1.0]))
