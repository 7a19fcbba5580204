"""scene_builder's camera pose from the depth (camera_pose_source: auto), ~/calibrate_workspace, and the
check of a given extrinsic, with real rclpy on ray-cast synthetic frames and a replayed real frame."""
import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from diffgrasp_ros.camera import DepthFrame  # noqa: E402
from diffgrasp_ros.camera.intrinsics import CameraIntrinsics  # noqa: E402
from diffgrasp_ros.geometry import invert, look_at, transform_points  # noqa: E402
from diffgrasp_ros.nodes import conversions as conv  # noqa: E402
from diffgrasp_ros.nodes.scene_builder import SceneBuilderNode  # noqa: E402
from ros_helpers import Spinner, call, wait_for  # noqa: E402

OK = TransitionCallbackReturn.SUCCESS
FRAME_ID = "camera_depth_optical_frame"  # scene_builder's default camera_frame
REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real"

# The synthetic tabletop, in a workspace frame of the standard convention: the table top at z = 0.05,
# a 8 x 6 x 10 cm box standing on it near the middle, the camera 0.7 m from the workspace centre on
# the table, looking down at it at 50 degrees.
K = CameraIntrinsics(640, 480, 600.0, 600.0, 319.5, 239.5)
TABLE_Z = 0.05
BOX_LO, BOX_HI = np.array([0.11, 0.12, TABLE_Z]), np.array([0.19, 0.18, TABLE_Z + 0.10])
ELEVATION = np.radians(50.0)
TRUE_T_WORKSPACE_CAMERA = look_at(np.array([0.15, 0.15, TABLE_Z]) + 0.7 * np.array(
    [-np.cos(ELEVATION), 0.0, np.sin(ELEVATION)]), (0.15, 0.15, TABLE_Z))


@pytest.fixture(scope="module", autouse=True)
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _rays() -> np.ndarray:
    """(H, W, 3) camera-frame rays with z = 1, so a hit at ray parameter t has depth t."""
    v, u = np.mgrid[:K.height, :K.width]
    return np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(u.shape)], axis=-1)


def tabletop_depth(seed: int = 0) -> np.ndarray:
    """Ray-cast the table plane and the box from the true camera pose, with 1 mm depth noise."""
    R, origin = TRUE_T_WORKSPACE_CAMERA[:3, :3], TRUE_T_WORKSPACE_CAMERA[:3, 3]
    direction = _rays() @ R.T  # workspace-frame direction per metre of depth
    with np.errstate(divide="ignore", invalid="ignore"):
        table = (TABLE_Z - origin[2]) / direction[..., 2]
        t1, t2 = (BOX_LO - origin) / direction, (BOX_HI - origin) / direction
    depth = np.where(table > 0, table, np.inf)
    near, far = np.minimum(t1, t2).max(axis=-1), np.maximum(t1, t2).min(axis=-1)
    box = (near <= far) & (near > 0)
    depth = np.where(box & (near < depth), near, depth)
    depth = np.where(np.isfinite(depth), depth, 0.0)
    noise = np.random.default_rng(seed).normal(0.0, 0.001, depth.shape)
    return np.where(depth > 0, depth + noise, 0.0).astype(np.float32)


def random_close_up_depth(seed: int = 0) -> np.ndarray:
    """Something held up close to the camera: depth all over 0.2-1.0 m, no plane anywhere."""
    return np.random.default_rng(seed).uniform(0.2, 1.0, (K.height, K.width)).astype(np.float32)


def ceiling_depth() -> np.ndarray:
    """The camera tilted 45 degrees up at a ceiling 1 m away: one plane, facing down."""
    normal = np.array([0.0, np.sqrt(0.5), -np.sqrt(0.5)])  # towards the camera (y is down in the image)
    return (1.0 / -(_rays() @ normal)).astype(np.float32)


def make(**parameters) -> SceneBuilderNode:
    return SceneBuilderNode(parameter_overrides=[Parameter(n, value=v) for n, v in parameters.items()])


class Rig:
    """The scene_builder under test, fed and watched by a client node on its topics and services."""

    def __init__(self, node: SceneBuilderNode, client_node):
        self.node, self.client_node = node, client_node
        self.image_pub = client_node.create_publisher(Image, "depth/processed/image", 2)
        self.info_pub = client_node.create_publisher(CameraInfo, "depth/processed/camera_info", 2)
        self.surfaces: list[PointCloud2] = []
        client_node.create_subscription(PointCloud2, "scene/surface", self.surfaces.append, 10)
        self.calibrate_client = client_node.create_client(Trigger, "scene_builder/calibrate_workspace")

    def start(self) -> None:
        assert self.node.trigger_configure() == OK, self.node.last_error
        assert self.node.trigger_activate() == OK, self.node.last_error
        assert wait_for(lambda: self.image_pub.get_subscription_count() > 0
                        and self.info_pub.get_subscription_count() > 0, 10.0)

    def feed(self, depth_m: np.ndarray, intrinsics: CameraIntrinsics = K, encoding: str = "32FC1") -> None:
        image, info = conv.depth_frame_to_msgs(DepthFrame(depth_m, intrinsics, frame_id=FRAME_ID), encoding)
        if FRAME_ID not in self.node._infos:
            self.info_pub.publish(info)
            assert wait_for(lambda: FRAME_ID in self.node._infos, 5.0)
        self.image_pub.publish(image)

    def calibrate(self) -> Trigger.Response:
        return call(self.calibrate_client, Trigger.Request(), 30.0)

    def surface_points(self, index: int = -1) -> np.ndarray:
        return conv.cloud_to_array(self.surfaces[index], ("x", "y", "z"))


@contextlib.contextmanager
def scene_builder(**parameters):
    node = make(**parameters)
    client_node = rclpy.create_node("workspace_test_client")
    executor = MultiThreadedExecutor(num_threads=4)
    for n in (node, client_node):
        executor.add_node(n)
    try:
        with Spinner(executor):
            yield Rig(node, client_node)
    finally:
        node.destroy_node()
        client_node.destroy_node()


def true_to_estimated(T_workspace_camera: np.ndarray) -> np.ndarray:
    """The synthetic scene's workspace frame -> the node's estimated workspace frame."""
    return T_workspace_camera @ invert(TRUE_T_WORKSPACE_CAMERA)


def assert_pose_fits_the_tabletop(T_workspace_camera: np.ndarray) -> None:
    T = true_to_estimated(T_workspace_camera)
    xs, ys = np.meshgrid(np.linspace(-0.1, 0.5, 7), np.linspace(-0.1, 0.4, 6))
    table = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, TABLE_Z)])
    np.testing.assert_allclose(transform_points(T, table)[:, 2], TABLE_Z, atol=0.005)
    corners = np.array(np.meshgrid(*zip(BOX_LO, BOX_HI))).reshape(3, -1).T
    assert np.all((transform_points(T, corners) > -1e-3) & (transform_points(T, corners) < 0.30 + 1e-3))


def assert_surface_shows_the_box(rig: Rig) -> None:
    points = rig.surface_points()
    assert rig.surfaces[-1].header.frame_id == "workspace"
    assert np.all((points >= -1e-6) & (points <= 0.30 + 1e-6))
    # Back in the synthetic scene's frame, what stands above the table is the box, and all of it is there.
    above = transform_points(invert(true_to_estimated(rig.node.pose_estimate.T_workspace_camera)), points)
    above = above[above[:, 2] > TABLE_Z + 0.01]
    assert len(above) > 100
    assert np.all((above >= BOX_LO - 0.01) & (above <= BOX_HI + 0.01))
    assert above[:, 2].max() > BOX_HI[2] - 0.01  # the box top is inside the workspace, not cut off


def test_auto_estimates_the_pose_on_the_first_frame_calibrates_and_re_estimates_on_activation():
    with scene_builder(camera_pose_source="auto", frames_per_scene=2) as rig:
        node = rig.node
        rig.start()
        assert node.pose_estimate is None
        rig.feed(tabletop_depth(0))
        assert wait_for(lambda: node.pose_estimate is not None and node.builder.frames_integrated == 1, 20.0), \
            node.last_error
        first = node.pose_estimate
        assert_pose_fits_the_tabletop(first.T_workspace_camera)
        assert first.object_share_inside == 1.0 and not first.warnings, first.diagnostics()
        assert node.last_error == ""

        # ~/calibrate_workspace: from the latest frame; the scene fused so far is dropped.
        answer = rig.calibrate()
        assert answer.success, answer.message
        report = json.loads(answer.message)
        assert report["table_inlier_share"] > 0.8 and report["table_residual_m"] < 0.003
        assert report["object_share_inside"] == 1.0
        T = np.reshape(report["T_workspace_camera"], (4, 4))
        np.testing.assert_allclose(report["camera_position_m"], T[:3, 3], atol=1e-4)
        np.testing.assert_allclose(T, node.pose_estimate.T_workspace_camera, atol=1e-5)
        assert node.pose_estimate is not first and node.builder.frames_integrated == 0
        assert_pose_fits_the_tabletop(T)

        rig.feed(tabletop_depth(1))
        rig.feed(tabletop_depth(2))
        assert wait_for(lambda: rig.surfaces, 20.0), node.last_error
        assert_surface_shows_the_box(rig)

        # Re-activation estimates anew, on the first frame that arrives.
        assert node.trigger_deactivate() == OK and node.trigger_activate() == OK
        assert node.pose_estimate is None
        rig.feed(tabletop_depth(3))
        assert wait_for(lambda: node.pose_estimate is not None, 20.0), node.last_error
        assert_pose_fits_the_tabletop(node.pose_estimate.T_workspace_camera)


def test_auto_reports_frames_without_a_table_stays_active_and_succeeds_on_a_later_good_frame():
    with scene_builder(camera_pose_source="auto") as rig:
        node = rig.node
        rig.start()
        for depth in (random_close_up_depth(), ceiling_depth()):
            node.last_error = ""
            rig.feed(depth)
            assert wait_for(lambda: "camera pose estimation failed" in node.last_error, 20.0), node.last_error
            assert "no table found" in node.last_error
            assert node.active and node.pose_estimate is None and not rig.surfaces
        assert "faces down" in node.last_error  # the ceiling: the camera looks away from the table

        answer = rig.calibrate()  # from the latest frame, the ceiling
        assert not answer.success and "no table found" in answer.message and "no camera pose yet" in answer.message

        rig.feed(tabletop_depth())
        assert wait_for(lambda: rig.surfaces, 20.0), node.last_error
        assert_pose_fits_the_tabletop(node.pose_estimate.T_workspace_camera)
        assert_surface_shows_the_box(rig)

        # A failed calibration keeps the pose that works.
        rig.feed(random_close_up_depth(1))  # fused with the pose in use, and now the latest frame
        assert wait_for(lambda: len(rig.surfaces) >= 2, 20.0), node.last_error
        kept = node.pose_estimate
        answer = rig.calibrate()
        assert not answer.success and "previous camera pose is kept" in answer.message
        assert node.pose_estimate is kept


def test_a_given_extrinsic_is_checked_once_per_activation(monkeypatch):
    from diffgrasp_ros.scene import table

    checks, check_camera_pose = [], table.check_camera_pose

    def counting_check(*args, **kwargs):
        checks.append(check_camera_pose(*args, **kwargs))
        return checks[-1]

    monkeypatch.setattr(table, "check_camera_pose", counting_check)

    identity = [float(v) for v in np.eye(4).ravel()]
    with scene_builder(camera_pose_source="config", T_workspace_camera=identity) as rig:
        node = rig.node
        rig.start()
        rig.feed(tabletop_depth())
        assert wait_for(lambda: rig.surfaces, 20.0), node.last_error
        assert "camera pose check" in node.last_error and "tilted 40" in node.last_error, node.last_error
        assert "cm from the workspace's" in node.last_error
        rig.feed(tabletop_depth(1))
        assert wait_for(lambda: len(rig.surfaces) >= 2, 20.0)
        assert len(checks) == 1  # not every frame

        # A given extrinsic is never overridden by ~/calibrate_workspace.
        answer = rig.calibrate()
        assert not answer.success and "camera_pose_source: auto" in answer.message
        assert node._T_config is not None and np.allclose(node._T_config, np.eye(4))

        # The right extrinsic passes the check (after re-configuring), checked again on activation.
        assert node.trigger_deactivate() == OK and node.trigger_cleanup() == OK
        node.set_parameters([Parameter("T_workspace_camera",
                                       value=[float(v) for v in TRUE_T_WORKSPACE_CAMERA.ravel()])])
        rig.surfaces.clear()
        rig.start()
        rig.feed(tabletop_depth(2))
        assert wait_for(lambda: rig.surfaces, 20.0), node.last_error
        assert len(checks) == 2 and checks[-1].table_found and not checks[-1].warnings
        assert node.last_error == ""
        assert_surface_shows_the_box_given(rig)


def assert_surface_shows_the_box_given(rig: Rig) -> None:
    """With the true extrinsic the surface is in the synthetic scene's frame as it is."""
    points = rig.surface_points()
    above = points[points[:, 2] > TABLE_Z + 0.01]
    assert len(above) > 100 and np.all((above >= BOX_LO - 0.01) & (above <= BOX_HI + 0.01))


@pytest.mark.skipif(not (REAL / "ucn_tabletop" / "000000").is_dir(), reason="../shared/real is not available")
def test_auto_on_a_replayed_real_frame():
    from diffgrasp_ros.camera.files import load_depth_image

    folder = REAL / "ucn_tabletop" / "000000"
    camera = json.loads((folder / "camera.json").read_text())
    intrinsics = CameraIntrinsics.from_dict(camera)
    depth = load_depth_image(folder / "depth.png", camera["depth_scale_m"])
    with scene_builder(camera_pose_source="auto") as rig:
        node = rig.node
        rig.start()
        rig.feed(depth, intrinsics, encoding="16UC1")  # as a RealSense driver publishes it: uint16 mm
        assert wait_for(lambda: rig.surfaces, 20.0), node.last_error
        estimate = node.pose_estimate
        assert estimate is not None and estimate.table_residual_m < 0.01 and estimate.object_points > 0
        points = rig.surface_points()
        assert len(points) > 1000
        assert np.count_nonzero(points[:, 2] > node.workspace.table_height_m + 0.01) > 100  # objects, not only table
        answer = rig.calibrate()
        assert answer.success, answer.message
