"""The depth image that travels through the pipeline."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .intrinsics import CameraIntrinsics


class DepthError(ValueError):
    """A depth image that cannot be used (wrong type or size, nothing valid in it)."""


@dataclass
class DepthFrame:
    """A metric depth image: ``depth_m[v, u]`` in metres along the optical axis, 0 where invalid.

    ``frame_id`` names the optical frame (x right, y down, z forward); ``stamp`` is seconds (epoch).
    """

    depth_m: np.ndarray
    intrinsics: CameraIntrinsics
    frame_id: str = "camera_depth_optical_frame"
    stamp: float = field(default_factory=time.time)

    def __post_init__(self):
        self.depth_m = validate_depth(self.depth_m, self.intrinsics)

    @property
    def valid_mask(self) -> np.ndarray:
        return self.depth_m > 0.0

    @property
    def valid_fraction(self) -> float:
        return float(self.valid_mask.mean())

    @classmethod
    def from_raw(cls, raw: np.ndarray, intrinsics: CameraIntrinsics, depth_scale: float,
                 **kwargs) -> "DepthFrame":
        """From sensor units (e.g. uint16 z16 with ``depth_scale`` = 0.001 m per unit)."""
        raw = np.asarray(raw)
        if not np.issubdtype(raw.dtype, np.integer) and not np.issubdtype(raw.dtype, np.floating):
            raise DepthError(f"depth must be numeric, got dtype {raw.dtype}")
        # A zero, negative or non-finite scale would silently make every pixel invalid.
        if not 0 < depth_scale < np.inf:
            raise DepthError(f"depth_scale must be positive and finite (metres per unit), got {depth_scale}")
        depth = raw.astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, made invalid by validate_depth
            depth *= np.float32(depth_scale)  # in place: a 0-d array stays one (a product would be a scalar)
        return cls(depth, intrinsics, **kwargs)

    def clipped(self, near_m: float, far_m: float) -> "DepthFrame":
        """Copy with depths outside [near, far] marked invalid."""
        depth = np.where((self.depth_m >= near_m) & (self.depth_m <= far_m), self.depth_m, 0.0)
        return DepthFrame(depth.astype(np.float32), self.intrinsics, self.frame_id, self.stamp)

    def to_points(self, stride: int = 1) -> np.ndarray:
        """Valid pixels back-projected to (N, 3) points in the camera optical frame."""
        K = self.intrinsics
        v, u = np.nonzero(self.depth_m[::stride, ::stride])
        v, u = v * stride, u * stride
        z = self.depth_m[v, u]
        return np.column_stack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z])


def validate_depth(depth, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Check a metric depth image against its intrinsics; returns it as float32 with invalid = 0."""
    if not isinstance(depth, np.ndarray):
        raise DepthError(f"depth must be a numpy array, got {type(depth).__name__}")
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2 or depth.size == 0:
        raise DepthError(f"depth must be a single-channel HxW image, got shape {depth.shape}")
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise DepthError(size_mismatch_message(depth.shape[1], depth.shape[0], intrinsics))
    if not np.issubdtype(depth.dtype, np.floating):
        raise DepthError(
            f"metric depth must be floating point metres, got {depth.dtype} "
            "(use DepthFrame.from_raw with the sensor's depth scale for integer images)"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, made invalid (0) next
        depth = depth.astype(np.float32, copy=True)
    depth[~np.isfinite(depth) | (depth < 0.0)] = 0.0
    return depth


def size_mismatch_message(width: int, height: int, intrinsics: CameraIntrinsics) -> str:
    """One line: the intrinsics are for another image size than the depth's, and what to do."""
    message = (f"the intrinsics are {intrinsics.width}x{intrinsics.height} but the depth is {width}x{height}: "
               "use the intrinsics of this stream")
    factor = width / intrinsics.width
    if abs(height - intrinsics.height * factor) < 1.0:  # same aspect ratio: maybe the same mode, resized
        return f"{message}, or CameraIntrinsics.scaled({factor:g}) if it is the same sensor mode resized"
    return (f"{message} ({intrinsics.width / intrinsics.height:.3g} vs {width / height:.3g} aspect: another "
            "sensor mode, which CameraIntrinsics.scaled cannot convert)")
