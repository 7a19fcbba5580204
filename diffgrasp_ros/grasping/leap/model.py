"""The LEAP grasp networks (DexGraspNet 2.0 style, CPU-sized).

- Backbone: IGD's TSDF -> tri-plane encoder (``igd.model.TriPlaneEncoder``); a surface point's feature is
  an MLP of its tri-plane lookup concatenated with the mean and max of lookups on a 3x3x3 cube around it
  (``neighbourhood_m``): (B, M, hidden).
- Heads per point: objectness (on an object, not the table) and graspness (some successful LEAP grasp
  has its TCP within ``seed_radius_m`` of the point, i.e. the point can seed it).
- Pose denoiser: ε(x_t, t | seed feature), x = ((t_tcp - seed) / translation_scale_m, R row-major) in R¹².
- Joint head: (seed feature, pose x) -> q_grasp and q_pregrasp (16 radians each, URDF order), squashed
  into the LEAP joint limits.

Shapes: B scenes, M points / seeds, positions in metres in the workspace frame.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...robots import leap
from ..igd.model import TriPlaneEncoder, _mlp, focal_loss, timestep_embedding
from ..igd.scheduler import DDIMScheduler
from .config import LeapConfig

POSE_DIM = 12


class PoseDenoiser(nn.Module):
    def __init__(self, cfg: LeapConfig):
        super().__init__()
        self.hidden = cfg.hidden
        self.time = _mlp([cfg.hidden, cfg.hidden, cfg.hidden])
        self.net = _mlp([POSE_DIM + 2 * cfg.hidden] + [cfg.denoiser_hidden] * cfg.denoiser_layers + [POSE_DIM])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, self.time(timestep_embedding(t, self.hidden)), condition], -1))


class LeapGraspModel(nn.Module):
    def __init__(self, cfg: LeapConfig):
        super().__init__()
        self.config = cfg
        raw = 3 * cfg.plane_channels
        self.encoder = TriPlaneEncoder(cfg)  # reads voxel_channels, plane_channels, unet_depth, workspace_size_m
        offsets = torch.tensor([[x, y, z] for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1)],
                               dtype=torch.float32) * cfg.neighbourhood_m
        self.register_buffer("offsets", offsets, persistent=False)
        self.point_net = nn.Sequential(_mlp([3 * raw + 1, cfg.hidden, cfg.hidden]), nn.LayerNorm(cfg.hidden))
        self.objectness_head = _mlp([cfg.hidden, cfg.hidden // 2, 1])
        self.graspness_head = _mlp([cfg.hidden, cfg.hidden // 2, 1])
        self.denoiser = PoseDenoiser(cfg)
        self.joint_head = _mlp([cfg.hidden + POSE_DIM, cfg.joint_hidden, cfg.joint_hidden, 32])
        self.register_buffer("q_lower", torch.tensor(leap.LOWER_RAD, dtype=torch.float32), persistent=False)
        self.register_buffer("q_upper", torch.tensor(leap.UPPER_RAD, dtype=torch.float32), persistent=False)
        self.register_buffer("q_open", torch.tensor(leap.OPEN_Q, dtype=torch.float32), persistent=False)
        # Start the joint head at the open / half-closed postures rather than mid-range.
        with torch.no_grad():
            span = leap.UPPER_RAD - leap.LOWER_RAD
            start = np.concatenate([leap.posture(0.4), leap.OPEN_Q])
            frac = np.clip((start - np.tile(leap.LOWER_RAD, 2)) / np.tile(span, 2), 0.02, 0.98)
            self.joint_head[-1].bias.copy_(torch.from_numpy(np.log(frac / (1 - frac))).float())

    # -- building blocks ----------------------------------------------------------------------------
    def encode(self, tsdf: torch.Tensor) -> list[torch.Tensor]:
        """TSDF grids (B, R, R, R) -> the three feature planes."""
        return self.encoder(tsdf)

    def point_features(self, planes: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
        """Local features (B, M, hidden) of points p (B, M, 3)."""
        f = self.encoder.sample(planes, p)
        around = self.encoder.sample(planes, p.unsqueeze(-2) + self.offsets)  # (B, M, 27, 3c)
        height = (p[..., 2:] - self.config.table_height_m) / self.config.workspace_size_m
        return self.point_net(torch.cat([f, around.mean(-2), around.amax(-2), height], -1))

    def objectness_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.objectness_head(features).squeeze(-1)

    def graspness_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.graspness_head(features).squeeze(-1)

    def joints(self, features: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(q_grasp, q_pregrasp), each (..., 16) radians inside the LEAP limits, for seed features and poses x.

        The pre-grasp is the head's pre-grasp output blended ``pregrasp_open`` of the way to ``leap.OPEN_Q``
        (a convex blend of in-limit postures stays in the limits), so the hand approaches more open.
        """
        out = torch.sigmoid(self.joint_head(torch.cat([features, x], -1)))
        span = self.q_upper - self.q_lower
        q_grasp = self.q_lower + span * out[..., :16]
        q_pre = self.q_lower + span * out[..., 16:]
        a = self.config.pregrasp_open
        return q_grasp, (1 - a) * q_pre + a * self.q_open

    # -- training -----------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor], scheduler: DDIMScheduler,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Objectness BCE, graspness focal loss, ε-MSE on positive poses, joint L2 on positives
        (a batch of ``training.leap_train.sample_batch``)."""
        planes = self.encode(batch["tsdf"])
        f = self.point_features(planes, batch["point_p"])
        objectness = F.binary_cross_entropy_with_logits(self.objectness_logits(f), batch["point_object"])
        graspness = 2.0 * focal_loss(self.graspness_logits(f), batch["point_grasp"]).mean()

        cond = self.point_features(planes, batch["seed_p"])  # (B, D, hidden)
        x0, mask = batch["pose_x"], batch["pose_mask"]
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, scheduler.train_steps, x0.shape[:-1], generator=generator, device=x0.device)
        x_t = scheduler.add_noise(x0.reshape(-1, POSE_DIM), noise.reshape(-1, POSE_DIM), t.reshape(-1))
        eps = self.denoiser(x_t.reshape(x0.shape), t, cond)
        count = mask.sum().clamp(min=1.0)
        diffusion = (((eps - noise) ** 2).mean(-1) * mask).sum() / count

        q_grasp, q_pre = self.joints(cond, x0)
        a = self.config.pregrasp_open
        target_pre = (1 - a) * batch["q_pregrasp"] + a * self.q_open
        joint_error = ((q_grasp - batch["q_grasp"]) ** 2).mean(-1) + ((q_pre - target_pre) ** 2).mean(-1)
        joints = (joint_error * mask).sum() / count
        total = objectness + graspness + diffusion + joints
        return {"total": total, "objectness": objectness, "graspness": graspness, "diffusion": diffusion,
                "joints": joints}
