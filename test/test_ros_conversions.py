"""Message conversions against real ROS 2 types (rclpy) and an independent CDR implementation (rosbags)."""
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from diffgrasp_ros.camera import SIM_CAMERA, DepthError, DepthFrame  # noqa: E402
from diffgrasp_ros.grasping import Grasp  # noqa: E402
from diffgrasp_ros.nodes import conversions as conv  # noqa: E402
from diffgrasp_ros.robots import get_robot  # noqa: E402
from diffgrasp_ros.scene import Scene  # noqa: E402

from conftest import top_down_grasp  # noqa: E402

STORE = get_typestore(Stores.ROS2_KILTED)


def via_rosbags(msg, msgtype: str):
    """Serialize with rclpy, deserialize with rosbags: an independent CDR reader."""
    return STORE.deserialize_cdr(bytes(serialize_message(msg)), msgtype)


def depth_frame() -> DepthFrame:
    v, u = np.mgrid[0:480, 0:640]
    depth = (0.5 + 0.0005 * v + 0.0001 * u).astype(np.float32)
    depth[100:120, 200:260] = 0.0  # a hole
    depth[5, 5] = np.nan
    return DepthFrame(depth, SIM_CAMERA, frame_id="cam_optical", stamp=1700000000.25)


@pytest.mark.parametrize("encoding, tolerance", [("32FC1", 0.0), ("16UC1", 0.0005 + 1e-6)])
def test_depth_round_trip_through_cdr(encoding, tolerance):
    frame = depth_frame()
    image, info = conv.depth_frame_to_msgs(frame, encoding)
    assert (image.encoding, image.width, image.height, image.step) == (
        encoding, 640, 480, 640 * (4 if encoding == "32FC1" else 2))
    independent = via_rosbags(image, "sensor_msgs/msg/Image")
    assert independent.encoding == encoding and independent.header.frame_id == "cam_optical"
    assert (independent.header.stamp.sec, independent.header.stamp.nanosec) == (1700000000, 250000000)
    k = via_rosbags(info, "sensor_msgs/msg/CameraInfo").k
    np.testing.assert_allclose(k, [540, 0, 320, 0, 540, 240, 0, 0, 1])
    back = conv.msgs_to_depth_frame(deserialize_message(serialize_message(image), Image),
                                    deserialize_message(serialize_message(info), CameraInfo))
    assert back.intrinsics == frame.intrinsics and back.frame_id == frame.frame_id
    assert back.stamp == pytest.approx(frame.stamp)
    np.testing.assert_allclose(back.depth_m, frame.depth_m, atol=tolerance)
    np.testing.assert_array_equal(back.valid_mask, frame.valid_mask)


def test_an_image_written_by_rosbags_reads_back_in_rclpy_and_the_library():
    depth = np.full((480, 640), 725, dtype="<u2")
    Header, Time = STORE.types["std_msgs/msg/Header"], STORE.types["builtin_interfaces/msg/Time"]
    msg = STORE.types["sensor_msgs/msg/Image"](
        header=Header(stamp=Time(sec=3, nanosec=5), frame_id="cam"), height=480, width=640,
        encoding="16UC1", is_bigendian=0, step=1280, data=depth.view(np.uint8).reshape(-1))
    image = deserialize_message(bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/Image")), Image)
    info = CameraInfo(width=640, height=480, k=[540.0, 0, 320, 0, 540, 240, 0, 0, 1])
    info.header.frame_id = "cam"
    frame = conv.msgs_to_depth_frame(image, info)
    np.testing.assert_allclose(frame.depth_m, 0.725, atol=1e-6)


def test_big_endian_depth_is_read_correctly():
    image = Image(height=480, width=640, encoding="32FC1", is_bigendian=1, step=2560,
                  data=np.full((480, 640), 0.8, dtype=">f4").tobytes())
    info = CameraInfo(width=640, height=480, k=[540.0, 0, 320, 0, 540, 240, 0, 0, 1])
    np.testing.assert_allclose(conv.msgs_to_depth_frame(image, info).depth_m, 0.8)


@pytest.mark.parametrize("change, message", [
    (dict(encoding="rgb8"), "unsupported depth encoding"),
    (dict(width=320, step=1280), "camera info says"),
    (dict(step=100), "step"),
    (dict(data=b"\x00" * 10), "bytes"),
])
def test_malformed_depth_images_are_clear_errors(change, message):
    image, info = conv.depth_frame_to_msgs(depth_frame())
    for field, value in change.items():
        setattr(image, field, value)
    with pytest.raises(DepthError, match=message):
        conv.msgs_to_depth_frame(image, info)


def test_image_and_info_from_different_frames_are_refused():
    image, info = conv.depth_frame_to_msgs(depth_frame())
    info.header.frame_id = "other"
    with pytest.raises(DepthError, match="frame"):
        conv.msgs_to_depth_frame(image, info)


def test_camera_info_without_intrinsics_is_refused():
    image, info = conv.depth_frame_to_msgs(depth_frame())
    info.k = [0.0] * 9
    with pytest.raises(DepthError, match="K matrix"):
        conv.msgs_to_depth_frame(image, info)


def test_point_cloud_round_trip_and_independent_decoding():
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, size=(500, 6))
    cloud = conv.array_to_cloud(values, conv.SURFACE_FIELDS, "workspace", 12.5)
    independent = via_rosbags(cloud, "sensor_msgs/msg/PointCloud2")
    assert [f.name for f in independent.fields] == list(conv.SURFACE_FIELDS)
    raw = np.frombuffer(independent.data.tobytes(), dtype="<f4").reshape(500, 6)
    np.testing.assert_allclose(raw, values, atol=1e-6)
    back = conv.cloud_to_array(deserialize_message(serialize_message(cloud), PointCloud2), ("normal_z", "x"))
    np.testing.assert_allclose(back, values[:, [5, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="lacks fields"):
        conv.cloud_to_array(cloud, ("rgb",))


def test_scene_survives_the_two_cloud_encoding_exactly():
    grid = np.zeros((40, 40, 40), np.float32)
    grid[10:20, 5:8, 3] = np.linspace(0.1, 0.9, 30, dtype=np.float32).reshape(10, 3)
    points = np.random.default_rng(1).uniform(0, 0.3, (200, 3))
    normals = np.tile([0.0, 0.0, 1.0], (200, 1))
    surface, tsdf = conv.scene_to_clouds(Scene(grid, points, normals), stamp=7.0)
    assert surface.header.stamp == tsdf.header.stamp
    scene = conv.clouds_to_scene(deserialize_message(serialize_message(surface), PointCloud2),
                                 deserialize_message(serialize_message(tsdf), PointCloud2), Scene(grid, points, normals).workspace)
    np.testing.assert_array_equal(scene.tsdf_grid, grid)
    np.testing.assert_allclose(scene.points_m, points, atol=1e-6)


def test_grasps_as_pose_array_and_markers():
    grasps = [Grasp(top_down_grasp(0.1, 0.1, 0.12), 0.05, 0.9, "baseline"),
              Grasp(top_down_grasp(0.2, 0.1, 0.12, yaw=1.0), 0.04, 0.2, "baseline")]
    poses = via_rosbags(conv.grasps_to_pose_array(grasps, "workspace", 1.0), "geometry_msgs/msg/PoseArray")
    assert [p.position.x for p in poses.poses] == pytest.approx([0.1, 0.2])
    back = conv.pose_to_matrix(conv.pose_msg(grasps[1].T_frame_grasp))
    np.testing.assert_allclose(back, grasps[1].T_frame_grasp, atol=1e-9)
    markers = conv.grasps_to_markers(grasps, get_robot("franka"), "workspace", 1.0).markers
    assert markers[0].action == markers[0].DELETEALL  # each update clears the previous set
    assert len(markers) == 1 + 2 * len(grasps)
    lines, label = markers[1], markers[2]
    assert lines.type == lines.LINE_LIST and len(lines.points) == 8 and label.text.startswith("1:")
    assert lines.color.g > lines.color.r and markers[3].color.r > markers[3].color.g  # score colours
    via_rosbags(conv.grasps_to_markers(grasps, get_robot("franka"), "workspace", 1.0),
                "visualization_msgs/msg/MarkerArray")


def test_a_dexterous_grasp_keeps_its_16_joints_through_moveit_msgs():
    pytest.importorskip("moveit_msgs", reason="the moveit_msgs subset is built by scripts/setup.sh --test")
    from moveit_msgs.msg import Grasp as GraspMsg

    from diffgrasp_ros.robots import leap

    embodiment = get_robot("xarm_leap")
    q_open, q_grasp = leap.posture(0.8), leap.posture(0.3)
    grasp = Grasp(top_down_grasp(0.1, 0.2, 0.1), 0.06, 0.7, "leap", pregrasp_joints=q_open, grasp_joints=q_grasp)
    msg = deserialize_message(serialize_message(conv.grasp_to_moveit(grasp, 0, embodiment, 1.0)), GraspMsg)
    assert list(msg.grasp_posture.joint_names) == list(leap.JOINT_NAMES)
    np.testing.assert_allclose(msg.pre_grasp_posture.points[0].positions, q_open)
    np.testing.assert_allclose(msg.grasp_posture.points[0].positions, q_grasp)
    back = conv.moveit_to_grasp(msg, embodiment, "grasp_server")
    assert back.dexterous
    np.testing.assert_allclose(back.grasp_joints, q_grasp)
    np.testing.assert_allclose(back.T_frame_grasp, grasp.T_frame_grasp, atol=1e-9)
    assert back.width_m == pytest.approx(leap.aperture_m(q_open))
    # A plain grasp for the LEAP hand gets the pre-shape for its width and the closed posture.
    plain = conv.grasp_to_moveit(Grasp(grasp.T_frame_grasp, 0.06, 0.7, "baseline"), 1, embodiment, 1.0)
    np.testing.assert_allclose(plain.grasp_posture.points[0].positions, leap.CLOSED_Q)
    plain_back = conv.moveit_to_grasp(plain, embodiment, "grasp_server")
    assert not plain_back.dexterous and plain_back.width_m > 0.06  # the pre-shape is a little wider
    with pytest.raises(ValueError, match="16 hand joints"):
        conv.grasp_to_moveit(grasp, 0, get_robot("franka"), 1.0)


def test_a_grasp_needs_both_postures_or_none():
    with pytest.raises(ValueError, match="both pregrasp_joints and grasp_joints"):
        Grasp(np.eye(4), 0.05, 0.5, "leap", grasp_joints=np.zeros(16))
    grasp = Grasp(np.eye(4), 0.05, 0.5, "leap", pregrasp_joints=np.ones(16), grasp_joints=np.zeros(16))
    again = Grasp.from_dict(grasp.to_dict())
    assert again.dexterous and np.array_equal(again.pregrasp_joints, np.ones(16))
    assert not Grasp.from_dict(Grasp(np.eye(4), 0.05, 0.5, "igd").to_dict()).dexterous


def test_collision_object_bounds_cover_posed_primitives_and_meshes():
    pytest.importorskip("moveit_msgs", reason="the moveit_msgs subset is built by scripts/setup.sh --test")
    from geometry_msgs.msg import Point, Pose
    from moveit_msgs.msg import CollisionObject
    from shape_msgs.msg import Mesh, SolidPrimitive

    def pose(x, y, z, qz=0.0, qw=1.0):
        p = Pose()
        p.position.x, p.position.y, p.position.z = x, y, z
        p.orientation.z, p.orientation.w = qz, qw
        return p

    obj = CollisionObject(id="mug", pose=pose(0.1, 0.0, 0.0))
    assert conv.collision_object_bounds(obj) is None  # no shape: any object
    half_turn_z = np.sin(np.pi / 4)  # 90 degrees about z: a 0.2 x 0.1 box becomes 0.1 x 0.2
    obj.primitives = [SolidPrimitive(type=SolidPrimitive.BOX, dimensions=[0.2, 0.1, 0.04]),
                      SolidPrimitive(type=SolidPrimitive.CYLINDER, dimensions=[0.1, 0.02])]
    obj.primitive_poses = [pose(0.0, 0.0, 0.02, half_turn_z, half_turn_z), pose(0.0, 0.0, 0.5)]
    obj.meshes = [Mesh(vertices=[Point(x=0.0, y=0.3, z=0.0), Point(x=0.01, y=0.31, z=0.02)])]
    obj.mesh_poses = [pose(0.0, 0.0, 0.0)]
    lo, hi = conv.collision_object_bounds(obj)
    np.testing.assert_allclose(lo, [0.05, -0.1, 0.0], atol=1e-9)  # the object's pose shifts everything 0.1 m in x
    np.testing.assert_allclose(hi, [0.15, 0.31, 0.55], atol=1e-9)
    obj.primitives = [SolidPrimitive(type=SolidPrimitive.PRISM, dimensions=[0.1])]
    with pytest.raises(ValueError, match="only boxes, spheres, cylinders and cones"):
        conv.collision_object_bounds(obj)
