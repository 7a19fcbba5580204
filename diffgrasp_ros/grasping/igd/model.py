"""The IGD networks: tri-plane encoder, deformable attention, orientation denoiser and evaluator heads.

Shapes: B scenes, M query points per scene, K sampled points per query; positions are metres in the
workspace frame (the cube [0, size]³ the TSDF covers), rotations are grasp-frame columns (x, y = closing,
z = approach) as in ``robots.gripper``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import IGDConfig
from .scheduler import DDIMScheduler, project_to_so3


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.SiLU())


class UNet2d(nn.Module):
    """A small U-Net refining one feature plane (channels double per level, sizes halve)."""

    def __init__(self, c_in: int, c: int, depth: int):
        super().__init__()
        self.inc = _conv_block(c_in, c)
        self.down = nn.ModuleList(_conv_block(c * 2**i, c * 2 ** (i + 1)) for i in range(depth))
        self.up = nn.ModuleList(_conv_block(c * 2 ** (i + 1) + c * 2**i, c * 2**i) for i in reversed(range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return x


class TriPlaneEncoder(nn.Module):
    """TSDF (B, R, R, R) -> planes XY, XZ, YZ, each (B, c, R, R), and point features (B, M, 3c)."""

    def __init__(self, cfg: IGDConfig):
        super().__init__()
        c3, c = cfg.voxel_channels, cfg.plane_channels
        self.size_m = cfg.workspace_size_m
        self.conv = nn.Sequential(nn.Conv3d(1, c3, 3, padding=1), nn.SiLU(), nn.Conv3d(c3, c3, 3, padding=1), nn.SiLU())
        # Pooled straight from the narrow 3D features: a wide 40³ volume costs most of a CPU step.
        # Mean and max both: the mean sees how much is along a line, the max whether anything is.
        self.unets = nn.ModuleList(UNet2d(2 * c3, c, cfg.unet_depth) for _ in range(3))

    def forward(self, tsdf: torch.Tensor) -> list[torch.Tensor]:
        f = self._volume_features(tsdf.unsqueeze(1))  # (B, c3, X, Y, Z)
        pooled = [torch.cat([f.mean(d), f.amax(d)], 1) for d in (4, 3, 2)]  # XY, XZ, YZ
        return [unet(p) for unet, p in zip(self.unets, pooled)]

    def _volume_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or torch.is_grad_enabled() or not torch.backends.mkldnn.is_available():
            return self.conv(x)
        # For one scene ATen sends a 3D convolution down its slow reference path (its oneDNN heuristic wants
        # larger inputs): 8x slower than oneDNN here, a third of a CPU plan. Inference only: oneDNN tensors
        # carry no gradients.
        for layer in self.conv:
            x = F.conv3d(x.to_mkldnn(), layer.weight, layer.bias, padding=layer.padding).to_dense() \
                if isinstance(layer, nn.Conv3d) else layer(x)
        return x

    def sample(self, planes: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
        """Bilinear lookups at positions p (B, ..., 3), concatenated over the planes: (B, ..., 3c)."""
        u = p / self.size_m * 2.0 - 1.0  # voxel centres land on pixel centres (align_corners=False)
        flat = u.reshape(u.shape[0], -1, 1, 3)
        out = []
        for plane, (a, b) in zip(planes, ((0, 1), (0, 2), (1, 2))):
            # A plane indexed [a, b] is (H=a, W=b); grid_sample takes (x=W, y=H).
            grid = torch.stack([flat[..., b], flat[..., a]], -1)
            out.append(F.grid_sample(plane, grid, mode="bilinear", padding_mode="border", align_corners=False))
        features = torch.cat(out, 1).squeeze(-1).transpose(1, 2)  # (B, M', 3c)
        return features.reshape(*p.shape[:-1], -1)


class PointAttention(nn.Module):
    """Multi-head attention of one query per point over its K sampled points, plus a feed-forward."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(query_dim, hidden)
        self.k = nn.Linear(key_dim, hidden)
        self.v = nn.Linear(key_dim, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.ff = _mlp([hidden, 2 * hidden, hidden])

    def forward(self, query: torch.Tensor, keys: torch.Tensor, shared_keys: torch.Tensor | None = None) -> torch.Tensor:
        """query (..., Dq), keys (..., K, Dk) -> (..., hidden). ``shared_keys`` (K, Ds), the same for every
        query, extend each key (Dk + Ds = the key width): projected once, not once per query."""
        h, query = self.heads, self.q(query)
        q = query.unflatten(-1, (h, -1))  # (..., h, d)
        k = _linear_of_concatenation(self.k, keys, shared_keys).unflatten(-1, (h, -1))  # (..., K, h, d)
        v = _linear_of_concatenation(self.v, keys, shared_keys).unflatten(-1, (h, -1))
        # Products and sums over broadcast axes: several times faster on the CPU than the equivalent einsums.
        w = torch.softmax((q.unsqueeze(-3) * k).sum(-1) / math.sqrt(q.shape[-1]), dim=-2)  # (..., K, h)
        x = self.norm1(query + self.out((w.unsqueeze(-1) * v).sum(-3).flatten(-2)))
        return self.norm2(x + self.ff(x))


def _linear_of_concatenation(layer: nn.Linear, x: torch.Tensor, shared: torch.Tensor | None) -> torch.Tensor:
    """``layer(cat([x, shared broadcast], -1))`` as the sum of the layer's two shares."""
    if shared is None:
        return layer(x)
    width = x.shape[-1]
    return F.linear(x, layer.weight[:, :width]) + F.linear(shared, layer.weight[:, width:], layer.bias)


class DeformableAttention(nn.Module):
    """DAM at grasp centres: K offsets predicted from the feature at p, starting on a 2x2x2 cube."""

    def __init__(self, cfg: IGDConfig, feature_dim: int):
        super().__init__()
        self.K = cfg.dam_points
        self.offsets = nn.Linear(feature_dim, 3 * self.K)
        cube = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32)
        cube = cube[torch.arange(self.K) % 8] * cfg.dam_cube_half_m  # K != 8 repeats the corners
        nn.init.zeros_(self.offsets.weight)
        with torch.no_grad():
            self.offsets.bias.copy_(cube.flatten())
        self.scale = cfg.dam_cube_half_m
        self.attention = PointAttention(feature_dim, feature_dim + 3, cfg.hidden, cfg.heads)

    def forward(self, encoder: TriPlaneEncoder, planes: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
        """p (B, M, 3) -> (B, M, hidden)."""
        f = encoder.sample(planes, p)
        delta = self.offsets(f).unflatten(-1, (self.K, 3))  # (B, M, K, 3)
        fk = encoder.sample(planes, p.unsqueeze(-2) + delta)
        return self.attention(f, torch.cat([fk, delta / self.scale], -1))


class PointFeature(nn.Module):
    """The ablation without DAM: the centre feature from the tri-plane lookup at p alone."""

    def __init__(self, cfg: IGDConfig, feature_dim: int):
        super().__init__()
        self.net = nn.Sequential(_mlp([feature_dim, cfg.hidden, cfg.hidden]), nn.LayerNorm(cfg.hidden))

    def forward(self, encoder: TriPlaneEncoder, planes: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
        return self.net(encoder.sample(planes, p))


class GraspAttention(nn.Module):
    """Grasp-conditioned DAM: learned gripper-frame control points, moved by the grasp, attended from p."""

    def __init__(self, cfg: IGDConfig, feature_dim: int):
        super().__init__()
        half_w, depth = 0.5 * cfg.max_opening_m, cfg.finger_depth_m
        # Start on the closing region's corners (finger roots and tips, both finger edges).
        points = [[x, y, z] for x in (-0.01, 0.01) for y in (-half_w, half_w) for z in (0.0, depth)]
        self.control_points = nn.Parameter(torch.tensor(points, dtype=torch.float32)[: cfg.dam_points])
        self.embedding = nn.Parameter(torch.zeros(len(self.control_points), cfg.hidden))
        self.attention = PointAttention(feature_dim + 9, feature_dim + cfg.hidden, cfg.hidden, cfg.heads)

    def forward(self, encoder: TriPlaneEncoder, planes: list[torch.Tensor], p: torch.Tensor,
                R: torch.Tensor) -> torch.Tensor:
        """p (B, M, 3), R (B, M, 3, 3) -> (B, M, hidden)."""
        points = p.unsqueeze(-2) + torch.einsum("bmij,kj->bmki", R, self.control_points)
        query = torch.cat([encoder.sample(planes, p), R.flatten(-2)], -1)
        return self.attention(query, encoder.sample(planes, points), shared_keys=self.embedding)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], -1)


class OrientationDenoiser(nn.Module):
    """ε(x_t, t | DAM feature) for 9-D rotation matrices."""

    def __init__(self, cfg: IGDConfig):
        super().__init__()
        self.hidden = cfg.hidden
        self.time = _mlp([cfg.hidden, cfg.hidden, cfg.hidden])
        width = cfg.denoiser_hidden
        self.net = _mlp([9 + 2 * cfg.hidden] + [width] * cfg.denoiser_layers + [9])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """x_t (..., 9), t (...) integer timesteps, condition (..., hidden)."""
        return self.net(torch.cat([x_t, self.time(timestep_embedding(t, self.hidden)), condition], -1))

    # Sampling splits the first layer over its three inputs, as forward's sum: the condition's share stays
    # the same over the DDIM steps and the timestep's is one row for all samples, so only x_t's is per
    # sample and step (the denoiser's cost drops by about 40 %).
    def condition_share(self, condition: torch.Tensor) -> torch.Tensor:
        """The first layer's share of ``condition`` (..., hidden), its bias included: (..., width)."""
        first = self.net[0]
        return F.linear(condition, first.weight[:, 9 + self.hidden:], first.bias)

    def step_noise(self, x_t: torch.Tensor, t: torch.Tensor, condition_share: torch.Tensor) -> torch.Tensor:
        """ε for x_t (n, 9) at the one timestep t, from ``condition_share`` (n, width): forward's result."""
        first = self.net[0]
        time = self.time(timestep_embedding(t.reshape(1), self.hidden))
        h = F.linear(x_t, first.weight[:, :9]) + F.linear(time, first.weight[:, 9:9 + self.hidden]) + condition_share
        return self.net[1:](h)


class IGDModel(nn.Module):
    def __init__(self, cfg: IGDConfig):
        super().__init__()
        self.config = cfg
        feature_dim = 3 * cfg.plane_channels
        self.encoder = TriPlaneEncoder(cfg)
        self.centre_attention = (DeformableAttention if cfg.use_dam else PointFeature)(cfg, feature_dim)
        self.grasp_attention = GraspAttention(cfg, feature_dim)
        self.denoiser = OrientationDenoiser(cfg)
        self.affordance_head = _mlp([cfg.hidden, cfg.hidden, 1])
        self.classifier_head = _mlp([cfg.hidden, cfg.hidden, 1])
        self.width_head = _mlp([cfg.hidden, cfg.hidden, 1])
        self.occupancy_head = _mlp([feature_dim, cfg.hidden, 1])

    # -- building blocks (used by training and inference) ------------------------------------------
    def encode(self, tsdf: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(tsdf)

    def centre_features(self, planes: list[torch.Tensor], p: torch.Tensor) -> torch.Tensor:
        return self.centre_attention(self.encoder, planes, p)

    def affordance_logits(self, centre: torch.Tensor) -> torch.Tensor:
        return self.affordance_head(centre).squeeze(-1)

    def evaluate(self, planes: list[torch.Tensor], p: torch.Tensor,
                 R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classifier logits and width / max_opening for grasps (p, R), each (B, M)."""
        g = self.grasp_attention(self.encoder, planes, p, R)
        return self.classifier_head(g).squeeze(-1), self.width_head(g).squeeze(-1)

    def occupancy_logits(self, planes: list[torch.Tensor], q: torch.Tensor) -> torch.Tensor:
        return self.occupancy_head(self.encoder.sample(planes, q)).squeeze(-1)

    @torch.no_grad()
    def sample_rotations(self, centre: torch.Tensor, scheduler: DDIMScheduler, rounds: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """``rounds`` orientations per centre feature (M, hidden) by DDIM: (M, rounds, 3, 3) rotations. The
        ``scheduler`` and ``generator`` are on the device of ``centre``."""
        condition = self.denoiser.condition_share(centre).repeat_interleave(rounds, 0)  # (M * rounds, width)
        x = torch.randn(len(condition), 9, generator=generator, device=centre.device)
        for t in scheduler.timesteps:
            x = scheduler.step(self.denoiser.step_noise(x, t, condition), int(t), x)
        return project_to_so3(x).reshape(len(centre), rounds, 3, 3)

    # -- training -----------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor], scheduler: DDIMScheduler,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The five IGD losses for a batch from ``training.igd_train.sample_batch``."""
        planes = self.encode(batch["tsdf"])

        centre = self.centre_features(planes, batch["centre_p"])
        affordance = F.binary_cross_entropy_with_logits(self.affordance_logits(centre), batch["centre_label"])

        x0 = batch["diff_R"].flatten(-2)  # (B, D, 9)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, scheduler.train_steps, x0.shape[:-1], generator=generator, device=x0.device)
        x_t = scheduler.add_noise(x0.reshape(-1, 9), noise.reshape(-1, 9), t.reshape(-1)).reshape(x0.shape)
        eps = self.denoiser(x_t, t, self.centre_features(planes, batch["diff_p"]))
        mask = batch["diff_mask"]
        diffusion = (((eps - noise) ** 2).mean(-1) * mask).sum() / mask.sum().clamp(min=1.0)

        logits, width = self.evaluate(planes, batch["grasp_p"], batch["grasp_R"])
        label = batch["grasp_label"]
        classifier = focal_loss(logits, label).mean()
        width_error = (width - batch["grasp_width"] / self.config.max_opening_m) ** 2
        width_loss = (width_error * label).sum() / label.sum().clamp(min=1.0)  # a failed grasp holds nothing

        occupancy = F.binary_cross_entropy_with_logits(self.occupancy_logits(planes, batch["occ_p"]),
                                                       batch["occ_label"])
        total = diffusion + affordance + classifier + width_loss + occupancy
        return {"total": total, "diffusion": diffusion, "affordance": affordance, "classifier": classifier,
                "width": width_loss, "occupancy": occupancy}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.5, gamma: float = 2.0) -> torch.Tensor:
    """Per-element focal loss (Lin et al.): many easy sampled negatives do not drown the hard ones."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return a_t * (1 - p_t) ** gamma * ce
