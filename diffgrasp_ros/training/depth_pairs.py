"""Simulated D435 stereo pairs for learning depth: raw stereo depth next to the renderer's clean depth.

Scenes are ``pile`` / ``packed`` clutter of the training objects (``split="train"``) or of the
held-out validation objects (``split="val"``), each rendered by ``D435Simulator`` from a few camera
poses around the workspace (the protocol's side view and random views on a sphere around the
workspace centre), with a material drawn per object (mostly diffuse, some dark, specular or
transparent; the table stays diffuse).

A dataset is a folder of ``chunk_NNNNNN.npz`` files plus ``pairs.json`` (the settings). Each chunk
holds ``frames_per_chunk`` frames, all (N, 480, 640) unless noted:

- ``raw_depth_mm`` uint16: the simulated sensor's z16 depth, 0 = invalid;
- ``clean_depth_mm`` uint16: the renderer's exact depth rounded to mm, 0 = nothing within range;
- ``ir_left`` uint8: the left IR image (emitter on), the depth's own pixels;
- ``material`` uint8: index into ``MATERIAL_NAMES`` per pixel (0 = no surface);
- ``scene_kind`` (N,) str, ``scene_seed`` (N,) int64, ``T_workspace_camera`` (N, 4, 4) float32,
  ``fx_fy_cx_cy`` (4,) float32.

A chunk's content depends only on (seed, split, chunk index), and chunks are written atomically, so
re-running ``generate_pairs`` skips finished chunks and resumes an interrupted run.
"""
from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..geometry import camera_on_sphere
from ..scene.workspace import STANDARD_WORKSPACE
from ..sim.object_splits import training_objects, validation_objects
from ..sim.stereo import D435Simulator
from ..sim.world import SCENE_KINDS, ClutterWorld
from .atomic_files import remove_stale_temps, resumable_chunks, save_npz_atomic, write_json_atomic

FORMAT_VERSION = 1
MANIFEST = "pairs.json"
SPLITS = ("train", "val")
MATERIAL_NAMES = ("none", "diffuse", "dark", "specular", "transparent")  # ids 0..4 in ``material``
# Chance of each object material: mostly diffuse, as in a real bin.
MATERIAL_PROBABILITIES = {"diffuse": 0.55, "dark": 0.15, "specular": 0.15, "transparent": 0.15}


@dataclass(frozen=True)
class PairSettings:
    split: str = "train"
    seed: int = 0
    frames_per_chunk: int = 8
    views_per_scene: int = 2  # a new scene costs ~1 s of physics; a view ~0.5 s of rendering + matching
    side_view_fraction: float = 0.3  # share of views that are the protocol's side view (jittered)


@dataclass
class PairChunk:
    """One chunk's frames; depth in mm as stored (``*_m`` properties give metres as float32)."""

    raw_depth_mm: np.ndarray  # (N, H, W) uint16
    clean_depth_mm: np.ndarray  # (N, H, W) uint16
    ir_left: np.ndarray  # (N, H, W) uint8
    material: np.ndarray  # (N, H, W) uint8, see MATERIAL_NAMES
    scene_kind: np.ndarray  # (N,) str
    scene_seed: np.ndarray  # (N,) int64
    T_workspace_camera: np.ndarray  # (N, 4, 4) float32

    def __len__(self) -> int:
        return len(self.raw_depth_mm)

    @property
    def raw_depth_m(self) -> np.ndarray:
        return self.raw_depth_mm.astype(np.float32) * np.float32(0.001)

    @property
    def clean_depth_m(self) -> np.ndarray:
        return self.clean_depth_mm.astype(np.float32) * np.float32(0.001)


def chunk_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"chunk_{index:06d}.npz"


def _chunk_seed(settings: PairSettings, index: int) -> int:
    # Independent of which other chunks exist, so a resumed run writes what a fresh one would.
    return zlib.crc32(f"{settings.seed}/{settings.split}/{index}".encode())


def random_view(rng: np.random.Generator, side_view_fraction: float) -> np.ndarray:
    """A camera pose looking at the workspace: the side view jittered, or a random view on a sphere."""
    ws = STANDARD_WORKSPACE
    c = ws.size_m / 2.0
    if rng.random() < side_view_fraction:
        target = np.array([c, c, ws.size_m / 3.0]) + rng.normal(0.0, 0.01, 3)
        return camera_on_sphere(target, 2.0 * ws.size_m * rng.uniform(0.95, 1.05),
                                np.deg2rad(60.0 + rng.normal(0.0, 3.0)), np.deg2rad(-90.0 + rng.normal(0.0, 5.0)))
    target = np.array([c, c, ws.table_height_m]) + np.append(rng.uniform(-0.04, 0.04, 2), rng.uniform(0.0, 0.06))
    return camera_on_sphere(target, rng.uniform(0.45, 0.85), np.deg2rad(rng.uniform(10.0, 65.0)),
                            rng.uniform(0.0, 2.0 * np.pi))


def _single_colour_per_link(client, body: int) -> bool:
    """Whether ``D435Simulator`` can render ``body`` transparent (it hides and restores link colours)."""
    colours: dict[int, tuple] = {}
    return all(colours.setdefault(shape[1], tuple(shape[7])) == tuple(shape[7])
               for shape in client.getVisualShapeData(body))


def _draw_materials(world: ClutterWorld, rng: np.random.Generator) -> dict[int, str]:
    names, p = list(MATERIAL_PROBABILITIES), list(MATERIAL_PROBABILITIES.values())
    materials = {}
    for body in world.object_ids:
        name = str(rng.choice(names, p=p))
        if name == "transparent" and not _single_colour_per_link(world.p, body):
            name = "diffuse"
        materials[body] = name
    return materials


def _material_image(body_ids: np.ndarray, materials: dict[int, str]) -> np.ndarray:
    image = np.where(body_ids >= 0, MATERIAL_NAMES.index("diffuse"), 0).astype(np.uint8)
    for body, name in materials.items():
        image[body_ids == body] = MATERIAL_NAMES.index(name)
    return image


def generate_chunk(settings: PairSettings, index: int) -> dict[str, np.ndarray]:
    """The arrays of chunk ``index`` (see the module doc); deterministic in (settings, index)."""
    rng = np.random.default_rng(_chunk_seed(settings, index))
    pick = validation_objects if settings.split == "val" else training_objects
    frames: dict[str, list] = {k: [] for k in ("raw_depth_mm", "clean_depth_mm", "ir_left", "material",
                                                 "scene_kind", "scene_seed", "T_workspace_camera")}
    worlds: dict[str, ClutterWorld] = {}
    try:
        simulator = None
        while len(frames["raw_depth_mm"]) < settings.frames_per_chunk:
            kind = str(rng.choice(SCENE_KINDS))
            scene_seed = int(rng.integers(2**31))
            if kind not in worlds:
                worlds[kind] = ClutterWorld(pick(kind).objects, seed=0)
            world = worlds[kind]
            world.rng = np.random.default_rng(scene_seed)
            if world.generate(kind) == 0:
                continue
            if simulator is None:
                simulator = D435Simulator(world.p, seed=int(rng.integers(2**31)))
            simulator.client = world.p  # one simulator (emitter pattern) for every world of the chunk
            materials = _draw_materials(world, rng)
            for _ in range(min(settings.views_per_scene, settings.frames_per_chunk - len(frames["raw_depth_mm"]))):
                frame = simulator.render(random_view(rng, settings.side_view_fraction), materials)
                frames["raw_depth_mm"].append(frame.to_sdk_units())
                frames["clean_depth_mm"].append(np.round(frame.clean_depth_m * 1000.0).astype(np.uint16))
                frames["ir_left"].append(frame.ir_left)
                frames["material"].append(_material_image(frame.body_ids, materials))
                frames["scene_kind"].append(kind)
                frames["scene_seed"].append(scene_seed)
                frames["T_workspace_camera"].append(frame.T_workspace_camera.astype(np.float32))
    finally:
        for world in worlds.values():
            world.close()
    K = simulator.config.intrinsics
    arrays = {k: np.stack(v) if k != "scene_kind" else np.array(v) for k, v in frames.items()}
    arrays.update(format_version=np.int32(FORMAT_VERSION), chunk_index=np.int32(index), split=np.array(settings.split),
                  fx_fy_cx_cy=np.array([K.fx, K.fy, K.cx, K.cy], np.float32))
    return arrays


def generate_pairs(out_dir: str | Path, n_chunks: int, frames_per_chunk: int = 8, split: str = "train",
                   seed: int = 0, views_per_scene: int = 2,
                   log: Callable[[str], None] | None = None) -> list[Path]:
    """Write chunks 0..n_chunks-1 of a stereo-pair dataset to ``out_dir``, skipping existing ones.

    Returns the chunk paths. A folder made with other settings is refused rather than mixed.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {SPLITS}")
    if n_chunks < 1 or frames_per_chunk < 1 or views_per_scene < 1:
        raise ValueError("n_chunks, frames_per_chunk and views_per_scene must be at least 1")
    settings = PairSettings(split, int(seed), int(frames_per_chunk), int(views_per_scene))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST
    if manifest.is_file():
        existing = json.loads(manifest.read_text())
        if existing != asdict(settings):
            raise ValueError(f"{out_dir} holds pairs made with other settings {existing}; "
                             f"asked for {asdict(settings)}: use another folder")
    else:
        write_json_atomic(manifest, asdict(settings))
    remove_stale_temps(out_dir, "chunk_*.npz")  # left by a run killed mid-write
    paths = []
    for index in range(n_chunks):
        path = chunk_path(out_dir, index)
        paths.append(path)
        if path.is_file():
            continue
        start = time.perf_counter()
        arrays = generate_chunk(settings, index)
        with resumable_chunks(out_dir, "chunk_[0-9][0-9][0-9][0-9][0-9][0-9].npz"):
            save_npz_atomic(path, arrays)
        if log is not None:
            log(f"chunk {index + 1}/{n_chunks}: {frames_per_chunk} frames in {time.perf_counter() - start:.1f} s")
    return paths


def read_chunk(path: str | Path) -> PairChunk:
    with np.load(path, allow_pickle=False) as data:
        if int(data["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: stereo-pair format {int(data['format_version'])}, expected {FORMAT_VERSION}")
        return PairChunk(data["raw_depth_mm"], data["clean_depth_mm"], data["ir_left"], data["material"],
                         data["scene_kind"], data["scene_seed"], data["T_workspace_camera"])


def chunk_paths(data_dir: str | Path) -> list[Path]:
    paths = sorted(Path(data_dir).glob("chunk_[0-9][0-9][0-9][0-9][0-9][0-9].npz"))
    if not paths:
        raise FileNotFoundError(f"no stereo-pair chunks (chunk_NNNNNN.npz) in {data_dir}; "
                                "make some with `diffgrasp depth-data --out DIR`")
    return paths


def iter_pairs(data_dir: str | Path) -> Iterator[PairChunk]:
    """The dataset's chunks one at a time, in order (memory: one chunk, ~5 MB per frame)."""
    for path in chunk_paths(data_dir):
        yield read_chunk(path)


def load_pairs(data_dir: str | Path, max_frames: int | None = None) -> PairChunk:
    """All frames of the dataset (or the first ``max_frames``) as one ``PairChunk``."""
    parts, count = [], 0
    for chunk in iter_pairs(data_dir):
        parts.append(chunk)
        count += len(chunk)
        if max_frames is not None and count >= max_frames:
            break
    fields = PairChunk.__dataclass_fields__
    joined = PairChunk(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in fields})
    if max_frames is not None:
        joined = PairChunk(**{name: getattr(joined, name)[:max_frames] for name in fields})
    return joined
