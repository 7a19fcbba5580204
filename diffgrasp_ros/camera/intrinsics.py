"""Pinhole camera intrinsics (OpenCV / ROS CameraInfo convention, no distortion)."""
from __future__ import annotations

import json
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
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not (0 < self.fx < math.inf and 0 < self.fy < math.inf):
            raise ValueError(f"focal lengths must be positive and finite, got fx={self.fx}, fy={self.fy}")
        # A principal point off the image is a calibration of another resolution or crop, or
        # fields mixed up (e.g. a 1280x720 calibration's cx = 640 given to a 320-wide stream).
        if not (0.0 <= self.cx <= self.width and 0.0 <= self.cy <= self.height):
            raise ValueError(
                f"principal point (cx={self.cx:g}, cy={self.cy:g}) lies outside the {self.width}x{self.height} "
                "image: these intrinsics belong to another resolution or the fields are mixed up"
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
        """Accepts ``{width, height, fx, fy, cx, cy}`` or a ROS camera-calibration / CameraInfo dict."""
        if "camera_matrix" in data or "k" in data or "K" in data:
            K = data.get("camera_matrix", data.get("k", data.get("K")))
            K = np.asarray(K["data"] if isinstance(K, dict) else K, dtype=float).reshape(3, 3)
            width = data.get("image_width", data.get("width"))
            height = data.get("image_height", data.get("height"))
            return cls(int(width), int(height), K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        missing = {"width", "height", "fx", "fy", "cx", "cy"} - set(data)
        if missing:
            raise ValueError(f"camera intrinsics are missing {sorted(missing)}")
        return cls(int(data["width"]), int(data["height"]), float(data["fx"]), float(data["fy"]),
                   float(data["cx"]), float(data["cy"]))

    @classmethod
    def load(cls, path: str | Path) -> "CameraIntrinsics":
        """Load from JSON or YAML (plain fields, or a ROS ``camera_calibration`` file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"camera intrinsics file not found: {path}")
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of intrinsics, got {type(data).__name__}")
        return cls.from_dict(data)


# The simulated camera of the VGN / GIGA / IGD clutter-removal protocol.
SIM_CAMERA = CameraIntrinsics(width=640, height=480, fx=540.0, fy=540.0, cx=320.0, cy=240.0)
