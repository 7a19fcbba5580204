import os
from pathlib import Path

import numpy as np
import pytest

try:
    # pyrealsense2 bundles its own Fast DDS: imported before rclpy's, the process crashes at exit.
    import rclpy  # noqa: F401
except ImportError:  # the ROS wheels are optional for the library tests
    pass

# open3d's OpenMP threads slow down badly when the other core is busy (e.g. under CI).
os.environ.setdefault("OMP_NUM_THREADS", "1")

BOX_URDF = """<?xml version="1.0"?>
<robot name="{name}">
  <link name="base_link">
    <contact><lateral_friction value="1.0"/><rolling_friction value="0.0"/></contact>
    <inertial><mass value="0.15"/>
      <inertia ixx="{ixx}" ixy="0" ixz="0" iyy="{iyy}" iyz="0" izz="{izz}"/></inertial>
    <visual><geometry><box size="{sx} {sy} {sz}"/></geometry>
      <material name="c"><color rgba="0.2 0.5 0.8 1"/></material></visual>
    <collision><geometry><box size="{sx} {sy} {sz}"/></geometry></collision>
  </link>
</robot>
"""


def write_box_urdf(folder: Path, name: str, size) -> Path:
    sx, sy, sz = size
    m = 0.15
    path = folder / f"{name}.urdf"
    path.write_text(BOX_URDF.format(name=name, sx=sx, sy=sy, sz=sz, ixx=m / 12 * (sy**2 + sz**2),
                                    iyy=m / 12 * (sx**2 + sz**2), izz=m / 12 * (sx**2 + sy**2)))
    return path


@pytest.fixture(scope="session")
def box_objects(tmp_path_factory):
    """Two small box objects (URDF), independent of any shipped or shared object set."""
    from diffgrasp_ros.sim.object_set import find_objects

    folder = tmp_path_factory.mktemp("boxes")
    write_box_urdf(folder, "box_a", (0.04, 0.05, 0.06))
    write_box_urdf(folder, "box_b", (0.03, 0.08, 0.04))
    return find_objects(folder)


@pytest.fixture()
def fake_shared(tmp_path, monkeypatch):
    """A stand-in for ../shared (via $DIFFGRASP_SHARED) with 40 pile and 15 packed box objects."""
    for kind, count in (("pile", 40), ("packed", 15)):
        folder = tmp_path / "objects" / kind / "train"
        folder.mkdir(parents=True)
        for i in range(count):
            write_box_urdf(folder, f"{kind}_object_{i:02d}", (0.04, 0.05 + 0.001 * i, 0.06))
    monkeypatch.setenv("DIFFGRASP_SHARED", str(tmp_path))
    return tmp_path


@pytest.fixture()
def box_world(box_objects):
    """A world with one upright 4x5x6 cm box standing in the middle of the table."""
    from scipy.spatial.transform import Rotation

    from diffgrasp_ros.sim.world import ClutterWorld

    world = ClutterWorld(box_objects, seed=0)
    table = world.workspace.table_height_m
    world.add_object(box_objects[0], (0.15, 0.15, table + 0.03 + 0.001), Rotation.identity(), 1.0)
    world.wait_for_objects_to_rest()
    yield world
    world.close()


@pytest.fixture()
def empty_world(box_objects):
    from diffgrasp_ros.sim.world import ClutterWorld

    world = ClutterWorld(box_objects, seed=0)
    yield world
    world.close()


def top_down_grasp(x, y, z, yaw=0.0) -> np.ndarray:
    """TCP pose approaching straight down (+z of the grasp frame = world -z)."""
    c, s = np.cos(yaw), np.sin(yaw)
    closing = np.array([c, s, 0.0])
    approach = np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.column_stack([np.cross(closing, approach), closing, approach])
    T[:3, 3] = (x, y, z)
    return T
