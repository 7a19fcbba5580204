"""Noise grafting (DiffuDepGrasp-style): give clean simulated depth a real sensor's artifacts, keep its geometry.

The depth-noise diffusion model samples an artifact map for the clean image (``depth.noise_diffusion``);
grafting invalidates the sampled holes and moves the remaining pixels by the sampled disparity error,
which is bounded (``max_error_px`` of the model, ~13 mm at 0.6 m for the simulated D435) and, by
default, re-centred to zero mean over the image, so a grasp model trained on grafted depth sees the
sensor's holes and noise on the exact scene geometry rather than depth that is wrong by a bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..devices import module_device
from .noise_diffusion import ArtifactSampler, NoiseDiffusionModel, apply_artifacts


def graft(clean_depth_m: np.ndarray, model: NoiseDiffusionModel, rng: np.random.Generator,
          with_error: bool = True, zero_mean_error: bool = True, steps: int | None = None,
          focal_baseline_px_m: float | None = None) -> np.ndarray:
    """``clean_depth_m`` (H, W, metres, 0 = none) with artifacts sampled by ``model``; float32, 0 = invalid.

    ``with_error=False`` grafts only the holes (valid pixels keep the clean depth exactly);
    ``zero_mean_error`` removes the sampled error's mean over the valid pixels (no global depth bias).
    ``focal_baseline_px_m``: the image's focal length (px) × the sensor's stereo baseline (m), for images
    of another camera than the model's (default: the model's ``config.focal_baseline_px_m``).
    """
    import torch

    clean = np.asarray(clean_depth_m, dtype=np.float32)
    # On the model's device; a CUDA generator draws other noise than the CPU's from the same seed.
    generator = torch.Generator(device=module_device(model)).manual_seed(int(rng.integers(2**63 - 1)))
    artifacts = ArtifactSampler(model).sample(clean, generator, steps, focal_baseline_px_m=focal_baseline_px_m)
    if zero_mean_error:
        valid = (clean > 0) & (artifacts[0] <= 0)
        if valid.any():
            artifacts[1] = np.where(valid, artifacts[1] - artifacts[1][valid].mean(), 0.0)
    return apply_artifacts(clean, artifacts, model.config, with_error=with_error,
                           focal_baseline_px_m=focal_baseline_px_m)


@dataclass(frozen=True)
class DepthErrorStats:
    """Depth error of the pixels valid in both images, and the share of the reference's pixels lost."""

    mae_mm: float
    rmse_mm: float
    outliers_over_1cm: float  # share of the compared pixels
    invalid_ratio: float  # reference-valid pixels that are invalid in the compared depth
    pixels: int  # compared pixels


def depth_error_stats(depth_m: np.ndarray, reference_m: np.ndarray) -> DepthErrorStats:
    if depth_m.shape != reference_m.shape:
        raise ValueError(f"depth {depth_m.shape} and reference {reference_m.shape} differ in shape")
    reference = reference_m > 0
    both = reference & (depth_m > 0)
    if not both.any():
        raise ValueError("no pixel is valid in both depth images")
    error = (depth_m[both] - reference_m[both]).astype(np.float64)
    return DepthErrorStats(1000.0 * float(np.abs(error).mean()), 1000.0 * float(np.sqrt((error**2).mean())),
                           float((np.abs(error) > 0.01).mean()), float(1.0 - both.sum() / reference.sum()),
                           int(both.sum()))
