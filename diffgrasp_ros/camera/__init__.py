"""Depth capture: frames, intrinsics and sources (files, RealSense; the simulated camera lives in sim/)."""
from .files import FileDepthSource, load_calibration, load_depth_image, load_extrinsics
from .frame import DepthError, DepthFrame, validate_depth
from .intrinsics import SIM_CAMERA, CameraIntrinsics
from .realsense import CameraNotFoundError, RealSenseConfig, RealSenseSource

__all__ = ["CameraIntrinsics", "CameraNotFoundError", "DepthError", "DepthFrame", "FileDepthSource",
           "RealSenseConfig", "RealSenseSource", "SIM_CAMERA", "load_calibration", "load_depth_image",
           "load_extrinsics", "validate_depth"]
