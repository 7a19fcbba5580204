"""One object standing on the table: the scene single picks are checked and benchmarked on.

The reference object is a 4 x 5 x 6 cm box (``BOX_SIZE_M``) at the workspace centre.
``box_scene_cloud`` is what a perfect camera would see of it and the table; ``stand_object`` and
``perceived_cloud`` build the scene for any object model through the simulated cameras instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..scene.workspace import STANDARD_WORKSPACE
from .object_set import ObjectModel
from .world import ClutterWorld

BOX_SIZE_M = (0.04, 0.05, 0.06)
BOX_CENTRE_M = (0.15, 0.15, STANDARD_WORKSPACE.table_height_m + 0.03)  # standing on the table
BOX_MASS_KG = 0.15

_BOX_URDF = """<?xml version="1.0"?>
<robot name="{name}">
  <link name="base_link">
    <contact><lateral_friction value="1.0"/><rolling_friction value="0.0"/></contact>
    <inertial><mass value="{mass}"/>
      <inertia ixx="{ixx}" ixy="0" ixz="0" iyy="{iyy}" iyz="0" izz="{izz}"/></inertial>
    <visual><geometry><box size="{sx} {sy} {sz}"/></geometry>
      <material name="c"><color rgba="0.2 0.5 0.8 1"/></material></visual>
    <collision><geometry><box size="{sx} {sy} {sz}"/></geometry></collision>
  </link>
</robot>
"""


def write_box_urdf(folder: Path, name: str, size_m, mass_kg: float = BOX_MASS_KG) -> Path:
    """A solid box object ``size_m`` (x, y, z) as ``<folder>/<name>.urdf``."""
    sx, sy, sz = size_m
    m = mass_kg
    path = Path(folder) / f"{name}.urdf"
    path.write_text(_BOX_URDF.format(name=name, mass=m, sx=sx, sy=sy, sz=sz, ixx=m / 12 * (sy**2 + sz**2),
                                     iyy=m / 12 * (sx**2 + sz**2), izz=m / 12 * (sx**2 + sy**2)))
    return path


def top_down_pose(x: float, y: float, z: float, yaw_rad: float = 0.0) -> np.ndarray:
    """``T_workspace_tcp`` approaching straight down (+z of the grasp = workspace -z), closing along
    (cos yaw, sin yaw, 0)."""
    closing = np.array([np.cos(yaw_rad), np.sin(yaw_rad), 0.0])
    approach = np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.column_stack([np.cross(closing, approach), closing, approach])
    T[:3, 3] = (x, y, z)
    return T


def box_scene_cloud(centre_m=BOX_CENTRE_M, size_m=BOX_SIZE_M) -> np.ndarray:
    """The table over the workspace (3.75 mm grid) plus a box's surface (11 points per edge)."""
    side = STANDARD_WORKSPACE.size_m
    xs = np.linspace(0.0, side, 81)
    tx, ty = np.meshgrid(xs, xs)
    table = np.c_[tx.ravel(), ty.ravel(), np.full(tx.size, STANDARD_WORKSPACE.table_height_m)]
    g = np.linspace(-1.0, 1.0, 11)
    unit = np.array(np.meshgrid(g, g, g)).reshape(3, -1).T
    surface = np.asarray(centre_m) + unit[np.abs(unit).max(axis=1) > 0.99] * 0.5 * np.asarray(size_m)
    return np.vstack([table, surface])


def stand_object(world: ClutterWorld, model: ObjectModel, xy_m=(0.15, 0.15), yaw_rad: float = 0.0) -> int:
    """Put ``model`` (unscaled, in its file's orientation) on the table at ``xy_m`` and let it settle."""
    probe = world.add_object(model, (*xy_m, 1.0), Rotation.from_euler("z", yaw_rad), 1.0)
    bottom = world.p.getAABB(probe)[0][2]
    world.remove_object(probe)
    z = world.workspace.table_height_m + 1.0 - bottom + 0.001
    body = world.add_object(model, (*xy_m, z), Rotation.from_euler("z", yaw_rad), 1.0)
    world.wait_for_objects_to_rest()
    return body


def top_z_m(world: ClutterWorld, body: int) -> float:
    """The highest point of a body (its bounding box's top)."""
    return float(world.p.getAABB(body)[1][2])


def perceived_scene(world: ClutterWorld, views: str = "multi"):
    """The scene as the grasp planners see it: simulated depth views (noise-free) fused into a TSDF."""
    from ..scene.tsdf import SceneBuilder
    from .camera import view_poses

    builder = SceneBuilder(world.workspace)
    for T in view_poses(views):
        builder.integrate(world.camera.render(T).depth, T)
    return builder.scene()


def perceived_cloud(world: ClutterWorld, views: str = "multi") -> np.ndarray:
    """The scene's surface as the grasp planners see it (``perceived_scene``'s points)."""
    return perceived_scene(world, views).points_m
