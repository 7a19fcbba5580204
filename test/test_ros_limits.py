"""Bounded requests and inputs, and nothing of the host in what nodes send (issue 24, parts 3 and 4), with real
rclpy: requests and messages over a limit are refused before any conversion or planning, fast, with a code or a
report that says which limit, and the node serves on; answers, last_error and /rosout lines carry no absolute
host path and no environment value. Timings of the refusals against normal requests: benchmarks/request_limits.py."""
import os
import time
import uuid

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from geometry_msgs.msg import Point, Pose  # noqa: E402
from moveit_msgs.msg import CollisionObject, Grasp, MoveItErrorCodes  # noqa: E402
from moveit_msgs.srv import GraspPlanning  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from shape_msgs.msg import Mesh, MeshTriangle, SolidPrimitive  # noqa: E402

from diffgrasp_ros.nodes import base, conversions as conv  # noqa: E402
from diffgrasp_ros.nodes import depth_processor as depth_processor_module  # noqa: E402
from diffgrasp_ros.nodes import scene_builder as scene_builder_module  # noqa: E402
from diffgrasp_ros.nodes.depth_capture import DepthCaptureNode  # noqa: E402
from diffgrasp_ros.nodes.depth_processor import DepthProcessorNode  # noqa: E402
from diffgrasp_ros.nodes.grasp_server import GraspServerNode  # noqa: E402
from diffgrasp_ros.nodes.request_limits import OVER_LIMIT  # noqa: E402
from diffgrasp_ros.nodes.scene_builder import SceneBuilderNode  # noqa: E402
from diffgrasp_ros.sim.camera import side_view  # noqa: E402
from ros_helpers import Spinner, box_object, call, make_node, wait_for  # noqa: E402

OK = TransitionCallbackReturn.SUCCESS
FRAME = "camera_depth_optical_frame"


@pytest.fixture(scope="module", autouse=True)
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()




class Running:
    """``node`` configured and active, spun with a client node; both destroyed on leaving."""

    def __init__(self, node):
        self.node = node
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.client = rclpy.create_node(f"client_of_{node.get_name()}_{uuid.uuid4().hex[:6]}")
        self.spinner = Spinner(self.executor)

    def __enter__(self):
        for n in (self.node, self.client):
            self.executor.add_node(n)
        self.spinner.__enter__()
        assert self.node.trigger_configure() == OK, self.node.last_error
        assert self.node.trigger_activate() == OK, self.node.last_error
        return self.client

    def __exit__(self, *exc):
        self.spinner.__exit__(*exc)
        self.node.destroy_node()
        self.client.destroy_node()


def timed_handler(server):
    """Wrap the server's GraspPlanning callback (before configure creates the service) to record its time."""
    times, handler = [], server._on_generate

    def wrapper(request, response):
        start = time.perf_counter()
        try:
            return handler(request, response)
        finally:
            times.append(time.perf_counter() - start)

    server._on_generate = wrapper
    return times


def mesh_object(vertices: int) -> CollisionObject:
    obj = CollisionObject(id="scan")
    obj.header.frame_id = "workspace"
    points = [Point(x=0.1 + 0.01 * (i % 7), y=0.1 + 0.01 * (i % 5), z=0.06) for i in range(vertices)]
    obj.meshes = [Mesh(vertices=points, triangles=[MeshTriangle(vertex_indices=[0, 1, 2])])]
    obj.mesh_poses = [Pose()]
    return obj


# -- the grasp server: requests ------------------------------------------------------------------------------
def test_oversize_planning_requests_are_refused_first_fast_and_the_server_serves_on():
    """Too many candidate_grasps, a target mesh or target shapes over the limits, an over-long group name: each
    refused with INVALID_GOAL_CONSTRAINTS naming the limit, before the scene is even looked at (no scene here:
    a request within the limits is answered UNABLE_TO_AQUIRE_SENSOR_DATA), nothing converted or planned."""
    server = make_node(GraspServerNode, method="baseline", max_object_vertices=1000)
    handler_times = timed_handler(server)
    converted = []
    server._candidates = lambda messages: converted.append("candidates")
    server._target = lambda obj: converted.append("target")
    server.plan = lambda *args: converted.append("plan")
    with Running(server) as client_node:
        client = client_node.create_client(GraspPlanning, "grasp_server/generate_grasps")
        cases = {
            "candidate_grasps has 2000 grasps, over the limit of 200 grasps (max_candidate_grasps)":
                GraspPlanning.Request(candidate_grasps=[Grasp()] * 2000),
            "target 'scan' has 1001 mesh vertices, over the limit of 1000 mesh vertices (max_object_vertices)":
                GraspPlanning.Request(target=mesh_object(1001)),
            "over the limit of 64 shapes (max_object_shapes)":
                GraspPlanning.Request(target=CollisionObject(
                    id="many", primitives=[SolidPrimitive(type=1, dimensions=[0.1] * 3)] * 65,
                    primitive_poses=[Pose()] * 65)),
            "group_name is 100000 characters long": GraspPlanning.Request(group_name="x" * 100_000),
            "candidate_grasps[1].id is 300 characters long":
                GraspPlanning.Request(candidate_grasps=[Grasp(id="ok"), Grasp(id="y" * 300)]),
        }
        for expected, request in cases.items():
            response = call(client, request, 60.0)
            assert response.error_code.val == OVER_LIMIT == MoveItErrorCodes.INVALID_GOAL_CONSTRAINTS, \
                (expected, response.error_code.message)
            assert expected in response.error_code.message and not response.grasps
            assert response.error_code.message.startswith("request refused: ")
            assert len(response.error_code.message) < 300  # a long string is never echoed whole
            assert handler_times[-1] < 1.0, handler_times  # loose: benchmarks/request_limits.py measures it
        assert converted == [], "something was converted or planned for a request over a limit"
        assert server.active and "request refused" in server.last_error
        # Within the limits the request goes on to its usual checks (and the node serves on).
        within = GraspPlanning.Request(candidate_grasps=[Grasp()] * 200, target=mesh_object(1000))
        response = call(client, within, 60.0)
        assert response.error_code.val == MoveItErrorCodes.UNABLE_TO_AQUIRE_SENSOR_DATA, response.error_code.message
        # Limits are parameters: a lower one applies to the next request.
        server.set_parameters([Parameter("max_candidate_grasps", value=5)])
        response = call(client, GraspPlanning.Request(candidate_grasps=[Grasp()] * 6), 30.0)
        assert response.error_code.val == OVER_LIMIT and "max_candidate_grasps" in response.error_code.message


def test_the_executor_refuses_an_oversize_request_before_forwarding_it():
    """/plan_grasp (the executor) checks the grasp server's limits and its own (movable obstacles) before it
    forwards a request: with no grasp server running, a request over a limit is refused with
    INVALID_GOAL_CONSTRAINTS, while one within them goes on and finds no server."""
    from diffgrasp_ros.nodes.grasp_executor import GraspExecutorNode

    with Running(make_node(GraspExecutorNode, max_object_vertices=1000)) as client_node:
        client = client_node.create_client(GraspPlanning, "/plan_grasp")
        cases = {
            "candidate_grasps has 500 grasps, over the limit of 200 grasps (max_candidate_grasps)":
                GraspPlanning.Request(candidate_grasps=[Grasp()] * 500),
            "movable_obstacles has 17 objects, over the limit of 16 objects (max_movable_obstacles)":
                GraspPlanning.Request(movable_obstacles=[box_object(f"b{i}", "workspace", (0, 0, 0), (0.1, 0.1, 0.1))
                                                         for i in range(17)]),
            "movable_obstacles[0] 'scan' has 1001 mesh vertices, over the limit of 1000 mesh vertices "
            "(max_object_vertices)": GraspPlanning.Request(movable_obstacles=[mesh_object(1001)]),
            "support_surfaces[0] is 300 characters long": GraspPlanning.Request(support_surfaces=["s" * 300]),
            "target 'scan' has 1001 mesh vertices": GraspPlanning.Request(target=mesh_object(1001)),
        }
        for expected, request in cases.items():
            start = time.perf_counter()
            response = call(client, request, 60.0)
            assert response.error_code.val == OVER_LIMIT, (expected, response.error_code.message)
            assert expected in response.error_code.message and not response.grasps
            assert time.perf_counter() - start < 5.0  # loose: no wait for the (absent) server
        response = call(client, GraspPlanning.Request(candidate_grasps=[Grasp()] * 200), 60.0)
        assert response.error_code.val == MoveItErrorCodes.COMMUNICATION_FAILURE, response.error_code.message


def test_oversize_scene_clouds_are_reported_and_never_become_the_scene():
    server = make_node(GraspServerNode, method="baseline", max_cloud_points=100)
    with Running(server) as client_node:
        from sensor_msgs.msg import PointCloud2

        surface_pub = client_node.create_publisher(PointCloud2, "scene/surface", 2)
        tsdf_pub = client_node.create_publisher(PointCloud2, "scene/tsdf", 2)
        points = np.random.default_rng(0).uniform(0.0, 0.3, (101, 6))
        surface = conv.array_to_cloud(points, conv.SURFACE_FIELDS, "workspace", 1.0)
        tsdf = conv.array_to_cloud(np.column_stack([points[:, :3], np.full(101, 0.5)]), conv.TSDF_FIELDS,
                                   "workspace", 1.0)
        assert wait_for(lambda: surface_pub.get_subscription_count() and tsdf_pub.get_subscription_count(), 10.0)
        surface_pub.publish(surface)
        tsdf_pub.publish(tsdf)
        assert wait_for(lambda: "max_cloud_points" in server.last_error, 10.0), server.last_error
        assert "surface cloud 101x1 has 101 points, over the limit of 100 points" in server.last_error
        assert server._scene is None and server.active
        # Within the limit the same clouds make the scene.
        server.set_parameters([Parameter("max_cloud_points", value=101)])
        surface_pub.publish(surface)
        tsdf_pub.publish(tsdf)
        assert wait_for(lambda: server._scene is not None, 10.0), server.last_error


# -- images ----------------------------------------------------------------------------------------------------
def depth_msgs(width, height, frame_id=FRAME):
    """A 16UC1 depth image (half the bytes of 32FC1) and its camera info."""
    image = Image(encoding="16UC1", width=width, height=height, step=2 * width, is_bigendian=0,
                  data=np.full((height, width), 600, np.uint16).tobytes())
    image.header.frame_id = frame_id
    info = CameraInfo(width=width, height=height, k=[500.0, 0, width / 2, 0, 500.0, height / 2, 0, 0, 1])
    info.header.frame_id = frame_id
    return image, info


@pytest.mark.parametrize("node_class, module, parameters", [
    (DepthProcessorNode, depth_processor_module, {}),
    (SceneBuilderNode, scene_builder_module, {"T_workspace_camera": [float(v) for v in side_view().reshape(-1)]}),
], ids=["depth_processor", "scene_builder"])
def test_a_4000x3000_frame_and_its_camera_info_are_refused_before_conversion(node_class, module, parameters,
                                                                             monkeypatch):
    """The 4000x3000 frame of the issue: its CameraInfo is refused (never paired), the image reported and
    dropped before it is converted; a frame within max_image_pixels over the topic is processed as before."""
    node = make_node(node_class, **parameters)
    conversions = []
    convert = module.msgs_to_depth_frame
    monkeypatch.setattr(module, "msgs_to_depth_frame",
                        lambda image, info: conversions.append(image.width) or convert(image, info))
    with Running(node) as client_node:
        big_image, big_info = depth_msgs(4000, 3000)
        node._on_info(big_info)
        assert "camera info refused: camera info 4000x3000 has 12000000 pixels, over the limit of 2073600 " \
               "pixels (max_image_pixels)" in node.last_error
        assert FRAME not in node._infos
        start = time.perf_counter()
        node._on_image(big_image)
        assert time.perf_counter() - start < 1.0
        assert "depth image 4000x3000 has 12000000 pixels" in node.last_error and conversions == []
        info = depth_msgs(4000, 3000)[1]
        info.k = [0.0] * 9  # an inconsistent calibration is refused too
        info.width, info.height = 640, 480
        node._on_info(info)
        assert "no valid K matrix" in node.last_error and FRAME not in node._infos
        # Over the topics: an image over a lowered limit is reported and the node stays active; within it the
        # image is converted.
        node.set_parameters([Parameter("max_image_pixels", value=640 * 480 - 1)])
        topic = "depth/image_raw" if node_class is DepthProcessorNode else "depth/processed/image"
        image_pub = client_node.create_publisher(Image, topic, 2)
        info_pub = client_node.create_publisher(CameraInfo, topic.replace("image_raw", "camera_info").replace(
            "processed/image", "processed/camera_info"), 10)
        image, info = depth_msgs(640, 480)
        assert wait_for(lambda: image_pub.get_subscription_count() and info_pub.get_subscription_count(), 10.0)
        node.last_error = ""
        image_pub.publish(image)
        assert wait_for(lambda: "depth image 640x480 has 307200 pixels" in node.last_error, 10.0), node.last_error
        assert node.active and conversions == []
        node.set_parameters([Parameter("max_image_pixels", value=640 * 480)])
        info_pub.publish(info)
        assert wait_for(lambda: FRAME in node._infos, 10.0), node.last_error
        image_pub.publish(image)
        assert wait_for(lambda: conversions == [640], 10.0), node.last_error


def test_camera_info_cache_is_bounded_in_cameras():
    from diffgrasp_ros.nodes.camera_info import CameraInfoCache

    cache = CameraInfoCache(keep_frames=3)
    for i in range(10):
        cache.add(depth_msgs(64, 48, f"camera_{i}")[1])
    assert [f"camera_{i}" in cache for i in range(10)] == [False] * 7 + [True] * 3


def test_depth_capture_refuses_a_realsense_stream_over_the_limit():
    node = make_node(DepthCaptureNode, source="realsense", **{"realsense.width": 4000, "realsense.height": 3000})
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "RealSense stream 4000x3000 has 12000000 pixels, over the limit of 2073600 pixels " \
               "(max_image_pixels)" in node.last_error
    finally:
        node.destroy_node()


def test_movable_obstacles_are_bounded_before_sampling():
    """The executor samples movable_obstacles into points (conversions.collision_object_points): a 100 m box is
    600 million points at 1 cm, refused before a point is sampled; a table-sized one is sampled."""
    conv.collision_object_points(box_object("warm", "workspace", (0, 0, 0), (0.01, 0.01, 0.01)))  # open3d imported
    start = time.perf_counter()
    with pytest.raises(conv.LimitError, match=r"600000000 surface points, over the limit of 200000"):
        conv.collision_object_points(box_object("huge", "workspace", (0, 0, 0), (100, 100, 100)))
    assert time.perf_counter() - start < 1.0
    with pytest.raises(conv.LimitError, match="max_vertices"):
        conv.collision_object_points(mesh_object(100), limits=conv.ObjectLimits(max_vertices=99))
    table = box_object("table", "workspace", (0, 0, 0), (0.6, 0.6, 0.05))
    assert 5_000 < len(conv.collision_object_points(table)) <= 200_000


# -- nothing of the host in what is sent --------------------------------------------------------------------------
def test_sanitise_shortens_host_paths_keeps_ros_names_and_hides_environment_values(monkeypatch):
    monkeypatch.setenv("DIFFGRASP_TEST_API_TOKEN", "tok-51c7e9")
    monkeypatch.setenv("DIFFGRASP_TEST_AUTH_MODE", "token")  # a plain word, not a secret: left in the text
    monkeypatch.setenv("DIFFGRASP_TEST_PASSWORD", "b7x2")  # a short secret: hidden
    package = str(base.Path(base.__file__).resolve().parents[2])
    text = base.sanitise(f'File "{package}/diffgrasp_ros/nodes/base.py", line 3; /tmp/a/b/recording.mcap not '
                         f"found; service /robot1/plan_grasp and /tf_static; {os.path.expanduser('~')}/.ros/log; "
                         "token tok-51c7e9, pin b7x2, xtok-51c7e9x.")
    assert text == ('File "diffgrasp_ros/nodes/base.py", line 3; <path>/recording.mcap not found; service '
                    "/robot1/plan_grasp and /tf_static; <path>/log; token $DIFFGRASP_TEST_API_TOKEN, pin "
                    "$DIFFGRASP_TEST_PASSWORD, xtok-51c7e9x.")
    assert base.sanitise(text) == text


def test_a_missing_model_file_is_reported_without_host_paths_on_rosout_and_in_last_error(tmp_path, monkeypatch):
    """A grasp server whose weights folder is missing: the configure failure says which file is missing by name,
    in last_error and on /rosout (message and the caller's file), with no absolute path; an environment value in
    an answer is replaced by its name."""
    secret = "s3cr3t-" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("DIFFGRASP_TEST_PASSWORD", secret)
    missing = tmp_path / "my_models" / "igd_weights"
    # A namespace of its own: rcl keeps one /rosout publisher per logger name in the process, and a grasp_server
    # left undestroyed by an earlier module would carry (and, destroyed, drop) this node's log lines.
    namespace = f"limits_{uuid.uuid4().hex[:6]}"
    server = GraspServerNode(namespace=namespace, parameter_overrides=[
        Parameter("method", value="igd"), Parameter("weights", value=str(missing))])
    logs = []
    listener = rclpy.create_node(f"rosout_listener_{uuid.uuid4().hex[:6]}")
    listener.create_subscription(Log, "/rosout", logs.append, 100)
    executor = MultiThreadedExecutor(num_threads=2)
    for n in (server, listener):
        executor.add_node(n)
    try:
        with Spinner(executor):
            time.sleep(0.5)  # the /rosout subscription matched
            assert server.trigger_configure() == TransitionCallbackReturn.FAILURE
            assert "IGD weights not found" in server.last_error, server.last_error
            assert str(tmp_path) not in server.last_error and "my_models" not in server.last_error
            assert "<path>/" in server.last_error
            assert wait_for(lambda: any("IGD weights not found" in m.msg for m in logs), 10.0)
            line = next(m for m in logs if "IGD weights not found" in m.msg)
            assert str(tmp_path) not in line.msg and not os.path.isabs(line.file), (line.msg, line.file)
            assert line.file.endswith(".py") and line.name == f"{namespace}.grasp_server"
            # An answer (here the refusal of an unknown group) never holds an environment value.
            server.set_parameters([Parameter("method", value="baseline"), Parameter("weights", value="")])
            assert server.trigger_configure() == OK and server.trigger_activate() == OK, server.last_error
            client = listener.create_client(GraspPlanning, f"/{namespace}/grasp_server/generate_grasps")
            response = call(client, GraspPlanning.Request(group_name=secret), 30.0)
            assert response.error_code.val == MoveItErrorCodes.INVALID_GROUP_NAME
            message = response.error_code.message
            assert secret not in message and "$DIFFGRASP_TEST_PASSWORD" in message, message
            assert wait_for(lambda: any("$DIFFGRASP_TEST_PASSWORD" in m.msg for m in logs), 10.0)
            assert not any(secret in m.msg for m in logs)
    finally:
        server.destroy_node()
        listener.destroy_node()
