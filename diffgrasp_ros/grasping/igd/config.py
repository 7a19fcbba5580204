"""Hyper-parameters of Implicit Grasp Diffusion, sized for a 2-core CPU (the paper's are GPU-sized)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ...model_files import check_ranges, read_config_json, write_config_json


@dataclass(frozen=True)
class IGDConfig:
    # Tri-plane encoder.
    resolution: int = 40  # input TSDF grid (the standard 40³)
    voxel_channels: int = 8  # 3D CNN width (a wider 40³ volume dominates a CPU training step)
    plane_channels: int = 24  # per-plane feature dim c; a point's feature is 3c
    unet_depth: int = 2  # 2D U-Net down-sampling levels (40 -> 20 -> 10)
    # Deformable attention.
    dam_points: int = 8  # K sampled points; offsets start on a 2x2x2 cube around p
    dam_cube_half_m: float = 0.0075  # half edge of that initial cube (one voxel)
    use_dam: bool = True  # False: the ablation without DAM, an MLP on the tri-plane feature at p alone
    hidden: int = 128  # DAM / head width
    heads: int = 4
    # Orientation diffusion.
    train_steps: int = 100  # T
    sampling_steps: int = 8  # DDIM steps at inference
    denoiser_hidden: int = 256
    denoiser_layers: int = 3
    # Inference.
    centre_stride: int = 2  # candidate centres on every 2nd voxel (15 mm apart) to keep a CPU plan fast
    rounds: int = 4  # N orientations sampled per centre
    top_k: int = 64  # centres kept by the affordance filter
    # Loose thresholds: in clutter removal "no grasp" ends the round, a doubtful grasp may still work.
    min_affordance: float = 0.1  # affordance positives are sparse (one voxel), so a(p) stays low
    min_quality: float = 0.05  # q = a * v threshold for a returned grasp
    max_grasps: int = 20
    width_margin_m: float = 0.01  # added to the predicted object width when pre-shaping
    # Geometry the model was trained for.
    workspace_size_m: float = 0.30
    max_opening_m: float = 0.08  # the width head predicts width / max_opening
    finger_depth_m: float = 0.05  # where the grasp classifier's control points start (see ``robots.gripper``)

    def __post_init__(self):
        # Channels double per U-Net level (a deep one overflows torch's sizes); layers are built one by one.
        check_ranges(self, "IGD", unet_depth=(1, 8), denoiser_layers=(1, 64))

    def to_json(self, path: Path) -> None:
        write_config_json(self, path)

    @classmethod
    def from_json(cls, path: Path) -> "IGDConfig":
        return read_config_json(cls, path, "IGD")

    def replace(self, **changes) -> "IGDConfig":
        return IGDConfig(**{**asdict(self), **changes})


# Overrides for a model small enough to train in tests in seconds (``diffgrasp train --tiny``).
TINY = dict(voxel_channels=4, plane_channels=8, unet_depth=1, hidden=32, heads=2, train_steps=20,
            sampling_steps=4, denoiser_hidden=32, denoiser_layers=2, rounds=2, top_k=16)
