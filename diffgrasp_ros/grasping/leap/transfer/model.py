"""The contact-map transfer networks (CPU-sized; device-agnostic: every tensor follows the inputs' device).

- Point encoder (``PointEncoder``): an MLP of a point's channels, then ``encoder_layers`` edge convolutions
  (max over the ``neighbours`` nearest points of an MLP of [h_i, h_j - h_i, x_j - x_i]) plus a global max-pooled
  feature: (B, N, hidden). One geometry encoder serves the observed object and the template (xyz only), so their
  features live in one space to be matched; the template's contact map, finger, part and force direction
  (``template_channels``) enter its value MLP, the features the mapping carries over.
- Dual mapping (``DualMapping``): soft attention on -|Wa - Wb|^2 / temperature, object -> template (each object
  point over the template's points) and template -> object. The object -> template -> object round trip gives
  every object point a cycle error (m) and a consistency exp(-(error / cycle_sigma_m)^2); the hard round trip
  (argmax both ways) is the identity on identical inputs.
- Cascaded conditional denoisers (``MapDenoiser``, ε-prediction, ``igd.scheduler.DDIMScheduler``): on every
  object point, first the contact map x = 2p - 1 (1 channel), then the part map (``max_parts`` channels,
  one-hot scaled to +-1) and the direction map (3, unit vector of the force on the object) conditioned on the
  contact map. Both see the point's condition: its own feature, the template value transferred to it, its
  consistency, the task embedding and the object's pooled feature.

Shapes: B pairs, N object points, M template points; positions in metres in the canonical object frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...igd.model import _mlp, timestep_embedding
from ...igd.scheduler import DDIMScheduler
from ..templates import GraspTemplate
from .config import TransferConfig

FINGERS = ("index", "middle", "ring", "thumb", "palm")


def finger_of_link(link: str) -> int:
    """Index into ``FINGERS`` of a LEAP link (URDF names: index links bare, middle ``_2``, ring ``_3``)."""
    if link.startswith("palm"):
        return FINGERS.index("palm")
    if link.startswith("thumb") or link == "pip_4":
        return FINGERS.index("thumb")
    return {"_2": 1, "_3": 2}.get(link[-2:], 0)


def template_channels(template: GraspTemplate, max_parts: int) -> np.ndarray:
    """(N, 1 + len(FINGERS) + max_parts + 3) per template point: contact (0/1), finger one-hot (zero off contact),
    part one-hot, force direction on the object (the inward normal, zero off contact)."""
    if len(template.part_names) > max_parts:
        raise ValueError(f"the template's object has {len(template.part_names)} parts; the model has {max_parts}")
    n = len(template.points_object)
    contact = template.contact_map.astype(np.float32)
    fingers = np.zeros((n, len(FINGERS)), np.float32)
    fingers[template.contact_indices, [finger_of_link(link) for link in template.contact_links]] = 1.0
    parts = np.eye(max_parts, dtype=np.float32)[template.point_parts]
    directions = -template.normals_object.astype(np.float32) * contact[:, None]
    return np.concatenate([contact[:, None], fingers, parts, directions], axis=1)


def channel_count(cfg: TransferConfig) -> int:
    return 1 + len(FINGERS) + cfg.max_parts + 3


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, k) indices of each point's k nearest points (itself first)."""
    return torch.cdist(x, x).topk(min(k, x.shape[1]), dim=-1, largest=False).indices


def gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, N, C) at index (B, N, k) -> (B, N, k, C)."""
    b, n, k = index.shape
    flat = index.reshape(b, n * k, 1).expand(-1, -1, values.shape[-1])
    return values.gather(1, flat).reshape(b, n, k, values.shape[-1])


class PointEncoder(nn.Module):
    def __init__(self, cfg: TransferConfig, in_channels: int = 3):
        super().__init__()
        h = cfg.hidden
        self.k = cfg.neighbours
        self.input = _mlp([in_channels, h, h])
        self.edges = nn.ModuleList(_mlp([2 * h + 3, h, h]) for _ in range(cfg.encoder_layers))
        self.pooled = _mlp([h, h])
        self.norm = nn.LayerNorm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled positions (B, N, 3) -> features (B, N, hidden)."""
        neighbours = knn(x, self.k)
        dx = gather(x, neighbours) - x.unsqueeze(2)
        h = self.input(x)
        for edge in self.edges:
            hj = gather(h, neighbours)
            hi = h.unsqueeze(2).expand_as(hj)
            h = h + edge(torch.cat([hi, hj - hi, dx], -1)).amax(2)
        return self.norm(h + self.pooled(h.amax(1, keepdim=True)))


@dataclass
class Mapping:
    object_to_template: torch.Tensor  # (B, N, M) attention rows: each object point over the template
    template_to_object: torch.Tensor  # (B, M, N)
    cycle_error_m: torch.Tensor  # (B, N) soft object -> template -> object round trip
    hard_cycle_error_m: torch.Tensor  # (B, N) the same with argmax both ways
    consistency: torch.Tensor  # (B, N) in (0, 1]


class DualMapping(nn.Module):
    def __init__(self, cfg: TransferConfig):
        super().__init__()
        self.cfg = cfg
        self.project = nn.Linear(cfg.hidden, cfg.hidden)  # shared: identical features map to identical keys
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.initial_temperature)))

    def forward(self, f_object: torch.Tensor, f_template: torch.Tensor, x_object_m: torch.Tensor) -> Mapping:
        a, b = self.project(f_object), self.project(f_template)
        # The matmul expansion |a|^2 + |b|^2 - 2ab: exact differences hold (B, N, M, hidden) for the backward pass.
        squared = (a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(1) - 2.0 * a @ b.transpose(1, 2))
        logits = -squared.clamp(min=0.0) / self.log_temperature.exp()
        o2t, t2o = logits.softmax(-1), logits.transpose(1, 2).softmax(-1)
        back = o2t @ (t2o @ x_object_m)
        cycle = (back - x_object_m).norm(dim=-1)
        to_template = logits.argmax(-1)  # (B, N)
        returned = logits.argmax(1).gather(1, to_template)  # the object point each template match maps back to
        hard = (x_object_m.gather(1, returned.unsqueeze(-1).expand(-1, -1, 3)) - x_object_m).norm(dim=-1)
        consistency = torch.exp(-(cycle / self.cfg.cycle_sigma_m) ** 2)
        return Mapping(o2t, t2o, cycle, hard, consistency)


class MapDenoiser(nn.Module):
    """ε(x_t, t | condition) per point."""

    def __init__(self, cfg: TransferConfig, x_dim: int, extra: int = 0):
        super().__init__()
        self.hidden = cfg.hidden
        self.time = _mlp([cfg.hidden, cfg.hidden, cfg.hidden])
        self.net = _mlp([x_dim + extra + 2 * cfg.hidden] + [cfg.denoiser_hidden] * cfg.denoiser_layers + [x_dim])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor,
                *extra: torch.Tensor) -> torch.Tensor:
        time = self.time(timestep_embedding(t, self.hidden)).unsqueeze(1).expand(-1, x_t.shape[1], -1)
        return self.net(torch.cat([x_t, *extra, condition, time], -1))


@dataclass
class Condition:
    features: torch.Tensor  # (B, N, hidden) per object point
    mapping: Mapping
    fingers: torch.Tensor  # (B, N, len(FINGERS)) the template's finger assignment carried over (attention-weighted)


@dataclass
class TransferredMaps:
    """The maps sampled on one object's points."""

    contact: np.ndarray  # (N,) probability
    parts: np.ndarray  # (N,) index into the template's part names
    directions: np.ndarray  # (N, 3) unit force direction on the object
    fingers: np.ndarray  # (N, len(FINGERS)) carried-over finger assignment
    consistency: np.ndarray  # (N,)
    template_match: np.ndarray  # (N,) index of each point's most attended template contact point


class TransferModel(nn.Module):
    def __init__(self, cfg: TransferConfig):
        super().__init__()
        self.config = cfg
        h = cfg.hidden
        self.encoder = PointEncoder(cfg)
        self.template_value = _mlp([h + channel_count(cfg), h, h])
        self.mapping = DualMapping(cfg)
        self.task = nn.Embedding(len(cfg.tasks), h)
        self.fuse = nn.Sequential(_mlp([4 * h + 1, h, h]), nn.LayerNorm(h))
        self.contact_denoiser = MapDenoiser(cfg, 1)
        self.part_direction_denoiser = MapDenoiser(cfg, cfg.max_parts + 3, extra=1)

    def condition(self, object_m: torch.Tensor, template_m: torch.Tensor, channels: torch.Tensor,
                  task: torch.Tensor) -> Condition:
        """object_m (B, N, 3), template_m (B, M, 3), channels (B, M, C), task (B,) indices."""
        s = self.config.position_scale_m
        f_object, f_template = self.encoder(object_m / s), self.encoder(template_m / s)
        mapping = self.mapping(f_object, f_template, object_m)
        values = self.template_value(torch.cat([f_template, channels], -1))
        carried = mapping.object_to_template @ values
        n = object_m.shape[1]
        pooled = f_object.amax(1, keepdim=True).expand(-1, n, -1)
        task_h = self.task(task).unsqueeze(1).expand(-1, n, -1)
        features = self.fuse(torch.cat([f_object, carried, mapping.consistency.unsqueeze(-1), task_h, pooled], -1))
        fingers = mapping.object_to_template @ channels[..., 1:1 + len(FINGERS)]
        return Condition(features, mapping, fingers)

    def losses(self, batch: dict[str, torch.Tensor], scheduler: DDIMScheduler,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """ε-MSE of the contact map and of the part + direction maps (given the true contact map), and the mean
        soft cycle error in ``position_scale_m`` units (a batch of ``training.transfer_data.collate``)."""
        cond = self.condition(batch["object_m"], batch["template_m"], batch["template_channels"], batch["task"])
        contact_x0 = 2.0 * batch["contact"].unsqueeze(-1) - 1.0
        parts = F.one_hot(batch["parts"], self.config.max_parts).float()
        part_direction_x0 = torch.cat([2.0 * parts - 1.0, batch["directions"]], -1)
        contact = self._epsilon_loss(self.contact_denoiser, contact_x0, cond.features, scheduler, generator)
        part_direction = self._epsilon_loss(self.part_direction_denoiser, part_direction_x0, cond.features,
                                            scheduler, generator, contact_x0)
        cycle = cond.mapping.cycle_error_m.mean() / self.config.position_scale_m
        total = contact + part_direction + self.config.cycle_weight * cycle
        return {"total": total, "contact": contact, "part_direction": part_direction, "cycle": cycle}

    @staticmethod
    def _epsilon_loss(denoiser: MapDenoiser, x0: torch.Tensor, condition: torch.Tensor, scheduler: DDIMScheduler,
                      generator: torch.Generator | None, *extra: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, scheduler.train_steps, x0.shape[:1], generator=generator, device=x0.device)
        return F.mse_loss(denoiser(scheduler.add_noise(x0, noise, t), t, condition, *extra), noise)

    @torch.no_grad()
    def sample(self, object_m: torch.Tensor, template_m: torch.Tensor, channels: torch.Tensor, task: torch.Tensor,
               scheduler: DDIMScheduler, generator: torch.Generator | None = None) -> list[TransferredMaps]:
        """The cascade: DDIM-sample the contact map, then the part and direction maps conditioned on it."""
        cond = self.condition(object_m, template_m, channels, task)
        scheduler.set_timesteps(self.config.sampling_steps)
        contact_x = self._denoise(self.contact_denoiser, cond.features, 1, scheduler, generator)
        part_direction = self._denoise(self.part_direction_denoiser, cond.features, self.config.max_parts + 3,
                                       scheduler, generator, contact_x)
        contact = ((contact_x.squeeze(-1) + 1.0) / 2.0).clamp(0.0, 1.0)
        directions = F.normalize(part_direction[..., self.config.max_parts:], dim=-1)
        # Only the template's own parts (those its points carry) can be sampled.
        present = channels[..., 1 + len(FINGERS):1 + len(FINGERS) + self.config.max_parts].amax(1, keepdim=True)
        parts = part_direction[..., :self.config.max_parts].masked_fill(present == 0, -math.inf).argmax(-1)
        # The contact a point corresponds to: of the template's contact points, the one its attention row weighs
        # most (the hard argmax over all template points lands off the few contacts of a small part).
        on_contact = channels[..., 0] > 0.5  # (B, M)
        match = cond.mapping.object_to_template.masked_fill(~on_contact[:, None, :], -1.0).argmax(-1)
        return [TransferredMaps(*(v[i].cpu().numpy() for v in (contact, parts, directions, cond.fingers,
                                                                cond.mapping.consistency, match)))
                for i in range(object_m.shape[0])]

    @staticmethod
    def _denoise(denoiser: MapDenoiser, condition: torch.Tensor, dim: int, scheduler: DDIMScheduler,
                 generator: torch.Generator | None, *extra: torch.Tensor) -> torch.Tensor:
        x = torch.randn((*condition.shape[:2], dim), generator=generator, device=condition.device)
        for t in scheduler.timesteps.tolist():
            t_batch = torch.full(condition.shape[:1], t, device=condition.device, dtype=torch.long)
            x = scheduler.step(denoiser(x, t_batch, condition, *extra), t, x)
        return x
