"""Training Implicit Grasp Diffusion (``grasping.igd``) on the labelled-grasp datasets of ``datagen``.

Chunks store scene descriptions, not images, so every scene is re-rendered once and its grids are
cached (``GridCache``): the model's inputs (single side view, in the depth variants of
``INPUT_VARIANTS``: clean, with the benchmark's dex noise, with noise grafted by the learned sensor
model, or from the simulated D435's stereo matching; a run trains on the ones it is given, default clean
and dex) and the 6-view fusion that supervises the occupancy head (GIGA's geometry signal, here the
fused band around the surface: inside = occupied, in front = free). Training then samples, per
scene, labelled grasps plus generated negatives for the evaluator heads. Batches are drawn from
``(seed, step)`` alone, so a resumed run continues exactly as an uninterrupted one would.

A step's global batch is made of shards of ``BatchSizes.scenes`` scenes, each drawn (scenes, grasps and the
denoiser's noise) from ``(seed, step, shard)`` alone (``StepDraw``). Training runs in one process, or
data-parallel in several (``train_in_processes``, or under torchrun with ``distributed.group_from_environment``),
each taking its ``accumulate`` shards; so one process with ``accumulate`` N takes exactly the steps of N.

A run trains on the scenes of one or several datasets together (``TrainOptions.data``), each with its own grid
cache. An epoch is ``ceil(scenes / (BatchSizes.scenes x accumulate x processes))`` steps; ``epochs`` and
``lr_drop_epochs`` set the run's length and learning-rate drops in epochs (the IGD paper: 12 epochs, x0.1 after
epochs 9 and 11). With ``val_data`` (scenes of held-out objects: ``diffgrasp datagen --objects-split``) the
model's losses on ``val_batches`` fixed batches of them go to ``val_log.jsonl`` (``loop``) every
``validate_every`` steps: the learning curves.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property, lru_cache, partial
from pathlib import Path

import numpy as np

from ..grasping.igd.candidates import candidate_mask
from ..grasping.igd.config import TINY, IGDConfig
from ..parallel import map_single_threaded
from ..scene.tsdf import TSDFVolume
from ..scene.workspace import STANDARD_WORKSPACE
from ..sim.camera import side_view, view_poses
from ..sim.noise import apply_depth_noise
from .atomic_files import save_npz_atomic
from .dataset import DatasetChunk, iter_chunks, read_chunk, rebuild_world
from .distributed import SINGLE_PROCESS, ProcessGroup, backend, check_process_count, run_in_processes
from .loop import VAL_LOG, HasLoopSettings, LoopSettings, check_lr_drops, check_run_folder, open_run, run_loop

# Side-view depth variants a model can be trained on; each scene's variant is drawn once, with a
# fixed seed, and cached. "side_graft" is the sim-to-real input (DiffuDepGrasp): clean depth with
# artifacts sampled from a depth noise model (default: the shipped models/depth_noise).
INPUT_VARIANTS = ("side", "side_dex", "side_graft", "side_stereo")
DEFAULT_INPUTS = ("side", "side_dex")
OCCUPANCY_TARGET = "multi"


def _fuse(frames, poses) -> np.ndarray:
    volume = TSDFVolume(STANDARD_WORKSPACE, STANDARD_WORKSPACE.resolution)
    for frame, T in zip(frames, poses):
        volume.integrate(frame, T)
    return volume.grid()


def _noise_folder(noise_weights: Path | None) -> Path:
    from ..depth.noise_diffusion import DEFAULT_WEIGHTS

    return Path(noise_weights) if noise_weights is not None else DEFAULT_WEIGHTS


def _noise_model(folder: Path):
    weights = folder / "weights.pt"
    # Keyed by the weights' modification time too: a model replaced in place (same folder) is loaded again.
    return _load_noise_model(folder, weights.stat().st_mtime_ns if weights.exists() else 0)


@lru_cache(maxsize=2)
def _load_noise_model(folder: Path, _mtime_ns: int):
    from ..depth.noise_diffusion import NoiseDiffusionModel

    # On the CPU everywhere: a CUDA generator would graft other noise, and the cached grids would then
    # depend on the machine that rendered them.
    return NoiseDiffusionModel.from_pretrained(folder, device="cpu")


def noise_model_digest(noise_weights: Path | None = None) -> str:
    """12 hex digits of the SHA-256 of a noise model's ``config.json`` and ``weights.pt`` (default: the shipped
    one): names the grids it grafted, so grids grafted by another model (or a retrained one) are not reused."""
    folder = _noise_folder(noise_weights)
    digest = hashlib.sha256()
    for name in ("config.json", "weights.pt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"depth noise model {folder} has no {name} (a `save_pretrained` folder is needed)")
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


def render_scene_grids(chunk: DatasetChunk, scene_index: int,
                       names: Sequence[str] = (*DEFAULT_INPUTS, OCCUPANCY_TARGET),
                       noise_weights: Path | None = None) -> dict[str, np.ndarray]:
    """The 40³ grids ``names`` (``INPUT_VARIANTS`` or the 6-view "multi") of one stored scene; "side_graft"
    is grafted with the noise model in ``noise_weights`` (default: the shipped models/depth_noise)."""
    unknown = set(names) - {*INPUT_VARIANTS, OCCUPANCY_TARGET}
    if unknown:
        raise ValueError(f"unknown grid(s) {sorted(unknown)}: choose from {[*INPUT_VARIANTS, OCCUPANCY_TARGET]}")
    description = chunk.scenes[scene_index]
    grids: dict[str, np.ndarray] = {}
    with rebuild_world(description, chunk.object_root) as world:
        side = world.camera.render(side_view())
        T = side.T_workspace_camera
        if "side" in names:
            grids["side"] = _fuse([side.depth], [T])
        if "side_dex" in names:
            grids["side_dex"] = _fuse([apply_depth_noise(side.depth, "dex", np.random.default_rng([description.seed, 7]))], [T])
        if "side_graft" in names:
            from ..camera.frame import DepthFrame
            from ..depth.grafting import graft

            depth = graft(side.depth.depth_m, _noise_model(_noise_folder(noise_weights)),
                          np.random.default_rng([description.seed, 11]))
            grids["side_graft"] = _fuse([DepthFrame(depth, side.depth.intrinsics, side.depth.frame_id)], [T])
        if "side_stereo" in names:
            from ..sim.stereo import D435Simulator

            stereo = D435Simulator(world.p, seed=int(np.random.SeedSequence([description.seed, 13]).generate_state(1)[0]))
            grids["side_stereo"] = _fuse([stereo.render(side_view()).to_depth_frame(side.depth.frame_id)], [T])
        if OCCUPANCY_TARGET in names:
            multi = [world.camera.render(pose) for pose in view_poses("multi")]
            grids[OCCUPANCY_TARGET] = _fuse([v.depth for v in multi], [v.T_workspace_camera for v in multi])
    return grids


def check_inputs(inputs: Sequence[str], noise_weights: Path | None = None) -> None:
    if not inputs or set(inputs) - set(INPUT_VARIANTS) or len(set(inputs)) != len(inputs):
        raise ValueError(f"inputs must be distinct names from {list(INPUT_VARIANTS)}, got {list(inputs)}")
    if noise_weights is not None and "side_graft" not in inputs:
        raise ValueError(f"a noise model ({noise_weights}) only grafts the side_graft input, which is not among "
                         f"the inputs {list(inputs)}")


@dataclass
class TrainingScene:
    grids: dict[str, np.ndarray]  # the run's inputs (INPUT_VARIANTS) + "multi", (40, 40, 40) float32 each
    position_m: np.ndarray  # (G, 3) grasp TCP positions
    rotation: np.ndarray  # (G, 3, 3)
    width_m: np.ndarray  # (G,)
    label: np.ndarray  # (G,) 0/1
    candidates_m: np.ndarray  # (C, 3) the voxel centres inference considers (``candidate_mask``)


class GridCache:
    """Rendered grids of stored scenes, one ``.npz`` per scene under ``folder``. "side_graft" is grafted with
    the noise model in ``noise_weights`` (default: the shipped one) and stored as "side_graft_<its digest>"."""

    def __init__(self, folder: Path, noise_weights: Path | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.noise_weights = noise_weights

    @cached_property
    def _graft_key(self) -> str:
        return f"side_graft_{noise_model_digest(self.noise_weights)}"

    def _key(self, name: str) -> str:
        """The name a grid is stored under in a scene's file."""
        return self._graft_key if name == "side_graft" else name

    def path(self, chunk: DatasetChunk, scene_index: int) -> Path:
        seed = chunk.scenes[scene_index].seed
        return self.folder / f"chunk{chunk.index:06d}_scene{scene_index:02d}_{seed}.npz"

    def has(self, chunk: DatasetChunk, scene_index: int, names: Sequence[str]) -> bool:
        path = self.path(chunk, scene_index)
        if not path.exists():
            return False
        with np.load(path) as data:
            return {self._key(name) for name in names} <= set(data.files)

    def grids(self, chunk: DatasetChunk, scene_index: int,
              names: Sequence[str] = (*DEFAULT_INPUTS, OCCUPANCY_TARGET)) -> dict[str, np.ndarray]:
        """The grids ``names`` of a scene, rendering (and adding to its file) only those not cached yet."""
        path = self.path(chunk, scene_index)
        cached: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as data:
                cached = {k: data[k] for k in data.files}
        missing = [name for name in names if self._key(name) not in cached]
        if missing:
            rendered = render_scene_grids(chunk, scene_index, missing, self.noise_weights)
            cached.update({self._key(name): grid for name, grid in rendered.items()})
            save_npz_atomic(path, cached)  # a temporary name per process: another may fill the cache too
        return {name: cached[self._key(name)] for name in names}


RENDER_CHUNK_TIMEOUT_S = 900.0  # per chunk file in a worker: some 50 times what a 4-scene chunk takes here


def render_chunk_grids(chunk_file: Path, cache_folder: Path, names: Sequence[str],
                       noise_weights: Path | None = None) -> int:
    """Render into the cache the missing grids ``names`` of the scenes of one chunk file that have labelled
    grasps (those training loads); how many scenes needed it."""
    chunk, cache, rendered = read_chunk(chunk_file), GridCache(cache_folder, noise_weights), 0
    for s in np.unique(chunk.grasps.scene):
        if not cache.has(chunk, int(s), names):
            cache.grids(chunk, int(s), names)
            rendered += 1
    return rendered


def render_dataset_grids(data: Path, cache: Path, inputs: Sequence[str] = DEFAULT_INPUTS,
                         noise_weights: Path | None = None, workers: int = 2,
                         timeout_s: float = RENDER_CHUNK_TIMEOUT_S, progress: bool = True) -> tuple[int, int]:
    """Fill the grid cache of the dataset at ``data`` for training on ``inputs`` (``train`` renders what is
    missing one scene at a time): a chunk file a job, in ``workers`` processes. Chunks written while it runs
    are left for the next run. Returns (chunk files, scenes rendered)."""
    from tqdm import tqdm

    check_inputs(inputs, noise_weights)
    names = (*inputs, OCCUPANCY_TARGET)
    files = sorted(Path(data).glob("chunk_*.npz"))
    if not files:
        raise ValueError(f"{data} holds no chunks: generate some with `diffgrasp datagen --out {data}`")
    jobs = [(path, Path(cache), names, noise_weights) for path in files]
    rendered = 0
    with tqdm(total=len(jobs), unit="chunk", disable=not progress, dynamic_ncols=True) as bar:
        for count in map_single_threaded(render_chunk_grids, jobs, workers, timeout_s,
                                         describe=lambda job: f"grids of {files[job].name}"):
            rendered += count
            bar.update()
    return len(files), rendered


def _labelled_scenes(data: Path, max_scenes: int | None) -> Iterator[tuple[DatasetChunk, int, np.ndarray]]:
    """``(chunk, scene index, mask of its grasps)`` for the first ``max_scenes`` scenes of the dataset at ``data``
    that have labelled grasps."""
    found = 0
    for chunk in iter_chunks(data):
        for s in range(len(chunk.scenes)):
            if max_scenes is not None and found >= max_scenes:
                return
            mine = chunk.grasps.scene == s
            if mine.any():
                found += 1
                yield chunk, s, mine


def load_scenes(data: Path, cache: GridCache, log: Callable[[str], None] = print,
                max_scenes: int | None = None, inputs: Sequence[str] = DEFAULT_INPUTS,
                group: ProcessGroup = SINGLE_PROCESS) -> list[TrainingScene]:
    """Every scene of the dataset at ``data`` with its ``inputs`` grids and the occupancy target
    (rendered into the cache when missing). In a group of processes each rank first renders its share of the
    missing grids, so that the cache is filled once and in parallel (on each machine, when their disks differ)."""
    from scipy.spatial.transform import Rotation

    names = (*inputs, OCCUPANCY_TARGET)
    if group.distributed:
        for k, (chunk, s, _) in enumerate(_labelled_scenes(data, max_scenes)):
            if k % group.world_size == group.rank:
                cache.grids(chunk, s, names)
        group.barrier()
    scenes: list[TrainingScene] = []
    start, rendered = time.perf_counter(), 0
    for chunk, s, mine in _labelled_scenes(data, max_scenes):
        g = chunk.grasps
        fresh = not cache.has(chunk, s, names)
        grids = cache.grids(chunk, s, names)
        # Candidates from the first input, as inference finds them in the grid it is given.
        candidates = STANDARD_WORKSPACE.voxel_centres()[candidate_mask(grids[inputs[0]], STANDARD_WORKSPACE)]
        scenes.append(TrainingScene(
            grids, g.position_m[mine].astype(np.float32),
            Rotation.from_quat(g.quaternion_xyzw[mine]).as_matrix().astype(np.float32),
            g.width_m[mine].astype(np.float32), g.label[mine].astype(np.float32), candidates.astype(np.float32)))
        rendered += fresh
        if fresh and rendered % 50 == 0:
            log(f"  rendered {rendered} scene(s) into the cache ({time.perf_counter() - start:.0f} s)")
    if not scenes:
        raise ValueError(f"{data} holds no labelled scenes: generate some with `diffgrasp datagen --out {data}`")
    return scenes


def dataset_folders(data: Path | Sequence[Path]) -> tuple[Path, ...]:
    """``data`` (one dataset folder or several) as a tuple of folders."""
    return (Path(data),) if isinstance(data, (str, Path)) else tuple(Path(d) for d in data)


def dataset_caches(folders: Sequence[Path], caches: Path | Sequence[Path] | None) -> tuple[Path, ...]:
    """The grid-cache folder of each dataset folder: ``caches`` (one per folder), default ``<folder>/igd_grid_cache``.
    A cache file is named by chunk, scene and seed, which two datasets may share: so one cache per dataset."""
    if caches is None:
        return tuple(folder / "igd_grid_cache" for folder in folders)
    caches = dataset_folders(caches)
    if len(caches) != len(folders):
        raise ValueError(f"give one cache folder per dataset: {len(folders)} dataset(s) "
                         f"{[str(f) for f in folders]}, {len(caches)} cache(s) {[str(c) for c in caches]}")
    return caches


def load_datasets(folders: Sequence[Path], caches: Sequence[Path], log: Callable[[str], None] = print,
                  max_scenes: int | None = None, inputs: Sequence[str] = DEFAULT_INPUTS,
                  noise_weights: Path | None = None, group: ProcessGroup = SINGLE_PROCESS) -> list[TrainingScene]:
    """The scenes of every dataset in ``folders``, one after another (``load_scenes``, each with its cache);
    ``max_scenes`` counts over all of them, in that order."""
    scenes: list[TrainingScene] = []
    for folder, cache in zip(folders, caches):
        left = None if max_scenes is None else max_scenes - len(scenes)
        if left == 0:
            break
        scenes += load_scenes(folder, GridCache(cache, noise_weights), log, left, inputs, group)
        if len(folders) > 1:
            log(f"  {folder}: {len(scenes)} scene(s) so far")
    return scenes


# -- batches --------------------------------------------------------------------------------------
FLIP = np.diag([-1.0, -1.0, 1.0]).astype(np.float32)  # a parallel-jaw grasp turned 180° about its approach


@dataclass(frozen=True)
class BatchSizes:
    scenes: int = 4
    grasps: int = 64  # evaluator samples per scene: 3/4 labelled (balanced), 1/4 random orientations
    centres: int = 64  # affordance samples: half labelled grasp centres, half inference candidates
    diffusion: int = 32  # positive grasps the denoiser learns per scene
    occupancy: int = 256


def _rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between rotations a (..., 3, 3) and b, the gripper's 180° symmetry included."""
    def angle(r: np.ndarray) -> np.ndarray:
        return np.arccos(np.clip((np.trace(r, axis1=-2, axis2=-1) - 1) / 2, -1, 1))

    rel = np.swapaxes(a, -1, -2) @ b
    return np.minimum(angle(rel), angle(rel @ FLIP))


def _random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(n, random_state=rng).as_matrix().astype(np.float32)


def sample_scene(scene: TrainingScene, rng: np.random.Generator, sizes: BatchSizes) -> dict[str, np.ndarray]:
    voxel = STANDARD_WORKSPACE.voxel_size_m
    positives = np.flatnonzero(scene.label > 0)
    negatives = np.flatnonzero(scene.label == 0)

    # Evaluator: labelled grasps, positives and negatives equally often when both exist ...
    n_labelled = sizes.grasps * 3 // 4
    want_positive = rng.random(n_labelled) < 0.5
    pool_pos = positives if len(positives) else negatives
    pool_neg = negatives if len(negatives) else positives
    idx = np.where(want_positive, rng.choice(pool_pos, n_labelled), rng.choice(pool_neg, n_labelled))
    p, R, label = scene.position_m[idx], scene.rotation[idx], scene.label[idx]
    # ... plus random orientations at labelled centres: negatives unless near a known success there.
    n_random = sizes.grasps - n_labelled
    at = rng.choice(len(scene.label), n_random)
    R_random = _random_rotations(n_random, rng)
    random_label = np.zeros(n_random, np.float32)
    if len(positives):
        close = np.linalg.norm(scene.position_m[at, None] - scene.position_m[None, positives], axis=-1) < 0.005
        similar = _rotation_angle(R_random[:, None], scene.rotation[None, positives]) < np.deg2rad(20)
        random_label = (close & similar).any(1).astype(np.float32)
    grasp_p = np.concatenate([p, scene.position_m[at]])
    grasp_R = np.concatenate([R, R_random])
    grasp_label = np.concatenate([label, random_label])
    grasp_width = np.concatenate([scene.width_m[idx], np.zeros(n_random, np.float32)])
    flip = rng.random(len(grasp_R)) < 0.5
    grasp_R[flip] = grasp_R[flip] @ FLIP

    # Denoiser: positive orientations (either of a grasp's two symmetric forms).
    if len(positives):
        d = rng.choice(positives, sizes.diffusion)
        diff_p, diff_R = scene.position_m[d], scene.rotation[d].copy()
        flip = rng.random(len(d)) < 0.5
        diff_R[flip] = diff_R[flip] @ FLIP
        diff_mask = np.ones(len(d), np.float32)
    else:
        diff_p = np.zeros((sizes.diffusion, 3), np.float32) + 0.15
        diff_R = np.broadcast_to(np.eye(3, dtype=np.float32), (sizes.diffusion, 3, 3)).copy()
        diff_mask = np.zeros(sizes.diffusion, np.float32)

    # Affordance: a centre is good when a successful grasp was found there (within a voxel).
    half = sizes.centres // 2
    pool = scene.candidates_m if len(scene.candidates_m) else scene.position_m
    jitter = rng.uniform(-0.5 * voxel, 0.5 * voxel, (sizes.centres - half, 3))
    centre_p = np.concatenate([scene.position_m[rng.choice(len(scene.label), half)],
                               pool[rng.choice(len(pool), sizes.centres - half)] + jitter]).astype(np.float32)
    centre_label = np.zeros(len(centre_p), np.float32)
    if len(positives):
        distance = np.linalg.norm(centre_p[:, None] - scene.position_m[None, positives], axis=-1).min(1)
        centre_label = (distance < voxel).astype(np.float32)

    # Occupancy: voxels of the 6-view band, half inside a surface and half in front of one.
    multi = scene.grids["multi"]
    inside, outside = np.argwhere((multi > 0) & (multi < 0.5)), np.argwhere(multi >= 0.5)
    n_in = sizes.occupancy // 2
    cells = np.concatenate([inside[rng.choice(len(inside), n_in)],
                            outside[rng.choice(len(outside), sizes.occupancy - n_in)]])
    occ_p = ((cells + rng.uniform(0.25, 0.75, cells.shape)) * voxel).astype(np.float32)
    occ_label = np.repeat(np.array([1.0, 0.0], np.float32), [n_in, sizes.occupancy - n_in])

    inputs = [name for name in scene.grids if name != OCCUPANCY_TARGET]
    return {"tsdf": scene.grids[inputs[rng.integers(len(inputs))]],
            "grasp_p": grasp_p, "grasp_R": grasp_R, "grasp_label": grasp_label, "grasp_width": grasp_width,
            "diff_p": diff_p, "diff_R": diff_R, "diff_mask": diff_mask,
            "centre_p": centre_p, "centre_label": centre_label, "occ_p": occ_p, "occ_label": occ_label}


@dataclass(frozen=True)
class StepDraw:
    """What a step draws from its ``rng`` for the global batch of every process: each row's scene and seed, and
    each shard's noise seed. A shard (``BatchSizes.scenes`` rows) is what one ``IGDModel.losses`` call sees; its
    rows and noise depend on the shard's index alone, not on the process that computes it."""

    scenes: np.ndarray  # (shards x rows,) the scene of each row
    row_seeds: np.ndarray  # (shards x rows,)
    noise_seeds: np.ndarray  # (shards,) the torch generator the denoiser's noise and timesteps come from

    @classmethod
    def of(cls, rng: np.random.Generator, scene_count: int, sizes: BatchSizes, shards: int) -> "StepDraw":
        rows = sizes.scenes * shards
        return cls(rng.choice(scene_count, rows), rng.integers(0, 2**63, rows), rng.integers(0, 2**63, shards))

    def noise(self, shard: int, device):
        import torch

        return torch.Generator(device).manual_seed(int(self.noise_seeds[shard]))


def sample_shard(scenes: list[TrainingScene], draw: StepDraw, shard: int, sizes: BatchSizes, device="cpu"):
    """Shard ``shard`` of a step's global batch: a dict of float32 tensors on ``device``, one row per scene, for
    ``IGDModel.losses``."""
    import torch

    rows = slice(shard * sizes.scenes, (shard + 1) * sizes.scenes)
    picked = [sample_scene(scenes[i], np.random.default_rng(seed), sizes)
              for i, seed in zip(draw.scenes[rows], draw.row_seeds[rows])]
    return {k: torch.from_numpy(np.stack([s[k] for s in picked]).astype(np.float32)).to(device) for k in picked[0]}


def sample_batch(scenes: list[TrainingScene], rng: np.random.Generator, sizes: BatchSizes):
    """A batch of ``sizes.scenes`` rows (one shard) on the CPU, for ``IGDModel.losses``."""
    return sample_shard(scenes, StepDraw.of(rng, len(scenes), sizes, 1), 0, sizes)


def shard_losses(model, scheduler, scenes: list[TrainingScene], sizes: BatchSizes, accumulate: int,
                 group: ProcessGroup) -> list[Callable]:
    """For ``loop.run_loop``: one ``losses(rng, generator)`` for each of this process's ``accumulate`` shards of
    the step's ``accumulate`` x ``group.world_size``, their noise from the shards' own seeds (the loop's
    generator is the same in every process)."""
    shards = accumulate * group.world_size

    def shard(k: int) -> Callable:
        def losses(rng: np.random.Generator, _generator) -> dict:
            draw = StepDraw.of(rng, len(scenes), sizes, shards)
            return model.losses(sample_shard(scenes, draw, k, sizes, group.device), scheduler,
                                draw.noise(k, group.device))

        return losses

    return [shard(k) for k in range(group.rank * accumulate, (group.rank + 1) * accumulate)]


VALIDATION_SEED = 20_250_321  # the validation batches' draw: the same in every run, whatever its --seed


def validation_losses(model, scheduler, scenes: list[TrainingScene], sizes: BatchSizes, batches: int,
                      device="cpu") -> Callable[[], dict[str, float]]:
    """For ``loop.run_loop``'s ``validate``: the mean named losses of ``model`` over ``batches`` fixed batches of
    ``scenes`` (rows, grasps and the denoiser's noise drawn once from ``VALIDATION_SEED``, never from the
    training streams), each of ``sizes.scenes`` rows."""
    import torch

    draws = [StepDraw.of(np.random.default_rng([VALIDATION_SEED, k]), len(scenes), sizes, 1) for k in range(batches)]
    shards = [sample_shard(scenes, draw, 0, sizes, device) for draw in draws]

    def validate() -> dict[str, float]:
        totals: dict[str, float] = {}
        for draw, shard in zip(draws, shards):
            for name, value in model.losses(shard, scheduler, draw.noise(0, device)).items():
                totals[name] = totals.get(name, 0.0) + float(value) / batches
        return totals

    return validate


# -- training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainOptions(HasLoopSettings):
    data: Path | tuple[Path, ...]  # one dataset folder, or several trained on together
    out: Path
    cache: Path | tuple[Path, ...] | None = None  # one per dataset (default: <each dataset>/igd_grid_cache)
    max_steps: int = 1_000_000
    max_minutes: float | None = None
    batch: BatchSizes = BatchSizes()
    accumulate: int = 1  # batches of ``batch.scenes`` per step and process (one process with N: N processes' steps)
    lr: float = 1e-3
    warmup_steps: int = 100
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    threads: int | None = None  # torch intra-op threads (default: torch's choice)
    tiny: bool = False
    resume: bool = False
    max_scenes: int | None = None
    init: Path | None = None  # start a new run from these weights (a ``save_pretrained`` folder), fresh optimizer
    config_overrides: tuple[tuple[str, object], ...] = ()  # IGDConfig fields of a new run, e.g. (("use_dam", False),)
    inputs: tuple[str, ...] = DEFAULT_INPUTS  # the depth variants (INPUT_VARIANTS) a batch draws its input from
    noise_weights: Path | None = None  # the noise model "side_graft" is grafted with (default: models/depth_noise)
    lr_drop_steps: tuple[int, ...] = ()  # total step counts after which the learning rate is x0.1
    epochs: int | None = None  # train this many epochs (replaces max_steps; see the module docstring)
    lr_drop_epochs: tuple[int, ...] = ()  # epochs after which the learning rate is x0.1 (instead of lr_drop_steps)
    val_data: tuple[Path, ...] = ()  # datasets of held-out objects, for validation losses only
    val_batches: int = 8  # fixed validation batches of ``batch.scenes`` scenes
    validate_every: int | None = None  # steps between validations (default: checkpoint_every)

    def __post_init__(self):
        check_inputs(self.inputs, self.noise_weights)
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be at least 1, got {self.accumulate}")
        dataset_caches(dataset_folders(self.data), self.cache)
        if self.lr_drop_steps and self.lr_drop_epochs:
            raise ValueError("give the learning-rate drops in steps (--lr-drops) or in epochs (--lr-drop-epochs), "
                             "not both")
        check_lr_drops(self.lr_drop_epochs, "--lr-drop-epochs")
        if self.epochs is not None:
            if self.epochs < 1:
                raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
            if self.lr_drop_epochs and self.lr_drop_epochs[-1] >= self.epochs:
                raise ValueError(f"--lr-drop-epochs {list(self.lr_drop_epochs)}: every drop must come before the "
                                 f"end of the run's {self.epochs} epochs")
        if self.val_batches < 1:
            raise ValueError(f"--val-batches must be at least 1, got {self.val_batches}")

    def steps_per_epoch(self, scenes: int, processes: int) -> int:
        """Steps that draw ``scenes`` rows in all: one epoch."""
        return math.ceil(scenes / (self.batch.scenes * self.accumulate * processes))

    def schedule(self, scenes: int, processes: int) -> LoopSettings:
        """The loop's settings, ``epochs`` and ``lr_drop_epochs`` turned into steps for ``scenes`` training scenes
        in ``processes`` processes."""
        epoch = self.steps_per_epoch(scenes, processes)
        loop = self.loop
        if self.epochs is not None:
            loop = replace(loop, max_steps=self.epochs * epoch)
        if self.lr_drop_epochs:
            loop = replace(loop, lr_drop_steps=tuple(e * epoch for e in self.lr_drop_epochs))
        return loop


@dataclass
class TrainReport:
    steps: int  # total, over every resumed run
    steps_this_run: int
    seconds_this_run: float
    seconds_total: float  # training time over every run, not counting data loading
    scenes: int
    grasps: int
    losses: dict[str, float]  # means over the last logging window


def train(options: TrainOptions, log: Callable[[str], None] = print,
          group: ProcessGroup = SINGLE_PROCESS) -> TrainReport:
    """Train (or resume) an IGD model; writes checkpoints, a JSON-lines loss log and ``save_pretrained`` weights
    into ``options.out``. In a group of processes (``distributed``) this is one rank: it trains on its
    ``options.batch.scenes`` rows of every global batch, and only rank 0 logs and writes."""
    from ..grasping.igd.model import IGDModel
    from ..grasping.igd.pretrained import load_pretrained, save_pretrained
    from ..grasping.igd.scheduler import DDIMScheduler

    if not group.is_main:
        log = _quiet
    start = time.perf_counter()
    run = open_run(options.loop, group)
    if run.state and (options.init is not None or options.config_overrides):
        raise ValueError(f"{run.checkpoint} exists: a resumed run keeps its weights and config, so do not pass "
                         "--init or --set with --resume")
    if run.state:
        config = IGDConfig(**json.loads(run.state["config"]))
    elif options.init is not None:
        config = load_pretrained(options.init, device="cpu").config.replace(**dict(options.config_overrides))
    else:
        config = IGDConfig(**(TINY if options.tiny else {})).replace(**dict(options.config_overrides))
    model = IGDModel(config)
    if options.init is not None and not run.state:
        model.load_state_dict(load_pretrained(options.init, device="cpu").state_dict())
        log(f"starting from the weights in {options.init} (new optimizer, step 0)")
    model.to(group.device)  # the CPU, or a rank's GPU in a group over NCCL
    parameters = sum(p.numel() for p in model.parameters())
    log(f"IGD model: {parameters / 1e6:.2f} M parameters, config {asdict(config)}")

    folders = dataset_folders(options.data)
    scenes = load_datasets(folders, dataset_caches(folders, options.cache), log, options.max_scenes, options.inputs,
                           options.noise_weights, group)
    grasps = sum(len(s.label) for s in scenes)
    log(f"{len(scenes)} scenes, {grasps} labelled grasps ({int(sum(s.label.sum() for s in scenes))} positive); "
        f"data ready in {time.perf_counter() - start:.0f} s")
    if group.distributed or options.accumulate > 1:
        shards = options.accumulate * group.world_size
        over = f" over {group.world_size} processes ({backend()})" if group.distributed else ""
        log(f"{shards} batches of {options.batch.scenes} scene(s) per step{over}")
    settings = options.schedule(len(scenes), group.world_size)
    if options.epochs is not None or options.lr_drop_epochs:
        length = f"; {options.epochs} epochs = {settings.max_steps} steps" if options.epochs is not None else ""
        log(f"an epoch is {options.steps_per_epoch(len(scenes), group.world_size)} steps{length}; learning rate x0.1 "
            f"after steps {list(settings.lr_drop_steps)}")

    scheduler = DDIMScheduler(config.train_steps, device=group.device)
    losses = shard_losses(model, scheduler, scenes, options.batch, options.accumulate, group)
    validate = None
    if options.val_data:
        val_folders = dataset_folders(options.val_data)
        # Every rank renders its share of the missing grids (as for training); rank 0 alone validates.
        val_scenes = load_datasets(val_folders, dataset_caches(val_folders, None), log, None, options.inputs,
                                   options.noise_weights, group)
        log(f"validation: {options.val_batches} fixed batches from {len(val_scenes)} held-out scene(s) every "
            f"{settings.validate_every or settings.checkpoint_every} steps, into {run.out / VAL_LOG}")
        if group.is_main:
            validate = validation_losses(model, scheduler, val_scenes, options.batch, options.val_batches,
                                         group.device)
    result = run_loop(run, settings, model, losses, lambda: save_pretrained(model, run.out), log, group=group,
                      validate=validate)
    return TrainReport(result.steps, result.steps_this_run, result.seconds_this_run, result.seconds_total,
                       len(scenes), grasps, result.losses)


def _quiet(_line: str) -> None:
    """The log of a rank other than 0: rank 0 speaks for the group."""


def _train_rank(options: TrainOptions, group: ProcessGroup) -> TrainReport:
    return train(options, lambda line: print(line, flush=True), group)


def train_in_processes(options: TrainOptions, processes: int) -> TrainReport:
    """``train`` data-parallel in ``processes`` spawned processes on this machine (gloo on the CPU, a GPU each
    over NCCL); rank 0's report. Without ``options.threads`` the cores are shared out among them."""
    check_process_count(processes)
    check_run_folder(options.loop)  # here, where it is one clear error, not one in a spawned process
    if options.threads is None:
        options = replace(options, threads=max(1, (os.cpu_count() or 1) // processes))
    return run_in_processes(partial(_train_rank, options), processes)
