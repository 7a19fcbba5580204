"""Depth images in the ROS conventions (REP 118), as plain fields: no ROS import needed.

Shared by the ROS nodes (rclpy messages) and the rosbag2 replay source (rosbags messages), which
expose the same fields.
"""
from __future__ import annotations

import numpy as np

from .frame import DepthError, DepthFrame
from .intrinsics import CameraIntrinsics

# REP 118: 32FC1 is metres; 16UC1 (and mono16, as some drivers publish it) is millimetres.
DEPTH_ENCODINGS = {"32FC1": (np.float32, 1.0), "16UC1": (np.uint16, 0.001), "mono16": (np.uint16, 0.001)}


def intrinsics_from_camera_info(width: int, height: int, k) -> CameraIntrinsics:
    k = np.asarray(k, dtype=float).reshape(-1)
    if k.size != 9 or k[0] <= 0 or k[4] <= 0:
        raise DepthError(f"camera info has no valid K matrix (fx, fy must be > 0), got {k.tolist()}")
    return CameraIntrinsics(int(width), int(height), k[0], k[4], k[2], k[5])


def depth_from_image_fields(encoding: str, height: int, width: int, step: int, is_bigendian: int,
                            data, intrinsics: CameraIntrinsics, frame_id: str, stamp: float) -> DepthFrame:
    """A ``DepthFrame`` from the fields of a ``sensor_msgs/Image``; every inconsistency is a DepthError."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(f"unsupported depth encoding {encoding!r}: expected one of {sorted(DEPTH_ENCODINGS)}")
    if (width, height) != (intrinsics.width, intrinsics.height):
        raise DepthError(f"depth image is {width}x{height} but the camera info says "
                         f"{intrinsics.width}x{intrinsics.height}")
    dtype, scale = DEPTH_ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    try:
        buffer = np.frombuffer(data, dtype=np.uint8)  # bytes, array.array (rclpy), uint8 ndarray (rosbags)
    except TypeError:
        buffer = np.asarray(data, dtype=np.uint8)
    if step < width * itemsize or buffer.size != step * height:
        raise DepthError(f"image data is {buffer.size} bytes, expected step {step} x height {height} "
                         f"with step >= {width * itemsize} for {encoding}")
    rows = buffer.reshape(height, step)[:, : width * itemsize]
    image = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(">" if is_bigendian else "<"))
    return DepthFrame.from_raw(image.astype(dtype), intrinsics, scale, frame_id=frame_id, stamp=stamp)


def depth_to_image_fields(frame: DepthFrame, encoding: str = "32FC1") -> dict:
    """The fields of a ``sensor_msgs/Image`` (little-endian) for a depth frame."""
    if encoding == "32FC1":
        image = frame.depth_m.astype("<f4")
    elif encoding in ("16UC1", "mono16"):
        # Millimetres, rounded; beyond 65.535 m cannot be represented and becomes invalid (0).
        mm = np.round(frame.depth_m * 1000.0)
        image = np.where(mm <= np.iinfo(np.uint16).max, mm, 0).astype("<u2")
    else:
        raise DepthError(f"unsupported depth encoding {encoding!r}: expected one of {sorted(DEPTH_ENCODINGS)}")
    height, width = image.shape
    return {"encoding": encoding, "height": height, "width": width, "is_bigendian": 0,
            "step": width * image.itemsize, "data": image.tobytes()}


def camera_info_fields(intrinsics: CameraIntrinsics) -> dict:
    """``sensor_msgs/CameraInfo`` fields of an undistorted pinhole camera."""
    K = intrinsics
    return {
        "width": K.width, "height": K.height, "distortion_model": "plumb_bob",
        "d": [0.0] * 5,
        "k": [K.fx, 0.0, K.cx, 0.0, K.fy, K.cy, 0.0, 0.0, 1.0],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [K.fx, 0.0, K.cx, 0.0, 0.0, K.fy, K.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    }
