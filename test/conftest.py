import os

import pytest

try:
    # pyrealsense2 bundles its own Fast DDS: imported before rclpy's, the process crashes at exit.
    import rclpy  # noqa: F401
except ImportError:  # the ROS wheels are optional for the library tests
    pass

# open3d's OpenMP threads slow down badly when the other core is busy (e.g. under CI).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from diffgrasp_ros.sim.pick_scene import top_down_pose, write_box_urdf  # noqa: E402,F401  (shared with the tests)


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


def top_down_grasp(x, y, z, yaw=0.0):
    """TCP pose approaching straight down (+z of the grasp frame = world -z), closing at ``yaw`` rad."""
    return top_down_pose(x, y, z, yaw)


@pytest.fixture(scope="session")
def labelled_box_scenes(tmp_path_factory):
    """A two-chunk dataset of one labelled scene each (two boxes; analytic labels: fast), for training tests."""
    from diffgrasp_ros.sim.object_splits import folder_objects
    from diffgrasp_ros.training.datagen import DatagenConfig, generate_dataset

    objects_dir = tmp_path_factory.mktemp("labelled_boxes")
    write_box_urdf(objects_dir, "box_a", (0.04, 0.05, 0.06))
    write_box_urdf(objects_dir, "box_b", (0.03, 0.06, 0.05))
    objects = folder_objects(objects_dir)
    folder = tmp_path_factory.mktemp("labelled_box_scenes")
    config = DatagenConfig("analytic", scenes_per_chunk=1, seed=3, points_per_scene=8, yaws=4, depths=1,
                           baseline_grasps=8)
    generate_dataset(folder, config, 2, {"pile": objects, "packed": objects}, workers=1, progress=False)
    return folder


@pytest.fixture(scope="session")
def boxes(tmp_path_factory):
    """Two box models as the object sets of both scene kinds (dataset generation tests)."""
    from diffgrasp_ros.sim.object_splits import folder_objects

    folder = tmp_path_factory.mktemp("datagen_boxes")
    write_box_urdf(folder, "box_a", (0.04, 0.05, 0.06))
    write_box_urdf(folder, "box_b", (0.03, 0.07, 0.05))
    objects = folder_objects(folder)
    return {"pile": objects, "packed": objects}
