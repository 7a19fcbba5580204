"""Synthetic tabletops of any size: boxes and cylinders at a fixed density on a table, ray-cast into a
depth image (open3d) from a camera that sees the whole table.

The clutter world (``sim.world``) is the 0.30 m protocol cube; this stands in for a real lab table when
what is measured is how planning scales with table area and whether the workspace is found where it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera.frame import DepthFrame
from ..camera.intrinsics import CameraIntrinsics
from ..geometry import invert, look_at
from ..scene.workspace import STANDARD_WORKSPACE, TableArea

D435_1280x720 = CameraIntrinsics(1280, 720, 910.0, 910.0, 640.0, 360.0)


@dataclass
class Tabletop:
    """A rendered tabletop: the depth, the true camera pose in the table area's frame, the objects."""

    depth: DepthFrame
    T_workspace_camera: np.ndarray
    area: TableArea
    object_centres_m: np.ndarray  # (n, 3) workspace frame, on the table top


def _object_mesh(rng: np.random.Generator):
    import open3d as o3d

    height = rng.uniform(0.05, 0.14)
    if rng.random() < 0.5:
        mesh = o3d.geometry.TriangleMesh.create_box(rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.07), height)
        mesh.translate(-mesh.get_center() + np.array([0.0, 0.0, height / 2]))
    else:
        mesh = o3d.geometry.TriangleMesh.create_cylinder(rng.uniform(0.015, 0.035), height, resolution=24)
        mesh.translate(np.array([0.0, 0.0, height / 2]))
    mesh.rotate(mesh.get_rotation_matrix_from_xyz((0.0, 0.0, rng.uniform(0, np.pi))), center=(0, 0, 0))
    return mesh


def render_tabletop(size_xy_m: tuple[float, float], objects_per_m2: float = 40.0, seed: int = 0,
                    intrinsics: CameraIntrinsics = D435_1280x720, tilt_deg: float = 45.0,
                    table_margin_m: float = 0.25) -> Tabletop:
    """Objects on a jittered grid at ``objects_per_m2`` over a ``size_xy_m`` area (which is the workspace:
    corner at the origin, table top at the standard height), the table ``table_margin_m`` larger on every
    side; the camera looks at the area's centre ``tilt_deg`` off vertical from as far as it must to see it."""
    import open3d as o3d

    rng = np.random.default_rng(seed)
    sx, sy = size_xy_m
    area = TableArea(sx, sy, STANDARD_WORKSPACE.size_m, STANDARD_WORKSPACE.table_height_m)
    table_z = area.table_height_m
    scene = o3d.t.geometry.RaycastingScene()
    table = o3d.geometry.TriangleMesh.create_box(sx + 2 * table_margin_m, sy + 2 * table_margin_m, 0.03)
    table.translate((-table_margin_m, -table_margin_m, table_z - 0.03))
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(table))

    count = max(1, int(round(objects_per_m2 * sx * sy)))
    cells_x = max(1, int(round(np.sqrt(count * sx / sy))))
    cells_y = int(np.ceil(count / cells_x))
    cell = np.array([sx / cells_x, sy / cells_y])
    centres = []
    for index in rng.permutation(cells_x * cells_y)[:count]:
        ij = np.array([index % cells_x, index // cells_x])
        xy = (ij + 0.5) * cell + rng.uniform(-0.25, 0.25, 2) * np.maximum(cell - 0.07, 0.0)
        mesh = _object_mesh(rng)
        mesh.translate((xy[0], xy[1], table_z))
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
        centres.append((xy[0], xy[1], table_z))

    # Far enough that the area fits the view: its y extent across the image width, its x extent
    # (foreshortened by the tilt) along the height.
    tilt = np.deg2rad(tilt_deg)
    across = 0.5 * sy / (intrinsics.width / (2 * intrinsics.fx))
    along = 0.5 * sx * np.cos(tilt) / (intrinsics.height / (2 * intrinsics.fy))
    distance = max(0.5, 1.15 * max(across, along))
    target = np.array([sx / 2, sy / 2, table_z])
    eye = target + distance * np.array([-np.sin(tilt), 0.0, np.cos(tilt)])
    T_workspace_camera = look_at(eye, target)

    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        intrinsic_matrix=o3d.core.Tensor(intrinsics.K), extrinsic_matrix=o3d.core.Tensor(invert(T_workspace_camera)),
        width_px=intrinsics.width, height_px=intrinsics.height)
    hit = scene.cast_rays(rays)
    t_hit = hit["t_hit"].numpy()
    directions = rays.numpy()[..., 3:]
    optical_axis = T_workspace_camera[:3, 2]
    depth = np.where(np.isfinite(t_hit), t_hit * (directions @ optical_axis), 0.0).astype(np.float32)
    frame = DepthFrame(depth, intrinsics, frame_id="tabletop_camera_optical_frame")
    return Tabletop(frame, T_workspace_camera, area, np.array(centres))
