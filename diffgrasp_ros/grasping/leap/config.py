"""Hyper-parameters of the LEAP-hand grasp model (DexGraspNet 2.0 style), sized for a 2-core CPU."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ...model_files import check_ranges, read_config_json, write_config_json


@dataclass(frozen=True)
class LeapConfig:
    # Backbone: IGD's TSDF -> tri-plane encoder (a 3D conv, pooled to three planes, 2D U-Nets); a point's
    # feature is the tri-plane lookup at it plus one pooled over a small neighbourhood cube.
    resolution: int = 40
    voxel_channels: int = 8
    plane_channels: int = 24  # per plane; a raw point feature is 3x this
    unet_depth: int = 2
    neighbourhood_m: float = 0.015  # half edge of the 3x3x3 cube of lookups pooled into the local feature
    hidden: int = 128  # per-point feature width (objectness / graspness / diffusion condition / joint head)
    # Seeds.
    seed_radius_m: float = 0.02  # a surface point seeds a grasp whose TCP is within this distance
    max_points: int = 2048  # surface points scored per plan (a random subset of bigger clouds)
    seed_candidates: int = 256  # top-graspness points thinned by farthest-point sampling ...
    seeds: int = 48  # ... to this many seeds
    # Pose diffusion: x = ((t_tcp - seed) / translation_scale_m, R flattened row-major), 12-D.
    translation_scale_m: float = 0.08
    train_steps: int = 100
    sampling_steps: int = 8  # DDIM steps at inference
    denoiser_hidden: int = 256
    denoiser_layers: int = 3
    rounds: int = 4  # poses sampled per seed
    # Ranking: log-likelihood (denoising ELBO at these timesteps) + eta * graspness, + evaluator_weight *
    # log P(held) of the learned evaluator (``evaluator``) when the planner has one.
    likelihood_timesteps: tuple[int, ...] = (10, 30, 50, 70)
    eta: float = 1.0
    evaluator_weight: float = 3.0
    # Hand postures: q_grasp and q_pregrasp both come from the joint head; the pre-grasp is at least this
    # far blended from q_grasp towards leap.OPEN_Q (a more open hand on approach).
    joint_hidden: int = 128
    pregrasp_open: float = 0.3
    # Thresholds.
    min_objectness: float = 0.5
    min_graspness: float = 0.0
    max_grasps: int = 20
    # Guidance (``sampler.Guidance``): gradient steps on the DDIM x0 estimate.
    guidance_scale: float = 1.0
    # When no sampled pose is feasible, downward ones whose digits reach below the table are backed off
    # along their approach by up to this much and checked again.
    max_table_retreat_m: float = 0.02
    max_approach_angle_deg: float = 60.0  # with an approach request, grasps farther off it are dropped
    workspace_size_m: float = 0.30
    table_height_m: float = 0.05

    def __post_init__(self):
        object.__setattr__(self, "likelihood_timesteps", tuple(int(t) for t in self.likelihood_timesteps))
        # Channels double per U-Net level (a deep one overflows torch's sizes); layers are built one by one.
        check_ranges(self, "LEAP", unet_depth=(1, 8), denoiser_layers=(1, 64))

    def to_json(self, path: Path) -> None:
        write_config_json(self, path)

    @classmethod
    def from_json(cls, path: Path) -> "LeapConfig":
        return read_config_json(cls, path, "LEAP")

    def replace(self, **changes) -> "LeapConfig":
        return LeapConfig(**{**asdict(self), **changes})


# Overrides for a model small enough to train in tests in seconds (``diffgrasp train-leap --tiny``).
TINY = dict(voxel_channels=4, plane_channels=8, unet_depth=1, hidden=32, train_steps=20, sampling_steps=4,
            denoiser_hidden=32, denoiser_layers=2, joint_hidden=32, rounds=2, seeds=16, seed_candidates=64,
            max_points=1024, likelihood_timesteps=(3, 10, 16))
