"""Sampling wrist poses with DDIM, guiding them, projecting them onto SE(3), and scoring their likelihood.

A pose is x = ((t_tcp - seed) / s, R flattened row-major) in R¹² (s = ``translation_scale_m``); the TCP
frame's columns are x, y = closing (thumb -> fingers), z = approach (out of the palm).

Guidance (T(R,O) Grasp style): at every DDIM step the clean estimate x̂0 = (x_t - √(1-ᾱ)ε̂)/√ᾱ is moved down
the gradient of a cost, x̂0 <- x̂0 - scale·∇cost(x̂0), and ε̂ is recomputed from it before the step, so the
sample is pulled towards what was asked while the network keeps it on the learned grasp manifold. Costs:
``approach`` 1 - cos(z, d) for the TCP approach axis z (third column of R); ``closing`` the same for the
closing axis; ``region`` max(0, |t_tcp - c| - r) / s, which pulls the TCP into a sphere.

Likelihood: the denoising ELBO estimated at fixed timesteps with fixed noise, log p(x) ≈ -½ · mean over
(t, dims) of |ε̂(x_t, t) - ε|² (a per-dimension, constant-free score: only its order matters for ranking).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..igd.scheduler import DDIMScheduler, project_to_so3


@dataclass(frozen=True)
class Guidance:
    approach: np.ndarray | None = None  # (3,) unit vector the TCP +z should point along
    closing: np.ndarray | None = None  # (3,) unit vector the TCP +y (thumb -> fingers) should point along
    region_centre_m: np.ndarray | None = None  # (3,) workspace frame
    region_radius_m: float = 0.0
    scale: float = 1.0

    @property
    def active(self) -> bool:
        return self.scale > 0 and (self.approach is not None or self.closing is not None
                                   or self.region_centre_m is not None)


def _axis_cost(R: torch.Tensor, column: int, direction: np.ndarray) -> torch.Tensor:
    axis = R[..., :, column]
    d = torch.as_tensor(direction, dtype=R.dtype, device=R.device)
    return 1.0 - (axis @ d) / axis.norm(dim=-1).clamp(min=1e-6)


def guidance_cost(x0: torch.Tensor, seeds: torch.Tensor, guidance: Guidance, translation_scale_m: float) -> torch.Tensor:
    """Per-sample cost (n,) of poses x0 (n, 12) at seeds (n, 3)."""
    R = x0[:, 3:].reshape(-1, 3, 3)
    cost = torch.zeros(len(x0), dtype=x0.dtype, device=x0.device)
    if guidance.approach is not None:
        cost = cost + _axis_cost(R, 2, guidance.approach)
    if guidance.closing is not None:
        cost = cost + _axis_cost(R, 1, guidance.closing)
    if guidance.region_centre_m is not None:
        t = seeds + translation_scale_m * x0[:, :3]
        distance = (t - torch.as_tensor(guidance.region_centre_m, dtype=x0.dtype, device=x0.device)).norm(dim=-1)
        cost = cost + (distance - guidance.region_radius_m).clamp(min=0.0) / translation_scale_m
    return cost


def guidance_gradient(x0: torch.Tensor, seeds: torch.Tensor, guidance: Guidance,
                      translation_scale_m: float) -> torch.Tensor:
    """∇ of ``guidance_cost`` with respect to x0 (n, 12), in closed form (no autograd: it runs in inference mode)."""
    grad = torch.zeros_like(x0)
    R = x0[:, 3:].reshape(-1, 3, 3)
    for column, direction in ((2, guidance.approach), (1, guidance.closing)):
        if direction is None:
            continue
        a = R[:, :, column]
        d = torch.as_tensor(direction, dtype=x0.dtype, device=x0.device)
        norm = a.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        g_axis = -(d / norm - (a @ d).unsqueeze(-1) * a / norm**3)  # ∂(1 - a·d/|a|)/∂a
        grad[:, 3 + column:12:3] += g_axis  # R[i, column] is x[3 + 3i + column]
    if guidance.region_centre_m is not None:
        centre = torch.as_tensor(guidance.region_centre_m, dtype=x0.dtype, device=x0.device)
        offset = seeds + translation_scale_m * x0[:, :3] - centre
        distance = offset.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        grad[:, :3] += (distance > guidance.region_radius_m) * offset / distance
    return grad


def _guide(x0: torch.Tensor, seeds: torch.Tensor, guidance: Guidance, translation_scale_m: float) -> torch.Tensor:
    return x0 - guidance.scale * guidance_gradient(x0, seeds, guidance, translation_scale_m)


@torch.no_grad()
def sample_poses(model, condition: torch.Tensor, seeds: torch.Tensor, scheduler: DDIMScheduler, rounds: int,
                 generator: torch.Generator | None = None, guidance: Guidance | None = None) -> torch.Tensor:
    """``rounds`` poses x (S·rounds, 12) per seed (features ``condition`` (S, hidden), positions ``seeds``
    (S, 3)), seed-major, after DDIM over ``scheduler.timesteps`` (guided when ``guidance`` is active);
    the rotation part is not projected yet (``to_pose``). ``scheduler`` and ``generator`` are on the device
    of ``condition``."""
    cfg = model.config
    cond = condition.repeat_interleave(rounds, 0)
    at = seeds.repeat_interleave(rounds, 0)
    x = torch.randn(len(cond), 12, generator=generator, device=cond.device)
    guided = guidance is not None and guidance.active
    clip = scheduler.clip_sample
    for t in scheduler.timesteps:
        t = int(t)
        eps = model.denoiser(x, torch.full((len(x),), t, device=x.device), cond)
        if guided:
            a = scheduler.alphas_cumprod[t]
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            if clip is not None:
                x0 = x0.clamp(-clip, clip)
            x0 = _guide(x0, at, guidance, cfg.translation_scale_m)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x = scheduler.step(eps, t, x)
    if guided:  # the last step's output is the clamped x0: guide it once more, unclamped
        x = _guide(x, at, guidance, cfg.translation_scale_m)
    return x


def to_pose(x: torch.Tensor, seeds: torch.Tensor, translation_scale_m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotations (n, 3, 3) in SO(3) (SVD projection) and TCP positions (n, 3) of poses x at seeds (n, 3)."""
    return project_to_so3(x[:, 3:]), seeds + translation_scale_m * x[:, :3]


def to_x(R: torch.Tensor, t: torch.Tensor, seeds: torch.Tensor, translation_scale_m: float) -> torch.Tensor:
    return torch.cat([(t - seeds) / translation_scale_m, R.reshape(-1, 9)], -1)


@torch.no_grad()
def log_likelihood(model, x0: torch.Tensor, condition: torch.Tensor, scheduler: DDIMScheduler,
                   timesteps: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Denoising-ELBO estimate (n,) of log p(x0 | condition) (see the module docstring); fixed noise per call,
    so equal inputs score equally (the noise is drawn on the device of ``x0``)."""
    generator = torch.Generator(device=x0.device).manual_seed(seed)
    total = torch.zeros(len(x0), device=x0.device)
    steps = [t for t in timesteps if 0 <= t < scheduler.train_steps] or [scheduler.train_steps // 2]
    for t in steps:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        tt = torch.full((len(x0),), t, device=x0.device)
        eps = model.denoiser(scheduler.add_noise(x0, noise, tt), tt, condition)
        total += ((eps - noise) ** 2).mean(-1)
    return -0.5 * total / len(steps)


def farthest_point_sampling(points: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Indices of ``k`` points (or all) spread by farthest-point sampling, starting at index ``start``."""
    n = len(points)
    if n <= k:
        return np.arange(n)
    chosen = np.empty(k, int)
    chosen[0] = start
    distance = np.linalg.norm(points - points[start], axis=1)
    for i in range(1, k):
        chosen[i] = int(np.argmax(distance))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[i]], axis=1))
    return chosen
