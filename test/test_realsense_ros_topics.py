"""The graph on realsense-ros's topics instead of depth_capture's (issue 19, item 5), with real rclpy.

A stand-in for realsense2_camera_node publishes as the driver does (realsense-ros, ros2-development,
4.5x; docs/ros.md cites the sources):

- node ``/camera/camera`` (launch arguments camera_namespace:=camera camera_name:=camera, the defaults),
  topics ``~/depth/image_rect_raw`` + ``~/depth/camera_info`` and, with align_depth.enable:=true,
  ``~/aligned_depth_to_color/image_raw`` + ``~/aligned_depth_to_color/camera_info``;
- depth as 16UC1 in millimetres (the driver rescales to ROS_DEPTH_SCALE = 0.001 m);
- frame ids ``camera_depth_optical_frame``, and ``camera_color_optical_frame`` for the aligned depth;
- image and camera_info of one frame with the same stamp;
- images with the ``depth_qos`` profile (default SYSTEM_DEFAULT: with Fast DDS reliable and transient
  local; users often set SENSOR_DATA, best effort) and camera_info with ``depth_info_qos`` (DEFAULT).

The graph comes up as `diffgrasp up --capture false --depth-topic ... --depth-info-topic ...` brings it
up (cli.up.bring_up), builds scenes from those frames and answers /plan_grasp.
"""
import shutil
import time

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from moveit_msgs.msg import MoveItErrorCodes  # noqa: E402
from moveit_msgs.srv import GraspPlanning  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.qos import QoSPresetProfiles, QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from diffgrasp_ros.cli.up import DEPTH_INFO_TOPIC, DEPTH_TOPIC, bring_up, tear_down  # noqa: E402
from diffgrasp_ros.nodes import conversions as conv  # noqa: E402
from diffgrasp_ros.nodes.depth_processor import DepthProcessorNode  # noqa: E402
from diffgrasp_ros.nodes.graph import default_config_dir  # noqa: E402
from ros_helpers import Spinner, call, wait_for  # noqa: E402

# realsense-ros's default topics (camera_namespace:=camera camera_name:=camera) and frame ids.
STREAMS = {
    "depth": ("depth/image_rect_raw", "depth/camera_info", "camera_depth_optical_frame"),
    "aligned_depth_to_color": ("aligned_depth_to_color/image_raw", "aligned_depth_to_color/camera_info",
                               "camera_color_optical_frame"),
}
# The QoS names realsense-ros's <stream>_qos / <stream>_info_qos parameters take (ros_utils.cpp).
REALSENSE_QOS = ("SYSTEM_DEFAULT", "DEFAULT", "SENSOR_DATA", "SERVICES_DEFAULT", "PARAMETERS", "PARAMETER_EVENTS")


@pytest.fixture(scope="module", autouse=True)
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def topics(stream: str) -> tuple[str, str]:
    image, info, _ = STREAMS[stream]
    return f"/camera/camera/{image}", f"/camera/camera/{info}"


class FakeRealSense:
    """realsense2_camera_node's depth output: one rendered frame, published again at ``rate_hz`` with a
    fresh stamp, image then camera_info with the same stamp, from node /camera/camera."""

    def __init__(self, frame, stream: str, image_qos: str, info_qos: str = "DEFAULT", rate_hz: float = 5.0):
        image_topic, info_topic, frame_id = STREAMS[stream]
        self.node = rclpy.create_node("camera", namespace="camera")
        self.image_pub = self.node.create_publisher(Image, f"~/{image_topic}", QoSPresetProfiles[image_qos].value)
        self.info_pub = self.node.create_publisher(CameraInfo, f"~/{info_topic}", QoSPresetProfiles[info_qos].value)
        frame.frame_id = frame_id
        self.image, self.info = conv.depth_frame_to_msgs(frame, "16UC1")
        self.sent = 0
        self.node.create_timer(1.0 / rate_hz, self._publish)

    def _publish(self):
        stamp = self.node.get_clock().now().to_msg()
        self.image.header.stamp = self.info.header.stamp = stamp
        self.image_pub.publish(self.image)
        self.info_pub.publish(self.info)
        self.sent += 1


@pytest.fixture(scope="module")
def rendered_frame():
    """A frame of the simulated pile from the side view that config/scene_builder.yaml is calibrated
    for, as depth_capture's sim source renders it."""
    from diffgrasp_ros.sim.object_set import default_objects
    from diffgrasp_ros.sim.source import SimDepthSource

    source = SimDepthSource(default_objects("all"), "pile", 0).start()
    try:
        return source.read().clipped(0.1, 2.0)
    finally:
        source.stop()


def test_sixteen_bit_millimetres_come_back_as_metres(rendered_frame):
    image, info = conv.depth_frame_to_msgs(rendered_frame, "16UC1")
    assert image.encoding == "16UC1" and image.step == 2 * image.width
    back = conv.msgs_to_depth_frame(image, info)
    valid = rendered_frame.depth_m > 0
    assert valid.mean() > 0.5
    np.testing.assert_allclose(back.depth_m[valid], rendered_frame.depth_m[valid], atol=0.0006)


def test_depth_processor_matches_every_qos_realsense_ros_can_publish_with():
    """With input_reliability best_effort, every profile of depth_qos / depth_info_qos reaches depth_processor;
    the default reliable input misses SENSOR_DATA publishers silently, as any reliable reader does."""
    image_topic, info_topic = topics("depth")
    processor = DepthProcessorNode(cli_args=["--ros-args", "-r", f"{DEPTH_TOPIC}:={image_topic}",
                                             "-r", f"{DEPTH_INFO_TOPIC}:={info_topic}",
                                             "-p", "input_reliability:=best_effort"])
    camera = rclpy.create_node("camera", namespace="camera")
    executor = MultiThreadedExecutor(num_threads=2)
    for node in (processor, camera):
        executor.add_node(node)
    try:
        with Spinner(executor):
            assert processor.trigger_configure() == TransitionCallbackReturn.SUCCESS, processor.last_error
            subscribed = {sub.topic_name: sub.qos_profile for sub in processor.subscriptions}
            assert set(subscribed) >= {image_topic, info_topic}
            publishers = [camera.create_publisher(Image, "~/depth/image_rect_raw", QoSPresetProfiles[name].value)
                          for name in REALSENSE_QOS]
            publishers += [camera.create_publisher(CameraInfo, "~/depth/camera_info", QoSPresetProfiles[name].value)
                           for name in REALSENSE_QOS]
            assert wait_for(lambda: all(p.get_subscription_count() == 1 for p in publishers), 10.0), \
                {(p.topic_name, name): p.get_subscription_count()
                 for p, name in zip(publishers, REALSENSE_QOS * 2)}
            # The trap the best-effort input avoids: reliable reader, best-effort writer, no match.
            reliable_reader = camera.create_subscription(Image, "~/qos_probe", lambda _: None, QoSProfile(depth=2))
            best_effort_writer = camera.create_publisher(Image, "~/qos_probe", QoSPresetProfiles.SENSOR_DATA.value)
            time.sleep(1.0)
            assert best_effort_writer.get_subscription_count() == 0
            assert reliable_reader.qos_profile.reliability != subscribed[image_topic].reliability
    finally:
        processor.destroy_node()
        camera.destroy_node()


def calibrated_config_dir(tmp_path, frame_id: str, best_effort: bool = False):
    """config/ with scene_builder's extrinsic declared for ``frame_id``, as a user's copy for their
    camera holds it (the extrinsic stays the simulated side view the frames are rendered from)."""
    config = tmp_path / "config"
    shutil.copytree(default_config_dir(), config)
    path = config / "scene_builder.yaml"
    data = yaml.safe_load(path.read_text())
    data["/**/scene_builder"]["ros__parameters"]["camera_frame"] = frame_id
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    if best_effort:
        path = config / "depth_processor.yaml"
        data = yaml.safe_load(path.read_text())
        data["/**/depth_processor"]["ros__parameters"]["input_reliability"] = "best_effort"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@pytest.mark.parametrize("stream, image_qos", [("depth", "SYSTEM_DEFAULT"),
                                              ("aligned_depth_to_color", "SENSOR_DATA")])
def test_graph_plans_grasps_on_realsense_ros_topics(rendered_frame, tmp_path, stream, image_qos):
    image_topic, info_topic = topics(stream)
    frame_id = STREAMS[stream][2]
    # image_rect_raw is in camera_depth_optical_frame, which config/scene_builder.yaml is calibrated for;
    # the aligned depth is in the colour camera's frame, whose extrinsic a user's config/ holds.
    config_dir = None if frame_id == "camera_depth_optical_frame" else calibrated_config_dir(
        tmp_path, frame_id, best_effort=image_qos == "SENSOR_DATA")  # a best-effort driver: input_reliability
    camera = FakeRealSense(rendered_frame, stream, image_qos)
    executor, nodes = bring_up(config_dir, capture="false", depth_topic=image_topic, depth_info_topic=info_topic,
                               robot="franka", depth_mode="passthrough")
    nodes = {n.get_name(): n for n in nodes}
    client_node = rclpy.create_node("realsense_test_client")
    for node in (camera.node, client_node):
        executor.add_node(node)
    try:
        with Spinner(executor):
            assert set(nodes) == {"depth_processor", "scene_builder", "grasp_server", "grasp_executor"}
            processor = nodes["depth_processor"]
            assert {s.topic_name for s in processor.subscriptions} >= {image_topic, info_topic}
            assert wait_for(lambda: camera.image_pub.get_subscription_count() == 1
                            and camera.info_pub.get_subscription_count() == 1, 10.0), "not matched"
            assert wait_for(lambda: nodes["grasp_server"]._scene is not None
                            and nodes["grasp_executor"]._surface is not None, 20.0), \
                (camera.sent, processor.last_error, nodes["scene_builder"].last_error)
            response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request(), 30.0)
            assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message
            assert response.grasps and all(g.grasp_pose.header.frame_id == "workspace" for g in response.grasps)
            assert "no calibrated pose" not in nodes["scene_builder"].last_error
    finally:
        tear_down(executor, list(nodes.values()))
        camera.node.destroy_node()
        client_node.destroy_node()
