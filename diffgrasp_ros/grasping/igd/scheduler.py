"""DDPM training / DDIM sampling over 9-D rotation matrices, with the SVD projection onto SO(3).

The interface follows ``diffusers`` schedulers (``set_timesteps``, ``add_noise``, ``step``) so the
sampler reads familiarly, without the dependency.
"""
from __future__ import annotations

import math

import torch


def cosine_alphas_cumprod(steps: int, s: float = 0.008, device: torch.device | str = "cpu") -> torch.Tensor:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal), t = 0 .. steps-1."""
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64, device=device)
    f = torch.cos((x / steps + s) / (1 + s) * math.pi / 2) ** 2
    alphas = (f[1:] / f[:-1]).clamp(min=1e-4, max=0.9999)  # per-step α_t, ᾱ_t = Π α
    return torch.cumprod(alphas, 0).float()


class DDIMScheduler:
    """ε-prediction diffusion with ``train_steps`` noise levels; deterministic DDIM steps by default. Its
    schedule and timesteps live on ``device``, the device of the model it samples with."""

    def __init__(self, train_steps: int = 100, clip_sample: float | None = 1.0, device: torch.device | str = "cpu"):
        self.train_steps = train_steps
        self.clip_sample = clip_sample  # rotation-matrix entries lie in [-1, 1]
        self.device = torch.device(device)
        self.alphas_cumprod = cosine_alphas_cumprod(train_steps, device=self.device)
        self.timesteps = torch.arange(train_steps - 1, -1, -1, device=self.device)

    def set_timesteps(self, steps: int) -> None:
        """Sample with ``steps`` evenly spaced timesteps, from the noisiest down to 0."""
        if not 1 <= steps <= self.train_steps:
            raise ValueError(f"denoising steps must be in [1, {self.train_steps}], got {steps}")
        self.timesteps = torch.linspace(self.train_steps - 1, 0, steps, device=self.device).round().long()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε, for a batch of timesteps ``t`` (one per row)."""
        a = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def _previous(self, t: int) -> int:
        later = self.timesteps[self.timesteps < t]
        return int(later[0]) if len(later) else -1

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, eta: float = 0.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """x_{t'} for the next timestep t' of ``timesteps`` (x0's estimate after the last one)."""
        a_t = self.alphas_cumprod[t]
        prev = self._previous(t)
        a_prev = self.alphas_cumprod[prev] if prev >= 0 else a_t.new_tensor(1.0)
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
            eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x_prev = x_prev + sigma * torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        return x_prev


def project_to_so3(m: torch.Tensor) -> torch.Tensor:
    """The rotation nearest (Frobenius) to each 3x3 matrix: U diag(1, 1, det(UVᵀ)) Vᵀ; (..., 9) or (..., 3, 3)."""
    m = m.reshape(*m.shape[:-1], 3, 3) if m.shape[-1] == 9 else m
    u, _, vh = torch.linalg.svd(m)
    d = torch.det(u @ vh)
    fix = torch.ones_like(u[..., 0, :])
    fix[..., 2] = d
    return u @ torch.diag_embed(fix) @ vh
