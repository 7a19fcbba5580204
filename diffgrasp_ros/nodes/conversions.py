"""Library types <-> ROS 2 messages. The only module that knows both sides.

Depth images follow REP 118 (32FC1 metres, 16UC1 millimetres); clouds are little-endian float32
PointCloud2; grasps travel as PoseArray (rank order), MarkerArray (RViz) and moveit_msgs/Grasp; joint
motions as trajectory_msgs/JointTrajectory (stamp zero: start on arrival).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped, Vector3, Vector3Stamped
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from ..camera.frame import DepthError, DepthFrame
from ..camera.ros_image import (camera_info_fields, depth_from_image_fields, depth_to_image_fields,
                                intrinsics_from_camera_info)
from ..geometry import pose_from_quaternion, quaternion_xyzw
from ..grasping.draw import score_colour_bgr
from ..grasping.grasp import Grasp
from ..robots.registry import Embodiment
from ..scene.scene import Scene
from ..scene.workspace import Workspace


# -- request and message limits ----------------------------------------------------------------------
class LimitError(ValueError):
    """A message or request over a size limit, refused before any conversion. The text names the field, its
    size, the limit and the parameter that sets it."""


# Structural bounds no real message comes near (not parameters): OpenCV's richest distortion model has 14
# coefficients; the LEAP hand, the largest here, has 16 joints.
MAX_DISTORTION_COEFFICIENTS = 16
MAX_HAND_JOINTS = 64


def check_limit(what: str, size: int, limit: int, parameter: str, unit: str = "") -> None:
    if size > limit:
        raise LimitError(f"{what} has {size}{unit}, over the limit of {limit}{unit} ({parameter})")


def check_name(what: str, text: str, limit: int) -> None:
    """A string field (frame id, name, id) at most ``limit`` characters; the refusal quotes only its start."""
    if len(text) > limit:
        raise LimitError(f"{what} is {len(text)} characters long ({text[:32]!r}...), over the limit of {limit} "
                         "(max_name_length)")


def check_image_size(image: Image, max_pixels: int, max_name_length: int) -> None:
    """A depth Image's size against ``max_pixels`` (width x height) and its strings against ``max_name_length``,
    before anything is copied: LimitError. The data must not exceed what its step and height describe, so a
    small header cannot carry a huge buffer."""
    check_name("depth image frame_id", image.header.frame_id, max_name_length)
    check_name("depth image encoding", image.encoding, max_name_length)
    check_limit(f"depth image {image.width}x{image.height}", image.width * image.height, max_pixels,
                "max_image_pixels", " pixels")


def check_camera_info(info: CameraInfo, max_pixels: int, max_name_length: int) -> None:
    """A CameraInfo that can describe a depth image this node takes: its size within ``max_pixels``, a pinhole
    K with fx, fy > 0, at most MAX_DISTORTION_COEFFICIENTS coefficients, strings within ``max_name_length``.
    LimitError for a size, DepthError for an inconsistent calibration."""
    check_name("camera info frame_id", info.header.frame_id, max_name_length)
    check_name("camera info distortion_model", info.distortion_model, max_name_length)
    check_limit(f"camera info {info.width}x{info.height}", info.width * info.height, max_pixels,
                "max_image_pixels", " pixels")
    check_limit("camera info d", len(info.d), MAX_DISTORTION_COEFFICIENTS, "no model has more",
                " coefficients")
    if info.width == 0 or info.height == 0:
        raise DepthError(f"camera info is {info.width}x{info.height}: no image has that size")
    k = np.asarray(info.k, dtype=float)
    if k.size != 9 or not np.all(np.isfinite(k)) or k[0] <= 0 or k[4] <= 0:
        raise DepthError(f"camera info has no valid K matrix (finite, fx, fy > 0), got {k.tolist()}")


@dataclasses.dataclass(frozen=True)
class ObjectLimits:
    """How big a ``moveit_msgs/CollisionObject`` may be: shapes (primitives + meshes), mesh vertices and
    triangles over all its meshes, and surface points sampled from it (``collision_object_points``)."""
    max_shapes: int = 64
    max_vertices: int = 100_000
    max_triangles: int = 200_000
    max_points: int = 200_000
    parameter_prefix: str = ""  # the node parameters that set them (prefix + shapes, ...), named in refusals


DEFAULT_OBJECT_LIMITS = ObjectLimits()  # for callers that declare no parameters for them


def _limit_source(limits: ObjectLimits, name: str) -> str:
    return f"{limits.parameter_prefix}{name}" if limits.parameter_prefix else f"the built-in max_{name}"


def check_collision_object(obj, limits: ObjectLimits = DEFAULT_OBJECT_LIMITS, what: str = "object",
                           max_name_length: int = 256) -> None:
    """LimitError for a CollisionObject over ``limits`` or with over-long strings; counts only, no copy."""
    check_name(f"{what} id", obj.id, max_name_length)
    check_name(f"{what} frame_id", obj.header.frame_id, max_name_length)
    check_limit(f"{what} {obj.id[:32]!r}", len(obj.primitives) + len(obj.meshes) + len(obj.planes),
                limits.max_shapes, _limit_source(limits, "shapes"), " shapes")
    check_limit(f"{what} {obj.id[:32]!r}", sum(len(m.vertices) for m in obj.meshes), limits.max_vertices,
                _limit_source(limits, "vertices"), " mesh vertices")
    check_limit(f"{what} {obj.id[:32]!r}", sum(len(m.triangles) for m in obj.meshes), limits.max_triangles,
                _limit_source(limits, "triangles"), " mesh triangles")


# -- time and headers ---------------------------------------------------------------------------
def to_time(seconds: float) -> Time:
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def from_time(stamp: Time) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def header(frame_id: str, stamp: float) -> Header:
    return Header(frame_id=frame_id, stamp=to_time(stamp))


# -- depth ----------------------------------------------------------------------------------------
def depth_frame_to_msgs(frame: DepthFrame, encoding: str = "32FC1") -> tuple[Image, CameraInfo]:
    image = Image(header=header(frame.frame_id, frame.stamp), **depth_to_image_fields(frame, encoding))
    info = CameraInfo(header=header(frame.frame_id, frame.stamp), **camera_info_fields(frame.intrinsics))
    return image, info


def msgs_to_depth_frame(image: Image, info: CameraInfo) -> DepthFrame:
    if image.header.frame_id != info.header.frame_id:
        raise DepthError(f"depth image is in frame {image.header.frame_id!r} but its camera info is in "
                         f"{info.header.frame_id!r}")
    intrinsics = intrinsics_from_camera_info(info.width, info.height, info.k)
    return depth_from_image_fields(image.encoding, image.height, image.width, image.step, image.is_bigendian,
                                   image.data, intrinsics, image.header.frame_id, from_time(image.header.stamp))


# -- point clouds ---------------------------------------------------------------------------------
def array_to_cloud(values: np.ndarray, names: tuple[str, ...], frame_id: str, stamp: float) -> PointCloud2:
    """An unordered float32 cloud with one field per column of ``values`` (N, len(names))."""
    values = np.ascontiguousarray(values, dtype="<f4")
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ValueError(f"cloud values must be (N, {len(names)}), got {values.shape}")
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
    return PointCloud2(header=header(frame_id, stamp), height=1, width=len(values), fields=fields,
                       is_bigendian=False, point_step=4 * len(names), row_step=4 * len(names) * len(values),
                       data=values.tobytes(), is_dense=True)


def cloud_to_array(cloud: PointCloud2, names: tuple[str, ...], what: str = "point cloud",
                   max_points: int | None = None) -> np.ndarray:
    """The named float32 fields of a cloud as (N, len(names)) float64 (NaN where the cloud says so).
    Every inconsistency is a ValueError naming ``what`` and the field or step; a cloud of more than
    ``max_points`` points (None: any) a LimitError, before anything is copied."""
    if max_points is not None:
        check_limit(f"{what} {cloud.width}x{cloud.height}", cloud.width * cloud.height, max_points,
                    "max_cloud_points", " points")
    offsets = {f.name: (f.offset, f.datatype, f.count) for f in cloud.fields}
    missing = [n for n in names if n not in offsets]
    if missing:
        raise ValueError(f"{what} lacks fields {missing} (has {sorted(offsets)})")
    for n in names:
        if offsets[n][1:] != (PointField.FLOAT32, 1):
            raise ValueError(f"{what} field {n!r} must be a single FLOAT32 (datatype {PointField.FLOAT32}, count 1), "
                             f"got datatype {offsets[n][1]}, count {offsets[n][2]}")
        if offsets[n][0] + 4 > cloud.point_step:
            raise ValueError(f"{what} field {n!r} at offset {offsets[n][0]} does not fit in its point_step "
                             f"{cloud.point_step}")
    count = cloud.width * cloud.height
    data = np.frombuffer(cloud.data, dtype=np.uint8)
    if data.size != cloud.row_step * cloud.height or cloud.row_step < cloud.width * cloud.point_step:
        raise ValueError(f"{what} data is {data.size} bytes, which does not match its height {cloud.height} x "
                         f"row_step {cloud.row_step} with row_step >= width {cloud.width} x point_step "
                         f"{cloud.point_step}")
    rows = data.reshape(cloud.height, cloud.row_step)[:, : cloud.width * cloud.point_step]
    points = rows.reshape(count, cloud.point_step)
    order = ">f4" if cloud.is_bigendian else "<f4"
    columns = [points[:, offsets[n][0]:offsets[n][0] + 4].copy().view(order)[:, 0] for n in names]
    with np.errstate(invalid="ignore"):  # signalling-NaN bit patterns: NaN all the same
        return np.stack(columns, axis=1).astype(np.float64)


SURFACE_FIELDS = ("x", "y", "z", "normal_x", "normal_y", "normal_z")
TSDF_FIELDS = ("x", "y", "z", "tsdf")


def scene_to_clouds(scene: Scene, stamp: float) -> tuple[PointCloud2, PointCloud2]:
    """The surface (points + normals) and the observed TSDF voxels (centre + grid value), same stamp."""
    frame_id = scene.workspace.frame_id
    surface = array_to_cloud(np.hstack([scene.points_m, scene.normals]), SURFACE_FIELDS, frame_id, stamp)
    observed = np.argwhere(scene.tsdf_grid > 0.0)
    centres = (observed + 0.5) * scene.workspace.voxel_size_m
    values = scene.tsdf_grid[tuple(observed.T)]
    tsdf = array_to_cloud(np.column_stack([centres, values]), TSDF_FIELDS, frame_id, stamp)
    return surface, tsdf


def clouds_to_scene(surface: PointCloud2, tsdf: PointCloud2, workspace: Workspace,
                    max_points: int | None = None) -> Scene:
    """The scene of the two clouds; LimitError for a cloud of more than ``max_points`` points (None: any)."""
    for cloud, what in ((surface, "surface cloud"), (tsdf, "TSDF cloud")):
        if max_points is not None:
            check_limit(f"{what} {cloud.width}x{cloud.height}", cloud.width * cloud.height, max_points,
                        "max_cloud_points", " points")
        if cloud.header.frame_id != workspace.frame_id:
            raise ValueError(f"scene clouds must be in the {workspace.frame_id!r} frame, got "
                             f"{cloud.header.frame_id[:256]!r}")
    values = cloud_to_array(surface, SURFACE_FIELDS, "surface cloud")
    voxels = cloud_to_array(tsdf, TSDF_FIELDS, "TSDF cloud")
    # NaN marks an invalid point in a PointCloud2 (is_dense false): such points are no surface.
    values = values[np.isfinite(values).all(axis=1)]
    voxels = voxels[np.isfinite(voxels[:, :3]).all(axis=1)]
    if not np.all((voxels[:, 3] >= 0.0) & (voxels[:, 3] <= 1.0)):  # also NaN
        raise ValueError("TSDF cloud values must be in [0, 1] (the standard grid convention)")
    R = workspace.resolution
    grid = np.zeros((R, R, R), np.float32)
    # Compared before the cast, which huge coordinates would overflow; the clip is for rounding at the far edge.
    inside = np.all((voxels[:, :3] >= 0.0) & (voxels[:, :3] < R * workspace.voxel_size_m), axis=1)
    index = np.clip(np.floor(voxels[inside, :3] / workspace.voxel_size_m).astype(int), 0, R - 1)
    grid[tuple(index.T)] = voxels[inside, 3]
    return Scene(grid, values[:, :3], values[:, 3:], workspace)


# -- joint motions --------------------------------------------------------------------------------
def joint_trajectory(joint_names, positions, times_s, frame_id: str = "") -> JointTrajectory:
    """Positions (T, n) at times from the start (T,); stamp zero, so a controller starts it on arrival."""
    points = []
    for q, t in zip(positions, times_s):
        point = JointTrajectoryPoint(positions=[float(v) for v in q])
        point.time_from_start.sec, point.time_from_start.nanosec = divmod(int(round(float(t) * 1e9)), 10**9)
        points.append(point)
    return JointTrajectory(header=Header(frame_id=frame_id), joint_names=list(joint_names), points=points)


def joint_state(joint_names, positions, stamp: float) -> JointState:
    return JointState(header=header("", stamp), name=list(joint_names), position=[float(v) for v in positions])


def display_trajectory(model_id: str, trajectory: JointTrajectory):
    """MoveIt's plan preview, ``moveit_msgs/DisplayTrajectory`` (what RViz's MoveIt Trajectory display animates):
    ``trajectory`` from the robot state at its first point, for the robot model named ``model_id`` (the URDF's
    robot name)."""
    from moveit_msgs.msg import DisplayTrajectory, RobotState, RobotTrajectory

    start = JointState(name=list(trajectory.joint_names),
                       position=list(trajectory.points[0].positions) if trajectory.points else [])
    return DisplayTrajectory(model_id=model_id, trajectory=[RobotTrajectory(joint_trajectory=trajectory)],
                             trajectory_start=RobotState(joint_state=start))


def hand_postures(joint_names, open_q, closed_q) -> tuple[JointTrajectory, JointTrajectory]:
    """A moveit_msgs/Grasp's ``pre_grasp_posture`` (open) and ``grasp_posture`` (closed)."""
    return joint_trajectory(joint_names, [open_q], [0.5]), joint_trajectory(joint_names, [closed_q], [1.0])


# -- grasps -----------------------------------------------------------------------------------------
def pose_msg(T: np.ndarray) -> Pose:
    x, y, z, w = quaternion_xyzw(T)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in (x, y, z, w))
    return pose


def pose_to_matrix(pose: Pose) -> np.ndarray:
    q = pose.orientation
    return pose_from_quaternion((pose.position.x, pose.position.y, pose.position.z), (q.x, q.y, q.z, q.w))


def pose_array(T_frame_poses, frame_id: str, stamp: float) -> PoseArray:
    return PoseArray(header=header(frame_id, stamp), poses=[pose_msg(T) for T in T_frame_poses])


def grasps_to_pose_array(grasps: list[Grasp], frame_id: str, stamp: float) -> PoseArray:
    return pose_array([g.T_frame_grasp for g in grasps], frame_id, stamp)


def _glyph_points(width_m: float, finger_depth_m: float) -> list[Point]:
    h, d = 0.5 * width_m, finger_depth_m
    segments = [((0, 0, -0.04), (0, 0, 0)), ((0, -h, 0), (0, h, 0)), ((0, -h, 0), (0, -h, d)), ((0, h, 0), (0, h, d))]
    return [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for segment in segments for p in segment]


def grasps_to_markers(grasps: list[Grasp], embodiment: Embodiment, frame_id: str, stamp: float,
                      namespace: str = "grasps") -> MarkerArray:
    """Gripper outlines coloured by score (red 0 → green 1) with rank labels; clears the last set."""
    h = header(frame_id, stamp)
    markers = [Marker(header=h, ns=namespace, action=Marker.DELETEALL)]
    for rank, grasp in enumerate(grasps):
        b, g, r = score_colour_bgr(grasp.score)
        colour = ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
        pose = pose_msg(grasp.T_frame_grasp)
        markers.append(Marker(header=h, ns=namespace, id=2 * rank, type=Marker.LINE_LIST, action=Marker.ADD,
                              pose=pose, scale=Vector3(x=0.006 if rank == 0 else 0.003), color=colour,
                              points=_glyph_points(max(grasp.width_m, 0.01), embodiment.gripper.finger_depth_m)))
        label_pose = pose_msg(grasp.T_frame_grasp @ _translation(0.0, 0.0, -0.05))
        markers.append(Marker(header=h, ns=namespace, id=2 * rank + 1, type=Marker.TEXT_VIEW_FACING,
                              action=Marker.ADD, pose=label_pose, scale=Vector3(z=0.015), color=colour,
                              text=f"{rank + 1}: {grasp.score:.2f}"))
    return MarkerArray(markers=markers)


def _translation(x: float, y: float, z: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def grasp_to_moveit(grasp: Grasp, rank: int, embodiment: Embodiment, stamp: float,
                    pregrasp_distance_m: float = 0.05, lift_distance_m: float = 0.10, answer_id: str = ""):
    """A ranked ``moveit_msgs/Grasp``: pose, quality, open/closed hand postures, approach and retreat. Its id
    is ``<method>_<answer_id>_<rank>`` (``<method>_<rank>`` without an answer id), so ids of different
    answers differ.

    Approach: along the grasp's +z (the approach axis) for the protocol's pre-grasp distance;
    retreat: straight up in the grasp's frame id. Postures use the embodiment's hand joint names: a
    dexterous grasp's own pre-grasp and grasp joints, else the pre-shape for the grasp's width and the
    closed posture.
    """
    from moveit_msgs.msg import Grasp as GraspMsg
    from moveit_msgs.msg import GripperTranslation

    h = header(grasp.frame_id, stamp)
    approach = grasp.approach_axis
    if grasp.dexterous:
        if len(grasp.grasp_joints) != len(embodiment.hand_joint_names):
            raise ValueError(f"grasp {grasp.method}_{rank} has {len(grasp.grasp_joints)} hand joints, "
                             f"{embodiment.name}'s hand has {len(embodiment.hand_joint_names)}")
        open_q, closed_q = grasp.pregrasp_joints, grasp.grasp_joints
    else:
        open_q, closed_q = embodiment.hand_posture(grasp.width_m), embodiment.hand_posture(0.0)
    pre_grasp_posture, grasp_posture = hand_postures(embodiment.hand_joint_names, open_q, closed_q)
    return GraspMsg(
        id=f"{grasp.method}_{answer_id}_{rank}" if answer_id else f"{grasp.method}_{rank}",
        pre_grasp_posture=pre_grasp_posture,
        grasp_posture=grasp_posture,
        grasp_pose=PoseStamped(header=h, pose=pose_msg(grasp.T_frame_grasp)),
        grasp_quality=float(grasp.score),
        pre_grasp_approach=GripperTranslation(
            direction=Vector3Stamped(header=h, vector=Vector3(x=float(approach[0]), y=float(approach[1]),
                                                               z=float(approach[2]))),
            desired_distance=float(pregrasp_distance_m), min_distance=float(0.5 * pregrasp_distance_m)),
        post_grasp_retreat=GripperTranslation(
            direction=Vector3Stamped(header=h, vector=Vector3(z=1.0)),
            desired_distance=float(lift_distance_m), min_distance=float(0.5 * lift_distance_m)),
        max_contact_force=0.0,
    )


def moveit_to_grasp(msg, embodiment: Embodiment, method: str) -> Grasp:
    """Back to a library ``Grasp``. For a LEAP hand the width is the pre-shape's aperture, and a grasp whose
    closing posture is not the hand's fixed closed posture (``grasp_to_moveit`` of a plain grasp) is
    dexterous: it keeps both postures. A gripper's width is the sum of its open finger positions."""
    def positions(posture) -> list[float]:
        return list(posture.points[0].positions) if posture.points else []

    open_q, closed_q = positions(msg.pre_grasp_posture), positions(msg.grasp_posture)
    joints = {}
    if embodiment.hand == "leap" and len(open_q) == len(closed_q) == len(embodiment.hand_joint_names):
        from ..robots import leap

        width = max(leap.aperture_m(np.array(open_q)), 0.0)
        if not np.allclose(closed_q, embodiment.hand_posture(0.0)):
            joints = {"pregrasp_joints": open_q, "grasp_joints": closed_q}
    else:
        width = float(sum(open_q)) if open_q else embodiment.gripper.max_opening_m
    return Grasp(pose_to_matrix(msg.grasp_pose.pose), width, float(msg.grasp_quality), method,
                 msg.grasp_pose.header.frame_id, {"id": msg.id}, **joints)


# SolidPrimitive types (shape_msgs) -> (number of ``dimensions``, half extents in the primitive's frame).
_PRIMITIVES = {
    1: (3, lambda d: (d[0] / 2, d[1] / 2, d[2] / 2)),  # BOX: x, y, z
    2: (1, lambda d: (d[0], d[0], d[0])),  # SPHERE: radius
    3: (2, lambda d: (d[1], d[1], d[0] / 2)),  # CYLINDER: height, radius (axis z)
    4: (2, lambda d: (d[1], d[1], d[0] / 2)),  # CONE: height, radius (axis z)
}


def collision_object_bounds(obj, limits: ObjectLimits = DEFAULT_OBJECT_LIMITS) -> tuple[np.ndarray, np.ndarray] | None:
    """The axis-aligned box (lo, hi) around a ``moveit_msgs/CollisionObject``'s primitives and meshes, in
    its header frame (ROS 2: shapes posed relative to the object's ``pose``); None when it has no shape.
    Raises LimitError for an object over ``limits`` (before reading a vertex), ValueError for a primitive
    type or dimensions it cannot bound (prisms, planes)."""
    check_collision_object(obj, limits, "target")
    T_frame_object = pose_to_matrix(obj.pose)
    corners = []

    for primitive, pose in zip(obj.primitives, obj.primitive_poses):
        needed, half_extents = _PRIMITIVES.get(primitive.type, (None, None))
        if needed is None or len(primitive.dimensions) < needed:
            raise ValueError(f"target primitive of type {primitive.type} with dimensions "
                             f"{list(primitive.dimensions)}: only boxes, spheres, cylinders and cones are bounded")
        T = T_frame_object @ pose_to_matrix(pose)
        half = np.abs(T[:3, :3]) @ np.array(half_extents(list(primitive.dimensions)), float)
        corners += [T[:3, 3] - half, T[:3, 3] + half]
    for mesh, pose in zip(obj.meshes, obj.mesh_poses):
        if len(mesh.vertices):
            T = T_frame_object @ pose_to_matrix(pose)
            vertices = np.array([[v.x, v.y, v.z] for v in mesh.vertices], float) @ T[:3, :3].T + T[:3, 3]
            corners += [vertices.min(axis=0), vertices.max(axis=0)]
    if not corners:
        return None
    corners = np.array(corners)
    return corners.min(axis=0), corners.max(axis=0)


def _primitive_mesh(primitive):
    """An open3d mesh of a SolidPrimitive about its own frame (shape_msgs: boxes, spheres, cylinders and
    cones centred on the origin, axes along z)."""
    import open3d as o3d

    d = list(primitive.dimensions)
    needed = _PRIMITIVES.get(primitive.type, (None,))[0]
    if needed is None or len(d) < needed or min(d[:needed]) <= 0:
        raise ValueError(f"primitive of type {primitive.type} with dimensions {d}: only boxes, spheres, "
                         "cylinders and cones with positive sizes are supported")
    if primitive.type == 1:
        return o3d.geometry.TriangleMesh.create_box(*d[:3]).translate(-np.array(d[:3]) / 2)
    if primitive.type == 2:
        return o3d.geometry.TriangleMesh.create_sphere(d[0])
    if primitive.type == 3:
        return o3d.geometry.TriangleMesh.create_cylinder(d[1], d[0])
    return o3d.geometry.TriangleMesh.create_cone(d[1], d[0]).translate((0.0, 0.0, -d[0] / 2))  # base at -h/2


def collision_object_points(obj, spacing_m: float = 0.01, limits: ObjectLimits = DEFAULT_OBJECT_LIMITS,
                            what: str = "movable obstacle") -> np.ndarray:
    """Points about ``spacing_m`` apart on the surfaces of a ``moveit_msgs/CollisionObject``'s primitives and
    meshes, in its header frame: how a motion planner that collides with clouds sees it. LimitError for an
    object over ``limits`` (checked before its meshes are copied, and its point count before sampling: a
    10 m box at 1 cm is 6 million points), ValueError for shapes it cannot sample (prisms, planes)."""
    import open3d as o3d

    check_collision_object(obj, limits, what)
    T_frame_object = pose_to_matrix(obj.pose)
    shapes = [(_primitive_mesh(p), pose) for p, pose in zip(obj.primitives, obj.primitive_poses)]
    for mesh, pose in zip(obj.meshes, obj.mesh_poses):
        vertices = np.array([[v.x, v.y, v.z] for v in mesh.vertices], float).reshape(-1, 3)
        triangles = np.array([list(t.vertex_indices) for t in mesh.triangles], np.int32).reshape(-1, 3)
        if len(triangles) and (triangles.min() < 0 or triangles.max() >= len(vertices)):
            raise ValueError(f"mesh of {obj.id or '(unnamed)'}: a triangle indexes a vertex it does not have")
        shapes.append((o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                                 o3d.utility.Vector3iVector(triangles)), pose))
    counts = []  # sampled points per shape, as before: about one per spacing_m squared, at least one
    for mesh, _ in shapes:
        if len(mesh.triangles) == 0:
            counts.append(0)
            continue
        area = mesh.get_surface_area()
        if not np.isfinite(area):
            raise ValueError(f"{what} {obj.id[:32]!r}: a shape's surface area is not finite")
        counts.append(max(int(np.ceil(area / spacing_m ** 2)), 1))
    check_limit(f"{what} {obj.id[:32]!r} at {spacing_m} m spacing", sum(counts), limits.max_points,
                _limit_source(limits, "points"), " surface points")
    points = [np.zeros((0, 3))]
    for (mesh, pose), count in zip(shapes, counts):
        if count == 0:
            continue
        sampled = np.asarray(mesh.sample_points_uniformly(count).points)
        T = T_frame_object @ pose_to_matrix(pose)
        points.append(sampled @ T[:3, :3].T + T[:3, 3])
    return np.concatenate(points)


# -- robot description -------------------------------------------------------------------------------
def ros_robot_description(urdf: str) -> str:
    """A URDF of the library (``robots.arm`` composes them with plain absolute mesh paths, which PyBullet, mplib
    and pytorch_kinematics read) as ROS reads it: absolute mesh paths become file:// URLs, since RViz and MoveIt
    load meshes through resource_retriever, which takes package:// and file:// URLs only."""
    import xml.etree.ElementTree as ET

    robot = ET.fromstring(urdf)
    for mesh in robot.iter("mesh"):
        if mesh.get("filename", "").startswith("/"):
            mesh.set("filename", "file://" + mesh.get("filename"))
    return ET.tostring(robot, encoding="unicode") + "\n"
