"""Depth noise for the simulated camera, applied to rendered ``DepthFrame``s (seeded, reproducible).

Models (names as in the published GIGA / IGD benchmarks where they exist):

- ``none``: the renderer's exact depth.
- ``dex``: the Dex-Net noise of the published benchmark: the whole image times one gamma factor
  (shape 1000, scale 0.001: mean 1, std ~3 %), then with probability 0.5 a smooth additive field of
  std 5 mm, drawn at quarter resolution and upsampled bilinearly (``cv2.INTER_LINEAR``).
- ``trans``: translational noise as in GIGA: every pixel takes the depth of a pixel displaced by a
  Gaussian offset of std 1 px in u and v (edges become ragged).
- ``norm``: independent Gaussian noise of std 5 mm on every pixel.
- ``dropout``: 5 % of the pixels, chosen at random, become invalid (depth 0).

Noise only touches valid pixels (depth > 0): an invalid pixel stays invalid, as a real sensor's
holes do not turn into depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera.frame import DepthFrame

NOISE_MODELS = ("none", "dex", "trans", "norm", "dropout")


@dataclass(frozen=True)
class DexNoise:
    gamma_shape: float = 1000.0
    gamma_scale: float = 0.001
    field_std_m: float = 0.005
    field_downsample: int = 4
    field_probability: float = 0.5


def dex_noise(depth: np.ndarray, rng: np.random.Generator, params: DexNoise = DexNoise()) -> np.ndarray:
    import cv2

    noisy = depth * rng.gamma(params.gamma_shape, params.gamma_scale)
    if rng.random() < params.field_probability:
        h, w = depth.shape
        coarse = rng.normal(0.0, params.field_std_m, (h // params.field_downsample, w // params.field_downsample))
        noisy = noisy + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    return noisy


def translational_noise(depth: np.ndarray, rng: np.random.Generator, std_px: float = 1.0) -> np.ndarray:
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    v = np.clip(np.round(v + rng.normal(0.0, std_px, (h, w))), 0, h - 1).astype(int)
    u = np.clip(np.round(u + rng.normal(0.0, std_px, (h, w))), 0, w - 1).astype(int)
    return depth[v, u]


def apply_depth_noise(frame: DepthFrame, model: str, rng: np.random.Generator) -> DepthFrame:
    """A copy of ``frame`` with noise ``model`` (see ``NOISE_MODELS``) drawn from ``rng``."""
    if model not in NOISE_MODELS:
        raise ValueError(f"unknown depth noise model {model!r}: choose one of {list(NOISE_MODELS)}")
    if model == "none":
        return frame
    depth = frame.depth_m.astype(np.float64)
    valid = depth > 0.0
    if model == "dex":
        noisy = dex_noise(depth, rng)
    elif model == "trans":
        noisy = translational_noise(depth, rng)
        valid = noisy > 0.0  # the displaced pixel decides validity
    elif model == "norm":
        noisy = depth + rng.normal(0.0, 0.005, depth.shape)
    else:  # dropout
        noisy = depth
        valid &= rng.random(depth.shape) >= 0.05
    noisy = np.where(valid & (noisy > 0.0), noisy, 0.0).astype(np.float32)
    return DepthFrame(noisy, frame.intrinsics, frame.frame_id, frame.stamp)
