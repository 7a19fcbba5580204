"""Labelled grasps for training TSDF / point-cloud grasp models, generated in simulation at scale.

Per scene (pile or packed, training objects only): generate the scene, render the 6 standard views
and fuse them, then take grasp candidates the way the VGN data generator does (a surface point of the
fused cloud whose normal does not point down; approach along -normal, the TCP ``depth`` back from
the surface with depth ~ U[-0.1, 1.1] x finger depth, at several yaws and depths) plus the baseline
planner's ranked grasps, and label each one in simulation (``SimLabeller``), analytically
(``AnalyticLabeller``), both, or "checked": analytically, then executed in simulation where it matters
most (every analytic positive and ``sim_check_fraction`` of the negatives), the simulated label winning.

Options for data at scale, all off by default (a dataset made without them keeps its bytes):
``randomise_physics`` draws each object's scale jitter, mass and friction (``sim.world.PhysicsRandomisation``,
recorded in the scene description), and ``max_negative_ratio`` drops a scene's surplus negatives.

Work is split into chunks of ``scenes_per_chunk`` scenes, one file each (see ``dataset``). Chunk i
draws everything from ``SeedSequence([seed, i])`` and builds every scene in a fresh PyBullet world,
so a chunk's content does not depend on which worker made it or what that worker did before.
Chunks already on disk are skipped (resume), and files are written atomically (``atomic_files``); a
chunk that hangs in a worker is stopped after ``default_chunk_timeout_s`` and made again (``parallel``).

Beyond one machine, the chunks are Ray tasks (``generate_dataset(ray_address=...)``): each returns its chunk's
arrays and the driver writes them, so chunk files are named by their index alone, written by one process,
and byte-identical to the local pool's (``np.savez`` dates every zip entry 1980-01-01, whenever it is written).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..geometry import quaternion_xyzw
from ..grasping import make_planner
from ..parallel import check_ray_address, map_on_ray, map_single_threaded, ray_cluster
from ..robots.gripper import FRANKA_HAND
from ..scene.tsdf import SceneBuilder
from ..sim.camera import multi_views
from ..sim.object_splits import ObjectSet
from ..sim.world import SCENE_KINDS, ClutterWorld, PhysicsRandomisation, SceneDescription
from .atomic_files import remove_stale_temps, resumable_chunks, write_json_atomic
from .dataset import (FORMAT_VERSION, LABELLED_ANALYTICALLY, LABELLED_IN_SIM, MANIFEST, SOURCE_BASELINE,
                      SOURCE_SURFACE, DatasetChunk, GraspRecords, chunk_path, iter_chunks, write_chunk)
from .labels import AnalyticLabeller, LabelAgreement, SimLabeller

LABEL_MODES = ("sim", "analytic", "both", "checked")
# Options added after datasets were first made: left out of the manifest at their defaults, so those datasets resume.
LATER_OPTIONS = ("sim_check_fraction", "randomise_physics", "scale_jitter", "max_negative_ratio")
SCENE_BUDGET_S, GRASP_BUDGET_S = 60.0, 1.0  # a chunk's time limit in a worker (``default_chunk_timeout_s``)


@dataclass(frozen=True)
class DatagenConfig:
    labels: str = "sim"  # one of LABEL_MODES
    scenes_per_chunk: int = 4
    seed: int = 0
    kinds: tuple[str, ...] = ("pile", "packed")  # scene g of the dataset is kinds[g % len(kinds)]
    points_per_scene: int = 12  # surface points sampled per scene ...
    yaws: int = 4  # ... each tried at this many closing-axis angles ...
    depths: int = 2  # ... and this many depths
    baseline_grasps: int = 16  # plus up to this many of the baseline planner's grasps
    sim_check_fraction: float = 0.25  # "checked" mode: share of the analytic negatives executed in simulation
    randomise_physics: bool = False  # per object: scale x U[1 -/+ scale_jitter], mass x U[0.5, 2], friction U[0.4, 1]
    scale_jitter: float = 0.15
    max_negative_ratio: float | None = None  # per scene, negatives beyond this many per positive are dropped

    def __post_init__(self):
        if self.labels not in LABEL_MODES:
            raise ValueError(f"unknown labelling mode {self.labels!r}: choose one of {list(LABEL_MODES)}")
        if not self.kinds or any(k not in SCENE_KINDS for k in self.kinds):
            raise ValueError(f"scene kinds must be among {SCENE_KINDS}, got {self.kinds}")
        for name in ("scenes_per_chunk", "points_per_scene", "yaws", "depths"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.baseline_grasps < 0:
            raise ValueError(f"baseline_grasps must not be negative, got {self.baseline_grasps}")
        if not 0.0 <= self.sim_check_fraction <= 1.0:
            raise ValueError(f"sim_check_fraction must be in [0, 1], got {self.sim_check_fraction}")
        if self.max_negative_ratio is not None and not self.max_negative_ratio >= 0:
            raise ValueError(f"max_negative_ratio must be None or not negative, got {self.max_negative_ratio}")
        self.physics_randomisation()  # checks scale_jitter

    def physics_randomisation(self) -> PhysicsRandomisation | None:
        return PhysicsRandomisation(self.scale_jitter) if self.randomise_physics else None


@dataclass(frozen=True)
class ChunkStats:
    index: int
    scenes: int
    grasps: int
    positives: int
    disagreements: int = 0  # "checked" mode: grasps the simulation labelled other than the analytic test


@dataclass
class DatagenReport:
    chunks_written: int
    chunks_skipped: int
    scenes: int  # in the chunks written
    grasps: int
    positives: int
    seconds: float
    agreement: LabelAgreement | None = None  # over the grasps labelled both ways ("both", "checked")
    disagreements: int = 0  # "checked" mode, in the chunks written
    written: list[int] = field(default_factory=list)

    @property
    def grasps_per_second(self) -> float:
        return self.grasps / self.seconds if self.seconds > 0 else 0.0


# -- candidates -----------------------------------------------------------------------------------
def surface_grasps(points: np.ndarray, normals: np.ndarray, rng: np.random.Generator, config: DatagenConfig,
                   finger_depth_m: float) -> np.ndarray:
    """(N, 4, 4) TCP poses approaching sampled surface points against their normals (VGN's sampler)."""
    usable = np.flatnonzero(normals[:, 2] > -0.1)  # approach from above or the side, never from below
    if len(usable) == 0:
        return np.zeros((0, 4, 4))
    chosen = rng.choice(usable, size=min(config.points_per_scene, len(usable)), replace=False)
    poses = []
    for point, normal in zip(points[chosen], normals[chosen]):
        helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(normal, helper)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(normal, e1)
        offset = rng.uniform(0.0, np.pi / config.yaws)
        for depth in rng.uniform(-0.1 * finger_depth_m, 1.1 * finger_depth_m, config.depths):
            for k in range(config.yaws):
                yaw = offset + np.pi * k / config.yaws
                closing = np.cos(yaw) * e1 + np.sin(yaw) * e2
                T = np.eye(4)
                T[:3, :3] = np.column_stack([np.cross(closing, -normal), closing, -normal])
                T[:3, 3] = point + depth * normal
                poses.append(T)
    return np.array(poses)


# -- one scene, one chunk ------------------------------------------------------------------------
@dataclass
class SceneLabels:
    labels: np.ndarray  # (N,) int8, the decided labels
    widths: np.ndarray  # (N,) float32
    analytic: np.ndarray | None = None  # (N,) int8, "both" and "checked" modes
    source: np.ndarray | None = None  # (N,) uint8, LABELLED_*, "checked" mode


def _label_checked(world: ClutterWorld, poses: np.ndarray, sim_check_fraction: float,
                   rng: np.random.Generator) -> SceneLabels:
    """Analytic labels, with every analytic positive and a random ``sim_check_fraction`` of the negatives
    executed in simulation: the analytic test's false positives are its costly errors (a model learns to try
    grasps that fail), and the sampled negatives find its false negatives; where they disagree, simulation wins."""
    labeller = AnalyticLabeller(world)
    analytic = [labeller.label(T) for T in poses]
    labels = np.array([ok for ok, _ in analytic], dtype=np.int8)
    widths = np.array([w for _, w in analytic], dtype=np.float32)
    checked = (labels == 1) | (rng.random(len(poses)) < sim_check_fraction)
    source = np.where(checked, LABELLED_IN_SIM, LABELLED_ANALYTICALLY).astype(np.uint8)
    decided, decided_widths = labels.copy(), widths.copy()
    if checked.any():
        simulator = SimLabeller(world)
        for i in np.flatnonzero(checked):
            ok, width = simulator.label(poses[i])
            decided[i], decided_widths[i] = ok, width
        simulator.close()
    return SceneLabels(decided, decided_widths, labels, source)


def _label(world: ClutterWorld, poses: np.ndarray, mode: str) -> SceneLabels:
    """Labels for TCP poses in the world's current scene ("sim", "analytic" or "both" mode)."""
    analytic = sim = None
    if mode in ("analytic", "both"):
        labeller = AnalyticLabeller(world)
        analytic = [labeller.label(T) for T in poses]  # first: simulation moves things, analytic does not
    if mode in ("sim", "both"):
        labeller = SimLabeller(world)
        sim = [labeller.label(T) for T in poses]
        labeller.close()
    primary = sim if sim is not None else analytic
    labels = np.array([ok for ok, _ in primary], dtype=np.int8)
    widths = np.array([w for _, w in primary], dtype=np.float32)
    both = np.array([ok for ok, _ in analytic], dtype=np.int8) if mode == "both" else None
    return SceneLabels(labels, widths, both)


def balanced(labels: np.ndarray, max_negative_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Indices (ascending) of the grasps to keep: every positive and at most ``max_negative_ratio`` negatives
    per positive, chosen at random (a scene without positives keeps none)."""
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    allowed = int(np.floor(max_negative_ratio * len(positives)))
    if len(negatives) > allowed:
        negatives = rng.choice(negatives, size=allowed, replace=False)
    return np.sort(np.concatenate([positives, negatives]))


@dataclass
class LabelledScene:
    description: SceneDescription
    poses: np.ndarray  # (N, 4, 4) TCP poses in the workspace frame
    widths: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int8
    sources: np.ndarray  # (N,) uint8
    labels_analytic: np.ndarray | None  # (N,) int8 in "both" and "checked" modes
    label_sources: np.ndarray | None = None  # (N,) uint8 in "checked" mode


def generate_scene(kind: str, seed: int, objects: ObjectSet, config: DatagenConfig,
                   rng: np.random.Generator) -> LabelledScene | None:
    """One labelled scene, or None when nothing stayed in the workspace."""
    gripper = FRANKA_HAND
    with ClutterWorld(objects.objects, seed=seed, randomisation=config.physics_randomisation()) as world:
        if world.generate(kind) == 0:
            return None
        description = world.describe(kind, seed, objects.root)
        builder = SceneBuilder(world.workspace)
        for T in multi_views():
            builder.integrate(world.camera.render(T).depth, T)
        scene = builder.scene()
        above = scene.object_points_mask()
        poses = surface_grasps(scene.points_m[above], scene.normals[above], rng, config, gripper.finger_depth_m)
        sources = np.full(len(poses), SOURCE_SURFACE, np.uint8)
        if config.baseline_grasps:
            plan = make_planner("baseline", max_grasps=config.baseline_grasps).plan(scene)
            baseline = np.array([g.T_frame_grasp for g in plan.grasps]).reshape(-1, 4, 4)
            poses = np.concatenate([poses, baseline])
            sources = np.concatenate([sources, np.full(len(baseline), SOURCE_BASELINE, np.uint8)])
        if config.labels == "checked":
            labelled = _label_checked(world, poses, config.sim_check_fraction, rng)
        else:
            labelled = _label(world, poses, config.labels)
    scene = LabelledScene(description, poses, labelled.widths, labelled.labels, sources, labelled.analytic,
                          labelled.source)
    if config.max_negative_ratio is not None:
        keep = balanced(scene.labels, config.max_negative_ratio, rng)
        scene = LabelledScene(description, *(None if a is None else a[keep] for a in (
            scene.poses, scene.widths, scene.labels, scene.sources, scene.labels_analytic, scene.label_sources)))
    return scene


def _records(scenes: list[LabelledScene], mode: str) -> GraspRecords:
    def cat(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(s, name) for s in scenes] + [empty])

    poses = cat("poses", np.zeros((0, 4, 4)))
    return GraspRecords(
        np.concatenate([np.full(len(s.poses), i, np.int32) for i, s in enumerate(scenes)] + [np.zeros(0, np.int32)]),
        poses[:, :3, 3], np.array([quaternion_xyzw(T) for T in poses]).reshape(-1, 4),
        cat("widths", np.zeros(0, np.float32)), cat("labels", np.zeros(0, np.int8)),
        cat("sources", np.zeros(0, np.uint8)),
        cat("labels_analytic", np.zeros(0, np.int8)) if mode in ("both", "checked") else None,
        cat("label_sources", np.zeros(0, np.uint8)) if mode == "checked" else None)


@dataclass(frozen=True)
class ChunkTask:
    index: int
    config: DatagenConfig
    object_sets: Mapping[str, ObjectSet]  # by scene kind
    folder: Path


def make_chunk(task: ChunkTask) -> DatasetChunk:
    """Chunk ``task.index`` of the dataset, made from ``(config.seed, task.index)`` alone."""
    config = task.config
    scenes = []
    for j, child in enumerate(np.random.SeedSequence([config.seed, task.index]).spawn(config.scenes_per_chunk)):
        kind = config.kinds[(task.index * config.scenes_per_chunk + j) % len(config.kinds)]
        scene = generate_scene(kind, int(child.generate_state(1)[0]), task.object_sets[kind], config,
                               np.random.default_rng(child))
        if scene is not None:
            scenes.append(scene)
    root_tag = next(iter(task.object_sets.values())).root_tag
    return DatasetChunk(task.index, config.labels, root_tag, [s.description for s in scenes],
                        _records(scenes, config.labels))


def store_chunk(folder: Path, chunk: DatasetChunk) -> ChunkStats:
    """Write ``chunk`` to its file in ``folder``, named by its index alone and written atomically: a reader never
    sees part of a chunk, and a chunk made again is the same bytes."""
    write_chunk(chunk_path(folder, chunk.index), chunk)
    g = chunk.grasps
    disagreements = 0 if g.label_source is None else int(np.sum(g.label != g.label_analytic))
    return ChunkStats(chunk.index, len(chunk.scenes), len(g), int(g.label.sum()), disagreements)


def make_and_store_chunk(make: Callable[[ChunkTask], DatasetChunk], task: ChunkTask) -> ChunkStats:
    return store_chunk(task.folder, make(task))


def generate_chunk(task: ChunkTask) -> ChunkStats:
    """Make chunk ``task.index`` and write it into ``task.folder`` (a job of the local pool)."""
    return make_and_store_chunk(make_chunk, task)


# -- a dataset ------------------------------------------------------------------------------------
def _manifest(config: DatagenConfig, object_sets: Mapping[str, ObjectSet]) -> dict:
    defaults = asdict(DatagenConfig())
    settings = {k: v for k, v in asdict(config).items() if k not in LATER_OPTIONS or v != defaults[k]}
    return {"format_version": FORMAT_VERSION, "config": settings,
            "objects": {kind: {"name": s.name, "root": s.root_tag, "count": len(s.objects)}
                        for kind, s in sorted(object_sets.items())}}


def dataset_agreement(folder: Path) -> LabelAgreement | None:
    """Analytic vs simulated labels over every grasp of ``folder`` labelled both ways (in "checked" chunks, the
    grasps executed in simulation: a biased sample, every analytic positive but only some negatives)."""
    sim, analytic = [], []
    for chunk in iter_chunks(folder):
        g = chunk.grasps
        if g.label_analytic is not None:
            both = slice(None) if g.label_source is None else g.label_source == LABELLED_IN_SIM
            sim.append(g.label[both])
            analytic.append(g.label_analytic[both])
    return LabelAgreement.of(np.concatenate(sim), np.concatenate(analytic)) if sim else None


def default_chunk_timeout_s(config: DatagenConfig) -> float:
    """How long one chunk may take in a worker before it counts as hung: per scene a minute (generation,
    rendering, fusion, planning) plus a second per labelled candidate, some 30 times what a loaded 2-core
    machine needs (65 simulated labels/s over 2 workers, README)."""
    candidates = config.points_per_scene * config.yaws * config.depths + config.baseline_grasps
    return float(config.scenes_per_chunk * (SCENE_BUDGET_S + GRASP_BUDGET_S * candidates))


def generate_dataset(folder: Path, config: DatagenConfig, chunks: int, object_sets: Mapping[str, ObjectSet],
                     workers: int = 2, progress: bool = True, chunk_timeout_s: float | None = None,
                     ray_address: str | None = None,
                     chunk_function: Callable[[ChunkTask], DatasetChunk] = make_chunk) -> DatagenReport:
    """Write chunks 0 .. chunks-1 of a dataset into ``folder``, skipping those already there. With several
    workers a chunk running longer than ``chunk_timeout_s`` (default: ``default_chunk_timeout_s(config)``) is
    stopped and made again once; a chunk that fails twice raises a ``parallel.WorkerError`` after the others
    are written. A write error (a full disk) raises an ``atomic_files.WriteError``: no partial chunk is left,
    and running again resumes from the chunks on disk.

    With ``ray_address`` (``parallel.ray_cluster``: "local" starts a cluster of ``workers`` CPUs) every chunk is
    a Ray task that returns its arrays, and this process writes them: the same time limit and retry, the same
    bytes as the local pool's. ``chunk_function`` makes a chunk (tests put faults in it)."""
    if chunks < 1:
        raise ValueError(f"chunks must be at least 1, got {chunks}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    missing = [k for k in config.kinds if k not in object_sets]
    if missing:
        raise ValueError(f"no object set for scene kind(s) {missing}")
    if len({s.root_tag for s in object_sets.values()}) != 1:
        raise ValueError("all scene kinds' object sets must share one object root")
    if ray_address is not None:
        check_ray_address(ray_address)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(json.dumps(_manifest(config, {k: object_sets[k] for k in config.kinds})))
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        existing = json.loads(manifest_path.read_text())
        if existing != manifest:
            differ = sorted(k for k in {**existing.get("config", {}), **manifest["config"]}
                            if existing.get("config", {}).get(k) != manifest["config"].get(k))
            raise ValueError(f"{folder} holds a dataset generated with other settings "
                             f"({', '.join(differ) or 'objects'} differ, see {manifest_path}); resume it with "
                             "the same settings or write to another folder")
    else:
        write_json_atomic(manifest_path, manifest)
    remove_stale_temps(folder, "chunk_*.npz")  # left by a run killed mid-write

    todo = [i for i in range(chunks) if not chunk_path(folder, i).exists()]
    tasks = [(ChunkTask(i, config, dict(object_sets), folder),) for i in todo]
    report = DatagenReport(0, chunks - len(todo), 0, 0, 0, 0.0)
    start = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), unit="chunk", disable=not progress, dynamic_ncols=True)
    limit = default_chunk_timeout_s(config) if chunk_timeout_s is None else chunk_timeout_s

    def describe(job: int) -> str:
        return f"datagen chunk {todo[job]}"

    try:
        with resumable_chunks(folder, "chunk_*.npz"), ExitStack() as stack:
            if ray_address is None:  # the workers write their chunks
                results = map_single_threaded(partial(make_and_store_chunk, chunk_function), tasks, workers, limit,
                                              initializer=None, describe=describe)
            else:  # the tasks return their chunks, written here (the cluster's nodes need not share a disk)
                if tasks:
                    stack.enter_context(ray_cluster(ray_address, workers))
                results = (store_chunk(folder, chunk) for chunk in map_on_ray(chunk_function, tasks, limit, describe))
            # Closed before the cluster is left: a failed write cancels the tasks still running.
            for stats in stack.enter_context(closing(results)):
                report.chunks_written += 1
                report.scenes += stats.scenes
                report.grasps += stats.grasps
                report.positives += stats.positives
                report.disagreements += stats.disagreements
                report.written.append(stats.index)
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(f"{report.grasps / elapsed:.1f} grasps/s")
                bar.update()
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    report.written.sort()
    if config.labels in ("both", "checked"):
        report.agreement = dataset_agreement(folder)
    return report
