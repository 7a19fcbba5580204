"""Learned depth restoration that keeps the sensor's depth where it is right: depth (+ colour) in, dense depth out.

Three steps, each visible in ``forward``:

1. **Plane fill.** ``depth.plane_fill`` fills every hole with the local plane (in inverse depth) of the
   valid depth around it, fitted down a colour-guided pyramid: a hole in a table or a box face continues
   its surface, and a hole beside an object takes the side whose colour it shares. It is classical
   (no learned parameters) and runs on the CPU with numba; without colour it is guided by position only.
2. **Learned correction.** A light U-Net at an eighth of the resolution sees the plane fill, the
   validity mask, the depth spread per cell and (when given) the colour, and predicts a smooth
   correction of the fill and, for every valid pixel, the logit that the sensor's reading is wrong
   (transparent, specular and dark surfaces), both upsampled bilinearly. The correction starts at
   zero and the logit at −4, so an untrained model is the plane fill and trusts every reading.
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

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import float_tensor, module_device
from ..model_files import (CONFIG_FILE, WEIGHTS_FILE, ModelFormatError, check_config_keys, load_model_folder,
                           read_config_data, save_model_folder, shipped_model_folder, write_config_json)
from .inputs import check_frame
from .plane_fill import PlaneFillConfig, plane_fill

DEFAULT_WEIGHTS = shipped_model_folder("depth_restore")
HOW_TO_GET = ("train one with `diffgrasp train-restore --data PAIRS --real ../shared/real --out FOLDER` (see "
              "models/depth_restore/MODEL_CARD.md) and pass its folder, or restore models/depth_restore/ "
              "from the repository")
DEPTH_SCALE = 5.0  # normalised depth = (d / μ − 1) · DEPTH_SCALE: ±20 % of μ maps to ±1
# Format 1 was the IR-gated model (depth + IR in, a learned blend everywhere); format 2 kept valid depth
# over a learned joint bilateral fill; format 3 keeps it over the plane fill.
FORMAT_VERSION = 3


@dataclass(frozen=True)
class RestorationConfig:
    widths: tuple[int, ...] = (16, 32, 48)  # U-Net channels at 1/8, 1/16, 1/32 resolution
    reduction: int = 8  # the U-Net's input is the frame pooled by this factor
    max_depth_m: float = 2.0  # filled depth is clipped to [0, max_depth_m]; kept raw depth is never changed
    uses_color: bool = True  # trained with colour on part of its crops (it also runs without)
    fill: PlaneFillConfig = PlaneFillConfig()
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if isinstance(self.fill, dict):
            object.__setattr__(self, "fill", PlaneFillConfig(**self.fill))
        if not self.widths or min(self.widths) < 1 or self.reduction < 1:
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
        data = read_config_data(path, "depth restoration")
        found = data.get("format_version", 1)
        if found != FORMAT_VERSION:
            raise ModelFormatError(
                f"{path} is a depth restoration model of format {found} (another version of diffgrasp); this "
                f"version reads format {FORMAT_VERSION} (plane fill + learned correction, raw depth kept where "
                "valid)")
        return cls(**check_config_keys(cls, data, str(path), "restoration"))


TINY = dict(widths=(4, 8))  # trains in tests in a second


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


@dataclass(frozen=True)
class Restoration:
    """What the network says about a batch, all (B, 1, H, W) in normalised depth (see ``DEPTH_SCALE``)."""

    fill: torch.Tensor  # the corrected fill, for every pixel (the raw depth plus correction where valid)
    wrong_logit: torch.Tensor  # > 0: the raw reading is distrusted (only meaningful where raw is valid)


class DepthRestorer(nn.Module):
    """``forward(raw_m, color)`` on (B, 1, H, W) depth in metres (0 = invalid) and (B, 3, H, W) colour in
    0..1 or None; returns restored depth in metres."""

    def __init__(self, config: RestorationConfig = RestorationConfig()):
        super().__init__()
        self.config = config
        w = config.widths
        # Per cell: plane fill, validity, depth spread, colour (3), colour present.
        self.down = nn.ModuleList([_block(7, w[0])] + [_block(a, b) for a, b in zip(w[:-1], w[1:])])
        self.up = nn.ModuleList([_block(b + a, a) for a, b in zip(w[:-1], w[1:])])
        self.out = nn.Conv2d(w[0], 2, 1)  # correction, wrong-reading logit
        # Start as the plane fill that trusts every reading; training moves away from there.
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor([0.0, -4.0]))

    @property
    def uses_color(self) -> bool:
        return self.config.uses_color

    def forward(self, raw_m: torch.Tensor, color: torch.Tensor | None = None, mu: torch.Tensor | None = None,
                filled_m: torch.Tensor | None = None) -> torch.Tensor:
        mu = (_median_valid(raw_m) if mu is None else mu).view(-1, 1, 1, 1)
        valid = raw_m > 0.0
        restoration = self.predict(raw_m, color, mu, filled_m)
        keep = valid & (restoration.wrong_logit < 0.0)
        filled = (mu * (1.0 + restoration.fill / DEPTH_SCALE)).clamp(0.0, self.config.max_depth_m)
        return torch.where(keep, raw_m, filled)

    def predict(self, raw_m: torch.Tensor, color: torch.Tensor | None, mu: torch.Tensor,
                filled_m: torch.Tensor | None = None) -> Restoration:
        """Sides must be multiples of ``config.multiple_px``; ``mu`` (B, 1, 1, 1) the normalising depth;
        every image needs a valid pixel. ``filled_m``: the plane fill of ``raw_m`` when the caller has it."""
        r = self.config.reduction
        batch, _, height, width = raw_m.shape
        valid = (raw_m > 0.0).to(raw_m.dtype)
        filled_m = self.plane_fill(raw_m, color) if filled_m is None else filled_m
        base = (filled_m / mu - 1.0) * DEPTH_SCALE
        spread = (F.max_pool2d(base, r) + F.max_pool2d(-base, r)).clamp(max=1.0)  # depth edges inside a cell
        if color is None:
            cells = raw_m.new_zeros(batch, 4, height // r, width // r)  # grey, no colour
        else:
            cells = torch.cat([F.avg_pool2d(color, r) - 0.5, raw_m.new_ones(batch, 1, height // r, width // r)], 1)
        h = torch.cat([F.avg_pool2d(base, r), F.avg_pool2d(valid, r), spread, cells], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(reversed(self.up), reversed(skips[:-1])):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False),
                                 skip], dim=1))
        correction, wrong_logit = F.interpolate(self.out(h), size=(height, width), mode="bilinear",
                                                align_corners=False).chunk(2, dim=1)
        return Restoration(base + correction, wrong_logit)

    @torch.no_grad()
    def plane_fill(self, raw_m: torch.Tensor, color: torch.Tensor | None) -> torch.Tensor:
        """``depth.plane_fill`` of each image (on the CPU, then back to the input's device), in metres; an
        image without valid depth (a training crop can be one) is 1 m throughout, as its ``μ`` is."""
        filled = []
        for i, image in enumerate(raw_m[:, 0].cpu().numpy()):
            if not (image > 0.0).any():
                filled.append(raw_m.new_ones(image.shape))
                continue
            rgb = None if color is None else (color[i].permute(1, 2, 0) * 255.0).round().clamp(0, 255).to(
                torch.uint8).cpu().numpy()
            filled.append(torch.as_tensor(plane_fill(image, rgb, self.config.fill), device=raw_m.device))
        return torch.stack(filled)[:, None].to(raw_m)

    @torch.no_grad()
    def restore(self, depth_m: np.ndarray, color: np.ndarray | None = None) -> np.ndarray:
        """Restore one frame of any size: ``depth_m`` (H, W) float32 metres (0 = invalid), ``color``
        (H, W, 3) uint8 RGB registered to the depth, or None (depth alone). Returns (H, W) float32
        metres; raw depth is returned unchanged wherever it is valid and trusted."""
        check_frame(depth_m, color)
        if color is None and self.uses_color:
            warnings.warn("no colour image: restoring from depth alone (the model was trained for both; "
                          "colour helps where holes cross object edges)", stacklevel=3)
        device = module_device(self)

        def tensor(image: np.ndarray) -> torch.Tensor:  # (1, C, H, W), padded for the U-Net
            image = float_tensor(image, device)
            image = image[None, None] if image.ndim == 2 else image.permute(2, 0, 1)[None]
            return F.pad(image, pad, mode="replicate") if any(pad) else image

        height, width = depth_m.shape
        m = self.config.multiple_px
        pad = (0, -width % m, 0, -height % m)  # left, right, top, bottom
        raw, filled = tensor(depth_m), tensor(plane_fill(depth_m, color, self.config.fill))
        rgb = None if color is None else tensor(color) / 255.0
        mu = _median_valid(raw[..., :height, :width])  # of the frame, not of its padding
        return self(raw, rgb, mu, filled)[0, 0, :height, :width].cpu().numpy()

    @classmethod
    def from_pretrained(cls, folder: str | Path = DEFAULT_WEIGHTS,
                        device: str | torch.device = "auto") -> "DepthRestorer":
        """The model saved in ``folder``, in eval mode on ``device`` (``devices.resolve_device``); a clear error
        when it is missing, unreadable or of another format version (``ModelFormatError``)."""
        return load_model_folder(cls, RestorationConfig, folder, "depth restoration", HOW_TO_GET, device)

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
