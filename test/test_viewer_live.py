"""`diffgrasp view --live`: the viewer feed node with real rclpy, on the topics the graph publishes."""
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from diffgrasp_ros.geometry import make_transform  # noqa: E402
from diffgrasp_ros.grasping.grasp import Grasp  # noqa: E402
from diffgrasp_ros.nodes.conversions import SURFACE_FIELDS, array_to_cloud, grasps_to_markers  # noqa: E402
from diffgrasp_ros.nodes.viewer_feed import ViewerFeed  # noqa: E402
from diffgrasp_ros.robots.registry import get_robot  # noqa: E402
from diffgrasp_ros.visualisation.viewer import GraspViewer  # noqa: E402
from ros_helpers import Spinner, wait_for  # noqa: E402


class RecordingViewer(GraspViewer):
    """The real viewer, noting what it was handed."""

    def __init__(self):
        super().__init__(port=0)
        self.surfaces, self.grasp_lists = [], []

    def show_surface(self, points_m, area):
        self.surfaces.append(points_m)
        super().show_surface(points_m, area)

    def show_grasps(self, robot, grasps, title=""):
        self.grasp_lists.append(grasps)
        super().show_grasps(robot, grasps, title)


@pytest.fixture()
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_the_feed_shows_the_latest_surface_and_grasps_and_redraws_only_new_answers(ros):
    viewer = RecordingViewer()
    feed = ViewerFeed(viewer, "xarm_leap")
    source = rclpy.create_node("graph_stand_in")
    surface_pub = source.create_publisher(PointCloud2, "scene/surface", 1)
    markers_pub = source.create_publisher(MarkerArray, "grasps/markers", 1)
    executor = SingleThreadedExecutor()
    executor.add_node(feed)
    points = np.column_stack([np.random.default_rng(0).uniform(0.0, 0.3, (500, 3)), np.zeros((500, 3))])
    points[0, 0] = np.nan  # a point the cloud marks invalid
    grasps = [Grasp(make_transform(translation=(0.15, 0.15, 0.1)), 0.05, 0.9, "igd"),
              Grasp(make_transform(translation=(0.10, 0.15, 0.1)), 0.03, 0.4, "igd")]
    markers = grasps_to_markers(grasps, get_robot("xarm_leap"), "workspace", 0.0)
    try:
        with Spinner(executor):
            assert wait_for(lambda: surface_pub.get_subscription_count() and markers_pub.get_subscription_count())
            surface_pub.publish(array_to_cloud(points, SURFACE_FIELDS, "workspace", 0.0))
            for _ in range(3):  # the grasp server republishes its answer every second
                markers_pub.publish(markers)
            assert wait_for(lambda: viewer.surfaces and len(viewer.grasp_lists) >= 2)
            markers_pub.publish(grasps_to_markers(grasps[:1], get_robot("xarm_leap"), "workspace", 0.0))
            assert wait_for(lambda: len(viewer.grasp_lists) == 3)
    finally:
        feed.destroy_node()
        source.destroy_node()
        viewer.stop()
    np.testing.assert_allclose(viewer.surfaces[0], points[1:, :3], atol=1e-6)
    empty, shown, newer = viewer.grasp_lists  # waiting (no grasps yet), the answer once, the newer answer
    assert empty == [] and [g.score for g in shown] == [0.9, 0.4] and len(newer) == 1
