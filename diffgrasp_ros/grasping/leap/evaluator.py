"""A learned evaluator of LEAP grasps: P(held | the TSDF around the hand, the grasp's pose and postures).

The pose diffusion's log-likelihood ranks its own samples no better than chance (on tuning piles the
held fraction was the same at every rank), while the best of its samples held in most scenes. The
evaluator is trained on exactly that: the model's own grasps, lift-tested in training clutter
(``training.leap_quality_data``), in the style of the grasp classifiers of VGN / GIGA / IGD.

Input per grasp: the TSDF grid sampled (trilinear) on a ``lattice`` of points fixed in the grasp TCP
frame, covering where the palm and digits close (``lattice_min_m`` .. ``lattice_max_m``), so the
network sees the scene as the hand does; plus the gravity direction in the TCP frame, the TCP height
above the table and both postures (16 joints each, scaled to the joint limits). A small 3D CNN reads
the lattice, an MLP the rest; one logit out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...devices import float_tensor, module_device
from ...model_files import (check_ranges, load_model_folder, read_config_json, save_model_folder,
                            shipped_model_folder, write_config_json)
from ...robots import leap


@dataclass(frozen=True)
class LeapEvaluatorConfig:
    lattice: tuple[int, int, int] = (10, 10, 8)
    lattice_min_m: tuple[float, float, float] = (-0.07, -0.09, -0.07)  # grasp TCP frame
    lattice_max_m: tuple[float, float, float] = (0.07, 0.09, 0.07)
    # Small and dropout-regularised: the data are thousands of grasps but only hundreds of scenes, and
    # wider networks (16 channels, 128 hidden) memorised the scenes within a few epochs.
    channels: int = 8
    hidden: int = 64
    dropout: float = 0.2
    workspace_size_m: float = 0.30
    resolution: int = 40
    table_height_m: float = 0.05

    def __post_init__(self):
        for name in ("lattice", "lattice_min_m", "lattice_max_m"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        # The head's input grows with the product of the lattice sides.
        check_ranges(self, "LEAP evaluator", lattice=(1, 64))

    def to_json(self, path: Path) -> None:
        write_config_json(self, path)

    @classmethod
    def from_json(cls, path: Path) -> "LeapEvaluatorConfig":
        return read_config_json(cls, path, "LEAP evaluator")


def lattice_offsets(cfg: LeapEvaluatorConfig) -> np.ndarray:
    """(L, 3) lattice points in the TCP frame, x-major (reshapes to ``cfg.lattice``)."""
    axes = [np.linspace(lo, hi, n) for lo, hi, n in zip(cfg.lattice_min_m, cfg.lattice_max_m, cfg.lattice)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def sample_tsdf(tsdf: torch.Tensor, points: torch.Tensor, size_m: float) -> torch.Tensor:
    """Trilinear TSDF values (M, L) of a (R, R, R) ``[x, y, z]`` grid at workspace points (M, L, 3); 0 (the
    grid's unobserved value) outside the workspace."""
    u = points / size_m * 2.0 - 1.0  # voxel centres on grid_sample's pixel centres (align_corners=False)
    grid = u.flip(-1).reshape(1, 1, -1, 1, 3)  # grid_sample's (x, y, z) index the (W, H, D) = (z, y, x) axes
    values = F.grid_sample(tsdf[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return values.reshape(points.shape[:-1])


def grasp_inputs(cfg: LeapEvaluatorConfig, tsdf: np.ndarray, R: np.ndarray, t: np.ndarray, q_grasp: np.ndarray,
                 q_pregrasp: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluator's inputs for grasps (R (M, 3, 3), t (M, 3) TCP poses in the workspace frame; postures
    (M, 16)) in a scene's TSDF grid: the lattice values (M, 1, *lattice) and the vector (M, 36), on ``device``."""
    R, t = float_tensor(R, device), float_tensor(t, device)
    points = torch.einsum("mij,lj->mli", R, float_tensor(lattice_offsets(cfg), device)) + t[:, None]
    values = sample_tsdf(float_tensor(tsdf, device), points, cfg.workspace_size_m)
    gravity = -R[:, 2, :]  # world -z in the TCP frame: rows of R^T @ (0, 0, -1)
    height = (t[:, 2:] - cfg.table_height_m) / 0.1
    lower, span = float_tensor(leap.LOWER_RAD, device), float_tensor(leap.UPPER_RAD - leap.LOWER_RAD, device)
    scaled = [(float_tensor(q, device) - lower) / span * 2.0 - 1.0 for q in (q_grasp, q_pregrasp)]
    return values.reshape(len(R), 1, *cfg.lattice), torch.cat([gravity, height, *scaled], -1)


class LeapGraspEvaluator(nn.Module):
    def __init__(self, cfg: LeapEvaluatorConfig):
        super().__init__()
        self.config = cfg
        c = cfg.channels
        self.volume = nn.Sequential(
            nn.Conv3d(1, c, 3, padding=1), nn.SiLU(),
            nn.Conv3d(c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv3d(2 * c, 2 * c, 3, padding=1), nn.SiLU(), nn.Flatten())
        cells = int(np.prod([(n + 1) // 2 for n in cfg.lattice]))
        self.head = nn.Sequential(nn.Linear(2 * c * cells + 36, cfg.hidden), nn.SiLU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.hidden, 1))

    def forward(self, volume: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """Logits (M,) of P(held) from ``grasp_inputs``."""
        return self.head(torch.cat([self.volume(volume), vector], -1)).squeeze(-1)

    @torch.inference_mode()
    def log_p_held(self, tsdf: np.ndarray, R: np.ndarray, t: np.ndarray, q_grasp: np.ndarray,
                   q_pregrasp: np.ndarray) -> np.ndarray:
        """log P(held) (M,) of grasps in a scene (see ``grasp_inputs``)."""
        if len(R) == 0:
            return np.zeros(0)
        inputs = grasp_inputs(self.config, tsdf, R, t, q_grasp, q_pregrasp, module_device(self))
        return F.logsigmoid(self(*inputs)).cpu().numpy().astype(float)


DEFAULT_EVALUATOR_WEIGHTS = shipped_model_folder("leap_evaluator")
HOW_TO_GET = ("train one with `diffgrasp train-leap-evaluator --data QUALITY_DATASET --out FOLDER` and pass "
              "evaluator=FOLDER (e.g. --method leap:evaluator=FOLDER), or restore models/leap_evaluator/ from the "
              "repository; evaluator=none ranks without it")


def save_evaluator(model: LeapGraspEvaluator, folder: Path) -> None:
    save_model_folder(model, folder)


def load_evaluator(folder: Path, device: str | torch.device = "auto") -> LeapGraspEvaluator:
    """The evaluator saved in ``folder``, in eval mode on ``device`` (``devices.resolve_device``); a clear error
    when missing or unreadable."""
    return load_model_folder(LeapGraspEvaluator, LeapEvaluatorConfig, folder, "LEAP grasp-evaluator", HOW_TO_GET,
                             device)
