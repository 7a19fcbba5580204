"""Learned depth restoration that keeps the sensor's depth where it is right: depth (+ colour) in, dense depth out.

Three steps, each visible in ``forward``:

1. **Guided fill.** A joint bilateral pyramid (``guided_fill``) fills every hole: depth is averaged
   down a pyramid of 2×2 cells until no hole is left, then, from the coarsest level up, each hole pixel
   becomes the average of the valid depth in its 3×3 window and of the coarser level's filled cells,
   weighted by how alike the pixels look. "Alike" is a learned linear map of the colour (initialised
   to an opponent colour space, as a classical joint bilateral fill in CIELAB), so a hole beside an
   object takes the depth of the side whose colour it shares; without colour it is a plain pyramid fill.
2. **Learned correction.** A light U-Net at a quarter of the resolution, then a thin full-resolution
   head, see the guided fill, the validity mask and (when given) the colour image, and predict a
   correction of the fill (how a slanted surface continues, which side of an edge a hole belongs to)
   and, for every valid pixel, the logit that the sensor's reading is wrong (transparent, specular and
   dark surfaces, flying pixels at edges). The correction starts at zero, so an untrained model is the
   guided fill and trusts every reading.
3. **Residual plus confidence.** Valid pixels whose reading is trusted (logit < 0) keep the raw depth
   *exactly*; holes and distrusted pixels take the corrected fill. So restoration never smooths good
   depth: it can only fill and repair.

Depth is normalised per frame by the median valid raw depth ``μ``: the network sees ``(d / μ − 1)·5``,
so the same weights serve near and far views. Colour is optional (the model is trained with colour
dropped on part of its crops); there is no IR input, since most real pipelines carry none.

Any frame size: ``restore`` pads the frame on the bottom and right to the next multiple of the U-Net's
down-sampling (``multiple_px``) by repeating the edge pixels, runs, and crops back.

Weights on disk: a folder with ``config.json`` (``RestorationConfig``, which names its ``format_version``)
and ``weights.pt`` (a state dict).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model_files import (CONFIG_FILE, WEIGHTS_FILE, ModelFormatError, check_config_keys, load_model_folder,
                           save_model_folder, shipped_model_folder, write_config_json)
from .inputs import check_frame

DEFAULT_WEIGHTS = shipped_model_folder("depth_restore")
HOW_TO_GET = ("train one with `diffgrasp train-restore --data PAIRS --real ../shared/real --out FOLDER` (see "
              "models/depth_restore/MODEL_CARD.md) and pass its folder, or restore models/depth_restore/ "
              "from the repository")
DEPTH_SCALE = 5.0  # normalised depth = (d / μ − 1) · DEPTH_SCALE: ±20 % of μ maps to ±1
# Format 1 was the IR-gated model (depth + IR in, a learned blend everywhere); format 2 keeps valid depth.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class RestorationConfig:
    widths: tuple[int, ...] = (16, 24, 32, 48)  # U-Net channels at 1/4, 1/8, 1/16, 1/32 resolution
    reduction: int = 4  # the U-Net's input is the frame pooled by this factor
    head_channels: int = 8  # full-resolution head width
    max_depth_m: float = 2.0  # filled depth is clipped to [0, max_depth_m]; kept raw depth is never changed
    uses_color: bool = True  # trained with colour on part of its crops (it also runs without)
    format_version: int = FORMAT_VERSION

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
        data = json.loads(Path(path).read_text())
        found = data.get("format_version", 1)
        if found != FORMAT_VERSION:
            raise ModelFormatError(
                f"{path} is a depth restoration model of format {found} (another version of diffgrasp); this "
                f"version reads format {FORMAT_VERSION} (depth + optional colour, raw depth kept where valid)")
        return cls(**check_config_keys(cls, data, str(path), "restoration"))


TINY = dict(widths=(4, 8), head_channels=4)  # trains in tests in a second


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


_DY = (-1, -1, -1, 0, 0, 0, 1, 1, 1)
_DX = (-1, 0, 1, -1, 0, 1, -1, 0, 1)
_SPATIAL = tuple(-0.5 * (dy * dy + dx * dx) for dy, dx in zip(_DY, _DX))  # log of a Gaussian, σ = 1 px


def _windows(padded: torch.Tensor, b: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """The 3×3 windows of edge-padded (B, C, H + 2, W + 2) ``padded`` around pixels (b, row, col) of the
    unpadded image, gathered from the flattened tensor: (C, N, 9)."""
    _, channels, height, width = padded.shape
    offsets = torch.tensor([dy * width + dx for dy, dx in zip(_DY, _DX)], device=row.device)
    flat = ((b * height + row + 1) * width + col + 1)[:, None] + offsets
    return padded.transpose(0, 1).reshape(channels, -1).index_select(1, flat.flatten()).view(channels, *flat.shape)


def guided_fill(x: torch.Tensor, valid: torch.Tensor, guide: torch.Tensor,
                hole_confidence: torch.Tensor | float = 0.01) -> torch.Tensor:
    """Fill the invalid pixels of ``x`` (B, 1, H, W) (``valid`` 0/1, same shape) with a joint bilateral
    pyramid guided by ``guide`` (B, C, H, W): two pixels weigh exp(−|g_p − g_q|² / 2) for each other.

    Down: halve until no hole is left, each cell the mean of its valid pixels. Up: a hole pixel takes
    the weighted mean of the valid pixels of its 3×3 window and, weighted ``hole_confidence`` times
    less, of the coarser level's filled 3×3 window around its cell. Only hole pixels are computed;
    valid pixels come back unchanged."""
    levels = [(x * valid, valid, guide)]
    depth, known, features = levels[0]
    while min(depth.shape[-2:]) > 1 and not bool(known.all()):
        weight = F.avg_pool2d(known, 2, ceil_mode=True)
        known = (weight > 0).to(x.dtype)
        depth = F.avg_pool2d(depth, 2, ceil_mode=True) / weight.clamp_min(1e-12) * known
        features = F.avg_pool2d(features, 2, ceil_mode=True)
        levels.append((depth, known, features))
    depth, known, _ = levels[-1]
    mean = (depth * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    filled = torch.where(known > 0, depth, mean)  # the top level (one cell when a frame is mostly holes)
    spatial = torch.tensor(_SPATIAL, dtype=x.dtype, device=x.device)
    for level in range(len(levels) - 2, -1, -1):
        depth, known, features = levels[level]
        b, _, row, col = torch.nonzero(known == 0, as_tuple=True)
        if len(b) == 0:
            filled = depth
            continue
        own = features.transpose(0, 1).reshape(features.shape[1], -1).index_select(
            1, (b * features.shape[2] + row) * features.shape[3] + col)[:, :, None]  # (C, N, 1)
        fine = _windows(F.pad(torch.cat([features, known, depth], 1), (1, 1, 1, 1), mode="replicate"), b, row, col)
        coarse = _windows(F.pad(torch.cat([levels[level + 1][2], filled], 1), (1, 1, 1, 1), mode="replicate"),
                          b, row // 2, col // 2)
        c = own.shape[0]
        w_fine = torch.exp(spatial - 0.5 * (fine[:c] - own).square().sum(0)) * fine[c]
        w_coarse = hole_confidence * torch.exp(spatial - 0.5 * (coarse[:c] - own).square().sum(0))
        value = (((w_fine * fine[c + 1]).sum(1) + (w_coarse * coarse[c]).sum(1))
                 / (w_fine.sum(1) + w_coarse.sum(1)).clamp_min(1e-12))
        batch, _, height, width = depth.shape
        filled = depth.flatten().index_put(((b * height + row) * width + col,), value).view(batch, 1, height, width)
    return filled


@dataclass(frozen=True)
class Restoration:
    """What the network says about a batch, all (B, 1, H, W) in normalised depth (see ``DEPTH_SCALE``)."""

    fill: torch.Tensor  # the corrected fill, for every pixel
    coarse: torch.Tensor  # the U-Net's fill alone (deep supervision)
    wrong_logit: torch.Tensor  # > 0: the raw reading is distrusted (only meaningful where raw is valid)


class DepthRestorer(nn.Module):
    """``forward(raw_m, color)`` on (B, 1, H, W) depth in metres (0 = invalid) and (B, 3, H, W) colour in
    0..1 or None; returns restored depth in metres."""

    def __init__(self, config: RestorationConfig = RestorationConfig()):
        super().__init__()
        self.config = config
        w = config.widths
        # Colour (0..1) to the guided fill's guide; initialised to an opponent colour space scaled like
        # CIELAB over a colour σ of 10 (lightness, red-green, yellow-blue), learned from there.
        self.guide = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.guide.weight.copy_(torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, -1.0, 0.0], [0.5, 0.5, -1.0]])
                                    .mul(10.0).view(3, 3, 1, 1))
        # Two more guide channels from the colour's neighbourhood (texture, shading), zero at first.
        self.guide_context = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 2, 1))
        nn.init.zeros_(self.guide_context[2].weight)
        nn.init.zeros_(self.guide_context[2].bias)
        self.log_hole_confidence = nn.Parameter(torch.tensor(math.log(0.01)))
        # Per cell: guided fill, validity, depth spread, colour (3), colour present.
        self.down = nn.ModuleList([_block(7, w[0])] + [_block(a, b) for a, b in zip(w[:-1], w[1:])])
        self.up = nn.ModuleList([_block(b + a, a) for a, b in zip(w[:-1], w[1:])])
        # The coarse correction and the head's share of the features, upsampled together in one go.
        self.to_full = nn.Conv2d(w[0], 1 + config.head_channels, 1)
        # Full resolution (most of a frame's time, so it stays thin): a 1×1 mix of the coarse fill,
        # validity, colour (3) and colour present with the upsampled features, then one 3×3 conv.
        self.head_in = nn.Conv2d(6, config.head_channels, 1)
        self.head_out = nn.Conv2d(config.head_channels, 2, 3, padding=1)
        # Start as the guided fill that trusts every reading; training moves away from there.
        for layer in (self.to_full, self.head_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.head_out.bias[1] = -4.0

    @property
    def uses_color(self) -> bool:
        return self.config.uses_color

    def forward(self, raw_m: torch.Tensor, color: torch.Tensor | None = None,
                mu: torch.Tensor | None = None) -> torch.Tensor:
        mu = (_median_valid(raw_m) if mu is None else mu).view(-1, 1, 1, 1)
        valid = raw_m > 0.0
        restoration = self.predict(raw_m, color, mu)
        keep = valid & (restoration.wrong_logit < 0.0)
        filled = (mu * (1.0 + restoration.fill / DEPTH_SCALE)).clamp(0.0, self.config.max_depth_m)
        return torch.where(keep, raw_m, filled)

    def predict(self, raw_m: torch.Tensor, color: torch.Tensor | None, mu: torch.Tensor) -> Restoration:
        """Sides must be multiples of ``config.multiple_px``; ``mu`` (B, 1, 1, 1) the normalising depth."""
        cfg = self.config
        valid = (raw_m > 0.0).to(raw_m.dtype)
        x = torch.where(valid > 0, (raw_m / mu - 1.0) * DEPTH_SCALE, torch.zeros_like(raw_m))
        if color is None:
            color = raw_m.new_zeros(raw_m.shape[0], 3, *raw_m.shape[-2:])
            has_color = torch.zeros_like(raw_m)
        else:
            has_color = torch.ones_like(raw_m)
        guide = torch.cat([self.guide(color), self.guide_context(color)], dim=1)
        base = guided_fill(x, valid, guide, self.log_hole_confidence.exp())
        pixels = torch.cat([base, valid, color - 0.5, has_color], dim=1)

        r = cfg.reduction
        base_small = F.avg_pool2d(base, r)
        spread = (F.max_pool2d(base, r) + F.max_pool2d(-base, r)).clamp(max=1.0)  # depth edges inside a cell
        h = torch.cat([base_small, F.avg_pool2d(valid, r), spread, F.avg_pool2d(pixels[:, 2:], r)], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(reversed(self.up), reversed(skips[:-1])):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                 skip], dim=1))
        correction, features = F.interpolate(self.to_full(h), size=raw_m.shape[-2:], mode="bilinear",
                                             align_corners=False).split([1, cfg.head_channels], dim=1)
        coarse = base + correction
        hidden = F.relu(self.head_in(torch.cat([coarse, pixels[:, 1:]], dim=1)) + features)
        residual, wrong_logit = self.head_out(hidden).chunk(2, dim=1)
        return Restoration(coarse + 0.1 * residual, coarse, wrong_logit)

    @torch.no_grad()
    def restore(self, depth_m: np.ndarray, color: np.ndarray | None = None) -> np.ndarray:
        """Restore one frame of any size: ``depth_m`` (H, W) float32 metres (0 = invalid), ``color``
        (H, W, 3) uint8 RGB registered to the depth, or None (depth alone). Returns (H, W) float32
        metres; raw depth is returned unchanged wherever it is valid and trusted."""
        check_frame(depth_m, color)
        if color is None and self.uses_color:
            warnings.warn("no colour image: restoring from depth alone (the model was trained for both; "
                          "colour helps where holes cross object edges)", stacklevel=3)
        device = next(self.parameters()).device
        raw = torch.from_numpy(np.ascontiguousarray(depth_m, dtype=np.float32))[None, None].to(device)
        rgb = None
        if color is not None:
            rgb = torch.from_numpy(np.ascontiguousarray(color)).to(device).permute(2, 0, 1)[None].float() / 255.0
        mu = _median_valid(raw)  # of the frame, not of its padding
        height, width = depth_m.shape
        m = self.config.multiple_px
        pad = (0, -width % m, 0, -height % m)  # left, right, top, bottom
        if any(pad):
            raw = F.pad(raw, pad, mode="replicate")
            rgb = F.pad(rgb, pad, mode="replicate") if rgb is not None else None
        return self(raw, rgb, mu)[0, 0, :height, :width].cpu().numpy()

    @classmethod
    def from_pretrained(cls, folder: str | Path = DEFAULT_WEIGHTS) -> "DepthRestorer":
        """The model saved in ``folder``, in eval mode; a clear error when it is missing, unreadable or
        of another format version (``ModelFormatError``)."""
        return load_model_folder(cls, RestorationConfig, folder, "depth restoration", HOW_TO_GET)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json + weights.pt so ``from_pretrained(folder)`` restores the model; atomic."""
        save_model_folder(self, folder)


def _median_valid(raw_m: torch.Tensor) -> torch.Tensor:
    """Per-image median of the valid depth, (B,); 1 m for an image with nothing valid."""
    medians = []
    for image in raw_m.flatten(1):
        valid = image[image > 0.0]
        medians.append(valid.median() if valid.numel() else image.new_tensor(1.0))
    return torch.stack(medians)
