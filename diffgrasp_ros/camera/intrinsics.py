"""Pinhole camera intrinsics (OpenCV / ROS CameraInfo convention, no distortion)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got width={self.width}, height={self.height}")
        if not (0 < self.fx < math.inf and 0 < self.fy < math.inf):
            raise ValueError(f"focal lengths must be positive and finite, got fx={self.fx}, fy={self.fy}")
        # A principal point off the image is a calibration of another resolution or crop, or
        # fields mixed up (e.g. a 1280x720 calibration's cx = 640 given to a 320-wide stream).
        if not (0.0 <= self.cx <= self.width and 0.0 <= self.cy <= self.height):
            raise ValueError(
                f"principal point (cx={self.cx:g}, cy={self.cy:g}) lies outside the {self.width}x{self.height} "
                f"image (width={self.width}, height={self.height}): these intrinsics belong to another resolution "
                "or the fields are mixed up"
            )

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, factor: float) -> "CameraIntrinsics":
        """The same camera with its image resized by ``factor`` (e.g. 0.5 for a 1280x720
        calibration used on the 640x360 stream of the same sensor mode)."""
        return CameraIntrinsics(
            round(self.width * factor), round(self.height * factor),
            self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CameraIntrinsics":
        """Accepts ``{width, height, fx, fy, cx, cy}`` or a ROS camera-calibration / CameraInfo dict.
        Anything else (missing, non-numeric, fractional sizes, a matrix of another size) is a ValueError
        naming the field."""
        matrix_key = next((key for key in ("camera_matrix", "k", "K") if key in data), None)
        if matrix_key is not None:
            K = data[matrix_key]
            values = K.get("data") if isinstance(K, dict) else K
            try:
                K = np.asarray(values, dtype=float)
            except (TypeError, ValueError, OverflowError):
                K = None
            if K is None or K.size != 9:
                raise ValueError(f"camera intrinsics {matrix_key!r} must be a 3x3 matrix (9 numbers, row-major), "
                                 f"got {values!r}")
            K = K.reshape(3, 3)
            width_key = "image_width" if "image_width" in data else "width"
            height_key = "image_height" if "image_height" in data else "height"
            missing = [key for key in (width_key, height_key) if key not in data]
            if missing:
                raise ValueError(f"camera intrinsics are missing {missing} (image_width/image_height or width/height)")
            return cls(_whole(data[width_key], width_key), _whole(data[height_key], height_key),
                       K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        missing = {"width", "height", "fx", "fy", "cx", "cy"} - set(data)
        if missing:
            raise ValueError(f"camera intrinsics are missing {sorted(missing)}")
        return cls(_whole(data["width"], "width"), _whole(data["height"], "height"),
                   *(_real(data[key], key) for key in ("fx", "fy", "cx", "cy")))

    @classmethod
    def load(cls, path: str | Path) -> "CameraIntrinsics":
        """Load from JSON or YAML (plain fields, or a ROS ``camera_calibration`` file); ValueError naming the file."""
        from .files import read_structured  # files.py imports this module

        path = Path(path)
        data = read_structured(path, "camera intrinsics file")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of intrinsics, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def _whole(value, name: str) -> int:
    """A size read from YAML / JSON: an int, or a float or string holding a whole number (640.0, "640")."""
    if not isinstance(value, bool):  # YAML reads `yes` as True, which int() would take for 1
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number) and number.is_integer():
            return int(number)
    raise ValueError(f"camera intrinsics {name} must be a whole number of pixels, got {value!r}")


def _real(value, name: str) -> float:
    if not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
            pass
    raise ValueError(f"camera intrinsics {name} must be a number, got {value!r}")


# The simulated camera of the VGN / GIGA / IGD clutter-removal protocol.
SIM_CAMERA = CameraIntrinsics(width=640, height=480, fx=540.0, fy=540.0, cx=320.0, cy=240.0)
