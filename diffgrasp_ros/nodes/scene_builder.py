"""``scene_builder``: depth + CameraInfo + camera pose -> TSDF and surface cloud of the workspace."""
from __future__ import annotations

import threading

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from ..geometry import is_rigid_transform
from ..scene import SceneBuilder
from .base import DiffgraspNode, guarded, run
from .conversions import msgs_to_depth_frame, scene_to_clouds


class CameraPoseError(RuntimeError):
    """No usable camera pose for a frame (unknown frame, missing or stale transform)."""


class SceneBuilderNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("scene_builder", **kwargs)
        self.declare_workspace()
        self.declare("frames_per_scene", 1, "depth frames fused into each published scene")
        self.declare("cloud_resolution", 80, "voxels per edge of the fine volume behind the surface cloud")
        self.declare("camera_pose_source", "config",
                     "'tf' (look the camera up in TF; needs tf2_ros) or 'config' (the calibrated extrinsic below)")
        self.declare("camera_frame", "camera_depth_optical_frame",
                     "optical frame the calibrated extrinsic belongs to (config pose source)")
        self.declare("T_workspace_camera", [0.0] * 16,
                     "calibrated camera pose, row-major 4x4 (config pose source)")
        self.declare("max_pose_age_s", 0.5, "a TF pose older than this relative to the image is stale")
        self.builder: SceneBuilder | None = None
        self._lock = threading.Lock()
        self._tf_buffer = None

    def configure(self) -> None:
        self.workspace = self.workspace_from_params()
        if self.param("frames_per_scene") < 1:
            raise ValueError("frames_per_scene must be at least 1")
        source = self.param("camera_pose_source")
        if source == "config":
            T = np.asarray(self.param("T_workspace_camera"), dtype=float).reshape(4, 4)
            if not is_rigid_transform(T):
                raise ValueError("T_workspace_camera is not a calibrated rigid transform (set it in config/)")
            self._T_config = T
        elif source == "tf":
            try:
                from tf2_ros import Buffer, TransformListener
            except ImportError as error:
                raise ValueError("camera_pose_source 'tf' needs tf2_ros, which is not installed; "
                                 "use 'config' with a calibrated T_workspace_camera") from error
            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self)
        else:
            raise ValueError(f"camera_pose_source must be 'tf' or 'config', got {source!r}")
        self.builder = SceneBuilder(self.workspace, cloud_resolution=self.param("cloud_resolution"))
        self._infos: dict[str, CameraInfo] = {}  # latest calibration per camera frame
        self.surface_pub = self.publisher(PointCloud2, "scene/surface")
        self.tsdf_pub = self.publisher(PointCloud2, "scene/tsdf")
        self.subscription(CameraInfo, "depth/processed/camera_info", self._on_info)
        self.subscription(Image, "depth/processed/image", self._on_image)
        self.service(Trigger, "~/reset", self._on_reset)

    def cleanup(self) -> None:
        self.builder = None
        self._tf_buffer = None

    def camera_pose(self, frame_id: str, stamp) -> np.ndarray:
        if self._tf_buffer is None:
            if frame_id != self.param("camera_frame"):
                raise CameraPoseError(f"no calibrated pose for frame {frame_id!r} (the extrinsic in config "
                                      f"is for {self.param('camera_frame')!r})")
            return self._T_config
        from rclpy.duration import Duration
        from rclpy.time import Time

        from ..geometry import pose_from_quaternion

        try:
            t = self._tf_buffer.lookup_transform(self.workspace.frame_id, frame_id, Time.from_msg(stamp),
                                                 timeout=Duration(seconds=self.param("max_pose_age_s")))
        except Exception as error:  # tf2 raises several lookup/extrapolation exception types
            raise CameraPoseError(f"camera pose {self.workspace.frame_id} <- {frame_id} missing or stale: "
                                  f"{error}") from error
        tr, q = t.transform.translation, t.transform.rotation
        return pose_from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))

    def _on_info(self, info: CameraInfo) -> None:
        self._infos[info.header.frame_id] = info

    @guarded
    def _on_image(self, image: Image) -> None:
        T = self.camera_pose(image.header.frame_id, image.header.stamp)
        info = self._infos.get(image.header.frame_id)
        if info is None:
            self.report(f"no camera info for frame {image.header.frame_id!r} yet: image dropped", level="warning")
            return
        frame = msgs_to_depth_frame(image, info)
        with self._lock:
            self.builder.integrate(frame, T)
            if self.builder.frames_integrated < self.param("frames_per_scene"):
                return
            scene = self.builder.scene()
            self.builder.reset()
        surface, tsdf = scene_to_clouds(scene, frame.stamp)
        self.surface_pub.publish(surface)
        self.tsdf_pub.publish(tsdf)

    def _on_reset(self, request, response):
        with self._lock:
            if self.builder is None:
                response.success, response.message = False, self.report("reset: node is not configured")
                return response
            self.builder.reset()
        response.success, response.message = True, "scene cleared"
        return response


def main(args=None) -> None:
    run(SceneBuilderNode, args)
