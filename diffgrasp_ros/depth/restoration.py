"""Learned depth restoration: raw active-stereo depth + left IR in, dense clean depth out.

A light U-Net runs at a quarter of the resolution (where holes are small enough for its receptive
field to bridge them) and predicts a coarse depth; a two-layer full-resolution head then blends the
raw depth and the upsampled coarse depth per pixel with a learned gate, plus a small residual. The
gate lets the model keep the sensor's millimetre-accurate depth where it is right, fill holes from
context and override valid-but-wrong depth (a transparent object reads the table behind it).

Depth is normalised per frame by the median valid raw depth ``μ``: the network sees ``(d / μ − 1)·5``,
so the same weights serve near and far views.

Any frame size: ``restore`` pads the frame on the bottom and right to the next multiple of the U-Net's
down-sampling (``multiple_px``) by repeating the edge pixels (depth, holes and IR alike, with ``μ`` taken
from the frame itself), runs, and crops back. On simulated frames that restores the pixels next to the padded
borders about as well as the rest (padding with invalid depth instead gave them ~1.7× the error).

Weights on disk: a folder with ``config.json`` (``RestorationConfig``) and ``weights.pt`` (a state dict).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model_files import (CONFIG_FILE, WEIGHTS_FILE, load_model_folder, read_config_json, save_model_folder,
                           shipped_model_folder, write_config_json)

DEFAULT_WEIGHTS = shipped_model_folder("depth_restore")
HOW_TO_GET = ("train one with `diffgrasp train-restore --data PAIRS --out FOLDER` (see "
              "models/depth_restore/MODEL_CARD.md) and pass its folder, or restore models/depth_restore/ "
              "from the repository")
DEPTH_SCALE = 5.0  # normalised depth = (d / μ − 1) · DEPTH_SCALE: ±20 % of μ maps to ±1


@dataclass(frozen=True)
class RestorationConfig:
    widths: tuple[int, ...] = (16, 32, 48, 64)  # U-Net channels at 1/4, 1/8, 1/16, 1/32 resolution
    reduction: int = 4  # the U-Net's input is the frame pooled by this factor
    head_channels: int = 8  # full-resolution head width
    max_depth_m: float = 2.0  # outputs clipped to [0, max_depth_m]

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 1 or self.reduction < 1 or self.head_channels < 1:
            raise ValueError(f"bad restoration config {self}")

    @property
    def multiple_px(self) -> int:
        """The U-Net's total down-sampling: ``restore`` pads frames to a multiple of this, and the
        network itself (and so training crops) needs sides that are multiples of it."""
        return self.reduction * 2 ** (len(self.widths) - 1)

    def to_json(self, path: Path) -> None:
        write_config_json(self, path)

    @classmethod
    def from_json(cls, path: Path) -> "RestorationConfig":
        return read_config_json(cls, path, "restoration")


TINY = dict(widths=(4, 8), head_channels=4)  # trains in tests in a second


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class DepthRestorer(nn.Module):
    """``forward(raw_m, ir)`` on (B, 1, H, W) tensors: raw depth in metres (0 = invalid), IR in 0..1."""

    def __init__(self, config: RestorationConfig = RestorationConfig()):
        super().__init__()
        self.config = config
        w = config.widths
        self.down = nn.ModuleList([_block(4, w[0])] + [_block(a, b) for a, b in zip(w[:-1], w[1:])])
        self.up = nn.ModuleList([_block(b + a, a) for a, b in zip(w[:-1], w[1:])])
        # The coarse depth and the head's share of the features, upsampled together in one go.
        self.to_full = nn.Conv2d(w[0], 1 + config.head_channels, 1)
        # Full resolution: the frame's own channels (depth, validity, IR, coarse depth) through a 3x3
        # conv, plus the upsampled features; this is most of a frame's time, so it stays thin.
        self.head_in = nn.Conv2d(4, config.head_channels, 3, padding=1)
        self.head_out = nn.Conv2d(config.head_channels, 2, 3, padding=1)

    def forward(self, raw_m: torch.Tensor, ir: torch.Tensor, mu: torch.Tensor | None = None) -> torch.Tensor:
        pred_m, _ = self.forward_with_coarse(raw_m, ir, mu)
        return pred_m

    def forward_with_coarse(self, raw_m: torch.Tensor, ir: torch.Tensor,
                            mu: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The restored depth and the U-Net's coarse depth (both in metres, full resolution).

        Sides must be multiples of ``config.multiple_px``; ``mu`` (B,) is the normalising depth, by
        default each image's median valid raw depth."""
        cfg = self.config
        valid = (raw_m > 0.0).float()
        mu = (_median_valid(raw_m) if mu is None else mu).view(-1, 1, 1, 1)
        x = torch.where(valid > 0, (raw_m / mu - 1.0) * DEPTH_SCALE, torch.zeros_like(raw_m))
        # Mask-aware pooling: the mean over valid pixels, and the valid fraction as its own channel.
        r = cfg.reduction
        valid_small = F.avg_pool2d(valid, r)
        x_small = F.avg_pool2d(x, r) / valid_small.clamp_min(1e-3)
        edges = (F.max_pool2d(x, r) + F.max_pool2d(-x, r)).clamp(max=1.0)  # depth spread inside a cell
        h = torch.cat([x_small, valid_small, F.avg_pool2d(ir, r), edges], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(reversed(self.up), reversed(skips[:-1])):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                 skip], dim=1))
        coarse, features = F.interpolate(self.to_full(h), size=raw_m.shape[-2:], mode="bilinear",
                                         align_corners=False).split([1, cfg.head_channels], dim=1)
        hidden = F.relu(self.head_in(torch.cat([x, valid, ir, coarse], dim=1)) + features)
        gate_logit, residual = self.head_out(hidden).chunk(2, dim=1)
        gate = torch.sigmoid(gate_logit) * valid  # raw depth can only be kept where there is some
        out = gate * x + (1.0 - gate) * coarse + 0.1 * residual
        return self._to_metres(out, mu), self._to_metres(coarse, mu)

    def _to_metres(self, normalised: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return (mu * (1.0 + normalised / DEPTH_SCALE)).clamp(0.0, self.config.max_depth_m)

    @torch.no_grad()
    def restore(self, depth_m: np.ndarray, ir_left: np.ndarray | None = None) -> np.ndarray:
        """Restore one frame of any size: ``depth_m`` (H, W) float32 metres (0 = invalid), ``ir_left``
        (H, W) uint8 or None when the pipeline carries no IR (the model was trained on some crops
        without it). Returns (H, W) float32 metres; the frame is padded inside (see the module doc)."""
        if ir_left is None and isinstance(depth_m, np.ndarray):
            ir_left = np.zeros(depth_m.shape, np.uint8)
        check_frame(depth_m, ir_left)
        if not (depth_m > 0.0).any():
            raise ValueError("depth frame has no valid pixels to restore from")
        raw = torch.from_numpy(np.ascontiguousarray(depth_m, dtype=np.float32))[None, None]
        ir = torch.from_numpy(ir_left.astype(np.float32) / np.float32(255.0))[None, None]
        mu = _median_valid(raw)  # of the frame, not of its padding
        height, width = depth_m.shape
        m = self.config.multiple_px
        pad = (0, -width % m, 0, -height % m)  # left, right, top, bottom
        if any(pad):
            raw, ir = (F.pad(image, pad, mode="replicate") for image in (raw, ir))
        return self(raw, ir, mu)[0, 0, :height, :width].numpy()

    @classmethod
    def from_pretrained(cls, folder: str | Path = DEFAULT_WEIGHTS) -> "DepthRestorer":
        """The model saved in ``folder``, in eval mode; a clear error when it is missing or unreadable."""
        return load_model_folder(cls, RestorationConfig, folder, "depth restoration", HOW_TO_GET)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json + weights.pt so ``from_pretrained(folder)`` restores the model; atomic."""
        save_model_folder(self, folder)


def check_frame(depth_m, ir_left, config: RestorationConfig | None = None) -> None:
    """Reject what the model cannot take, saying why: dtype, shape, non-finite depth. Any frame size
    is fine (``restore`` pads); ``config`` is no longer needed and kept for callers that pass it."""
    for name, image, dtype in (("depth_m", depth_m, np.float32), ("ir_left", ir_left, np.uint8)):
        if not isinstance(image, np.ndarray) or image.dtype != dtype or image.ndim != 2:
            what = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"{name} must be an (H, W) {np.dtype(dtype).name} array, got {what}")
    if depth_m.shape != ir_left.shape:
        raise ValueError(f"depth_m {depth_m.shape} and ir_left {ir_left.shape} must be the same size")
    if depth_m.size == 0:
        raise ValueError(f"depth_m is empty ({depth_m.shape[1]}x{depth_m.shape[0]})")
    bad = int(np.count_nonzero(~np.isfinite(depth_m)))
    if bad:
        raise ValueError(f"depth_m has {bad} NaN/inf values: mark invalid depth with 0 "
                         "(a DepthFrame does this itself)")


def _median_valid(raw_m: torch.Tensor) -> torch.Tensor:
    """Per-image median of the valid depth, (B,); 1 m for an image with nothing valid."""
    medians = []
    for image in raw_m.flatten(1):
        valid = image[image > 0.0]
        medians.append(valid.median() if valid.numel() else image.new_tensor(1.0))
    return torch.stack(medians)
