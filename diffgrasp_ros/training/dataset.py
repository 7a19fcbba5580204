"""The on-disk grasp dataset: compact chunks of scene descriptions and labelled grasps.

A dataset is a folder with ``dataset.json`` (the generation settings) and ``chunk_NNNNNN.npz`` files.
A chunk holds no images: each scene is stored as its description (object model path relative to the
object root, scale and resting pose per object, plus the scene's kind and seed), and depth images or
TSDF grids are re-rendered from it on demand (``render_views`` / ``reconstruct``). Arrays in a chunk:

- ``format_version``, ``chunk_index``, ``label_mode`` ("sim", "analytic", "both" or "checked"), ``object_root``
  (an object-root tag, see ``sim.object_splits.resolve_object_root``);
- per scene: ``scene_kind``, ``scene_seed``, ``scene_object_count``;
- per object (scenes' objects one after another): ``object_model``, ``object_scale``,
  ``object_position`` (m), ``object_quaternion_xyzw`` and, when physics was randomised, ``object_mass_kg``
  and ``object_friction`` (lateral);
- per grasp: ``grasp_scene`` (index of its scene in the chunk), ``grasp_position`` (TCP, m, workspace
  frame), ``grasp_quaternion_xyzw``, ``grasp_width`` (m), ``grasp_label`` (1 success, 0 failure: the
  simulated label in "sim" and "both" modes, else the analytic one), ``grasp_source`` (0 sampled on the
  surface, 1 from the baseline planner), in "both" and "checked" modes ``grasp_label_analytic`` and, in
  "checked" mode, ``grasp_label_source`` (0 the analytic labeller decided, 1 simulated execution did).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..scene.scene import Scene
from ..scene.tsdf import SceneBuilder
from ..sim.camera import RenderedView, view_poses
from ..sim.object_set import ObjectModel
from ..sim.object_splits import resolve_object_root
from ..sim.world import ClutterWorld, PlacedObject, SceneDescription
from .atomic_files import save_npz_atomic

FORMAT_VERSION = 1
MANIFEST = "dataset.json"
SOURCE_SURFACE, SOURCE_BASELINE = 0, 1
LABELLED_ANALYTICALLY, LABELLED_IN_SIM = 0, 1  # grasp_label_source


@dataclass
class GraspRecords:
    scene: np.ndarray  # (N,) int32
    position_m: np.ndarray  # (N, 3) float32
    quaternion_xyzw: np.ndarray  # (N, 4) float32
    width_m: np.ndarray  # (N,) float32
    label: np.ndarray  # (N,) int8
    source: np.ndarray  # (N,) uint8
    label_analytic: np.ndarray | None = None  # (N,) int8, "both" and "checked" modes
    label_source: np.ndarray | None = None  # (N,) uint8, LABELLED_*, "checked" mode only

    def __len__(self) -> int:
        return len(self.label)


@dataclass
class DatasetChunk:
    index: int
    label_mode: str
    object_root: str  # tag
    scenes: list[SceneDescription]
    grasps: GraspRecords


def chunk_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"chunk_{index:06d}.npz"


def write_chunk(path: Path, chunk: DatasetChunk) -> None:
    """Write atomically (``atomic_files``): a reader (or a resumed run) never sees a partial chunk."""
    g = chunk.grasps
    arrays = {
        "format_version": np.int32(FORMAT_VERSION), "chunk_index": np.int64(chunk.index),
        "label_mode": np.str_(chunk.label_mode), "object_root": np.str_(chunk.object_root),
        **scene_arrays(chunk.scenes),
        "grasp_scene": g.scene.astype(np.int32), "grasp_position": g.position_m.astype(np.float32),
        "grasp_quaternion_xyzw": g.quaternion_xyzw.astype(np.float32), "grasp_width": g.width_m.astype(np.float32),
        "grasp_label": g.label.astype(np.int8), "grasp_source": g.source.astype(np.uint8),
    }
    if g.label_analytic is not None:
        arrays["grasp_label_analytic"] = g.label_analytic.astype(np.int8)
    if g.label_source is not None:
        arrays["grasp_label_source"] = g.label_source.astype(np.uint8)
    save_npz_atomic(path, arrays)


def scene_arrays(scenes: Sequence[SceneDescription]) -> dict[str, np.ndarray]:
    """The per-scene and per-object arrays of a chunk (``scene_*``, ``object_*``) for ``scenes``."""
    objects = [o for s in scenes for o in s.objects]
    arrays = {
        "scene_kind": np.array([s.kind for s in scenes], dtype=str),
        "scene_seed": np.array([s.seed for s in scenes], dtype=np.int64),
        "scene_object_count": np.array([len(s.objects) for s in scenes], dtype=np.int32),
        "object_model": np.array([o.model for o in objects], dtype=str),
        "object_scale": np.array([o.scale for o in objects], dtype=np.float64),
        "object_position": np.array([o.position_m for o in objects], dtype=np.float64).reshape(-1, 3),
        "object_quaternion_xyzw": np.array([o.quaternion_xyzw for o in objects], dtype=np.float64).reshape(-1, 4),
    }
    randomised = [o.mass_kg is not None for o in objects]
    if any(randomised):  # only then, so chunks made without randomised physics keep their format and bytes
        if not all(randomised):
            raise ValueError("either every object of a chunk has its mass and friction recorded or none has")
        arrays["object_mass_kg"] = np.array([o.mass_kg for o in objects], dtype=np.float64)
        arrays["object_friction"] = np.array([o.lateral_friction for o in objects], dtype=np.float64)
    return arrays


def scenes_from_arrays(data) -> list[SceneDescription]:
    """The scenes of a chunk's ``scene_*`` / ``object_*`` arrays (``scene_arrays``' inverse)."""
    ends = np.cumsum(data["scene_object_count"])
    count = len(data["object_model"])
    masses = data["object_mass_kg"].tolist() if "object_mass_kg" in data else [None] * count
    frictions = data["object_friction"].tolist() if "object_friction" in data else [None] * count
    objects = [PlacedObject(str(m), float(s), tuple(p.tolist()), tuple(q.tolist()), mass, friction)
               for m, s, p, q, mass, friction in zip(data["object_model"], data["object_scale"],
                                                      data["object_position"], data["object_quaternion_xyzw"],
                                                      masses, frictions)]
    return [SceneDescription(str(kind), int(seed), tuple(objects[end - count:end]))
            for kind, seed, count, end in zip(data["scene_kind"], data["scene_seed"],
                                              data["scene_object_count"], ends)]


def read_chunk(path: Path) -> DatasetChunk:
    with np.load(path, allow_pickle=False) as data:
        if int(data["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: dataset format {int(data['format_version'])}, this version reads "
                             f"{FORMAT_VERSION}")
        scenes = scenes_from_arrays(data)
        grasps = GraspRecords(data["grasp_scene"], data["grasp_position"], data["grasp_quaternion_xyzw"],
                              data["grasp_width"], data["grasp_label"], data["grasp_source"],
                              data["grasp_label_analytic"] if "grasp_label_analytic" in data else None,
                              data["grasp_label_source"] if "grasp_label_source" in data else None)
        return DatasetChunk(int(data["chunk_index"]), str(data["label_mode"]), str(data["object_root"]),
                            scenes, grasps)


def iter_chunks(folder: Path) -> Iterator[DatasetChunk]:
    for path in sorted(Path(folder).glob("chunk_*.npz")):
        yield read_chunk(path)


def rebuild_world(description: SceneDescription, object_root: str) -> ClutterWorld:
    """A world holding ``description``'s scene exactly as it was generated (close it when done)."""
    root = resolve_object_root(object_root)
    models = [ObjectModel(Path(o.model).stem, root / o.model) for o in description.objects]
    if not models:
        raise ValueError("the scene description has no objects")
    world = ClutterWorld(models)
    try:
        world.load_scene(description, root)
    except Exception:
        world.close()
        raise
    return world


def render_views(description: SceneDescription, object_root: str,
                 poses: str | Sequence[np.ndarray] = "side") -> list[RenderedView]:
    """Depth (and colour) of a stored scene from ``poses`` ("side", "multi" or T_workspace_camera list)."""
    poses = view_poses(poses) if isinstance(poses, str) else list(poses)
    with rebuild_world(description, object_root) as world:
        return [world.camera.render(T) for T in poses]


def reconstruct(description: SceneDescription, object_root: str,
                poses: str | Sequence[np.ndarray] = "side") -> Scene:
    """The TSDF grid and surface cloud of a stored scene, re-rendered and fused."""
    builder = SceneBuilder()
    for view in render_views(description, object_root, poses):
        builder.integrate(view.depth, view.T_workspace_camera)
    return builder.scene()
