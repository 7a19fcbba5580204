"""Depth processing between capture and scene building."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..camera.frame import DepthError, DepthFrame

DEPTH_MODES = ("passthrough", "restore")
# Learned modes named by the product but not built yet: asking for them must fail loudly.
_PLANNED_MODES = {"graft": "diffusion noise grafting"}


class DepthProcessor:
    """Clips depth to the sensor's working range and rejects frames with nothing usable left.

    ``restore`` then fills holes and fixes wrong depth with the learned restoration model
    (``depth.restoration``; the shipped ``models/depth_restore`` unless ``weights`` names a folder),
    loaded on the first frame.
    """

    def __init__(self, mode: str = "passthrough", min_depth_m: float = 0.1, max_depth_m: float = 2.0,
                 weights: str | Path | None = None):
        if mode in _PLANNED_MODES:
            raise NotImplementedError(f"depth mode {mode!r} ({_PLANNED_MODES[mode]}) is not available yet; "
                                      f"available: {list(DEPTH_MODES)}")
        if mode not in DEPTH_MODES:
            raise ValueError(f"unknown depth mode {mode!r}: choose one of {list(DEPTH_MODES)}")
        if not 0.0 <= min_depth_m < max_depth_m:
            raise ValueError(f"depth range must satisfy 0 <= min < max, got [{min_depth_m}, {max_depth_m}]")
        if weights is not None and mode != "restore":
            raise ValueError(f"weights are for the 'restore' mode, not {mode!r}")
        self.mode = mode
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        self._restorer = None
        if mode == "restore":
            from .restoration import CONFIG_FILE, DEFAULT_WEIGHTS, HOW_TO_GET, WEIGHTS_FILE

            self.weights = Path(weights) if weights is not None else DEFAULT_WEIGHTS
            for name in (CONFIG_FILE, WEIGHTS_FILE):  # fail at start-up, not on the first frame
                if not (self.weights / name).is_file():
                    raise FileNotFoundError(f"depth restoration weights not found: {self.weights / name} "
                                            f"does not exist; {HOW_TO_GET}")

    def process(self, frame: DepthFrame, ir_left: np.ndarray | None = None) -> DepthFrame:
        """The processed frame; ``ir_left`` (H, W) uint8, the IR image registered to the depth, helps
        ``restore`` where the pipeline has it."""
        if not frame.valid_mask.any():
            raise DepthError("depth frame has no valid pixels (all zero, NaN or negative)")
        clipped = frame.clipped(self.min_depth_m, self.max_depth_m)
        if not clipped.valid_mask.any():
            raise DepthError(f"no depth left inside [{self.min_depth_m}, {self.max_depth_m}] m: "
                             "is the depth scale right (metres vs millimetres)?")
        if self.mode == "restore":
            return self._restore(clipped, ir_left)
        return clipped

    def _restore(self, frame: DepthFrame, ir_left: np.ndarray | None) -> DepthFrame:
        from .restoration import DepthRestorer, check_frame

        if self._restorer is None:
            self._restorer = DepthRestorer.from_pretrained(self.weights)
        try:
            check_frame(frame.depth_m, ir_left if ir_left is not None else np.zeros(frame.depth_m.shape, np.uint8),
                        self._restorer.config)
        except ValueError as error:
            raise DepthError(f"cannot restore this frame: {error}") from error
        restored = DepthFrame(self._restorer.restore(frame.depth_m, ir_left), frame.intrinsics, frame.frame_id,
                              frame.stamp)
        return restored.clipped(self.min_depth_m, self.max_depth_m)
