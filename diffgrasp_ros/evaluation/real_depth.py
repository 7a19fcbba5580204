"""Depth restoration on real frames: against ground truth, and on hidden holes.

A *method* is any callable ``(depth_m, color_rgb) -> depth_m``: (H, W) float32 metres with 0 = hole
and the registered (H, W, 3) uint8 colour in, a depth of the same size out.

- Ground truth (frames with ``gt_depth_m``, i.e. ``cleargrasp_d435``): MAE, RMSE and δ<1.05 over the
  pixels with ground truth in each of ``GT_REGIONS``. ``kept`` are the pixels where the output should
  equal the raw depth: raw-valid, outside the transparent-object mask and outside a 3 px band around
  depth jumps over 2 cm, the band taken from the ground truth (the truth's own edges; raw depth at an
  edge is itself often wrong, so its jumps would not mark the edge reliably). There the median
  |output − raw| is reported too.
- Hidden holes (every frame): valid raw pixels hidden in another frame's sensor-hole shape
  (``depth.holes``), the method restores the frame with them set to 0, scored by the MAE over the
  hidden pixels against their raw depth; a frame's score is the mean over its trials, a group's the
  mean over its frames.
"""
from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..camera.real_frames import RealFrame
from ..depth.holes import discontinuity_band, hide_holes

Method = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]

GT_REGIONS = ("all", "raw_valid", "raw_invalid", "transparent", "kept")
RAW_REGIONS = ("raw_valid", "kept")  # where the raw depth itself can be scored
BAND_JUMP_M, BAND_WIDTH_PX = 0.02, 3


def region_errors(pred_m: np.ndarray, gt_m: np.ndarray, region: np.ndarray) -> dict:
    """MAE and RMSE in mm and δ<1.05 (share of pixels whose depth ratio to the truth is within 5 %;
    a 0 prediction never is) over the pixels of ``region`` that have ground truth (``gt_m`` > 0)."""
    if not pred_m.shape == gt_m.shape == region.shape:
        raise ValueError(f"shapes differ: pred {pred_m.shape}, gt {gt_m.shape}, region {region.shape}")
    pixels = region & (gt_m > 0.0)
    count = int(np.count_nonzero(pixels))
    if not count:
        return {"mae_mm": None, "rmse_mm": None, "delta_105": None, "pixels": 0}
    pred, gt = pred_m[pixels].astype(np.float64), gt_m[pixels].astype(np.float64)
    error = pred - gt
    with np.errstate(divide="ignore"):
        ratio = np.maximum(pred / gt, gt / pred)
    return {"mae_mm": 1000.0 * float(np.abs(error).mean()), "rmse_mm": 1000.0 * float(np.sqrt(np.square(error).mean())),
            "delta_105": float(np.mean(ratio < 1.05)), "pixels": count}


def pooled_errors(errors: Sequence[dict]) -> dict:
    """``region_errors`` of several frames pooled over their pixels (as if one region)."""
    counted = [e for e in errors if e["pixels"]]
    pixels = sum(e["pixels"] for e in counted)
    if not pixels:
        return {"mae_mm": None, "rmse_mm": None, "delta_105": None, "pixels": 0}
    return {"mae_mm": sum(e["mae_mm"] * e["pixels"] for e in counted) / pixels,
            "rmse_mm": float(np.sqrt(sum(e["rmse_mm"] ** 2 * e["pixels"] for e in counted) / pixels)),
            "delta_105": sum(e["delta_105"] * e["pixels"] for e in counted) / pixels, "pixels": pixels}


def ground_truth_regions(frame: RealFrame) -> dict[str, np.ndarray]:
    """The masks of ``GT_REGIONS`` (each restricted to pixels with ground truth)."""
    if frame.gt_depth_m is None:
        raise ValueError(f"{frame.key} has no ground truth depth")
    has_gt = frame.gt_depth_m > 0.0
    raw_valid = frame.depth_m > 0.0
    transparent = frame.transparent_mask if frame.transparent_mask is not None else np.zeros_like(has_gt)
    band = discontinuity_band(frame.gt_depth_m, BAND_JUMP_M, BAND_WIDTH_PX)
    return {"all": has_gt, "raw_valid": has_gt & raw_valid, "raw_invalid": has_gt & ~raw_valid,
            "transparent": has_gt & transparent, "kept": has_gt & raw_valid & ~transparent & ~band}


def ground_truth_errors(frame: RealFrame, output_m: np.ndarray, regions: Sequence[str] = GT_REGIONS) -> dict:
    """``region_errors`` of ``output_m`` per region, and on ``kept`` the median |output − raw| in mm."""
    masks = ground_truth_regions(frame)
    result = {name: region_errors(output_m, frame.gt_depth_m, masks[name]) for name in regions}
    if "kept" in result:
        kept = masks["kept"]
        result["kept"]["median_change_mm"] = (1000.0 * float(np.median(np.abs(output_m[kept] - frame.depth_m[kept])))
                                              if kept.any() else None)
    return result


@dataclass(frozen=True, eq=False)
class HiddenHoleTrial:
    frame_key: str
    source_key: str  # the frame whose hole shape hides the pixels
    seed: int
    hidden: np.ndarray  # bool (H, W): valid raw pixels hidden from the method

    def input_depth(self, frame: RealFrame) -> np.ndarray:
        return np.where(self.hidden, np.float32(0.0), frame.depth_m)


def hidden_hole_trials(frames: Sequence[RealFrame], hole_sources: Mapping[str, np.ndarray],
                       seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> list[list[HiddenHoleTrial]]:
    """Per frame, one trial per seed: a hole shape drawn from ``hole_sources`` (frame key -> mask,
    e.g. ``sensor_hole_masks``), never the frame's own, laid onto its valid pixels by ``hide_holes``.
    Deterministic for a frame's key and seed, whatever the other frames."""
    keys = sorted(hole_sources)
    trials = []
    for frame in frames:
        others = [k for k in keys if k != frame.key]
        if not others:
            raise ValueError(f"no hole source other than {frame.key} itself")
        frame_trials = []
        for seed in seeds:
            rng = np.random.default_rng([seed, zlib.crc32(frame.key.encode())])
            source = others[rng.integers(len(others))]
            hidden = hide_holes(frame.depth_m > 0.0, hole_sources[source], rng)
            if not hidden.any():
                raise ValueError(f"{source}'s holes hide no valid pixel of {frame.key} (seed {seed})")
            frame_trials.append(HiddenHoleTrial(frame.key, source, seed, hidden))
        trials.append(frame_trials)
    return trials


def score_hidden_holes(frame: RealFrame, trials: Sequence[HiddenHoleTrial], method: Method) -> dict:
    """One method on one frame's trials: the MAE over the hidden pixels per trial and their mean, and
    (does the method leave good depth alone?) the median |output − raw| over the valid pixels it was
    given, outside a 3 px band around the raw depth's jumps over 2 cm; and the method's time per trial."""
    kept_region = (frame.depth_m > 0.0) & ~discontinuity_band(frame.depth_m, BAND_JUMP_M, BAND_WIDTH_PX)
    results = []
    for trial in trials:
        given = trial.input_depth(frame)
        start = time.perf_counter()
        output = method(given, frame.color_rgb)
        seconds = time.perf_counter() - start
        if output.shape != frame.depth_m.shape:
            raise ValueError(f"the method returned shape {output.shape} for a {frame.depth_m.shape} frame")
        error = np.abs(output[trial.hidden].astype(np.float64) - frame.depth_m[trial.hidden])
        kept = kept_region & ~trial.hidden
        results.append({"source": trial.source_key, "seed": trial.seed, "hidden_px": int(trial.hidden.sum()),
                        "mae_mm": 1000.0 * float(error.mean()),
                        "kept_median_change_mm": 1000.0 * float(np.median(np.abs(output[kept] - frame.depth_m[kept]))),
                        "seconds": seconds})
    return {"mae_mm": float(np.mean([r["mae_mm"] for r in results])), "trials": results}
