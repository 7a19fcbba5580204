"""Training the LEAP-hand grasp model (``grasping.leap``) on labelled LEAP-grasp chunks.

Data: a folder of ``leap_chunk_NNNNNN.npz`` (format 1): ``chunk_index``, ``object_root``, ``friction``, the
scene arrays of ``training.dataset`` and per grasp ``grasp_scene``, ``palm_position`` / ``palm_quaternion_xyzw``
(``leap_palm`` in the workspace frame), ``q_pregrasp``, ``q_grasp`` (16 radians, URDF order) and ``label``
(1 = held in the lift test). Scenes are re-rendered once into ``igd_train.GridCache`` (the IGD grid cache
can be shared: a scene is found there by its seed even when its chunk index differs).

Targets, from the input grid's own surface points (``scene_from_grid``, what inference sees):
- objectness: the point lies more than 5 mm above the table (the table plane is the only non-object
  surface of these scenes);
- graspness: some successful grasp's TCP (``leap_palm`` · ``T_PALM_TCP``) is within ``seed_radius_m`` of
  the point, i.e. the point may seed it;
- diffusion and joints, per successful grasp: the seed is a random surface point within ``seed_radius_m``
  of its TCP (the grasp is skipped when there is none), x = ((t_tcp - seed) / s, R_tcp).
Batches are drawn from ``(seed, step)`` alone, so a resumed run continues exactly as an uninterrupted one.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..grasping.leap.config import TINY, LeapConfig
from ..robots import leap
from ..scene.tsdf import scene_from_grid
from .igd_train import DEFAULT_INPUTS, GridCache, check_inputs
from .leap_data import read_leap_chunk
from .loop import HasLoopSettings, open_run, run_loop


# -- data -----------------------------------------------------------------------------------------
class SeedMatchingGridCache(GridCache):
    """``GridCache`` that also finds a scene cached under another chunk index (same scene index and seed)."""

    def path(self, chunk, scene_index: int) -> Path:
        exact = super().path(chunk, scene_index)
        if exact.exists():
            return exact
        seed = chunk.scenes[scene_index].seed
        matches = sorted(self.folder.glob(f"chunk*_scene{scene_index:02d}_{seed}.npz")) or sorted(
            self.folder.glob(f"chunk*_scene*_{seed}.npz"))
        return matches[0] if matches else exact


def tcp_from_palm(position: np.ndarray, quaternion_xyzw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grasp TCP rotations (N, 3, 3) and positions (N, 3) of ``leap_palm`` poses."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_quat(quaternion_xyzw).as_matrix()
    return R.astype(np.float32), (position + R @ leap.T_PALM_TCP[:3, 3]).astype(np.float32)


@dataclass
class LeapTrainingScene:
    grids: dict[str, np.ndarray]  # input variant -> (40, 40, 40) float32
    points: dict[str, np.ndarray]  # input variant -> (P, 3) float32 surface points of that grid
    trees: dict  # input variant -> cKDTree of its points
    tcp_R: np.ndarray  # (G, 3, 3) successful grasps only
    tcp_t: np.ndarray  # (G, 3)
    q_grasp: np.ndarray  # (G, 16)
    q_pregrasp: np.ndarray  # (G, 16)
    grasps: int  # labelled grasps in the scene (positives and negatives)


def load_scenes(data: Path, cache: GridCache, log: Callable[[str], None] = print, max_scenes: int | None = None,
                inputs: Sequence[str] = DEFAULT_INPUTS) -> list[LeapTrainingScene]:
    from scipy.spatial import cKDTree

    paths = sorted(Path(data).glob("leap_chunk_*.npz"))
    if not paths:
        raise ValueError(f"{data} holds no leap_chunk_*.npz files (LEAP grasp data)")
    scenes: list[LeapTrainingScene] = []
    start, rendered = time.perf_counter(), 0
    for path in paths:
        chunk = read_leap_chunk(path)
        for s in range(len(chunk.scenes)):
            if max_scenes is not None and len(scenes) >= max_scenes:
                return scenes
            g = chunk.grasps
            mine = g.scene == s
            if not mine.any():
                continue
            fresh = not cache.has(chunk, s, inputs)
            grids = cache.grids(chunk, s, inputs)
            rendered += fresh
            points = {name: scene_from_grid(grid).points_m.astype(np.float32) for name, grid in grids.items()}
            if any(len(p) == 0 for p in points.values()):
                continue
            good = mine & (g.label > 0)
            R, t = tcp_from_palm(g.palm_position_m[good], g.palm_quaternion_xyzw[good])
            scenes.append(LeapTrainingScene(grids, points, {k: cKDTree(p) for k, p in points.items()}, R, t,
                                            g.q_grasp[good], g.q_pregrasp[good], int(mine.sum())))
            if fresh and rendered % 50 == 0:
                log(f"  rendered {rendered} scene(s) into the cache ({time.perf_counter() - start:.0f} s)")
    if not scenes:
        raise ValueError(f"{data} holds no labelled LEAP scenes")
    return scenes


# -- batches --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSizes:
    scenes: int = 4
    points: int = 256  # objectness / graspness samples per scene: half near successful TCPs, half anywhere
    diffusion: int = 32  # successful grasps (pose diffusion + joint head) per scene


def sample_scene(scene: LeapTrainingScene, rng: np.random.Generator, sizes: BatchSizes,
                 config: LeapConfig) -> dict[str, np.ndarray]:
    names = list(scene.grids)
    name = names[rng.integers(len(names))]
    points, tree = scene.points[name], scene.trees[name]
    radius = config.seed_radius_m
    has_positive = len(scene.tcp_t) > 0

    near: np.ndarray = np.zeros(0, int)
    if has_positive:
        near = np.unique([i for around in tree.query_ball_point(scene.tcp_t, radius) for i in around]).astype(int)
    half = sizes.points // 2 if len(near) else 0
    idx = np.concatenate([rng.choice(near, half) if half else np.zeros(0, int),
                          rng.choice(len(points), sizes.points - half)])
    point_p = points[idx]
    point_grasp = np.zeros(len(idx), np.float32)
    if has_positive:
        from scipy.spatial import cKDTree

        distance, _ = cKDTree(scene.tcp_t).query(point_p)
        point_grasp = (distance < radius).astype(np.float32)
    point_object = (point_p[:, 2] > config.table_height_m + 0.005).astype(np.float32)

    D = sizes.diffusion
    seed_p = np.zeros((D, 3), np.float32) + 0.15
    pose_x = np.zeros((D, 12), np.float32)
    pose_x[:, 3:] = np.eye(3, dtype=np.float32).reshape(9)
    mask = np.zeros(D, np.float32)
    q_grasp = np.tile(leap.OPEN_Q.astype(np.float32), (D, 1))
    q_pre = q_grasp.copy()
    if has_positive:
        pick = rng.choice(len(scene.tcp_t), D)
        neighbours = tree.query_ball_point(scene.tcp_t[pick], radius)
        for row, (g, around) in enumerate(zip(pick, neighbours)):
            if not around:
                continue
            seed = points[around[rng.integers(len(around))]]
            seed_p[row] = seed
            pose_x[row, :3] = (scene.tcp_t[g] - seed) / config.translation_scale_m
            pose_x[row, 3:] = scene.tcp_R[g].reshape(9)
            q_grasp[row], q_pre[row] = scene.q_grasp[g], scene.q_pregrasp[g]
            mask[row] = 1.0
    return {"tsdf": scene.grids[name], "point_p": point_p, "point_object": point_object, "point_grasp": point_grasp,
            "seed_p": seed_p, "pose_x": pose_x, "pose_mask": mask, "q_grasp": q_grasp, "q_pregrasp": q_pre}


def sample_batch(scenes: list[LeapTrainingScene], rng: np.random.Generator, sizes: BatchSizes, config: LeapConfig):
    """A dict of float32 tensors, one row per scene, for ``LeapGraspModel.losses``."""
    import torch

    picked = [sample_scene(scenes[i], rng, sizes, config) for i in rng.choice(len(scenes), sizes.scenes)]
    return {k: torch.from_numpy(np.stack([s[k] for s in picked]).astype(np.float32)) for k in picked[0]}


# -- training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainOptions(HasLoopSettings):
    data: Path
    out: Path
    cache: Path | None = None  # default: <data>/leap_grid_cache
    max_steps: int = 1_000_000
    max_minutes: float | None = None
    batch: BatchSizes = BatchSizes()
    lr: float = 1e-3
    warmup_steps: int = 100
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    threads: int | None = None
    tiny: bool = False
    resume: bool = False
    max_scenes: int | None = None
    init: Path | None = None  # start a new run from these weights (a ``save_pretrained`` folder), fresh optimizer
    config_overrides: tuple[tuple[str, object], ...] = ()
    inputs: tuple[str, ...] = DEFAULT_INPUTS
    noise_weights: Path | None = None  # the noise model "side_graft" is grafted with (default: models/depth_noise)

    def __post_init__(self):
        check_inputs(self.inputs, self.noise_weights)


@dataclass
class TrainReport:
    steps: int
    steps_this_run: int
    seconds_this_run: float
    seconds_total: float
    scenes: int
    grasps: int
    positives: int
    losses: dict[str, float]


def train(options: TrainOptions, log: Callable[[str], None] = print) -> TrainReport:
    """Train (or resume) a LEAP grasp model; checkpoints, a JSON-lines loss log and ``save_pretrained`` weights
    go to ``options.out``."""
    from ..grasping.igd.scheduler import DDIMScheduler
    from ..grasping.leap.model import LeapGraspModel
    from ..grasping.leap.pretrained import load_pretrained, save_pretrained

    start = time.perf_counter()
    run = open_run(options.loop)
    if run.state and (options.init is not None or options.config_overrides):
        raise ValueError(f"{run.checkpoint} exists: a resumed run keeps its weights and config, so do not pass "
                         "--init or --set with --resume")
    if run.state:
        config = LeapConfig(**json.loads(run.state["config"]))
    elif options.init is not None:
        config = load_pretrained(options.init, device="cpu").config.replace(**dict(options.config_overrides))
    else:
        config = LeapConfig(**(TINY if options.tiny else {})).replace(**dict(options.config_overrides))
    model = LeapGraspModel(config)
    if options.init is not None and not run.state:
        model.load_state_dict(load_pretrained(options.init, device="cpu").state_dict())  # training runs on the CPU
        log(f"starting from the weights in {options.init} (new optimizer, step 0)")
    log(f"LEAP model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, config {asdict(config)}")

    cache = SeedMatchingGridCache(options.cache or Path(options.data) / "leap_grid_cache", options.noise_weights)
    scenes = load_scenes(Path(options.data), cache, log, options.max_scenes, options.inputs)
    grasps = sum(s.grasps for s in scenes)
    positives = sum(len(s.tcp_t) for s in scenes)
    log(f"{len(scenes)} scenes, {grasps} labelled grasps ({positives} successful); "
        f"data ready in {time.perf_counter() - start:.0f} s")

    scheduler = DDIMScheduler(config.train_steps)
    result = run_loop(run, options.loop, model,
                      lambda rng, generator: model.losses(sample_batch(scenes, rng, options.batch, config),
                                                          scheduler, generator),
                      lambda: save_pretrained(model, run.out), log)
    return TrainReport(result.steps, result.steps_this_run, result.seconds_this_run, result.seconds_total,
                       len(scenes), grasps, positives, result.losses)
