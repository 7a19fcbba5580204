"""Depth sequences on disk: a folder of 16-bit PNG frames plus ``sequence.json`` (camera and units).

Written by ``diffgrasp record`` from a static scene; read by the depth-noise training, whose temporal
prior fuses the frames into a clean reference (``training.noise_train.sequence_to_training_pairs``).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .files import load_depth_image
from .frame import DepthFrame
from .intrinsics import CameraIntrinsics

SEQUENCE_FILE = "sequence.json"
FRAME_PATTERN = "depth_{:05d}.png"


def save_sequence(folder: str | Path, frames: Sequence[DepthFrame], depth_unit_m: float = 0.001,
                  source: str = "") -> Path:
    """Write ``frames`` (one camera) as z16 PNGs in ``depth_unit_m`` and the sequence's metadata."""
    import cv2

    if not frames:
        raise ValueError("no frames to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    intrinsics = frames[0].intrinsics
    for i, frame in enumerate(frames):
        if frame.intrinsics != intrinsics:
            raise ValueError(f"frame {i} has other intrinsics than frame 0: a sequence is one camera stream")
        units = np.round(np.nan_to_num(frame.depth_m, nan=0.0) / depth_unit_m)
        if units.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"frame {i} has depth beyond z16 in units of {depth_unit_m} m")
        cv2.imwrite(str(folder / FRAME_PATTERN.format(i)), units.astype(np.uint16))
    meta = {"frames": len(frames), "depth_unit_m": depth_unit_m, "intrinsics": asdict(intrinsics),
            "frame_id": frames[0].frame_id, "stamps": [float(f.stamp) for f in frames], "source": source}
    (folder / SEQUENCE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_sequence(folder: str | Path) -> list[DepthFrame]:
    """The frames of a sequence folder written by ``save_sequence``, in metres."""
    folder = Path(folder)
    meta_path = folder / SEQUENCE_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"not a depth sequence: {meta_path} does not exist "
                                "(record one with `diffgrasp record`)")
    meta = json.loads(meta_path.read_text())
    intrinsics = CameraIntrinsics(**meta["intrinsics"])
    stamps = meta.get("stamps") or [0.0] * meta["frames"]
    return [DepthFrame(load_depth_image(folder / FRAME_PATTERN.format(i), meta["depth_unit_m"]), intrinsics,
                       meta.get("frame_id", "camera_depth_optical_frame"), stamps[i])
            for i in range(meta["frames"])]
