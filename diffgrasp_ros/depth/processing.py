"""Depth processing between capture and scene building."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..camera.frame import DepthError, DepthFrame

DEPTH_MODES = ("passthrough", "restore", "graft")


class DepthProcessor:
    """Clips depth to the sensor's working range and rejects frames with nothing usable left.

    ``restore`` then fills holes and repairs depth the sensor got wrong with the learned restoration model
    (``depth.restoration``; the shipped ``models/depth_restore`` unless ``weights`` names a folder).
    ``graft`` does the opposite, for clean *simulated* depth: it grafts sensor artifacts sampled from the
    diffusion noise model (``depth.grafting``; ``models/depth_noise``) while keeping metric geometry, so
    data looks like a D435's (on a real camera it would add noise to noise). Models load here, at construction
    (a node's configure), on ``device`` (auto: CUDA when available, else the CPU; cpu, cuda, cuda:N or mps),
    which passthrough ignores: a missing, unreadable or mismatched model fails now, naming its file, not
    on every frame later. Every mode takes frames of any size and focal length and returns a frame of the same size with
    the same intrinsics (the models pad inside to the sides their networks need).
    """

    def __init__(self, mode: str = "passthrough", min_depth_m: float = 0.1, max_depth_m: float = 2.0,
                 weights: str | Path | None = None, seed: int = 0, device: str = "auto"):
        if mode not in DEPTH_MODES:
            raise ValueError(f"unknown depth mode {mode!r}: choose one of {list(DEPTH_MODES)}")
        if not 0.0 <= min_depth_m < max_depth_m:
            raise ValueError(f"depth range must satisfy 0 <= min < max, got [{min_depth_m}, {max_depth_m}]")
        if weights is not None and mode == "passthrough":
            raise ValueError("weights are for the 'restore' and 'graft' modes, not 'passthrough'")
        self.mode = mode
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        self._model = None
        self._rng = np.random.default_rng(seed)
        if mode != "passthrough":
            from ..devices import resolve_device
            from . import noise_diffusion, restoration

            self.device = resolve_device(device)  # checked now, as the weights below
            files = restoration if mode == "restore" else noise_diffusion
            what = "depth restoration" if mode == "restore" else "depth noise model"
            self.weights = Path(weights) if weights is not None else files.DEFAULT_WEIGHTS
            for name in (files.CONFIG_FILE, files.WEIGHTS_FILE):  # fail at start-up, not on the first frame
                if not (self.weights / name).is_file():
                    raise FileNotFoundError(f"{what} weights not found: {self.weights / name} "
                                            f"does not exist; {files.HOW_TO_GET}")
            self._model = self._load_model(mode)

    def _load_model(self, mode: str):
        """The restoration or noise model of ``self.weights``. An unreadable or mismatched one raises ValueError
        starting with the file at fault (``load_model_folder`` names only the folder)."""
        import json

        from ..model_files import CONFIG_FILE, WEIGHTS_FILE, ModelFormatError
        from .noise_diffusion import NoiseDiffusionModel
        from .restoration import DepthRestorer

        model_class = DepthRestorer if mode == "restore" else NoiseDiffusionModel
        try:
            return model_class.from_pretrained(self.weights, self.device)
        except (ModelFormatError, FileNotFoundError):  # say themselves what is wrong, and where
            raise
        except (ValueError, OSError) as error:  # torch raises OSError too for some truncated files
            try:
                json.loads((self.weights / CONFIG_FILE).read_text())
                culprit = self.weights / WEIGHTS_FILE  # the config reads: the weights do not
            except (OSError, ValueError):
                culprit = self.weights / CONFIG_FILE
            if isinstance(error, ValueError) and str(culprit) in str(error):
                raise
            reason = str(error) if isinstance(error, ValueError) else f"unreadable ({type(error).__name__}: {error})"
            raise ValueError(f"{culprit}: {reason}") from error

    def process(self, frame: DepthFrame, color: np.ndarray | None = None) -> DepthFrame:
        """The processed frame; ``color`` (H, W, 3) uint8 RGB, the colour image registered to the depth,
        helps ``restore`` where the pipeline has it (holes across object edges)."""
        if not frame.valid_mask.any():
            raise DepthError("depth frame has no valid pixels (all zero, NaN or negative)")
        clipped = frame.clipped(self.min_depth_m, self.max_depth_m)
        if not clipped.valid_mask.any():
            raise DepthError(f"no depth left inside [{self.min_depth_m}, {self.max_depth_m}] m: "
                             "is the depth scale right (metres vs millimetres)?")
        if self.mode == "restore":
            return self._restore(clipped, color)
        if self.mode == "graft":
            return self._graft(clipped)
        return clipped

    def _graft(self, frame: DepthFrame) -> DepthFrame:
        from .grafting import graft
        from .noise_diffusion import NoiseDiffusionModel

        try:
            depth = graft(frame.depth_m, self._model, self._rng)
        except ValueError as error:
            raise DepthError(f"cannot graft noise onto this frame: {error}") from error
        grafted = DepthFrame(depth, frame.intrinsics, frame.frame_id, frame.stamp)
        if not grafted.valid_mask.any():
            raise DepthError("grafting left no valid depth in this frame")
        return grafted

    def _restore(self, frame: DepthFrame, color: np.ndarray | None) -> DepthFrame:
        import warnings

        from .restoration import DepthRestorer

        try:
            with warnings.catch_warnings():  # a pipeline without colour is a setting, not news on every frame
                warnings.simplefilter("ignore")
                depth = self._model.restore(frame.depth_m, color)
        except ValueError as error:  # the model's own input check
            raise DepthError(f"cannot restore this frame: {error}") from error
        restored = DepthFrame(depth, frame.intrinsics, frame.frame_id, frame.stamp)
        return restored.clipped(self.min_depth_m, self.max_depth_m)
