"""The five lifecycle nodes with real rclpy: transitions, bad input, the graph end to end, replay."""
import concurrent.futures
import copy
import contextlib
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from geometry_msgs.msg import Pose  # noqa: E402
from moveit_msgs.msg import MoveItErrorCodes  # noqa: E402
from moveit_msgs.srv import GraspPlanning  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from diffgrasp_ros.camera import SIM_CAMERA, DepthFrame  # noqa: E402
from diffgrasp_ros.cli.up import bring_up, tear_down  # noqa: E402
from diffgrasp_ros.nodes import conversions as conv  # noqa: E402
from diffgrasp_ros.nodes.depth_capture import DepthCaptureNode  # noqa: E402
from diffgrasp_ros.nodes.depth_processor import DepthProcessorNode  # noqa: E402
from diffgrasp_ros.nodes.grasp_executor import GraspExecutorNode  # noqa: E402
from diffgrasp_ros.nodes.grasp_server import GraspServerNode  # noqa: E402
from diffgrasp_ros.nodes.scene_builder import SceneBuilderNode  # noqa: E402
from diffgrasp_ros.scene import STANDARD_WORKSPACE  # noqa: E402
from diffgrasp_ros.sim.camera import side_view  # noqa: E402
from ros_helpers import Spinner, box_object, call, make_node, terminate, wait_for  # noqa: E402

OK = TransitionCallbackReturn.SUCCESS
SIDE_VIEW = [float(v) for v in side_view().reshape(-1)]


@pytest.fixture(scope="module", autouse=True)
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()




NODE_CASES = [
    (DepthCaptureNode, {"source": "sim", "rate_hz": 20.0}),
    (DepthProcessorNode, {}),
    (SceneBuilderNode, {"T_workspace_camera": SIDE_VIEW}),
    (GraspServerNode, {}),
    (GraspExecutorNode, {}),
]


@pytest.mark.parametrize("node_class, parameters", NODE_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_lifecycle_transitions_repeat(node_class, parameters):
    node = make_node(node_class, **parameters)
    try:
        for _ in range(2):  # configure → activate → deactivate → cleanup, then all over again
            assert node.trigger_configure() == OK, node.last_error
            assert node.trigger_activate() == OK, node.last_error
            assert node.active
            assert node.trigger_deactivate() == OK
            assert not node.active
            assert node.trigger_cleanup() == OK
    finally:
        node.destroy_node()


def test_a_failed_configure_leaves_the_node_usable():
    node = make_node(DepthCaptureNode, source="replay", **{"replay.path": "/nonexistent/recording.mcap"})
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "not found" in node.last_error
        node.set_parameters([Parameter("source", value="sim")])
        assert node.trigger_configure() == OK, node.last_error
    finally:
        node.destroy_node()


def test_reports_are_throttled_per_call_site_and_bugs_keep_their_traceback(monkeypatch):
    from diffgrasp_ros.nodes import base

    lines = []

    class Recorder:  # stands in for the node's rcutils logger, whose output pytest cannot capture
        def __getattr__(self, level):
            return lambda text: lines.append((level, text))

    class Probe(base.DiffgraspNode):
        @base.guarded
        def on_bad_data(self, error):
            raise error

    node = Probe("probe")
    try:
        node.get_logger = Recorder
        node._active.set()
        for _ in range(3):
            node.report("bad frame")  # one call site: logged once
        node.report("camera gone", level="warning")  # another site is not held back by it
        assert lines == [("error", "bad frame"), ("warning", "camera gone")]
        for period in (2.0, 2.0, 0.0):  # the period passes: the site's next line counts what it held back
            monkeypatch.setattr(base, "REPORT_PERIOD_S", period)
            node.report("stale scene")
        assert lines[2:] == [("error", "stale scene"), ("error", "stale scene (1 more from here since the last line)")]
        lines.clear()
        node.on_bad_data(ValueError("depth is 0x0"))  # expected: the message, the traceback at debug level
        assert lines[0] == ("error", "on_bad_data: depth is 0x0") and lines[1][0] == "debug"
        assert "Traceback" in lines[1][1] and node.last_error == "on_bad_data: depth is 0x0"
        lines.clear()
        node.on_bad_data(ZeroDivisionError("division by zero"))  # a bug: said so, its traceback as an error
        assert node.last_error.startswith("on_bad_data: internal error ZeroDivisionError: division by zero")
        assert [level for level, _ in lines] == ["error", "error"] and "Traceback" in lines[1][1]
    finally:
        node.destroy_node()


def test_scene_builder_refuses_an_uncalibrated_extrinsic():
    node = make_node(SceneBuilderNode)  # the default T_workspace_camera is all zeros
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "rigid transform" in node.last_error
    finally:
        node.destroy_node()


@contextlib.contextmanager
def graph_for(robot, motion_enabled=False):
    """The whole graph on the simulated camera, plus a separate client node; ``motion_enabled`` as a robot
    configuration that lets the executor move the robot would set it."""
    ros_args = ["-p", "motion_enabled:=true"] if motion_enabled else []
    executor, nodes = bring_up(ros_args=ros_args, robot=robot, camera="sim", depth_mode="passthrough")
    client_node = rclpy.create_node("test_client")
    executor.add_node(client_node)
    with Spinner(executor):
        yield {n.get_name(): n for n in nodes}, client_node
    tear_down(executor, nodes)
    client_node.destroy_node()


@pytest.fixture()
def graph():
    with graph_for("franka") as nodes_and_client:
        yield nodes_and_client


@pytest.fixture()
def motion_graph():
    with graph_for("franka", motion_enabled=True) as nodes_and_client:
        yield nodes_and_client


def wait_for_scene(nodes, timeout_s=20.0):
    assert wait_for(lambda: nodes["grasp_server"]._scene is not None and nodes["grasp_executor"]._surface is not None,
                    timeout_s), "no scene reached the grasp server and the executor"


def test_grasp_server_plans_only_when_asked_and_republishes_its_answer(graph):
    """Idle cost: scenes keep arriving, but nothing is planned until someone asks; the answer's grasps are
    then published again every republish_period_s (1 s), so a display started later shows them."""
    from geometry_msgs.msg import PoseArray

    nodes, client_node = graph
    wait_for_scene(nodes)
    server = nodes["grasp_server"]
    plans = []
    plan = server.planner.plan
    server.planner.plan = lambda scene: plans.append(1) or plan(scene)
    scenes_before = server._scene_stamp
    assert wait_for(lambda: server._scene_stamp > scenes_before, 10.0)  # the camera runs on
    time.sleep(1.0)
    assert not plans, "the grasp server planned without a request"
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request())
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, nodes["grasp_executor"].last_error
    assert len(plans) == 1
    received = []
    client_node.create_subscription(PoseArray, "/grasps/poses", received.append, 10)
    assert wait_for(lambda: len(received) >= 2, 5.0), "the latest answer was not republished"
    assert len(plans) == 1 and len(received[-1].poses) == len(server._latest.grasps) > 0  # the same answer


def test_plan_grasp_end_to_end_on_the_simulated_camera(graph):
    nodes, client_node = graph
    wait_for_scene(nodes)
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    response = call(client, GraspPlanning.Request())
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, nodes["grasp_executor"].last_error
    grasps = response.grasps
    assert 1 <= len(grasps) <= 10
    qualities = [g.grasp_quality for g in grasps]
    assert qualities == sorted(qualities, reverse=True)
    for g in grasps:
        assert g.grasp_pose.header.frame_id == "workspace"
        p = g.grasp_pose.pose.position
        assert STANDARD_WORKSPACE.contains_grasp(np.array([p.x, p.y, p.z]))[0]
        assert list(g.pre_grasp_posture.joint_names) == ["panda_finger_joint1", "panda_finger_joint2"]
        assert 0.0 < sum(g.pre_grasp_posture.points[0].positions) <= 0.08
        assert g.pre_grasp_approach.desired_distance == pytest.approx(0.10)  # the executor's pre-grasp


def test_a_target_in_the_request_gets_grasps_on_that_object(graph):
    """The request's target (a CollisionObject) chooses the object: boxes around the objects at the two
    ends of the table get grasps on those objects, each its own best grasp."""
    from diffgrasp_ros.grasping.planner import TARGET_REACH_M

    nodes, client_node = graph
    wait_for_scene(nodes)
    assert nodes["depth_capture"].trigger_deactivate() == OK  # one scene for every request
    scene = nodes["grasp_server"]._scene
    objects = scene.points_m[scene.object_points_mask(0.01)]
    ends = {"low x": objects[objects[:, 0] <= objects[:, 0].min() + 0.03],
            "high x": objects[objects[:, 0] >= objects[:, 0].max() - 0.03]}
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    best = {}
    for name, points in ends.items():
        lo, hi = points.min(axis=0), points.max(axis=0)
        target = box_object(name, "workspace", lo, hi)
        response = call(client, GraspPlanning.Request(target=target), 30.0)
        assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message
        assert f"on the target {name}" in response.error_code.message
        positions = np.array([[g.grasp_pose.pose.position.x, g.grasp_pose.pose.position.y,
                               g.grasp_pose.pose.position.z] for g in response.grasps])
        assert ((positions >= lo - TARGET_REACH_M - 1e-6) & (positions <= hi + TARGET_REACH_M + 1e-6)).all(), name
        best[name] = positions[0]
    assert np.linalg.norm(best["low x"] - best["high x"]) > 0.03
    # A target in another frame is refused (this graph has no TF).
    target.header.frame_id = "panda_link0"
    response = call(client, GraspPlanning.Request(target=target), 30.0)
    assert response.error_code.val == MoveItErrorCodes.FRAME_TRANSFORM_FAILURE
    assert "workspace frame" in response.error_code.message


def test_concurrent_calls_all_get_answers(graph):
    nodes, client_node = graph
    wait_for_scene(nodes)
    clients = [client_node.create_client(GraspPlanning, "/plan_grasp") for _ in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda c: call(c, GraspPlanning.Request(), 30.0), clients))
    assert all(r.error_code.val == MoveItErrorCodes.SUCCESS and r.grasps for r in responses), \
        [(r.error_code.val, len(r.grasps)) for r in responses]
    # Every answer says what it is, and no grasp id repeats across answers (a client can refer to one).
    assert all("reachable of" in r.error_code.message for r in responses), [r.error_code.message for r in responses]
    ids = [g.id for r in responses for g in r.grasps]
    assert len(ids) == len(set(ids)), ids


def test_wrong_planning_group_is_refused_with_a_code(graph):
    nodes, client_node = graph
    wait_for_scene(nodes)
    request = GraspPlanning.Request(group_name="left_arm")
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), request)
    assert response.error_code.val == MoveItErrorCodes.INVALID_GROUP_NAME and not response.grasps
    assert "unknown planning group 'left_arm'" in response.error_code.message


def test_bad_depth_never_kills_the_pipeline(graph):
    nodes, client_node = graph
    wait_for_scene(nodes)
    processor, builder = nodes["depth_processor"], nodes["scene_builder"]
    # Stop the camera so only the test's messages reach the processor.
    assert nodes["depth_capture"].trigger_deactivate() == OK
    image_pub = client_node.create_publisher(Image, "depth/image_raw", 2)
    info_pub = client_node.create_publisher(CameraInfo, "depth/camera_info", 2)
    good = DepthFrame(np.full((480, 640), 0.6, np.float32), SIM_CAMERA, frame_id="camera_depth_optical_frame")
    image, info = conv.depth_frame_to_msgs(good)
    cases = {
        "unsupported depth encoding": dict(encoding="bgr8"),
        "camera info says": dict(width=320, step=1280),
        "no valid pixels": dict(data=np.zeros((480, 640), np.float32).tobytes()),
    }
    info_pub.publish(info)
    assert wait_for(lambda: "camera_depth_optical_frame" in processor._infos, 5.0)
    for expected, change in cases.items():
        bad, _ = conv.depth_frame_to_msgs(good)
        for field, value in change.items():
            setattr(bad, field, value)
        processor.last_error = ""
        image_pub.publish(bad)
        assert wait_for(lambda: expected in processor.last_error, 5.0), processor.last_error
        assert processor.active
    nan_frame = np.full((480, 640), np.nan, np.float32)
    bad, _ = conv.depth_frame_to_msgs(DepthFrame(nan_frame, SIM_CAMERA, frame_id="camera_depth_optical_frame"))
    processor.last_error = ""
    image_pub.publish(bad)
    assert wait_for(lambda: "no valid pixels" in processor.last_error, 5.0)
    # A frame from a camera the scene builder has no pose for: reported, not integrated.
    unknown, unknown_info = conv.depth_frame_to_msgs(
        DepthFrame(np.full((480, 640), 0.6, np.float32), SIM_CAMERA, frame_id="other_camera"))
    builder.last_error = ""
    info_pub.publish(unknown_info)
    assert wait_for(lambda: "other_camera" in processor._infos, 5.0)
    image_pub.publish(unknown)
    assert wait_for(lambda: "no calibrated pose" in builder.last_error, 5.0), builder.last_error
    # And the graph still works afterwards.
    assert nodes["depth_capture"].trigger_activate() == OK
    stamp_before = nodes["grasp_server"]._scene_stamp
    assert wait_for(lambda: nodes["grasp_server"]._scene_stamp > stamp_before, 10.0)
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request())
    assert response.error_code.val == MoveItErrorCodes.SUCCESS


@contextlib.contextmanager
def running(node):
    """``node`` and a client node spinning together; both destroyed afterwards."""
    executor = MultiThreadedExecutor(num_threads=4)
    client_node = rclpy.create_node(f"client_of_{node.get_name()}")
    for n in (node, client_node):
        executor.add_node(n)
    try:
        with Spinner(executor):
            yield client_node
    finally:
        node.destroy_node()
        client_node.destroy_node()


def test_calls_before_activation_and_without_a_scene_get_error_codes():
    server = make_node(GraspServerNode)
    with running(server) as client_node:
        assert server.trigger_configure() == OK
        client = client_node.create_client(GraspPlanning, "grasp_server/generate_grasps")
        response = call(client, GraspPlanning.Request())
        assert response.error_code.val == MoveItErrorCodes.FAILURE and "not active" in server.last_error
        assert server.trigger_activate() == OK
        response = call(client, GraspPlanning.Request())
        assert response.error_code.val == MoveItErrorCodes.UNABLE_TO_AQUIRE_SENSOR_DATA


def test_executor_reports_a_missing_grasp_server_within_a_second():
    executor_node = make_node(GraspExecutorNode, grasp_service="nobody/generate_grasps")  # default timeouts
    with running(executor_node) as client_node:
        assert executor_node.trigger_configure() == OK and executor_node.trigger_activate() == OK
        client = client_node.create_client(GraspPlanning, "/plan_grasp")
        assert client.wait_for_service(timeout_sec=10.0)
        start = time.monotonic()
        response = call(client, GraspPlanning.Request())
        assert time.monotonic() - start < 1.5  # server_wait_s = 1 s, not service_timeout_s = 15 s
        assert response.error_code.val == MoveItErrorCodes.COMMUNICATION_FAILURE
        assert "not available" in response.error_code.message


def test_executor_reports_a_dead_or_inactive_grasp_server_within_a_second():
    """A killed server stays listed by DDS for ~20 s: its service is there, its node answers nothing (here:
    a plain node whose GraspPlanning callback hangs and that has no lifecycle services). An inactive
    server is named as such. Both within server_wait_s, not service_timeout_s."""
    dead = rclpy.create_node("dead_server")
    dead.create_service(GraspPlanning, "~/generate_grasps", lambda request, response: time.sleep(30) or response)
    executor_node = make_node(GraspExecutorNode, grasp_service="dead_server/generate_grasps")
    inactive = make_node(GraspServerNode)
    with running(executor_node) as client_node:
        client_node.executor.add_node(dead)
        client_node.executor.add_node(inactive)
        assert executor_node.trigger_configure() == OK and executor_node.trigger_activate() == OK
        assert inactive.trigger_configure() == OK
        client = client_node.create_client(GraspPlanning, "/plan_grasp")
        for server, expected in (("dead_server", "does not respond within 1.0 s"),
                                 ("grasp_server", "grasp server is inactive, not active")):
            reconfigure(executor_node, grasp_service=f"{server}/generate_grasps", wait_for_cloud=False)
            start = time.monotonic()
            response = call(client, GraspPlanning.Request())
            assert time.monotonic() - start < 2.0, server  # server_wait_s = 1 s, not service_timeout_s = 15 s
            assert response.error_code.val == MoveItErrorCodes.COMMUNICATION_FAILURE
            assert expected in response.error_code.message
    inactive.destroy_node()
    dead.destroy_node()


@pytest.mark.parametrize("restamp", [False, True])
def test_replay_of_a_rosbag2_recording(tmp_path, restamp):
    """A recording from long ago (stamps 100-102 s) plays; by default its frames are stamped with the
    node's clock as they are published, so the graph does not refuse them as stale."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from rclpy.serialization import serialize_message

    store = get_typestore(Stores.ROS2_KILTED)
    frames = [DepthFrame(np.full((480, 640), 0.5 + 0.1 * i, np.float32), SIM_CAMERA, frame_id="bag_cam",
                         stamp=100.0 + i) for i in range(3)]
    path = tmp_path / "recording"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_conn = writer.add_connection("/camera/depth", "sensor_msgs/msg/Image", typestore=store)
        info_conn = writer.add_connection("/camera/info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for frame in frames:
            image, info = conv.depth_frame_to_msgs(frame)
            t = int(frame.stamp * 1e9)
            writer.write(info_conn, t, bytes(serialize_message(info)))
            writer.write(image_conn, t, bytes(serialize_message(image)))

    capture = make_node(DepthCaptureNode, source="replay", rate_hz=10.0, restamp=restamp,
                        **{"replay.path": str(path), "replay.loop": False})
    listener = rclpy.create_node("replay_listener")
    received = []
    listener.create_subscription(Image, "depth/image_raw", received.append, 10)
    executor = MultiThreadedExecutor(num_threads=4)
    for node in (capture, listener):
        executor.add_node(node)
    try:
        with Spinner(executor):
            assert capture.trigger_configure() == OK
            # The recording plays once: start it only when the listener is matched (slow discovery on a busy machine).
            assert wait_for(lambda: capture.count_subscribers("depth/image_raw") > 0, 10.0)
            assert capture.trigger_activate() == OK
            assert wait_for(lambda: len(received) >= 3, 10.0)
            assert wait_for(lambda: "end of recording" in capture.last_error, 5.0)
    finally:
        capture.destroy_node()
        listener.destroy_node()
    info = conv.depth_frame_to_msgs(frames[0])[1]
    info.header.frame_id = "bag_cam"
    depths = [float(conv.msgs_to_depth_frame(m, info).depth_m[240, 320]) for m in received[:3]]
    assert depths == pytest.approx([0.5, 0.6, 0.7], abs=1e-6)
    assert [m.header.frame_id for m in received[:3]] == ["bag_cam"] * 3
    stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in received[:3]]
    if restamp:
        assert all(abs(stamp - time.time()) < 60.0 for stamp in stamps) and stamps == sorted(stamps)
    else:
        assert stamps == [100.0, 101.0, 102.0]


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_configured_parameter_is_declared_by_its_node():
    import yaml

    from diffgrasp_ros.nodes.graph import GRAPH, default_config_dir, parameter_files

    classes = {c.__name__: c for c, _ in NODE_CASES}
    for spec in GRAPH:
        node = classes[spec.class_name]()
        try:
            declared = set(node._parameters)
            for path in parameter_files(spec, default_config_dir(), "franka"):
                for key, section in yaml.safe_load(path.read_text()).items():
                    if key not in ("/**", f"/**/{spec.name}"):
                        continue  # another node's section
                    missing = set(_flatten(section["ros__parameters"])) - declared
                    assert not missing, f"{path.name}: {spec.name} does not declare {sorted(missing)}"
        finally:
            node.destroy_node()


def test_unknown_robot_fails_to_configure_with_a_reason():
    node = make_node(GraspServerNode, robot="kuka")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "unknown robot" in node.last_error
    finally:
        node.destroy_node()


def test_diffgrasp_up_in_its_own_process_serves_plan_grasp_and_stops_on_sigterm(tmp_path):
    """The graph as a user starts it (`diffgrasp up`, here in a namespace given by --ros-args), called
    from this separate process, then stopped as a service manager stops it: out within 5 s, without a
    traceback."""
    import os
    import subprocess
    import sys

    log = open(tmp_path / "up.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "diffgrasp_ros.cli.main", "up", "--camera", "sim",
                                "--duration", "120", "--ros-args", "-r", "__ns:=/robot1"],
                               stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    client_node = rclpy.create_node("external_client")
    try:
        client = client_node.create_client(GraspPlanning, "/robot1/plan_grasp")  # namespaced by --ros-args
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(client_node)
        with Spinner(executor):
            deadline = time.monotonic() + 60
            response = None
            while time.monotonic() < deadline:
                response = call(client, GraspPlanning.Request(), 60.0)
                if response.error_code.val == MoveItErrorCodes.SUCCESS:
                    break
                time.sleep(0.5)  # the first scene may still be on its way
        assert response is not None and response.error_code.val == MoveItErrorCodes.SUCCESS, \
            (tmp_path / "up.log").read_text()
        assert response.grasps[0].grasp_quality >= response.grasps[-1].grasp_quality
    finally:
        code = terminate(process, 5.0)
        client_node.destroy_node()
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, f"{'no exit within 5 s of SIGTERM' if code is None else f'exit {code}'}\n{output}"
    assert "/robot1/plan_grasp is served" in output and "diffgrasp up: stopped" in output, output
    assert "Traceback" not in output, output


def test_a_stale_scene_is_refused_with_a_code(graph):
    nodes, client_node = graph
    wait_for_scene(nodes)
    assert nodes["depth_capture"].trigger_deactivate() == OK  # no fresh scenes any more
    nodes["grasp_server"].set_parameters([Parameter("max_scene_age_s", value=0.2)])
    time.sleep(0.5)
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request())
    assert response.error_code.val == MoveItErrorCodes.SENSOR_INFO_STALE and not response.grasps
    assert "old" in nodes["grasp_server"].last_error and "arrived" in response.error_code.message


def test_grasp_server_passes_model_options_and_refuses_ones_its_method_lacks():
    import torch

    node = make_node(GraspServerNode, method="igd", rounds=2, denoising_steps=3)
    try:
        assert node.trigger_configure() == OK, node.last_error
        assert (node.planner.name, node.planner.rounds, node.planner.denoising_steps) == ("igd", 2, 3)
        assert str(node.planner.device) == ("cuda" if torch.cuda.is_available() else "cpu")  # device: auto
        assert node.trigger_cleanup() == OK
        node.set_parameters([Parameter("method", value="baseline")])
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "does not take an option" in node.last_error
        node.set_parameters([Parameter("rounds", value=0), Parameter("denoising_steps", value=0)])
        assert node.trigger_configure() == OK, node.last_error  # baseline runs no model: device does not apply
        assert node.trigger_cleanup() == OK
        if not torch.cuda.is_available():
            node.set_parameters([Parameter("method", value="igd"), Parameter("device", value="cuda")])
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            assert "device 'cuda' is not available" in node.last_error
            node.set_parameters([Parameter("device", value="auto")])
        node.set_parameters([Parameter("rounds", value=2), Parameter("denoising_steps", value=3)])
        node.set_parameters([Parameter("method", value="igd:evaluator=affordance"), Parameter("rounds", value=0),
                             Parameter("denoising_steps", value=0), Parameter("weights", value="/nonexistent")])
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "IGD weights not found" in node.last_error
    finally:
        node.destroy_node()


def test_depth_processor_runs_its_model_on_the_device_it_is_given():
    import torch

    node = make_node(DepthProcessorNode, mode="restore", device="cpu")
    try:
        assert node.trigger_configure() == OK, node.last_error
        assert str(node.processor.device) == "cpu"
        assert node.trigger_cleanup() == OK
        if not torch.cuda.is_available():
            node.set_parameters([Parameter("device", value="cuda")])
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            assert "device 'cuda' is not available" in node.last_error
    finally:
        node.destroy_node()


# -- grasp_executor: reachability, pick planning, execution ------------------------------------------
def collect(node, msg_type, topic):
    received = []
    node.create_subscription(msg_type, topic, received.append, 10)
    return received


def test_plan_grasp_answers_reachable_grasps_and_executes_only_when_asked(motion_graph):
    from geometry_msgs.msg import PoseArray
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from diffgrasp_ros.execution.reachability import ReachabilityChecker
    from diffgrasp_ros.robots.arm import load_arm

    nodes, client_node = motion_graph
    arm = load_arm("franka")
    planned = collect(client_node, JointTrajectory, "/grasp_executor/planned_trajectory")
    path = collect(client_node, PoseArray, "/grasp_executor/planned_tcp_path")
    arm_commands = collect(client_node, JointTrajectory, "/panda_arm_controller/joint_trajectory")
    hand_commands = collect(client_node, JointTrajectory, "/panda_gripper/joint_trajectory")
    wait_for_scene(nodes)
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request(), 30.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, nodes["grasp_executor"].last_error
    poses = np.stack([conv.pose_to_matrix(g.grasp_pose.pose) for g in response.grasps])
    assert ReachabilityChecker(arm).check(arm.T_base_workspace @ poses, 0.10).reachable.all()
    assert all(list(g.grasp_posture.points[0].positions) == [0.0, 0.0] for g in response.grasps)

    # The pick of the first grasp, for RViz: home -> through the grasp pose -> home.
    assert wait_for(lambda: planned and path, 5.0)
    trajectory = planned[-1]
    assert list(trajectory.joint_names) == [*arm.arm_joint_names, *arm.hand_joint_names]
    q = np.array([p.positions for p in trajectory.points])
    t = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in trajectory.points])
    assert len(q) > 10 and np.all(np.diff(t) > 0)
    assert np.allclose(q[0, :7], arm.home_q, atol=1e-6) and np.allclose(q[-1, :7], arm.home_q, atol=1e-3)
    assert np.allclose(q[0, 7:], arm.hand_open_q) and np.allclose(q[-1, 7:], arm.hand_closed_q)
    tcp = np.array([[p.position.x, p.position.y, p.position.z] for p in path[-1].poses])
    assert len(tcp) == len(q) and path[-1].header.frame_id == "workspace"
    assert np.min(np.linalg.norm(tcp - poses[0, :3, 3], axis=1)) < 2e-3

    # Plan only, until ~/execute runs the last plan, once.
    execute = client_node.create_client(Trigger, "/grasp_executor/execute")
    time.sleep(0.5)
    assert not arm_commands and not hand_commands
    answer = call(execute, Trigger.Request())
    assert answer.success, answer.message
    assert wait_for(lambda: arm_commands and hand_commands, 5.0)
    assert list(arm_commands[0].joint_names) == list(arm.arm_joint_names)
    assert np.allclose([p.positions for p in arm_commands[0].points], q[:, :7])
    assert np.allclose([p.positions for p in hand_commands[0].points], q[:, 7:])
    again = call(execute, Trigger.Request())
    assert not again.success and "no planned pick" in again.message



def test_by_default_nothing_can_make_the_robot_move(graph):
    """Without motion_enabled in the robot configuration the executor plans picks but creates no command
    publisher, ~/execute answers "motion disabled", a parameter call setting execute: true is refused, and
    motion_enabled itself cannot be set by a parameter call."""
    from std_srvs.srv import Trigger

    nodes, client_node = graph
    executor_node = nodes["grasp_executor"]
    wait_for_scene(nodes)
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request(), 30.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, executor_node.last_error
    assert executor_node._last_pick is not None  # planned, for RViz
    for topic in ("/panda_arm_controller/joint_trajectory", "/panda_gripper/joint_trajectory"):
        assert client_node.count_publishers(topic) == 0, topic
    answer = call(client_node.create_client(Trigger, "/grasp_executor/execute"), Trigger.Request())
    assert not answer.success and answer.message.startswith("refused ~/execute: motion disabled")
    assert executor_node._last_pick is not None  # not consumed
    (refused,) = executor_node.set_parameters([Parameter("execute", value=True)])
    assert not refused.successful and "motion disabled" in refused.reason and not executor_node.param("execute")
    (read_only,) = executor_node.set_parameters([Parameter("motion_enabled", value=True)])
    assert not read_only.successful and not executor_node.param("motion_enabled")
    # Another parameter is still set as before.
    (accepted,) = executor_node.set_parameters([Parameter("max_grasps", value=5)])
    assert accepted.successful and executor_node.param("max_grasps") == 5


def reconfigure(executor_node, wait_for_cloud=True, **parameters):
    assert executor_node.trigger_deactivate() == OK and executor_node.trigger_cleanup() == OK
    executor_node.set_parameters([Parameter(name, value=value) for name, value in parameters.items()])
    assert executor_node.trigger_configure() == OK, executor_node.last_error
    assert executor_node.trigger_activate() == OK
    if wait_for_cloud:
        assert wait_for(lambda: executor_node._surface is not None, 20.0)  # picks are planned against it


def test_a_cleanup_during_a_call_answers_it_and_leaves_the_node_serving(graph):
    """Deactivate and clean up the executor while /plan_grasp runs: the call gets an answer, and after
    configure and activate the node serves again (rclpy used to raise on the destroyed service and kill
    the spin thread: a process that answered nothing)."""
    nodes, client_node = graph
    executor_node = nodes["grasp_executor"]
    wait_for_scene(nodes)
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running_call = pool.submit(call, client, GraspPlanning.Request(), 60.0)
        assert wait_for(lambda: executor_node._running > 0, 10.0)
        assert executor_node.trigger_deactivate() == OK and executor_node.trigger_cleanup() == OK
        assert executor_node._running == 0  # cleanup waited for the call
        assert running_call.result(timeout=60.0).error_code.message
    assert executor_node.trigger_configure() == OK and executor_node.trigger_activate() == OK
    assert wait_for(lambda: executor_node._surface is not None, 20.0)  # picks are planned against it
    response = call(client, GraspPlanning.Request(), 60.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message


def test_unreachable_untimely_or_untransformable_grasps_get_codes_and_nothing_executes(motion_graph):
    from trajectory_msgs.msg import JointTrajectory

    nodes, client_node = motion_graph
    executor_node = nodes["grasp_executor"]
    arm_commands = collect(client_node, JointTrajectory, "/panda_arm_controller/joint_trajectory")
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    wait_for_scene(nodes)
    executor_node.set_parameters([Parameter("execute", value=True), Parameter("planning_timeout_s", value=1e-4)])
    response = call(client, GraspPlanning.Request(), 30.0)
    assert response.error_code.val == MoveItErrorCodes.TIMED_OUT and not response.grasps
    assert "no pick planned" in executor_node.last_error

    far = np.eye(4)
    far[:3, 3] = (-5.0, 0.15, 0.05)  # the robot 5 m away from the workspace
    executor_node.set_parameters([Parameter("planning_timeout_s", value=1.0)])
    reconfigure(executor_node, T_workspace_base=[float(v) for v in far.ravel()])
    response = call(client, GraspPlanning.Request(), 30.0)
    assert response.error_code.val == MoveItErrorCodes.NO_IK_SOLUTION and not response.grasps
    assert "is reachable by franka" in executor_node.last_error

    reconfigure(executor_node, workspace_frame="table")  # the grasps come in 'workspace'
    response = call(client, GraspPlanning.Request(), 30.0)
    assert response.error_code.val == MoveItErrorCodes.FRAME_TRANSFORM_FAILURE and not response.grasps
    time.sleep(0.5)
    assert not arm_commands


def test_executor_configure_failures_say_why():
    cases = {"unknown robot 'kuka'": {"robot": "kuka"},
             "robot 'ur5_leap' is not configured": {"robot": "ur5_leap"},  # with the Franka's embodiment
             "needs moveit_py": {"motion_backend": "moveit"},
             "motion_backend must be one of": {"motion_backend": "ompl"},
             "execute: true, but motion disabled": {"execute": True}}
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        cases["needs tf2_ros"] = {"base_pose_source": "tf"}
    for reason, parameters in cases.items():
        node = make_node(GraspExecutorNode, **parameters)
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE, parameters
            assert reason in node.last_error
        finally:
            node.destroy_node()


def test_leap_grasps_carry_16_joint_postures_and_the_hand_is_commanded_on_cmd_leap():
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from diffgrasp_ros.robots import leap

    with graph_for("ur5_leap", motion_enabled=True) as (nodes, client_node):
        planned = collect(client_node, JointTrajectory, "/grasp_executor/planned_trajectory")
        arm_commands = collect(client_node, JointTrajectory, "/scaled_joint_trajectory_controller/joint_trajectory")
        hand_commands = collect(client_node, JointState, "/cmd_leap")
        wait_for_scene(nodes)
        response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request(), 30.0)
        assert response.error_code.val == MoveItErrorCodes.SUCCESS, nodes["grasp_executor"].last_error
        for g in response.grasps:
            assert list(g.pre_grasp_posture.joint_names) == list(g.grasp_posture.joint_names) == list(leap.JOINT_NAMES)
            assert np.allclose(g.pre_grasp_posture.points[0].positions, leap.OPEN_Q)
            assert np.allclose(g.grasp_posture.points[0].positions, leap.CLOSED_Q)
        assert wait_for(lambda: planned, 5.0) and len(planned[-1].joint_names) == 6 + 16
        answer = call(client_node.create_client(Trigger, "/grasp_executor/execute"), Trigger.Request())
        assert answer.success, answer.message
        # The LEAP driver's convention: URDF angles + pi; open now, closed when the arm is at the grasp.
        assert wait_for(lambda: arm_commands and hand_commands, 5.0)
        assert np.allclose(hand_commands[0].position, leap.OPEN_Q + np.pi)
        assert wait_for(lambda: len(hand_commands) == 2, 15.0)
        assert np.allclose(hand_commands[1].position, leap.CLOSED_Q + np.pi)


class _FakeMoveIt:
    """Stands in for MoveItPlanner.execute: blocks for ``seconds``, then fails with ``error`` or returns."""

    def __init__(self, seconds: float = 0.0, error: str = ""):
        self.seconds, self.error, self.calls = seconds, error, 0

    def execute(self, plan) -> None:
        self.calls += 1
        time.sleep(self.seconds)
        if self.error:
            raise RuntimeError(self.error)


def _fake_pick(duration_s: float):
    from types import SimpleNamespace

    plan = SimpleNamespace(duration_s=duration_s, positions=np.zeros((2, 2)))
    segments = [SimpleNamespace(name=name, plan=plan) for name in ("approach", "close", "lift")]
    return SimpleNamespace(segments=segments, segment=lambda name: segments[1], grasp=SimpleNamespace(info={"id": "g0"}),
                           trajectory=lambda: (SimpleNamespace(duration_s=3 * duration_s), 0.0))


def test_moveit_execution_is_checked_and_waited_for_with_a_deadline():
    """The moveit backend (faked: moveit_py is not installable here): a failed execution status is an
    error, and an execution that overruns twice its duration plus the margin is reported without the
    node waiting on it; the next pick waits until it ends."""
    node = make_node(GraspExecutorNode, execution_margin_s=0.3)
    try:
        assert node.trigger_configure() == OK, node.last_error
        node.backend = "moveit"
        node.motion_planner = _FakeMoveIt(error="MoveIt did not execute the arm trajectory: ABORTED")
        node._last_pick = _fake_pick(0.05)
        executed, message = node._execute_last_pick()
        assert not executed and "ABORTED" in message
        node.motion_planner = _FakeMoveIt(seconds=1.5)  # far past 2 x 0.15 s + 0.3 s
        node._last_pick = _fake_pick(0.05)
        start = time.monotonic()
        executed, message = node._execute_last_pick()
        assert not executed and "not finished within 0.6 s" in message and time.monotonic() - start < 1.2
        node._last_pick = _fake_pick(0.05)
        assert node._execute_last_pick() == (False, "the previous pick still executes (MoveIt has not finished it)")
        assert wait_for(node._moveit_finished.is_set, 5.0)
        node.motion_planner = _FakeMoveIt()
        executed, message = node._execute_last_pick()
        assert executed and message.startswith("executed the pick of grasp g0") and node.motion_planner.calls == 3
    finally:
        node.destroy_node()


def test_lifecycle_manager_brings_nodes_up_keeps_a_manual_deactivate_and_restores_a_restarted_node():
    from std_srvs.srv import Trigger

    from diffgrasp_ros.nodes.lifecycle_manager import LifecycleManagerNode

    names = ["depth_capture", "depth_processor"]
    nodes = {"depth_capture": make_node(DepthCaptureNode, source="sim", rate_hz=2.0),
             "depth_processor": make_node(DepthProcessorNode)}
    manager = LifecycleManagerNode(parameter_overrides=[Parameter("node_names", value=names),
                                                        Parameter("check_period_s", value=0.2)])
    executor = MultiThreadedExecutor(num_threads=6)
    for node in (*nodes.values(), manager):
        executor.add_node(node)
    client_node = rclpy.create_node("manager_client")
    executor.add_node(client_node)
    graph_state = client_node.create_client(Trigger, "/lifecycle_manager/get_graph_state")
    try:
        with Spinner(executor):
            assert wait_for(lambda: call(graph_state, Trigger.Request()).success, 60.0), manager.states
            assert all(n.active for n in nodes.values())
            assert call(graph_state, Trigger.Request()).message == "depth_capture: active, depth_processor: active"
            # A node deactivated by hand stays inactive.
            assert nodes["depth_processor"].trigger_deactivate() == OK
            time.sleep(1.0)
            assert not nodes["depth_processor"].active
            answer = call(graph_state, Trigger.Request())
            assert not answer.success and "depth_processor: inactive" in answer.message
            # A node that dies is reported down; when it comes back (unconfigured), it is brought up again.
            executor.remove_node(nodes["depth_processor"])
            nodes["depth_processor"].destroy_node()
            assert wait_for(lambda: manager.states["depth_processor"] == "down", 10.0), manager.states
            nodes["depth_processor"] = make_node(DepthProcessorNode)
            executor.add_node(nodes["depth_processor"])
            assert wait_for(lambda: call(graph_state, Trigger.Request()).success, 30.0), manager.states
            assert nodes["depth_processor"].active
    finally:
        for node in (*nodes.values(), manager, client_node):
            node.destroy_node()


def test_diffgrasp_up_processes_restarts_a_killed_node(tmp_path):
    """`diffgrasp up --processes`: one process per node, discovering on this machine only whatever the
    environment says; SIGKILL the grasp server's, and the supervisor starts it again and the lifecycle
    manager brings it back up, so /plan_grasp works again."""
    import os
    import re
    import signal
    import subprocess
    import sys

    log_path = tmp_path / "up.log"
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "diffgrasp_ros.cli.main", "up", "--processes", "--camera", "sim",
                                "--duration", "300"], stdout=log, stderr=subprocess.STDOUT,
                               env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", ROS_STATIC_PEERS="192.0.2.1"))
    client_node = rclpy.create_node("processes_client")
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(client_node)

    def plans() -> bool:
        try:
            return call(client, GraspPlanning.Request(), 30.0).error_code.val == MoveItErrorCodes.SUCCESS
        except TimeoutError:
            return False

    try:
        with Spinner(executor):
            assert wait_for(plans, 180.0, period_s=1.0), log_path.read_text()
            pid = int(re.findall(r"started grasp_server \(pid (\d+)\)", log_path.read_text())[-1])
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in environment
            assert not any(v.startswith(b"ROS_STATIC_PEERS=") for v in environment)
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda: "grasp_server exited with code -9; starting it again" in log_path.read_text(), 10.0)
            assert wait_for(plans, 180.0, period_s=1.0), log_path.read_text()
    finally:
        code = terminate(process, 10.0)
        client_node.destroy_node()
        log.close()
    output = log_path.read_text()
    assert code == 0 and "diffgrasp up: stopped" in output and "Traceback" not in output, output
    assert "diffgrasp up: discovery on this machine only" in output
    assert "killed" not in output, output  # every node process stopped by itself on SIGTERM


def test_calibrations_are_on_tf_static_for_late_joiners(graph):
    """The robot base -> workspace (executor) and workspace -> camera optical frame (scene builder)
    transforms are latched on /tf_static with tf2_ros's QoS: a subscriber that joins later gets them."""
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from tf2_msgs.msg import TFMessage

    from diffgrasp_ros.geometry import invert

    nodes, client_node = graph
    wait_for_scene(nodes)
    received = {}
    # tf2_ros's listener keeps 100 messages: one latched message arrives per publishing node.
    client_node.create_subscription(TFMessage, "/tf_static",
                                    lambda msg: received.update({t.child_frame_id: t for t in msg.transforms}),
                                    QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    assert wait_for(lambda: {"workspace", "camera_depth_optical_frame"} <= set(received), 5.0), list(received)

    def matrix(t):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (t.translation.x, t.translation.y, t.translation.z)
        pose.orientation = t.rotation
        return conv.pose_to_matrix(pose)

    executor_node, builder = nodes["grasp_executor"], nodes["scene_builder"]
    base = received["workspace"]
    assert base.header.frame_id == "panda_link0"
    assert np.allclose(matrix(base.transform), invert(executor_node.arm.T_workspace_base), atol=1e-9)
    camera = received["camera_depth_optical_frame"]
    assert camera.header.frame_id == "workspace"
    assert np.allclose(matrix(camera.transform), builder._T_config, atol=1e-9)


def test_answers_in_the_robot_base_frame_as_end_effector_poses(graph):
    """output_frame panda_link0 and grasp_pose_link end_effector: the hand link's poses in the base frame,
    which map back onto reachable TCP grasps in the workspace; the answer says which it gives."""
    from diffgrasp_ros.robots.arm import load_arm

    nodes, client_node = graph
    executor_node = nodes["grasp_executor"]
    wait_for_scene(nodes)
    reconfigure(executor_node, output_frame="panda_link0", grasp_pose_link="end_effector")
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request(), 30.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message
    assert "poses of the end effector panda_hand in panda_link0" in response.error_code.message
    arm = load_arm("franka")
    T_hand_tcp = np.asarray(executor_node.param("tcp.T_parent_tcp")).reshape(4, 4)
    for g in response.grasps:
        assert g.grasp_pose.header.frame_id == g.pre_grasp_approach.direction.header.frame_id == "panda_link0"
        T_base_hand = conv.pose_to_matrix(g.grasp_pose.pose)
        T_workspace_tcp = arm.T_workspace_base @ T_base_hand @ T_hand_tcp
        assert STANDARD_WORKSPACE.contains_grasp(T_workspace_tcp[:3, 3])[0]
        approach = g.pre_grasp_approach.direction.vector
        assert np.allclose([approach.x, approach.y, approach.z], T_base_hand[:3, 2], atol=1e-5)  # the hand's +z
    reconfigure(executor_node, output_frame="", grasp_pose_link="tcp")
    response = call(client_node.create_client(GraspPlanning, "/plan_grasp"), GraspPlanning.Request(), 30.0)
    assert "poses of the TCP in workspace" in response.error_code.message
    assert {g.grasp_pose.header.frame_id for g in response.grasps} == {"workspace"}
    # A frame only TF knows needs tf2_ros, which this machine lacks: configure says so.
    assert executor_node.trigger_deactivate() == OK and executor_node.trigger_cleanup() == OK
    executor_node.set_parameters([Parameter("output_frame", value="world")])
    assert executor_node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "output_frame 'world' needs tf2_ros" in executor_node.last_error


def test_candidate_grasps_are_checked_and_ranked_not_replaced(graph):
    """Given candidate_grasps, the answer is those of them that pass the checks, ranked by the planner's
    quality, under the client's own ids; one in mid-air is dropped; another frame is refused."""
    nodes, client_node = graph
    wait_for_scene(nodes)
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    planned = call(client, GraspPlanning.Request(), 30.0).grasps
    assert len(planned) >= 3
    given = list(planned[:5])
    for i, g in enumerate(given):
        g.id, g.grasp_quality = f"mine-{i}", 0.5
    air = copy.deepcopy(given[0])
    air.id, air.grasp_pose.pose.position.z = "mine-air", 0.28
    response = call(client, GraspPlanning.Request(candidate_grasps=[air, *given]), 30.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message
    ids = [g.id for g in response.grasps]
    assert "mine-air" not in ids and set(ids) <= {g.id for g in given} and len(ids) >= 2, ids
    qualities = [g.grasp_quality for g in response.grasps]
    assert qualities == sorted(qualities, reverse=True) and qualities[0] != 0.5  # scored anew
    assert "given grasps pass the checks, ranked by igd" in response.error_code.message
    air.grasp_pose.header.frame_id = "panda_link0"
    response = call(client, GraspPlanning.Request(candidate_grasps=[air]), 30.0)
    assert response.error_code.val == MoveItErrorCodes.FRAME_TRANSFORM_FAILURE
    assert "candidate_grasps" in response.error_code.message
    response = call(client, GraspPlanning.Request(candidate_grasps=[given[0]]), 30.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message
    assert [g.id for g in response.grasps] in ([], ["mine-0"])


def test_movable_obstacles_and_named_support_surfaces_go_into_the_pick_planning(graph):
    """Movable obstacles are collided with; a support surface naming one of them sets the table plane; a
    name that is not among them is reported unused; an obstacle over the whole workspace leaves no pick
    that plans; one in an unknown frame is refused."""
    nodes, client_node = graph
    wait_for_scene(nodes)
    client = client_node.create_client(GraspPlanning, "/plan_grasp")
    table = box_object("table", "workspace", (-0.1, -0.2, 0.0), (0.5, 0.5, 0.049))  # clear of the robot base
    response = call(client, GraspPlanning.Request(movable_obstacles=[table], support_surfaces=["table", "shelf"]),
                    30.0)
    assert response.error_code.val == MoveItErrorCodes.SUCCESS, response.error_code.message
    message = response.error_code.message
    assert "1 movable obstacle(s), table at z = 0.049 m" in message
    assert "support_surfaces ['shelf'] not used" in message
    lid = box_object("lid", "workspace", (-0.2, -0.2, 0.20), (0.5, 0.5, 0.23))  # between the hand and the objects
    response = call(client, GraspPlanning.Request(movable_obstacles=[table, lid]), 60.0)
    assert response.error_code.val == MoveItErrorCodes.GOAL_IN_COLLISION and not response.grasps
    assert "no pick planned" in response.error_code.message
    lid.header.frame_id = "shelf"
    response = call(client, GraspPlanning.Request(movable_obstacles=[lid]), 30.0)
    assert response.error_code.val == MoveItErrorCodes.FRAME_TRANSFORM_FAILURE
    assert "'shelf' is unknown" in response.error_code.message


def test_a_callback_waiting_on_another_node_gives_up_when_the_process_stops():
    """A lifecycle manager asking a node that stops with it would otherwise hold the executor's shutdown
    for its whole call timeout (5 s, 60 s for a configure), past what a supervisor waits."""
    from rclpy.task import Future

    from diffgrasp_ros.nodes.base import STOPPING, wait_for_future

    never_answered = Future()
    stopper = concurrent.futures.ThreadPoolExecutor(1)
    try:
        stopper.submit(lambda: (time.sleep(0.2), STOPPING.set()))
        start = time.monotonic()
        assert not wait_for_future(never_answered, 60.0)
        assert time.monotonic() - start < 10.0 and never_answered.cancelled()
    finally:
        stopper.shutdown()
        STOPPING.clear()
    answered = Future()
    answered.set_result(1)
    assert wait_for_future(answered, 0.1)
