"""``depth_processor``: depth in, processed depth out (passthrough, learned restore, or noise graft)."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..depth import DEPTH_MODES, DepthProcessor
from .base import DiffgraspNode, describe_error, guarded, run
from .camera_info import CameraInfoCache
from .conversions import check_camera_info, check_image_size, depth_frame_to_msgs, msgs_to_depth_frame

# The camera's topics are read reliable by default: every image arrives (a best-effort reader lost more than
# half of depth_capture's 1.2 MB images under load, and the scenes went stale). That matches depth_capture
# and realsense-ros's default depth_qos (SYSTEM_DEFAULT, which Fast DDS makes reliable). A reliable reader
# never matches a best-effort writer, without a warning, hence input_reliability: best_effort for a driver
# that publishes so (realsense-ros depth_qos:=SENSOR_DATA).
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def input_qos(reliability: str, depth: int) -> QoSProfile:
    if reliability not in RELIABILITY:
        raise ValueError(f"input_reliability must be one of {sorted(RELIABILITY)}, got {reliability!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)


class DepthProcessorNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("depth_processor", **kwargs)
        self.declare("mode", "passthrough", f"processing mode: {', '.join(DEPTH_MODES)} "
                     "(restore: the shipped learned model, depth only; graft: D435 artifacts for clean simulated depth)")
        self.declare("min_depth_m", 0.1, "nearest valid depth in metres")
        self.declare("max_depth_m", 2.0, "farthest valid depth in metres")
        self.declare("encoding", "32FC1", "output Image encoding: 32FC1 or 16UC1")
        self.declare("input_reliability", "reliable", "reliable (every image arrives; depth_capture, realsense-ros's "
                     "default) or best_effort (for a driver publishing best effort, e.g. realsense-ros "
                     "depth_qos:=SENSOR_DATA)")
        self.declare("device", "auto", "where the restore and graft models run: auto (CUDA when available, else "
                     "CPU), cpu, cuda, cuda:N")
        self.declare_input_limits()
        self.processor: DepthProcessor | None = None
        self._infos = CameraInfoCache()

    def configure(self) -> None:
        # The one place a depth model would be loaded: once, here, never per frame.
        self.processor = DepthProcessor(self.param("mode"), self.param("min_depth_m"), self.param("max_depth_m"),
                                        device=self.param("device"))
        self.image_pub = self.publisher(Image, "depth/processed/image")
        self.info_pub = self.publisher(CameraInfo, "depth/processed/camera_info")
        reliability = self.param("input_reliability")
        self.subscription(CameraInfo, "depth/camera_info", self._on_info, input_qos(reliability, 10))
        self.subscription(Image, "depth/image_raw", self._on_image, input_qos(reliability, 2))

    def cleanup(self) -> None:
        self.processor = None
        self._infos.clear()

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
        info = self._infos.for_image(image)
        if info is None:
            self.report(f"no camera info for frame {image.header.frame_id!r} at {image.width}x{image.height} "
                        "yet: image dropped", level="warning")
            return
        frame = self.processor.process(msgs_to_depth_frame(image, info))
        out_image, out_info = depth_frame_to_msgs(frame, self.param("encoding"))
        out_info.header = out_image.header = image.header  # same stamp and frame downstream
        self.image_pub.publish(out_image)
        self.info_pub.publish(out_info)


def main(args=None) -> None:
    run(DepthProcessorNode, args)
