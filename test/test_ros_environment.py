"""The ROS 2 environment, for real: rclpy + the moveit_msgs GraspPlanning interfaces and tf2_msgs/TFMessage.

Skipped where rclpy is not installed (`scripts/setup.sh` without --test/--ros). With
`scripts/setup.sh --test` it runs against ROS 2 Kilted from PyPI wheels and the moveit_msgs /
object_recognition_msgs / tf2_msgs shadows that scripts/setup_ros.sh builds from ros/interfaces/; on a
machine with ROS it runs against the distribution's packages. Checks that the interfaces are the upstream
ones (texts, RIHS01 type hashes, CDR bytes against rosbags) and that a GraspPlanning service works end to
end. /tf_static with tf2_ros's QoS: test_tf_messages.py.
"""

import array
import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

# lark (rosidl's parser, loaded by rclpy's type description service) imports deprecated sre_* modules.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")

from builtin_interfaces.msg import Duration, Time  # noqa: E402
from geometry_msgs.msg import (Point, Pose, PoseStamped, Quaternion, Transform, TransformStamped,  # noqa: E402
                               Vector3, Vector3Stamped)
from moveit_msgs.msg import CollisionObject, Grasp, GripperTranslation, MoveItErrorCodes  # noqa: E402
from moveit_msgs.srv import GraspPlanning  # noqa: E402
from object_recognition_msgs.msg import ObjectType  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from shape_msgs.msg import Mesh, MeshTriangle, Plane, SolidPrimitive  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

INTERFACES = Path(__file__).resolve().parents[1] / "ros" / "interfaces"

# sha256 of the upstream interface texts (moveit_msgs ros2 branch, object_recognition_msgs ros2 branch,
# ros2/geometry2 tf2_msgs; provenance in ros/interfaces/README.md: for TFMessage.msg no stored copy of the
# upstream file was at hand, its one line is checked by its type hash). ros/interfaces/ must hold exactly
# these bytes.
UPSTREAM_SHA256 = {
    "moveit_msgs/msg/AttachedCollisionObject.msg": "fb2e7c3c30cb985338ac09582f199192b9355c54ee34b11574db20c78dd59b55",
    "moveit_msgs/msg/CollisionObject.msg": "7f5e9ded212cec53e676a86bc9c906acc9bad8656336271a62d8890c73ff376f",
    "moveit_msgs/msg/DisplayTrajectory.msg": "555b24790c5ed932bf09460a1a552ea06a788f05a70c88308c54c66657056e0c",
    "moveit_msgs/msg/Grasp.msg": "970ed390d6fc6437039a22531faeda462395c6cfdc86bea3364c56aa72061f3a",
    "moveit_msgs/msg/GripperTranslation.msg": "1bda7dd226299e0856c4b86ce207828e8db46e1c7c2ad1eca2c0011d298a4e07",
    "moveit_msgs/msg/MoveItErrorCodes.msg": "28b3d29632d3813eea4222ba4107414c4e32b566f29a6d1db6ffeb1f29428c7a",
    "moveit_msgs/msg/RobotState.msg": "1ee53024ce4b6871dcf7fbeda5b3903671cb8c4b9247d6281f062d52d9c01843",
    "moveit_msgs/msg/RobotTrajectory.msg": "06cde3ff99c2465ecab3ffabc6110db225b9d28a305910f8450395d8bc0e4e49",
    "moveit_msgs/srv/GraspPlanning.srv": "fb6dc2366033ba34ff83ab517d11a9ea35c92dd0afc9ff5c0b465aa78c1e835f",
    "object_recognition_msgs/msg/ObjectType.msg": "3b8475e2c581514b922841eb9812d8d44f89d83eadae0df5ef0005c6a770f00c",
    "tf2_msgs/msg/TFMessage.msg": "f3fca610a59b31ee4c7b740522ecdd0fd8c76002170088111409e4df513f1dfc",
}

# RIHS01 type hashes (REP 2011: field names, types and order of the type and everything it refers to)
# of a real moveit_msgs / tf2_msgs build, as its rosidl-generated type description code records them. Fast
# DDS announces these with every endpoint, so equal hashes mean a real MoveIt / tf2 installation sees the
# same type.
UPSTREAM_TYPE_HASHES = {
    "moveit_msgs/msg/AttachedCollisionObject": "RIHS01_7fdfe7951a33a857f20fc42c9ed410a38d06dd0c209ac774ecea746dc487dc41",
    "moveit_msgs/msg/CollisionObject": "RIHS01_74b0acd6d56be032bf4f764b2c2633f50588b5fb2bd71e97206c59052747cf7e",
    "moveit_msgs/msg/Grasp": "RIHS01_5369669de88fe85f7bca5dc948d70fe6e86fe93c531d590ecbcd9c21385aa593",
    "moveit_msgs/msg/GripperTranslation": "RIHS01_54e14721386de9ac9e09dc6a56dc9e8ae9d5327e99cebaeba443e7f8806d1790",
    "moveit_msgs/msg/MoveItErrorCodes": "RIHS01_dcda8a9950cf6dd6ac221c2c0d2509f52f136afa0403dd19beacdf07e83e4a07",
    "moveit_msgs/msg/RobotState": "RIHS01_7c516dc15713e545cb2836c5ca745fbdcfcc10de4855a41c83e6b4bf1afc3f83",
    "moveit_msgs/msg/RobotTrajectory": "RIHS01_af1dc87fb94d13e5f233e9c210d2662fa06143a8b3c6aec47c57ad45074fcce8",
    "moveit_msgs/srv/GraspPlanning": "RIHS01_669cd00f6ecb2ec71060b363815b828cc5fed9646adc10d7b1701777b9dc5c5b",
    "moveit_msgs/srv/GraspPlanning_Request": "RIHS01_3c0c610c8d2369bc95caf7fd4a2dc4f43dbc83c39f1e5dfc0b0885de56f58885",
    "moveit_msgs/srv/GraspPlanning_Response": "RIHS01_9eaf3e82801852e9508006aec607de77c9f6f5defbe8f9e89f254080117ee1c3",
    "object_recognition_msgs/msg/ObjectType": "RIHS01_5eb3ee3976403366d7c50d7dbee8bec96b3bced1e752674a7194a35841632134",
    "tf2_msgs/msg/TFMessage": "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
}


def upstream_text(relpath: str) -> str:
    """An interface text from ros/interfaces, checked to be the upstream bytes."""
    data = (INTERFACES / relpath).read_bytes()
    assert hashlib.sha256(data).hexdigest() == UPSTREAM_SHA256[relpath], f"{relpath} differs from upstream"
    return data.decode()


def share_dir(package: str) -> Path:
    """The installed share/<package> directory (ament index if set up, else next to the Python package)."""
    if os.environ.get("AMENT_PREFIX_PATH"):
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    module = __import__(package)
    for parent in Path(module.__file__).resolve().parents:
        if (parent / "share" / package / "package.xml").is_file():
            return parent / "share" / package
    pytest.fail(f"no share/{package} found for {module.__file__}")


def is_diffgrasp_shadow(package: str) -> bool:
    return "diffgrasp" in (share_dir(package) / "package.xml").read_text()


def to_plain(value):
    """rclpy or rosbags message -> nested dicts/lists of Python scalars, for comparing field values."""
    if hasattr(value, "get_fields_and_field_types"):  # rclpy
        return {name: to_plain(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if dataclasses.is_dataclass(value):  # rosbags
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.name.startswith("__") or f.name.isupper())}  # not __msgtype__ nor constants
    if isinstance(value, (list, tuple, array.array, np.ndarray)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes) and len(value) == 1:  # rclpy's `byte` (octet) is bytes, rosbags' an int
        return value[0]
    return value


# --- messages ------------------------------------------------------------------------------------------

def make_grasp(index: int = 0) -> Grasp:
    """A Grasp with every field set to a distinct value (float32 fields exactly representable)."""
    stamp = Time(sec=1_700_000_000 + index, nanosec=123_456_789)
    posture = JointTrajectory(
        header=Header(stamp=stamp, frame_id="panda_hand"),
        joint_names=["panda_finger_joint1", "panda_finger_joint2"],
        points=[JointTrajectoryPoint(positions=[0.04, 0.04], velocities=[0.0, 0.0], accelerations=[],
                                     effort=[], time_from_start=Duration(sec=0, nanosec=500_000_000))])
    closed = JointTrajectory(
        header=Header(stamp=stamp, frame_id="panda_hand"),
        joint_names=["panda_finger_joint1", "panda_finger_joint2"],
        points=[JointTrajectoryPoint(positions=[0.01, 0.01], velocities=[], accelerations=[],
                                     effort=[20.0, 20.0], time_from_start=Duration(sec=1, nanosec=0))])

    def translation(z: float, distance: float) -> GripperTranslation:
        return GripperTranslation(
            direction=Vector3Stamped(header=Header(stamp=stamp, frame_id="panda_hand"),
                                     vector=Vector3(x=0.0, y=0.0, z=z)),
            desired_distance=distance, min_distance=distance / 2)

    return Grasp(
        id=f"grasp_{index}",
        pre_grasp_posture=posture,
        grasp_posture=closed,
        grasp_pose=PoseStamped(header=Header(stamp=stamp, frame_id="workspace"),
                               pose=Pose(position=Point(x=0.15 + index, y=0.125, z=0.0625),
                                         orientation=Quaternion(x=1.0, y=0.0, z=0.0, w=0.0))),
        grasp_quality=0.875 - 0.125 * index,
        pre_grasp_approach=translation(1.0, 0.125),
        post_grasp_retreat=translation(-1.0, 0.25),
        post_place_retreat=translation(-1.0, 0.0625),
        max_contact_force=12.5,
        allowed_touch_objects=["table", f"box_{index}"])


def make_collision_object(name: str) -> CollisionObject:
    """A CollisionObject with a box, a mesh (numpy fixed-size arrays) and a plane."""
    return CollisionObject(
        header=Header(stamp=Time(sec=5, nanosec=6), frame_id="workspace"),
        pose=Pose(position=Point(x=0.15, y=0.15, z=0.08), orientation=Quaternion(w=1.0)),
        id=name,
        type=ObjectType(key=f"{name}_key", db='{"type": "diffgrasp"}'),
        primitives=[SolidPrimitive(type=SolidPrimitive.BOX, dimensions=[0.04, 0.05, 0.06])],
        primitive_poses=[Pose(orientation=Quaternion(w=1.0))],
        meshes=[Mesh(triangles=[MeshTriangle(vertex_indices=[0, 1, 2])],
                     vertices=[Point(x=0.0), Point(x=0.01), Point(y=0.01)])],
        mesh_poses=[Pose(orientation=Quaternion(w=1.0))],
        planes=[Plane(coef=[0.0, 0.0, 1.0, -0.05])],
        plane_poses=[Pose(orientation=Quaternion(w=1.0))],
        subframe_names=["top"],
        subframe_poses=[Pose(position=Point(z=0.03), orientation=Quaternion(w=1.0))],
        operation=CollisionObject.ADD)


def test_interfaces_import_and_construct():
    grasp = make_grasp()
    assert grasp.grasp_pose.pose.position.x == pytest.approx(0.15)
    assert list(grasp.grasp_posture.points[0].effort) == [20.0, 20.0]
    assert MoveItErrorCodes.SUCCESS == 1 and MoveItErrorCodes.NO_IK_SOLUTION == -31
    assert MoveItErrorCodes(val=MoveItErrorCodes.SUCCESS, message="ok", source="test").val == 1
    assert CollisionObject.ADD == b"\x00" and CollisionObject.MOVE == b"\x03"  # `byte` constants are bytes
    target = make_collision_object("box_a")
    assert list(target.meshes[0].triangles[0].vertex_indices) == [0, 1, 2]
    request = GraspPlanning.Request(group_name="panda_arm", target=target, support_surfaces=["table"],
                                    candidate_grasps=[grasp], movable_obstacles=[])
    response = GraspPlanning.Response(grasps=[grasp], error_code=MoveItErrorCodes(val=1))
    assert request.candidate_grasps[0].id == "grasp_0" and response.error_code.val == 1
    assert list(Grasp.get_fields_and_field_types()) == [
        "id", "pre_grasp_posture", "grasp_posture", "grasp_pose", "grasp_quality", "pre_grasp_approach",
        "post_grasp_retreat", "post_place_retreat", "max_contact_force", "allowed_touch_objects"]


def test_interface_sources_are_the_upstream_texts():
    for relpath in UPSTREAM_SHA256:
        upstream_text(relpath)
    shadows = {package for package in {relpath.split("/")[0] for relpath in UPSTREAM_SHA256}
               if is_diffgrasp_shadow(package)}
    if not shadows:
        pytest.skip("real installations, not the ros/interfaces shadows")
    # The installed shadows were built from exactly these sources (setup_ros.sh rebuilds when they change).
    for relpath in UPSTREAM_SHA256:
        package, rest = relpath.split("/", 1)
        if package in shadows:
            assert (share_dir(package) / rest).read_bytes() == (INTERFACES / relpath).read_bytes(), relpath


def test_installed_type_hashes_are_upstream():
    for type_name, expected in UPSTREAM_TYPE_HASHES.items():
        package, kind, name = type_name.split("/")
        description = share_dir(package) / kind / f"{name.split('_')[0]}.json"
        if not description.is_file():
            pytest.skip(f"{description} missing: a ROS 2 release before type hashes (Iron)")
        hashes = {h["type_name"]: h["hash_string"] for h in json.loads(description.read_text())["type_hashes"]}
        assert hashes[type_name] == expected, type_name


# --- rclpy in one process --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ros_context():
    """An rclpy context of its own on a unique domain, with discovery kept on this machine."""
    domain_id = int(os.environ.get("DIFFGRASP_TEST_ROS_DOMAIN_ID", 100 + os.getpid() % 100))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.setenv("ROS_DOMAIN_ID", str(domain_id))
        mp.delenv("ROS_STATIC_PEERS", raising=False)
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain_id)
        try:
            yield context
        finally:
            rclpy.shutdown(context=context)


@pytest.fixture()
def spinning(ros_context):
    """Creates nodes on the test context and spins them in a thread; joined before the context ends."""
    executor = SingleThreadedExecutor(context=ros_context)
    nodes = []

    def make_node(name):
        node = rclpy.create_node(f"{name}_{uuid.uuid4().hex[:8]}", context=ros_context)
        nodes.append(node)
        executor.add_node(node)
        return node

    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield make_node
    finally:
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=10.0)
        assert not thread.is_alive(), "executor thread did not stop"
        for node in nodes:
            node.destroy_node()


def wait_for(future, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while not future.done():
        assert time.monotonic() < deadline, "no response in time"
        time.sleep(0.01)
    return future.result()


def test_grasp_planning_service_round_trip(spinning):
    service_name = f"/diffgrasp_test/plan_grasps_{uuid.uuid4().hex[:8]}"
    seen = {}

    def plan(request, response):
        seen["request"] = request
        best = make_grasp(7)
        best.id = f"{request.target.id}/best"
        best.grasp_pose.header.frame_id = request.target.header.frame_id
        response.grasps = [best] + list(reversed(request.candidate_grasps))
        response.error_code = MoveItErrorCodes(val=MoveItErrorCodes.SUCCESS,
                                               message=f"planned for {request.group_name}",
                                               source="diffgrasp_test")
        return response

    server = spinning("grasp_planner")
    server.create_service(GraspPlanning, service_name, plan)
    client = spinning("grasp_client").create_client(GraspPlanning, service_name)
    assert client.wait_for_service(timeout_sec=15.0), "GraspPlanning service not discovered"

    candidates = [make_grasp(0), make_grasp(1)]
    request = GraspPlanning.Request(group_name="panda_arm", target=make_collision_object("box_a"),
                                    support_surfaces=["table"], candidate_grasps=candidates,
                                    movable_obstacles=[make_collision_object("box_b")])
    response = wait_for(client.call_async(request))

    assert to_plain(seen["request"]) == to_plain(request)  # the request arrived intact
    assert response.error_code.val == MoveItErrorCodes.SUCCESS
    assert response.error_code.message == "planned for panda_arm"
    assert response.error_code.source == "diffgrasp_test"
    assert [g.id for g in response.grasps] == ["box_a/best", "grasp_1", "grasp_0"]
    expected_best = make_grasp(7)
    expected_best.id = "box_a/best"
    assert to_plain(response.grasps[0]) == to_plain(expected_best)  # every field survived
    assert to_plain(response.grasps[1]) == to_plain(candidates[1])
    assert to_plain(response.grasps[2]) == to_plain(candidates[0])
    assert response.grasps[0].max_contact_force == 12.5
    assert response.grasps[1].grasp_quality == 0.75


@pytest.mark.parametrize("message_type, type_name", [(Grasp, "moveit_msgs/msg/Grasp"),
                                                     (TFMessage, "tf2_msgs/msg/TFMessage")],
                         ids=["Grasp", "TFMessage"])
def test_topic_announces_the_upstream_type_hash(spinning, message_type, type_name):
    node = spinning("hash_publisher")
    topic = f"/diffgrasp_test/{message_type.__name__.lower()}_{uuid.uuid4().hex[:8]}"
    node.create_publisher(message_type, topic, 10)
    infos = node.get_publishers_info_by_topic(topic)
    assert len(infos) == 1
    assert infos[0].topic_type == type_name
    assert str(infos[0].topic_type_hash) == UPSTREAM_TYPE_HASHES[type_name]


# --- CDR compatibility with the upstream definitions (rosbags) ------------------------------------------

@pytest.fixture(scope="module")
def upstream_typestore():
    """A rosbags typestore with the upstream moveit_msgs / object_recognition_msgs / tf2_msgs texts registered.

    rosbags' Kilted store already has tf2_msgs/msg/TFMessage (from its own copy of the definitions);
    register() refuses a different definition under that name, so this also checks our text against it."""
    typesys = pytest.importorskip("rosbags.typesys")
    store = typesys.get_typestore(getattr(typesys.Stores, "ROS2_KILTED", typesys.Stores.ROS2_JAZZY))
    types = {}
    for relpath in UPSTREAM_SHA256:
        package, kind, filename = relpath.split("/")
        name = filename.rsplit(".", 1)[0]
        text = upstream_text(relpath)
        if kind == "msg":
            types.update(typesys.get_types_from_msg(text, f"{package}/msg/{name}"))
        else:  # a service: its request and response halves as messages of the same package
            request, response = text.split("\n---\n")
            types.update(typesys.get_types_from_msg(request, f"{package}/msg/{name}_Request"))
            types.update(typesys.get_types_from_msg(response, f"{package}/msg/{name}_Response"))
    store.register(types)
    return store


def rosbags_grasp(store):
    """A Grasp built with rosbags from the upstream definition alone (every field set)."""
    t = store.types
    stamp = t["builtin_interfaces/msg/Time"](sec=42, nanosec=7)
    header = t["std_msgs/msg/Header"](stamp=stamp, frame_id="workspace")
    duration = t["builtin_interfaces/msg/Duration"](sec=2, nanosec=250_000_000)
    point = t["trajectory_msgs/msg/JointTrajectoryPoint"](
        positions=np.array([0.03, 0.03]), velocities=np.array([]), accelerations=np.array([]),
        effort=np.array([15.0, 15.0]), time_from_start=duration)
    posture = t["trajectory_msgs/msg/JointTrajectory"](header=header, joint_names=["f1", "f2"], points=[point])
    pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=0.1, y=0.2, z=0.3),
                                       orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=1.0, z=0.0, w=0.0))
    translation = t["moveit_msgs/msg/GripperTranslation"](
        direction=t["geometry_msgs/msg/Vector3Stamped"](header=header,
                                                        vector=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=1.0)),
        desired_distance=0.125, min_distance=0.0625)
    return t["moveit_msgs/msg/Grasp"](
        id="from_rosbags", pre_grasp_posture=posture, grasp_posture=posture,
        grasp_pose=t["geometry_msgs/msg/PoseStamped"](header=header, pose=pose), grasp_quality=0.5,
        pre_grasp_approach=translation, post_grasp_retreat=translation, post_place_retreat=translation,
        max_contact_force=3.5, allowed_touch_objects=["table"])


def make_tf_message(index: int = 0) -> TFMessage:
    """A TFMessage with two transforms, every field set (float64 values exactly representable)."""
    def stamped(parent, child, x, qz):
        return TransformStamped(header=Header(stamp=Time(sec=1_700_000_000 + index, nanosec=250_000_000),
                                              frame_id=parent),
                                child_frame_id=child,
                                transform=Transform(translation=Vector3(x=x, y=-0.125, z=0.5),
                                                    rotation=Quaternion(x=0.0, y=0.0, z=qz, w=0.75)))

    return TFMessage(transforms=[stamped("workspace", f"camera_{index}", 0.25, 0.5),
                                 stamped("workspace", "panda_link0", -0.375, 0.0)])


def rosbags_tf_message(store):
    """A TFMessage built with rosbags from the upstream definition alone."""
    t = store.types
    transform = t["geometry_msgs/msg/TransformStamped"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=9, nanosec=10),
                                        frame_id="world"),
        child_frame_id="from_rosbags",
        transform=t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=1.0, y=2.0, z=3.0),
            rotation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=1.0, z=0.0, w=0.0)))
    return t["tf2_msgs/msg/TFMessage"](transforms=[transform, transform])


def decode_serialize_message_output(store, data: bytes, type_name: str):
    """rosbags' deserialize_cdr minus its check that nothing follows the message.

    rclpy's serialize_message() (Fast DDS rmw) returns its size *estimate* as the length: for messages
    with sequences of structs the buffer ends in unwritten bytes (and the alignment padding is not
    zeroed either). What goes over DDS is exact; see test_grasp_crosses_dds_as_upstream_cdr."""
    assert data[:4] == b"\x00\x01\x00\x00", "not little-endian plain CDR"
    msgdef = store.get_msgdef(type_name)
    message, end = msgdef.deserialize_cdr_le(data[4:], 0, msgdef.cls, store)
    assert 4 + end <= len(data)
    return message


def test_serialize_message_output_decodes_with_upstream_definition(upstream_typestore):
    grasp = make_grasp(3)
    decoded = decode_serialize_message_output(upstream_typestore, serialize_message(grasp), "moveit_msgs/msg/Grasp")
    assert to_plain(decoded) == to_plain(grasp)


def test_upstream_definition_bytes_deserialize_with_rclpy(upstream_typestore):
    grasp = rosbags_grasp(upstream_typestore)
    data = bytes(upstream_typestore.serialize_cdr(grasp, "moveit_msgs/msg/Grasp"))
    decoded = deserialize_message(data, Grasp)
    assert to_plain(decoded) == to_plain(grasp)
    assert decoded.grasp_pose.pose.orientation.y == 1.0 and decoded.max_contact_force == 3.5


def test_grasp_planning_request_and_response_are_cdr_compatible(upstream_typestore):
    request = GraspPlanning.Request(group_name="panda_arm", target=make_collision_object("box_a"),
                                    support_surfaces=["table", "shelf"], candidate_grasps=[make_grasp(0)],
                                    movable_obstacles=[make_collision_object("box_b")])
    response = GraspPlanning.Response(grasps=[make_grasp(1), make_grasp(2)],
                                      error_code=MoveItErrorCodes(val=MoveItErrorCodes.NO_IK_SOLUTION,
                                                                  message="no IK", source="planner"))
    for message, type_name in ((request, "moveit_msgs/msg/GraspPlanning_Request"),
                               (response, "moveit_msgs/msg/GraspPlanning_Response")):
        decoded = decode_serialize_message_output(upstream_typestore, serialize_message(message), type_name)
        assert to_plain(decoded) == to_plain(message), type_name
        data = bytes(upstream_typestore.serialize_cdr(decoded, type_name))
        assert to_plain(deserialize_message(data, type(message))) == to_plain(message), type_name


def test_tf_message_is_cdr_compatible(upstream_typestore):
    message = make_tf_message(1)
    decoded = decode_serialize_message_output(upstream_typestore, serialize_message(message),
                                              "tf2_msgs/msg/TFMessage")
    assert to_plain(decoded) == to_plain(message)
    theirs = rosbags_tf_message(upstream_typestore)
    data = bytes(upstream_typestore.serialize_cdr(theirs, "tf2_msgs/msg/TFMessage"))
    assert to_plain(deserialize_message(data, TFMessage)) == to_plain(theirs)


def assert_crosses_dds_as_upstream_cdr(node, message_type, type_name, ours, theirs, store):
    """Over DDS, both ways: rclpy's bytes are exactly rosbags' bytes for the upstream definition."""
    raw_topic, typed_topic = (f"/diffgrasp_test/{kind}_{uuid.uuid4().hex[:8]}" for kind in ("raw", "typed"))
    received_raw, received_typed = [], []
    node.create_subscription(message_type, raw_topic, received_raw.append, 10, raw=True)
    node.create_subscription(message_type, typed_topic, received_typed.append, 10)
    to_raw = node.create_publisher(message_type, raw_topic, 10)
    to_typed = node.create_publisher(message_type, typed_topic, 10)

    def deliver(publisher, message, inbox):
        deadline = time.monotonic() + 15.0
        while not inbox:
            assert time.monotonic() < deadline, "nothing received over DDS"
            if publisher.get_subscription_count():
                publisher.publish(message)
            time.sleep(0.05)
        return inbox[0]

    # rclpy -> DDS -> raw bytes -> rosbags (strict: no trailing bytes, zero padding).
    wire = deliver(to_raw, ours, received_raw)
    decoded = store.deserialize_cdr(wire, type_name)
    assert to_plain(decoded) == to_plain(ours)
    assert bytes(store.serialize_cdr(decoded, type_name)) == wire

    # rosbags bytes -> DDS (published as serialized data) -> rclpy message.
    received = deliver(to_typed, bytes(store.serialize_cdr(theirs, type_name)), received_typed)
    assert to_plain(received) == to_plain(theirs)


def test_grasp_crosses_dds_as_upstream_cdr(spinning, upstream_typestore):
    assert_crosses_dds_as_upstream_cdr(spinning("cdr_check"), Grasp, "moveit_msgs/msg/Grasp", make_grasp(4),
                                       rosbags_grasp(upstream_typestore), upstream_typestore)


def test_tf_message_crosses_dds_as_upstream_cdr(spinning, upstream_typestore):
    assert_crosses_dds_as_upstream_cdr(spinning("tf_cdr_check"), TFMessage, "tf2_msgs/msg/TFMessage",
                                       make_tf_message(2), rosbags_tf_message(upstream_typestore),
                                       upstream_typestore)


# --- the .pth bootstrap ----------------------------------------------------------------------------------

def test_bootstrap_reaches_subprocesses():
    """The ROS wheels' .pth hook re-executes Python with LD_LIBRARY_PATH set (guard
    _ROS_WHEELS_BOOTSTRAP_COMPLETE). Children inherit both; a child with a clean environment bootstraps
    again by itself."""
    if importlib.util.find_spec("ros_wheels_bootstrapper") is None:
        pytest.skip("rclpy is not from the PyPI ROS wheels (no .pth bootstrap)")
    assert os.environ.get("_ROS_WHEELS_BOOTSTRAP_COMPLETE") == "1"
    assert str(Path(sys.prefix) / "lib") in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    code = "from moveit_msgs.srv import GraspPlanning; from tf2_msgs.msg import TFMessage; import rclpy; print('ok')"
    inherited = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert inherited.stdout.strip() == "ok", inherited.stderr
    clean_env = {k: v for k, v in os.environ.items()
                 if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")}
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env,
                           timeout=60)
    assert fresh.stdout.strip() == "ok", fresh.stderr
