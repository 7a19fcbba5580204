"""Hyper-parameters of the contact-map transfer model, sized for a 2-core CPU."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ....model_files import check_ranges, read_config_json, write_config_json
from ....sim.categories import CATEGORIES

# A template's task is free text (``diffgrasp template make`` names it after the grasped part by default).
DEFAULT_TASKS = ("lift", "use", "handover") + tuple(sorted({p for c in CATEGORIES.values() for p in c.parts}))


@dataclass(frozen=True)
class TransferConfig:
    # Clouds: object (observed, partial) and template points are resampled to these counts.
    object_points: int = 512
    template_points: int = 512
    position_scale_m: float = 0.1  # canonical-frame coordinates are divided by this (objects are < 0.25 m)
    # Point encoder: an input MLP, then edge convolutions over each point's k nearest neighbours.
    neighbours: int = 16
    hidden: int = 64
    encoder_layers: int = 2
    # Dual mapping: soft attention on -|a - b|^2 / temperature between projected features, both ways.
    initial_temperature: float = 1.0
    cycle_sigma_m: float = 0.01  # a point whose object -> template -> object round trip ends this far off scores e^-1
    # Conditional map diffusion (contact first, then part + direction conditioned on it).
    max_parts: int = 4  # part channels of the part map (every category has 2 parts)
    tasks: tuple[str, ...] = DEFAULT_TASKS
    train_steps: int = 100
    sampling_steps: int = 10  # DDIM steps at inference
    denoiser_hidden: int = 128
    denoiser_layers: int = 3
    cycle_weight: float = 1.0  # of the cycle-consistency loss against the ε losses

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(str(t) for t in self.tasks))
        check_ranges(self, "transfer", encoder_layers=(1, 16), denoiser_layers=(1, 64), neighbours=(1, 64),
                     max_parts=(1, 16), object_points=(64, 16384), template_points=(64, 16384))
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"transfer config tasks must be distinct and not empty, got {list(self.tasks)}")

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(f"task {task!r} is not one the transfer model knows: {list(self.tasks)}")
        return self.tasks.index(task)

    def to_json(self, path: Path) -> None:
        write_config_json(self, path)

    @classmethod
    def from_json(cls, path: Path) -> "TransferConfig":
        return read_config_json(cls, path, "transfer")

    def replace(self, **changes) -> "TransferConfig":
        return TransferConfig(**{**asdict(self), **changes})


# Overrides for a model small enough to train in tests in seconds.
TINY = dict(object_points=256, template_points=256, neighbours=8, hidden=32, encoder_layers=1, train_steps=20,
            sampling_steps=4, denoiser_hidden=64, denoiser_layers=2)
