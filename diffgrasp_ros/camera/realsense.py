"""Intel RealSense D415/D435 depth through pyrealsense2: a live camera or a recording.

pyrealsense2 is imported inside the functions that need it, so this module (and the package)
imports on machines without the SDK.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frame import DepthError, DepthFrame
from .intrinsics import CameraIntrinsics


class CameraNotFoundError(RuntimeError):
    """No RealSense device (or not the requested one) is connected."""


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise ImportError(
            "RealSense support needs the Intel RealSense SDK Python bindings: pip install pyrealsense2"
        ) from exc
    return rs


@dataclass
class RealSenseConfig:
    """Depth stream and post-processing settings.

    The defaults keep full resolution and only the edge-preserving spatial filter: temporal
    filtering blends in frames from before the last ``read()``, which in a grasp loop can be
    from before the scene changed, and hole filling invents surfaces where the camera saw none.
    """

    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    decimation: int = 1  # filter magnitude, 1 = off; 2 halves the resolution and the intrinsics
    spatial: bool = True
    temporal: bool = False
    hole_filling: bool = False
    min_depth_m: float = 0.1
    max_depth_m: float = 2.0
    frame_id: str = "camera_depth_optical_frame"
    timeout_ms: int = 5000
    playback_path: str | Path | None = None  # a RealSense recording (.bag, or .db3 from SDK >= 2.57)

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"stream must have positive size and rate, got {self.width}x{self.height}@{self.fps}")
        if not 1 <= self.decimation <= 8:
            raise ValueError(f"decimation must be 1 (off) to 8, got {self.decimation}")
        if not 0.0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError(f"need 0 <= min_depth_m < max_depth_m, got {self.min_depth_m}, {self.max_depth_m}")
        if self.timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {self.timeout_ms}")


class RealSenseFilterChain:
    """The SDK post-processing filters in Intel's recommended order: decimation, depth to disparity,
    spatial, temporal, disparity to depth, hole filling. The spatial and temporal filters work in
    the disparity domain, where stereo noise is uniform; the transforms are left out without them.

    The temporal filter keeps state, so use one chain per stream.
    """

    def __init__(self, decimation: int = 1, spatial: bool = False, temporal: bool = False,
                 hole_filling: bool = False):
        rs = _rs()
        self.filters: list[tuple[str, object]] = []
        if decimation > 1:
            decimate = rs.decimation_filter()
            decimate.set_option(rs.option.filter_magnitude, decimation)
            self.filters.append(("decimation", decimate))
        if spatial or temporal:
            self.filters.append(("depth_to_disparity", rs.disparity_transform(True)))
            if spatial:
                self.filters.append(("spatial", rs.spatial_filter()))
            if temporal:
                self.filters.append(("temporal", rs.temporal_filter()))
            self.filters.append(("disparity_to_depth", rs.disparity_transform(False)))
        if hole_filling:
            self.filters.append(("hole_filling", rs.hole_filling_filter()))

    @classmethod
    def from_config(cls, config: RealSenseConfig) -> "RealSenseFilterChain":
        return cls(config.decimation, config.spatial, config.temporal, config.hole_filling)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.filters]

    def process(self, depth_frame):
        """``rs.depth_frame`` in, filtered ``rs.depth_frame`` out."""
        frame = depth_frame
        for _, block in self.filters:
            frame = block.process(frame)
        return frame.as_depth_frame()


def intrinsics_from_rs(intrinsics) -> CameraIntrinsics:
    """From ``rs.intrinsics``. D400 depth is rectified (zero distortion), so nothing is lost."""
    return CameraIntrinsics(intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy,
                            intrinsics.ppx, intrinsics.ppy)


def decimated_intrinsics(intrinsics: CameraIntrinsics, magnitude: int) -> CameraIntrinsics:
    """The intrinsics of the SDK decimation filter's output: focal lengths and principal point
    divided by the magnitude, width and height divided and padded up to a multiple of 4."""
    if magnitude <= 1:
        return intrinsics

    def padded(size: int) -> int:
        return -(-(size // magnitude) // 4) * 4

    return CameraIntrinsics(padded(intrinsics.width), padded(intrinsics.height),
                            intrinsics.fx / magnitude, intrinsics.fy / magnitude,
                            intrinsics.cx / magnitude, intrinsics.cy / magnitude)


def depth_frame_to_frame(rs_depth_frame, frame_id: str = "camera_depth_optical_frame",
                         min_depth_m: float = 0.0, max_depth_m: float = math.inf) -> DepthFrame:
    """A z16 ``rs.depth_frame`` as a metric DepthFrame, depths outside [min, max] marked invalid.

    Units come from the frame itself (D400 default 1 mm, but it is a device setting), intrinsics
    from the frame's own profile (decimation changes them), ``stamp`` from the frame timestamp,
    which is host epoch time in the SDK's default global-time domain.
    """
    rs = _rs()
    profile = rs_depth_frame.get_profile().as_video_stream_profile()
    if profile.format() != rs.format.z16:
        raise DepthError(
            f"expected a z16 depth frame, got {profile.format()} "
            "(a disparity frame must go through disparity_transform(False) first)"
        )
    depth = rs_depth_frame.as_depth_frame()
    frame = DepthFrame.from_raw(
        np.asanyarray(depth.get_data()), intrinsics_from_rs(profile.get_intrinsics()),
        depth.get_units(), frame_id=frame_id, stamp=depth.get_timestamp() / 1000.0,
    )
    return frame.clipped(min_depth_m, max_depth_m)


class RealSenseSource:
    """Filtered metric depth frames from a RealSense camera or a recording of one.

    ``with RealSenseSource(RealSenseConfig(decimation=2)) as camera: frame = camera.read()``
    """

    def __init__(self, config: RealSenseConfig | None = None):
        self.config = config or RealSenseConfig()
        self._pipeline = None
        self._playback = None
        self._filters: RealSenseFilterChain | None = None
        self._stream_intrinsics: CameraIntrinsics | None = None
        self._depth_scale: float | None = None

    def start(self) -> "RealSenseSource":
        if self._pipeline is not None:
            return self
        rs = _rs()
        config = self.config
        pipeline = rs.pipeline()
        rs_config = rs.config()
        if config.playback_path is not None:
            self._configure_playback(rs, pipeline, rs_config, Path(config.playback_path))
            what = f"playback of {config.playback_path}"
        else:
            self._require_device(rs)
            if config.serial:
                rs_config.enable_device(config.serial)
            rs_config.enable_stream(rs.stream.depth, config.width, config.height, rs.format.z16, config.fps)
            what = f"RealSense depth stream {config.width}x{config.height} z16 @ {config.fps} fps"
        try:
            profile = pipeline.start(rs_config)
        except RuntimeError as exc:
            raise RuntimeError(f"cannot start the {what}: {exc}") from exc
        device = profile.get_device()
        if device.is_playback():
            self._playback = device.as_playback()
            self._playback.set_real_time(False)
        self._depth_scale = device.first_depth_sensor().get_depth_scale()
        self._stream_intrinsics = intrinsics_from_rs(
            profile.get_stream(rs.stream.depth).as_video_stream_profile().get_intrinsics()
        )
        self._filters = RealSenseFilterChain.from_config(config)
        self._pipeline = pipeline
        return self

    @staticmethod
    def _configure_playback(rs, pipeline, rs_config, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"RealSense recording not found: {path}")
        rs_config.enable_device_from_file(str(path), repeat_playback=False)
        rs_config.enable_stream(rs.stream.depth)  # at whatever resolution was recorded
        try:
            resolved = rs_config.resolve(rs.pipeline_wrapper(pipeline))
        except RuntimeError as exc:
            raise RuntimeError(f"cannot play back {path}: {exc}") from exc
        # Resolving puts the playback device in the pipeline's context and start() reuses it.
        # Switching to non-real-time now, before anything streams, makes playback wait for each
        # read; switched after start(), frames recorded close together are dropped meanwhile.
        resolved.get_device().as_playback().set_real_time(False)

    def _require_device(self, rs) -> None:
        devices = rs.context().query_devices()
        if len(devices) == 0:
            raise CameraNotFoundError(
                "no RealSense device is connected (check the USB 3 cable and the udev rules; "
                "rs-enumerate-devices lists what the SDK sees)"
            )
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices
                   if d.supports(rs.camera_info.serial_number)]
        if self.config.serial and self.config.serial not in serials:
            raise CameraNotFoundError(
                f"RealSense {self.config.serial} is not connected; connected: "
                f"{', '.join(serials) or 'only devices that report no serial number'}"
            )

    def read(self) -> DepthFrame:
        """The next depth frame, filtered, in metres; EOFError at the end of a recording."""
        self._require_started()
        rs = _rs()
        ok, frames = self._pipeline.try_wait_for_frames(self.config.timeout_ms)
        if not ok:
            if self._playback is not None and self._playback.current_status() == rs.playback_status.stopped:
                raise EOFError(f"end of the RealSense recording {self.config.playback_path}")
            raise TimeoutError(
                f"no depth frame from the RealSense within {self.config.timeout_ms} ms "
                "(unplugged, or on a USB 2 port that cannot carry this stream?)"
            )
        filtered = self._filters.process(frames.get_depth_frame())
        return depth_frame_to_frame(filtered, self.config.frame_id, self.config.min_depth_m,
                                    self.config.max_depth_m)

    def stop(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._playback = self._filters = self._stream_intrinsics = self._depth_scale = None
        if pipeline is not None:
            pipeline.stop()

    def __enter__(self) -> "RealSenseSource":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The intrinsics of the frames ``read()`` returns (after decimation)."""
        self._require_started()
        return decimated_intrinsics(self._stream_intrinsics, self.config.decimation)

    @property
    def depth_scale(self) -> float:
        """Metres per z16 unit, as the depth sensor reports it."""
        self._require_started()
        return self._depth_scale

    def _require_started(self) -> None:
        if self._pipeline is None:
            raise RuntimeError("RealSenseSource is not started: call start() or use it in a with block")
