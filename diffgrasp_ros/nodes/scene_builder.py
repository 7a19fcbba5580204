"""``scene_builder``: depth + CameraInfo + camera pose -> TSDF and surface cloud of the workspace.

The camera pose comes from the calibrated extrinsic (``config``, checked once against the table in the
first frame after activation), from TF (``tf``, checked the same way), or from the depth itself
(``auto``: the table fitted in the first frame after activation, the workspace cube put on it over the
objects; ``~/calibrate_workspace`` re-estimates it from the latest frame).
"""
from __future__ import annotations

import json
import threading

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from ..geometry import is_rigid_transform
from ..scene import SceneBuilder
from .base import DiffgraspNode, describe_error, guarded, run, trigger_service
from .camera_info import CameraInfoCache
from .conversions import check_camera_info, check_image_size, msgs_to_depth_frame, scene_to_clouds

POSE_SOURCES = ("config", "tf", "auto")


class CameraPoseError(RuntimeError):
    """No usable camera pose for a frame (unknown frame, missing or stale transform)."""


class SceneBuilderNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("scene_builder", **kwargs)
        self.declare_workspace()
        self.declare("frames_per_scene", 1, "depth frames fused into each published scene")
        self.declare("cloud_resolution", 80, "voxels per edge of the fine volume behind the surface cloud")
        self.declare("camera_pose_source", "config",
                     "'config' (the calibrated extrinsic below), 'tf' (look the camera up in TF; needs tf2_ros) "
                     "or 'auto' (fit the table in the first depth frame after each activation and put the "
                     "workspace cube on it over the objects; ~/calibrate_workspace re-estimates)")
        self.declare("camera_frame", "camera_depth_optical_frame",
                     "optical frame the calibrated (config) or estimated (auto) extrinsic belongs to")
        self.declare("T_workspace_camera", [0.0] * 16,
                     "calibrated camera pose, row-major 4x4 (config pose source)")
        self.declare("max_pose_age_s", 0.5, "a TF pose older than this relative to the image is stale")
        self.declare("publish_tf", True, "publish the calibrated (config) or estimated (auto) camera pose on "
                     "/tf_static (workspace frame -> camera_frame); turn off when another node publishes a "
                     "parent of camera_frame (realsense-ros publishes camera_link -> its optical frames)")
        self.declare_input_limits()
        self.builder: SceneBuilder | None = None
        self._lock = threading.Lock()  # the builder, and the estimated pose it fuses with
        self._pose_lock = threading.Lock()  # one camera pose estimate or check at a time
        self._tf_buffer = self.static_tf = None
        self._source = "config"
        self._activation = 0  # counts activations: an estimate begun before the latest one is dropped
        self._pose_checked = False  # config / tf: the given pose was checked against the table
        self._latest = None  # the newest DepthFrame of camera_frame (what ~/calibrate_workspace estimates from)
        self.pose_estimate = None  # auto: the WorkspaceEstimate in use (T_workspace_camera, diagnostics)

    def configure(self) -> None:
        self.workspace = self.workspace_from_params()
        if self.param("frames_per_scene") < 1:
            raise ValueError("frames_per_scene must be at least 1")
        source = self.param("camera_pose_source")
        if source == "config":
            T = np.asarray(self.param("T_workspace_camera"), dtype=float).reshape(4, 4)
            if not is_rigid_transform(T):
                raise ValueError("T_workspace_camera is not a calibrated rigid transform (set it in config/, "
                                 "or use camera_pose_source: auto)")
            self._T_config = T
        elif source == "tf":
            try:
                from tf2_ros import Buffer, TransformListener
            except ImportError as error:
                raise ValueError("camera_pose_source 'tf' needs tf2_ros, which is not installed; "
                                 "use 'config' with a calibrated T_workspace_camera, or 'auto'") from error
            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self)
        elif source != "auto":
            raise ValueError(f"camera_pose_source must be one of {', '.join(POSE_SOURCES)}, got {source!r}")
        self._source = source
        self.static_tf = self.static_transforms() if self.param("publish_tf") and source != "tf" else None
        self.builder = SceneBuilder(self.workspace, cloud_resolution=self.param("cloud_resolution"))
        self._infos = CameraInfoCache()
        self.surface_pub = self.publisher(PointCloud2, "scene/surface")
        self.tsdf_pub = self.publisher(PointCloud2, "scene/tsdf")
        self.subscription(CameraInfo, "depth/processed/camera_info", self._on_info)
        self.subscription(Image, "depth/processed/image", self._on_image)
        self.service(Trigger, "~/reset", self._on_reset)
        self.service(Trigger, "~/calibrate_workspace", self._on_calibrate)

    def cleanup(self) -> None:
        self.builder = None
        self._tf_buffer = self.static_tf = None
        self._latest = None
        self.pose_estimate = None

    def activate_work(self) -> None:
        # Every activation starts over: auto estimates the pose anew, a given pose is checked anew, both
        # on the first frame that arrives (activation itself cannot wait for frames).
        self._activation += 1
        self._pose_checked = False
        self._latest = None
        with self._lock:
            self.pose_estimate = None
        if self._source == "config":
            self._send_camera_pose(self._T_config)

    def _send_camera_pose(self, T_workspace_camera: np.ndarray) -> None:
        if self.static_tf is not None:
            self.static_tf.send(T_workspace_camera, self.workspace.frame_id, self.param("camera_frame"), self.now_s())

    def camera_pose(self, frame_id: str, stamp) -> np.ndarray | None:
        """The pose of ``frame_id`` in the workspace; ``None`` while ``auto`` has no estimate yet."""
        if self._tf_buffer is None:
            if frame_id != self.param("camera_frame"):
                if self._source == "auto":
                    raise CameraPoseError(f"no estimated pose for frame {frame_id!r} (camera_pose_source auto "
                                          f"estimates the pose of camera_frame {self.param('camera_frame')!r})")
                raise CameraPoseError(f"no calibrated pose for frame {frame_id!r} (the extrinsic in config "
                                      f"is for {self.param('camera_frame')!r})")
            if self._source == "auto":
                estimate = self.pose_estimate
                return None if estimate is None else estimate.T_workspace_camera
            return self._T_config
        from rclpy.duration import Duration
        from rclpy.time import Time
        from tf2_ros import TransformException

        from ..geometry import pose_from_quaternion

        try:
            t = self._tf_buffer.lookup_transform(self.workspace.frame_id, frame_id, Time.from_msg(stamp),
                                                 timeout=Duration(seconds=self.param("max_pose_age_s")))
        except TransformException as error:
            raise CameraPoseError(f"camera pose {self.workspace.frame_id} <- {frame_id} missing or stale: "
                                  f"{error}") from error
        tr, q = t.transform.translation, t.transform.rotation
        return pose_from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))

    def _on_info(self, info: CameraInfo) -> None:
        try:  # one over the limits or inconsistent is never paired with an image
            check_camera_info(info, self.param("max_image_pixels"), self.param("max_name_length"))
        except ValueError as error:
            self.report(f"camera info refused: {describe_error(error)}")
            return
        self._infos.add(info)

    @guarded
    def _on_image(self, image: Image) -> None:
        check_image_size(image, self.param("max_image_pixels"), self.param("max_name_length"))  # before any copy
        T = self.camera_pose(image.header.frame_id, image.header.stamp)
        info = self._infos.for_image(image)
        if info is None:
            self.report(f"no camera info for frame {image.header.frame_id!r} at {image.width}x{image.height} "
                        "yet: image dropped", level="warning")
            return
        frame = msgs_to_depth_frame(image, info)
        self._latest = frame
        if self._source == "auto":
            if T is None and not self._estimate_pose(frame):
                return  # no pose yet: reported, the next frame tries again
        elif not self._pose_checked:
            self._check_given_pose(frame, T)
        with self._lock:
            if self._source == "auto":  # the newest estimate (~/calibrate_workspace may have replaced it)
                if self.pose_estimate is None:
                    return
                T = self.pose_estimate.T_workspace_camera
            self.builder.integrate(frame, T)
            if self.builder.frames_integrated < self.param("frames_per_scene"):
                return
            scene = self.builder.scene()
            self.builder.reset()
        surface, tsdf = scene_to_clouds(scene, frame.stamp)
        self.surface_pub.publish(surface)
        self.tsdf_pub.publish(tsdf)

    # -- the camera pose from the depth (auto) and the check of a given one (config, tf) --------------
    def _estimate(self, frame):
        from ..scene.table import estimate_workspace

        size = self.workspace.size_m
        return estimate_workspace(frame, size_m=(size, size), height_m=size,
                                  table_height_m=self.workspace.table_height_m)

    def _estimate_pose(self, frame) -> bool:
        """Estimate the pose from ``frame`` unless another frame's estimate is under way; True once one exists."""
        if not self._pose_lock.acquire(blocking=False):
            return False  # this frame is dropped; the estimate under way decides
        try:
            if self.pose_estimate is not None:
                return True
            activation = self._activation
            try:
                estimate = self._estimate(frame)
            except ValueError as error:  # no table, camera looking away, too little depth: report, try again
                self.report(f"camera pose estimation failed (camera_pose_source auto; trying again on the next "
                            f"frame): {error}")
                return False
            return self._use_estimate(estimate, "from the first frame after activation", activation)
        finally:
            self._pose_lock.release()

    def _use_estimate(self, estimate, how: str, activation: int) -> bool:
        """Fuse with ``estimate`` from now on (the scene fused so far is dropped) and log it."""
        with self._lock:
            if activation != self._activation or self.builder is None:
                return False  # re-activated (or cleaned up) while estimating: this estimate is outdated
            self.pose_estimate = estimate
            self.builder.reset()  # frames fused so far used another pose
        self._send_camera_pose(estimate.T_workspace_camera)
        self.get_logger().info(f"camera pose estimated {how}: {describe_estimate(estimate)}")
        if estimate.warnings:
            self.report("camera pose estimate: " + "; ".join(estimate.warnings), level="warning")
        return True

    def _check_given_pose(self, frame, T: np.ndarray) -> None:
        """Once per activation: does the given pose put the table the depth shows where the workspace has it?"""
        if not self._pose_lock.acquire(blocking=False):
            return  # another frame is being checked
        try:
            if self._pose_checked:
                return
            self._pose_checked = True
            from ..scene.table import check_camera_pose

            half = 0.5 * self.workspace.size_m
            try:
                check = check_camera_pose(frame, T, self.workspace.table_height_m, (half, half))
            except ValueError as error:  # too little depth to fit anything: say so, do not retry every frame
                self.report(f"camera pose check skipped: {error}", level="warning")
                return
            given = f"the {self._source} pose of {frame.frame_id!r}"
            if check.warnings:
                self.report(f"camera pose check ({given}): " + "; ".join(check.warnings)
                            + ". For this node: calibrate T_workspace_camera again, or set camera_pose_source: "
                            "auto to estimate the pose from the depth", level="warning")
            else:
                self.get_logger().info(f"camera pose check ({given}): the table is {check.height_error_m * 100:+.1f} "
                                       f"cm off its expected height, tilted {check.tilt_deg:.1f} deg")
        finally:
            self._pose_lock.release()

    # -- services --------------------------------------------------------------------------------------
    @trigger_service
    def _on_reset(self, request, response):
        with self._lock:
            if self.builder is None:
                response.success, response.message = False, self.report("reset: node is not configured")
                return response
            self.builder.reset()
        response.success, response.message = True, "scene cleared"
        return response

    @trigger_service
    def _on_calibrate(self, request, response):
        response.success = False
        if self.builder is None:
            response.message = self.report("calibrate_workspace: node is not configured")
            return response
        if self._source != "auto":
            response.message = self.report(
                f"calibrate_workspace: camera_pose_source is {self._source!r}, whose camera pose is not "
                "overridden; set camera_pose_source: auto (and configure again) to estimate it from the depth")
            return response
        if not self.active:
            response.message = self.report("calibrate_workspace: node is not active")
            return response
        frame = self._latest
        if frame is None:
            response.message = self.report("calibrate_workspace: no depth frame of "
                                           f"{self.param('camera_frame')!r} received since activation")
            return response
        with self._pose_lock:  # waits for an estimate under way
            activation = self._activation
            try:
                estimate = self._estimate(frame)
            except ValueError as error:
                kept = "the previous camera pose is kept" if self.pose_estimate is not None else "no camera pose yet"
                response.message = self.report(f"calibrate_workspace failed ({kept}): {error}")
                return response
            if not self._use_estimate(estimate, "by calibrate_workspace", activation):
                response.message = self.report("calibrate_workspace: the node was re-activated meanwhile")
                return response
        response.success, response.message = True, describe_estimate(estimate)
        return response


def describe_estimate(estimate) -> str:
    """The estimate's diagnostics and pose as one JSON object (``T_workspace_camera`` row-major, as the
    ``config`` pose source takes it)."""
    T = estimate.T_workspace_camera
    return json.dumps({**estimate.diagnostics(),
                       "camera_position_m": [round(float(v), 4) for v in T[:3, 3]],
                       "T_workspace_camera": [round(float(v), 6) for v in T.reshape(-1)]})


def main(args=None) -> None:
    run(SceneBuilderNode, args)
