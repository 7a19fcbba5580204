"""A conditional diffusion model of depth-sensor artifacts, p(raw depth | clean depth) (DiffuDepGrasp-style).

The model does not generate depth: it generates the *artifacts* of a stereo camera on a given clean
depth image, so grafting them keeps the clean metric geometry wherever the sensor is valid.

Representation, at full resolution but packed for a CPU: the artifact map has two channels per pixel,
``invalid`` (+1 where the sensor returns no depth, -1 where it does) and ``error``, the disparity error
d_raw - d_clean in pixels (d = f·B / z; stereo error is uniform in disparity, not in depth) divided by
``max_error_px`` and clipped to [-1, 1], 0 where invalid. Both are folded 4×4 into channels (pixel
unshuffle: 640×480×2 → 160×120×32), as is the condition (clean disparity and its valid mask, plus the
pixel coordinates, which matter: the left ``f·B / z`` columns have no partner in the right imager).
A small U-Net denoises a DDPM over that map; sampling is DDIM with a few steps, with the project's
``DDIMScheduler`` (cosine schedule, x0 clipped to [-1, 1], the artifact map's range). The U-Net predicts
x0, not ε: the cosine schedule ends at ᾱ_T ≈ 0, where an ε-prediction's error is amplified by 1/√ᾱ_t
into the x0 estimate (with ε-prediction the sampled masks came out as noise, ~50 % invalid pixels
where the sensor has ~1 %). The invalid bits' x0 is their posterior mean 2·σ(logit) − 1, the logit
trained by cross-entropy: plain MSE on rare ±1 bits learned to answer "valid" everywhere, edge holes
included. The sampler hands the scheduler the ε implied by the predicted x0, so its API stays the
diffusers one.

    model = NoiseDiffusionModel.from_pretrained("models/depth_noise")
    artifacts = ArtifactSampler(model).sample(clean_depth_m, generator)  # (2, H, W) numpy
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..devices import module_device
from ..grasping.igd.scheduler import DDIMScheduler
from ..model_files import (CONFIG_FILE, WEIGHTS_FILE, check_config_keys, load_model_folder, read_config_data,
                           save_model_folder, shipped_model_folder, write_config_json)

DEFAULT_WEIGHTS = shipped_model_folder("depth_noise")
HOW_TO_GET = ("train one with `python -m diffgrasp_ros.training.noise_train --data PAIRS --out FOLDER` "
              "(see models/depth_noise/MODEL_CARD.md) or restore models/depth_noise/ from the repository")


@dataclass(frozen=True)
class NoiseDiffusionConfig:
    # Sensor the artifacts were learned from (the simulated D435's f·B; a real D435 at 640×480 is ~19 px·m).
    focal_baseline_px_m: float = 27.0
    max_error_px: float = 1.0  # disparity error bound: larger (wrong-match) errors are clipped to it
    disparity_norm_px: float = 32.0  # clean disparity d is fed as d / norm - 1
    # Network.
    pack: int = 4  # pixel-unshuffle factor: a 640×480 image becomes a 160×120 map
    channels: tuple[int, ...] = (48, 96, 128)  # U-Net widths per level (two down-samplings)
    time_dim: int = 128
    groups: int = 8
    # Diffusion.
    train_steps: int = 100
    sampling_steps: int = 8

    def __post_init__(self):
        if self.focal_baseline_px_m <= 0 or self.max_error_px <= 0 or self.disparity_norm_px <= 0:
            raise ValueError("focal_baseline_px_m, max_error_px and disparity_norm_px must be positive")
        if self.pack < 1 or len(self.channels) < 1 or any(c % self.groups for c in self.channels):
            raise ValueError(f"need pack >= 1 and channel widths divisible by groups={self.groups}, "
                             f"got pack={self.pack}, channels={self.channels}")
        if not 1 <= self.sampling_steps <= self.train_steps:
            raise ValueError(f"need 1 <= sampling_steps <= train_steps, got {self.sampling_steps}, {self.train_steps}")

    @property
    def multiple_px(self) -> int:
        """Image sizes are padded to a multiple of this (pack × the U-Net's down-samplings)."""
        return self.pack * 2 ** (len(self.channels) - 1)

    @property
    def artifact_channels(self) -> int:
        return 2 * self.pack**2

    @property
    def condition_channels(self) -> int:
        return 2 * self.pack**2 + 2

    def to_json(self, path: Path) -> None:
        write_config_json(self, path)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "NoiseDiffusionConfig":
        check_config_keys(cls, data, source, "depth-noise")
        return cls(**{**data, **({"channels": tuple(data["channels"])} if "channels" in data else {})})

    @classmethod
    def from_json(cls, path: Path) -> "NoiseDiffusionConfig":
        return cls.from_dict(read_config_data(path, "depth-noise"), str(path))


# -- the artifact representation -------------------------------------------------------------------
def _disparity(depth_m: np.ndarray, focal_baseline_px_m: float) -> np.ndarray:
    return np.divide(focal_baseline_px_m, depth_m, out=np.zeros(depth_m.shape, np.float64), where=depth_m > 0)


def condition_map(clean_depth_m: np.ndarray, config: NoiseDiffusionConfig,
                  focal_baseline_px_m: float | None = None) -> np.ndarray:
    """(2, H, W) float32: normalised clean disparity and the clean valid mask (±1), unpacked.

    ``focal_baseline_px_m`` (default: the model's) is the image's own f·B, so that the disparity keeps
    its meaning in pixels (shadow and margin widths) for a camera with another focal length."""
    fb = config.focal_baseline_px_m if focal_baseline_px_m is None else focal_baseline_px_m
    valid = clean_depth_m > 0
    disparity = np.where(valid, _disparity(clean_depth_m, fb) / config.disparity_norm_px - 1, 0)
    return np.stack([disparity, np.where(valid, 1.0, -1.0)]).astype(np.float32)


def artifact_map(clean_depth_m: np.ndarray, raw_depth_m: np.ndarray, config: NoiseDiffusionConfig) -> np.ndarray:
    """(2, H, W) float32 training target: invalid (±1) and the bounded disparity error (0 where invalid)."""
    if clean_depth_m.shape != raw_depth_m.shape:
        raise ValueError(f"clean and raw depth differ in shape: {clean_depth_m.shape} vs {raw_depth_m.shape}")
    fb = config.focal_baseline_px_m
    valid = (clean_depth_m > 0) & (raw_depth_m > 0)
    error = np.where(valid, _disparity(raw_depth_m, fb) - _disparity(clean_depth_m, fb), 0.0)
    return np.stack([np.where(valid, -1.0, 1.0), np.clip(error / config.max_error_px, -1, 1)]).astype(np.float32)


def apply_artifacts(clean_depth_m: np.ndarray, artifacts: np.ndarray, config: NoiseDiffusionConfig,
                    with_error: bool = True, depth_unit_m: float | None = 0.001,
                    focal_baseline_px_m: float | None = None) -> np.ndarray:
    """Clean depth with ``artifacts`` (2, H, W) applied: invalid where sampled (or clean is), else the clean
    depth moved by the bounded disparity error (``with_error=False``: exactly the clean depth), rounded to
    ``depth_unit_m`` like the sensor's z16 output (None: not rounded). ``focal_baseline_px_m``: the
    image's f·B, as given to ``condition_map`` (default: the model's)."""
    fb = config.focal_baseline_px_m if focal_baseline_px_m is None else focal_baseline_px_m
    clean = np.asarray(clean_depth_m, dtype=np.float64)
    if artifacts.shape != (2, *clean.shape):
        raise ValueError(f"artifacts must be (2, {clean.shape[0]}, {clean.shape[1]}), got {artifacts.shape}")
    valid = (clean > 0) & (artifacts[0] <= 0)
    depth = clean
    if with_error:
        disparity = _disparity(clean, fb)
        disparity += np.clip(artifacts[1], -1, 1) * config.max_error_px
        valid &= disparity > 0
        depth = np.divide(fb, disparity, out=np.zeros_like(disparity), where=valid)
    if depth_unit_m:
        depth = np.round(depth / depth_unit_m) * depth_unit_m
    return np.where(valid, depth, 0.0).astype(np.float32)


def coordinate_channels(height_px: int, width_px: int, pack: int, top_px: int = 0, left_px: int = 0,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """(2, h, w) packed pixel coordinates u / 320 - 1, v / 240 - 1 of a crop at (top, left) of the image."""
    v = (torch.arange(top_px, top_px + height_px, pack, dtype=torch.float32, device=device) + pack / 2) / 240.0 - 1.0
    u = (torch.arange(left_px, left_px + width_px, pack, dtype=torch.float32, device=device) + pack / 2) / 320.0 - 1.0
    return torch.stack([u[None, :].expand(len(v), -1), v[:, None].expand(-1, len(u))])


# -- the network ------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups if c_in % groups == 0 else 1, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(t_emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ArtifactUNet(nn.Module):
    """(x_t, condition, t) → the packed map's invalid-bit logits and error x0. One residual block per level."""

    def __init__(self, config: NoiseDiffusionConfig):
        super().__init__()
        c, g, td = config.channels, config.groups, config.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.stem = nn.Conv2d(config.artifact_channels + config.condition_channels, c[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for i, width in enumerate(c):
            self.down.append(ResBlock(c[i - 1] if i else c[0], width, td, g))
            self.pool.append(nn.Conv2d(width, width, 3, stride=2, padding=1) if i < len(c) - 1 else nn.Identity())
        self.mid = ResBlock(c[-1], c[-1], td, g)
        self.up = nn.ModuleList(ResBlock(c[i] + (c[i + 1] if i < len(c) - 1 else c[i]), c[i], td, g)
                                for i in reversed(range(len(c))))
        self.out_norm = nn.GroupNorm(g, c[0])
        self.out = nn.Conv2d(c[0], config.artifact_channels, 3, padding=1)
        self.time_dim = td

    def forward(self, x_t: torch.Tensor, condition: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_emb = self.time_mlp(timestep_embedding(t, self.time_dim))
        h = self.stem(torch.cat([x_t, condition], dim=1))
        skips = []
        for block, pool in zip(self.down, self.pool):
            h = block(h, t_emb)
            skips.append(h)
            h = pool(h)
        h = self.mid(h, t_emb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), t_emb)
        return self.out(F.silu(self.out_norm(h)))


class NoiseDiffusionModel(nn.Module):
    """p(artifacts | clean depth): the U-Net plus packing, the training loss and (de)serialisation."""

    def __init__(self, config: NoiseDiffusionConfig = NoiseDiffusionConfig()):
        super().__init__()
        self.config = config
        self.unet = ArtifactUNet(config)

    def pack(self, maps: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(maps, self.config.pack)

    def unpack(self, maps: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(maps, self.config.pack)

    def packed_condition(self, condition: torch.Tensor, top_px: torch.Tensor | None = None,
                         left_px: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2, H, W) unpacked condition maps of crops at (top, left) → the U-Net's packed condition."""
        b, _, h, w = condition.shape
        top = [0] * b if top_px is None else top_px.tolist()
        left = [0] * b if left_px is None else left_px.tolist()
        coords = torch.stack([coordinate_channels(h, w, self.config.pack, y, x, condition.device)
                              for y, x in zip(top, left)])
        return torch.cat([self.pack(condition), coords], dim=1)

    def forward(self, x_t: torch.Tensor, packed_condition: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The packed x0 estimate: invalid bits as their posterior mean in [-1, 1], the error as regressed."""
        out = self.unet(x_t, packed_condition, t)
        bits = self.config.pack**2  # pixel unshuffle keeps channels contiguous: the invalid bits come first
        return torch.cat([torch.tanh(out[:, :bits] / 2), out[:, bits:]], dim=1)  # tanh(l/2) = 2σ(l) - 1

    def loss(self, condition: torch.Tensor, artifacts: torch.Tensor, scheduler: DDIMScheduler,
             generator: torch.Generator | None = None, top_px: torch.Tensor | None = None,
             left_px: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the invalid bits plus the error's MSE, on (B, 2, H, W) unpacked condition and
        artifact crops. ``weights`` (B, 2, H, W), >= 0, weighs each pixel's invalid and error terms (e.g.
        0 on the error of real frames, whose true error is unknown); each term is a weighted mean."""
        x0 = self.pack(artifacts)
        t = torch.randint(0, scheduler.train_steps, (x0.shape[0],), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        out = self.unet(scheduler.add_noise(x0, noise, t), self.packed_condition(condition, top_px, left_px), t)
        bits = self.config.pack**2
        if weights is None:
            return (F.binary_cross_entropy_with_logits(out[:, :bits], (x0[:, :bits] > 0).float())
                    + F.mse_loss(out[:, bits:], x0[:, bits:]))
        if weights.shape != artifacts.shape:
            raise ValueError(f"loss weights must be shaped like the artifacts {tuple(artifacts.shape)}, "
                             f"got {tuple(weights.shape)}")
        w = self.pack(weights)
        bce = F.binary_cross_entropy_with_logits(out[:, :bits], (x0[:, :bits] > 0).float(), reduction="none")
        mse = (out[:, bits:] - x0[:, bits:]) ** 2
        return ((w[:, :bits] * bce).sum() / w[:, :bits].sum().clamp(min=1.0)
                + (w[:, bits:] * mse).sum() / w[:, bits:].sum().clamp(min=1.0))

    # -- weights on disk: a folder with config.json and weights.pt (a state dict) ------------------
    def save_pretrained(self, folder: str | Path) -> None:
        save_model_folder(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path = DEFAULT_WEIGHTS,
                        device: str | torch.device = "auto") -> "NoiseDiffusionModel":
        """The model saved in ``folder``, in eval mode on ``device`` (``devices.resolve_device``); a clear error
        when it is missing or unreadable."""
        return load_model_folder(cls, NoiseDiffusionConfig, folder, "depth-noise", HOW_TO_GET, device)


class ArtifactSampler:
    """DDIM sampling of artifact maps for whole clean depth images (padded to the U-Net's multiple), on the
    model's device: a ``scheduler`` and the ``generator`` given to ``sample`` must be on it too."""

    def __init__(self, model: NoiseDiffusionModel, scheduler: DDIMScheduler | None = None):
        self.model = model
        self.device = module_device(model)
        self.scheduler = scheduler or DDIMScheduler(model.config.train_steps, clip_sample=1.0, device=self.device)

    @torch.no_grad()
    def sample(self, clean_depth_m: np.ndarray, generator: torch.Generator | None = None,
               steps: int | None = None, eta: float = 0.0, focal_baseline_px_m: float | None = None) -> np.ndarray:
        """(2, H, W) artifacts for the (H, W) clean depth (metres, 0 = none); see ``apply_artifacts``
        (and ``condition_map`` for ``focal_baseline_px_m``)."""
        clean = np.asarray(clean_depth_m, dtype=np.float32)
        if clean.ndim != 2 or not np.all(np.isfinite(clean)):
            raise ValueError(f"clean depth must be a finite (H, W) image, got shape {clean.shape}")
        config = self.model.config
        h, w = clean.shape
        m = config.multiple_px
        padded = np.pad(clean, ((0, -h % m), (0, -w % m)))  # zero = no surface: padding is invalid
        unpacked = condition_map(padded, config, focal_baseline_px_m)
        condition = self.model.packed_condition(torch.as_tensor(unpacked, device=self.device)[None])
        self.scheduler.set_timesteps(steps or config.sampling_steps)
        x = torch.randn((1, config.artifact_channels, *condition.shape[-2:]), generator=generator, device=self.device)
        for t in self.scheduler.timesteps:
            x0 = self.model(x, condition, t.view(1)).clamp(-1.0, 1.0)
            a = self.scheduler.alphas_cumprod[t]
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            x = self.scheduler.step(eps, int(t), x, eta=eta, generator=generator)
        return self.model.unpack(x)[0, :, :h, :w].cpu().numpy()
