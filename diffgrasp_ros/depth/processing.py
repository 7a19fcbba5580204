"""Depth processing between capture and scene building."""
from __future__ import annotations

from ..camera.frame import DepthError, DepthFrame

DEPTH_MODES = ("passthrough",)
# Learned modes named by the product but not built yet: asking for them must fail loudly.
_PLANNED_MODES = {"restore": "learned depth restoration", "graft": "diffusion noise grafting"}


class DepthProcessor:
    """Clips depth to the sensor's working range and rejects frames with nothing usable left."""

    def __init__(self, mode: str = "passthrough", min_depth_m: float = 0.1, max_depth_m: float = 2.0):
        if mode in _PLANNED_MODES:
            raise NotImplementedError(f"depth mode {mode!r} ({_PLANNED_MODES[mode]}) is not available yet; "
                                      f"available: {list(DEPTH_MODES)}")
        if mode not in DEPTH_MODES:
            raise ValueError(f"unknown depth mode {mode!r}: choose one of {list(DEPTH_MODES)}")
        if not 0.0 <= min_depth_m < max_depth_m:
            raise ValueError(f"depth range must satisfy 0 <= min < max, got [{min_depth_m}, {max_depth_m}]")
        self.mode = mode
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m

    def process(self, frame: DepthFrame) -> DepthFrame:
        if not frame.valid_mask.any():
            raise DepthError("depth frame has no valid pixels (all zero, NaN or negative)")
        clipped = frame.clipped(self.min_depth_m, self.max_depth_m)
        if not clipped.valid_mask.any():
            raise DepthError(f"no depth left inside [{self.min_depth_m}, {self.max_depth_m}] m: "
                             "is the depth scale right (metres vs millimetres)?")
        return clipped
