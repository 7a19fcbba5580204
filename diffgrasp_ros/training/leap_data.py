"""LEAP-hand grasp data: dexterous grasps built from a gripper grasp dataset and labelled by lift tests.

For every scene of a gripper dataset (``training.dataset``, training objects only) the scene is
rebuilt exactly and candidates are taken from its labelled gripper grasps: the positives up to a
cap, random perturbations of positives (an in-plane offset of up to ``perturb_offset_m``
perpendicular to the approach and a rotation of up to ``perturb_rotation_deg`` about a random axis),
and negatives for the rest, so the data holds both successes and failures. Each candidate is
retargeted onto the LEAP hand (``leap_postures``: ``robots.leap.retarget_parallel_grasp`` puts the
palm on the grasp frame and pre-shapes for the gripper's width, here ``aperture_extra_m`` wider,
with index and ring adducted towards the middle finger so three fingers oppose the thumb), then
lift-tested with the free-floating LEAP hand (``sim.leap_hand.SimulatedLeapHand.execute``: pre-grasp
0.05 m back, approach past the retargeted palm by up to ``approach_beyond_m`` until the hand presses
on something, close towards the adducted ``leap.CLOSED_Q`` until the digits stop on the object, lift
0.1 m, judge) with hand-object friction ``friction`` (0.2, DexGraspNet's strict value). Refinement
(``try_flipped``): a failed positive or perturbed candidate (not a source negative, which rarely
holds) is retried turned 180 deg about its approach (the same gripper grasp with thumb and fingers
swapped) and the variant that holds is kept; one that never holds is stored as first tried. Stored
are the palm pose where the approach stopped and the settled joints there, so replaying them
(``execution.sim_executor``, a dexterous grasp) closes from the same pre-shape on the same contact
posture. The objects are reset to the scene's recorded resting poses before every test.

Output (``--out``): ``leap_dataset.json`` (the settings and, per run, the measured throughput) and
``leap_chunk_NNNNNN.npz`` (one per source chunk, same index; written atomically, a resumed run skips
the chunks already there) with:

- ``format_version`` (1), ``chunk_index``, ``object_root`` (copied from the source chunk), ``friction``;
- the scenes as ``training.dataset`` stores them: ``scene_kind``, ``scene_seed``, ``scene_object_count``,
  ``object_model``, ``object_scale``, ``object_position``, ``object_quaternion_xyzw``;
- per grasp: ``grasp_scene`` (int32), ``palm_position`` (N, 3 float32: the ``leap_palm`` origin, m,
  workspace frame, where the approach stopped), ``palm_quaternion_xyzw`` (N, 4 float32),
  ``q_pregrasp`` (N, 16 float32: the pre-shape), ``q_grasp`` (N, 16 float32: the settled joints at
  contact, what a planner outputs as ``grasp_joints``; the pre-shape when the hand collided at the pre-grasp and never closed),
  ``label`` (int8, 1 = held after the lift), ``source_width`` (float32, the gripper grasp's width),
  ``source_label`` (int8, the gripper grasp's label) and ``source_kind`` (uint8: 0 a source positive,
  1 a source negative, 2 a perturbed positive).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import pose_from_quaternion, quaternion_xyzw
from ..parallel import map_single_threaded
from ..robots import leap
from ..sim.world import SceneDescription
from .atomic_files import remove_stale_temps, resumable_chunks, save_npz_atomic, write_json_atomic
from .dataset import read_chunk, rebuild_world, scene_arrays, scenes_from_arrays

FORMAT_VERSION = 1
MANIFEST = "leap_dataset.json"
KIND_POSITIVE, KIND_NEGATIVE, KIND_PERTURBED = 0, 1, 2
# A chunk's time limit in a worker: per scene a minute (rebuilding it) plus this per lift test, some 40 times
# the 0.25 s a test takes on a loaded 2-core machine (README: 3.9 lift tests/s per worker).
SCENE_BUDGET_S, LIFT_TEST_BUDGET_S = 60.0, 10.0


@dataclass(frozen=True)
class LeapDatagenConfig:
    grasps_per_scene: int = 32
    positive_share: float = 0.7  # at most this share of a scene's grasps are source positives
    perturbed_share: float = 0.2  # this share perturbed positives (when the scene has positives)
    friction: float = 0.2
    aperture_extra_m: float = 0.02  # pre-shape this much wider than the gripper width (+ leap's margin)
    adduction_rad: float = leap.DEXTEROUS_ADDUCTION_RAD  # index and ring towards the middle finger (MCP side joints)
    approach_beyond_m: float = 0.07  # approach past the retargeted palm until the hand presses on something
    try_flipped: bool = True  # refinement: retry a failed positive turned 180 deg about the approach
    perturb_offset_m: float = 0.005
    perturb_rotation_deg: float = 8.0
    seed: int = 0


def leap_postures(T_workspace_grasp: np.ndarray, width_m: float,
                  config: LeapDatagenConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T_workspace_palm, q_pregrasp, q_closing_target)`` of a gripper grasp: retargeted, pre-shaped
    ``aperture_extra_m`` wider, index and ring adducted by ``adduction_rad`` in both postures (three
    fingers against the thumb rather than one: more contact, more friction)."""
    T_palm, q_pre, q_closed = leap.retarget_parallel_grasp(T_workspace_grasp, width_m + config.aperture_extra_m)
    return T_palm, leap.adducted(q_pre, config.adduction_rad), leap.adducted(q_closed, config.adduction_rad)


@dataclass
class LeapGraspRecords:
    scene: np.ndarray  # (N,) int32
    palm_position_m: np.ndarray  # (N, 3) float32
    palm_quaternion_xyzw: np.ndarray  # (N, 4) float32
    q_pregrasp: np.ndarray  # (N, 16) float32
    q_grasp: np.ndarray  # (N, 16) float32
    label: np.ndarray  # (N,) int8
    source_width_m: np.ndarray  # (N,) float32
    source_label: np.ndarray  # (N,) int8
    source_kind: np.ndarray  # (N,) uint8

    def __len__(self) -> int:
        return len(self.label)

    def palm_poses(self) -> np.ndarray:
        """(N, 4, 4) ``T_workspace_palm``."""
        return np.stack([pose_from_quaternion(p, q) for p, q in zip(self.palm_position_m, self.palm_quaternion_xyzw)])


@dataclass
class LeapChunk:
    index: int
    object_root: str
    friction: float
    scenes: list[SceneDescription]
    grasps: LeapGraspRecords


@dataclass
class LeapDatagenReport:
    chunks_written: int = 0
    chunks_skipped: int = 0
    scenes: int = 0
    grasps: int = 0
    positives: int = 0
    seconds: float = 0.0
    outcomes: dict = field(default_factory=dict)  # failure reason -> count

    @property
    def grasps_per_second(self) -> float:
        return self.grasps / self.seconds if self.seconds > 0 else 0.0


def leap_chunk_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"leap_chunk_{index:06d}.npz"


def write_leap_chunk(path: Path, chunk: LeapChunk) -> None:
    g = chunk.grasps
    save_npz_atomic(path, {
        "format_version": np.int32(FORMAT_VERSION), "chunk_index": np.int64(chunk.index),
        "object_root": np.str_(chunk.object_root), "friction": np.float32(chunk.friction),
        **scene_arrays(chunk.scenes),
        "grasp_scene": g.scene.astype(np.int32),
        "palm_position": g.palm_position_m.astype(np.float32).reshape(-1, 3),
        "palm_quaternion_xyzw": g.palm_quaternion_xyzw.astype(np.float32).reshape(-1, 4),
        "q_pregrasp": g.q_pregrasp.astype(np.float32).reshape(-1, 16),
        "q_grasp": g.q_grasp.astype(np.float32).reshape(-1, 16),
        "label": g.label.astype(np.int8), "source_width": g.source_width_m.astype(np.float32),
        "source_label": g.source_label.astype(np.int8), "source_kind": g.source_kind.astype(np.uint8),
    })


def read_leap_chunk(path: Path) -> LeapChunk:
    with np.load(path, allow_pickle=False) as data:
        if int(data["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: LEAP data format {int(data['format_version'])}, this version reads "
                             f"{FORMAT_VERSION}")
        grasps = LeapGraspRecords(
            data["grasp_scene"], data["palm_position"], data["palm_quaternion_xyzw"], data["q_pregrasp"],
            data["q_grasp"], data["label"], data["source_width"], data["source_label"],
            data["source_kind"] if "source_kind" in data else np.zeros(len(data["label"]), np.uint8))
        return LeapChunk(int(data["chunk_index"]), str(data["object_root"]), float(data["friction"]),
                         scenes_from_arrays(data), grasps)


def iter_leap_chunks(folder: Path) -> Iterator[LeapChunk]:
    for path in sorted(Path(folder).glob("leap_chunk_*.npz")):
        yield read_leap_chunk(path)


# -- candidates --------------------------------------------------------------------------------------
def select_candidates(labels: np.ndarray, config: LeapDatagenConfig,
                      rng: np.random.Generator) -> list[tuple[int, int]]:
    """``(index into the scene's gripper grasps, kind)`` for one scene's candidates."""
    positives, negatives = np.flatnonzero(labels > 0), np.flatnonzero(labels <= 0)
    total = config.grasps_per_scene
    n_pos = min(len(positives), int(round(config.positive_share * total)))
    n_pert = min(total - n_pos, int(round(config.perturbed_share * total))) if len(positives) else 0
    n_neg = min(len(negatives), total - n_pos - n_pert)
    chosen = [(int(i), KIND_POSITIVE) for i in rng.choice(positives, n_pos, replace=False)]
    if n_pert:
        chosen += [(int(i), KIND_PERTURBED) for i in rng.choice(positives, n_pert, replace=True)]
    chosen += [(int(i), KIND_NEGATIVE) for i in rng.choice(negatives, n_neg, replace=False)]
    return chosen


def perturb(T: np.ndarray, config: LeapDatagenConfig, rng: np.random.Generator) -> np.ndarray:
    """An in-plane offset (perpendicular to the approach) and a small rotation about the grasp centre."""
    out = T.copy()
    offset = rng.uniform(-config.perturb_offset_m, config.perturb_offset_m, 2)
    out[:3, 3] += T[:3, 0] * offset[0] + T[:3, 1] * offset[1]
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, config.perturb_rotation_deg))
    out[:3, :3] = Rotation.from_rotvec(axis * angle).as_matrix() @ T[:3, :3]
    return out


# -- generation ----------------------------------------------------------------------------------------
def _label_scene(description: SceneDescription, object_root: str, T_grasps: np.ndarray, widths: np.ndarray,
                 labels: np.ndarray, config: LeapDatagenConfig, rng: np.random.Generator,
                 reasons: dict) -> dict[str, list]:
    from ..sim.leap_hand import SimulatedLeapHand

    out = {k: [] for k in ("palm", "q_pre", "q_grasp", "label", "width", "source_label", "kind")}
    candidates = select_candidates(labels, config, rng)
    with rebuild_world(description, object_root) as world:
        p = world.p
        rest = [(b, p.getBasePositionAndOrientation(b)) for b in world.object_ids]
        hand = SimulatedLeapHand(world, friction=config.friction)
        for index, kind in candidates:
            T = perturb(T_grasps[index], config, rng) if kind == KIND_PERTURBED else T_grasps[index]
            variants = [T]
            if config.try_flipped and kind != KIND_NEGATIVE:  # the same gripper grasp, thumb on the other side
                flipped = T.copy()
                flipped[:3, :2] *= -1.0
                variants.append(flipped)
            first = None
            for T_try in variants:
                for body, (position, orientation) in rest:  # the scene as generated, at rest
                    p.resetBasePositionAndOrientation(body, position, orientation)
                    p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0))
                T_palm, q_pre, q_closed = leap_postures(T_try, float(widths[index]), config)
                outcome = hand.execute(T_palm, q_pre, q_closed, approach_beyond_m=config.approach_beyond_m)
                attempt = (T_palm, q_pre, outcome)
                if first is None:
                    first = attempt
                if outcome.success:
                    break
            T_palm, q_pre, kept = attempt if outcome.success else first
            reason = "object slipped" if kept.reason.startswith("object rose") else kept.reason
            reason = "held by one side only" if reason.startswith("held by") else reason
            reasons[reason] = reasons.get(reason, 0) + 1
            out["palm"].append(kept.T_palm_contact if kept.T_palm_contact is not None else T_palm)
            out["q_pre"].append(q_pre)
            out["q_grasp"].append(kept.q_contact if kept.q_contact is not None else q_pre)
            out["label"].append(int(kept.success))
            out["width"].append(float(widths[index]))
            out["source_label"].append(int(labels[index] > 0))
            out["kind"].append(kind)
    return out


def generate_leap_chunk(source_path: Path, out_folder: Path, config: LeapDatagenConfig,
                        max_scenes: int | None = None) -> tuple[int, int, int, int, dict]:
    """One leap chunk from one source chunk; returns (index, scenes, grasps, positives, failure reasons)."""
    source = read_chunk(source_path)
    scenes = source.scenes if max_scenes is None else source.scenes[:max_scenes]
    g = source.grasps
    reasons: dict[str, int] = {}
    rows = {k: [] for k in ("scene", "palm", "q_pre", "q_grasp", "label", "width", "source_label", "kind")}
    for s, description in enumerate(scenes):
        rng = np.random.default_rng([config.seed, source.index, s])
        mine = np.flatnonzero(g.scene == s)
        T_grasps = np.stack([pose_from_quaternion(p, q) for p, q in zip(g.position_m[mine], g.quaternion_xyzw[mine])]) \
            if len(mine) else np.zeros((0, 4, 4))
        scene_rows = _label_scene(description, source.object_root, T_grasps, g.width_m[mine], g.label[mine],
                                  config, rng, reasons)
        rows["scene"] += [s] * len(scene_rows["label"])
        for key, values in scene_rows.items():
            rows[key] += values
    palms = np.array(rows["palm"]).reshape(-1, 4, 4)
    grasps = LeapGraspRecords(
        np.array(rows["scene"], dtype=np.int32), palms[:, :3, 3].astype(np.float32),
        np.array([quaternion_xyzw(T) for T in palms], dtype=np.float32).reshape(-1, 4),
        np.array(rows["q_pre"], dtype=np.float32).reshape(-1, 16),
        np.array(rows["q_grasp"], dtype=np.float32).reshape(-1, 16),
        np.array(rows["label"], dtype=np.int8), np.array(rows["width"], dtype=np.float32),
        np.array(rows["source_label"], dtype=np.int8), np.array(rows["kind"], dtype=np.uint8))
    write_leap_chunk(leap_chunk_path(out_folder, source.index),
                     LeapChunk(source.index, source.object_root, config.friction, list(scenes), grasps))
    return source.index, len(scenes), len(grasps), int(grasps.label.sum()), reasons


def plan_chunks(source_folder: Path, max_scenes: int | None) -> list[tuple[Path, int | None, int]]:
    """Source chunks in order, with how many of their scenes to use (None: all) and how many that is, up to
    ``max_scenes`` scenes."""
    paths = sorted(Path(source_folder).glob("chunk_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no gripper dataset chunks (chunk_*.npz) in {source_folder}")
    plan, total = [], 0
    for path in paths:
        if max_scenes is not None and total >= max_scenes:
            break
        with np.load(path, allow_pickle=False) as data:
            count = len(data["scene_kind"])
        take = count if max_scenes is None else min(count, max_scenes - total)
        plan.append((path, None if take == count else take, take))
        total += take
    return plan


def _source_index(path: Path) -> int:
    return int(Path(path).stem.split("_")[-1])


def default_chunk_timeout_s(config: LeapDatagenConfig, scenes: int) -> float:
    """How long a chunk of ``scenes`` scenes may take in a worker before it counts as hung."""
    tests = config.grasps_per_scene * (2 if config.try_flipped else 1)
    return scenes * (SCENE_BUDGET_S + LIFT_TEST_BUDGET_S * tests)


def generate_leap_dataset(source_folder: Path, out_folder: Path, config: LeapDatagenConfig,
                          max_scenes: int | None = None, workers: int = 1,
                          progress=print, chunk_timeout_s: float | None = None) -> LeapDatagenReport:
    """LEAP chunks from the gripper chunks of ``source_folder`` not yet in ``out_folder``. With several workers
    a chunk running longer than ``chunk_timeout_s`` (default ``default_chunk_timeout_s``) is stopped and made
    again once; a write error stops the run (``atomic_files.WriteError``) and running again resumes."""
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_folder, "leap_chunk_*.npz")  # left by a run killed mid-write
    plan = plan_chunks(source_folder, max_scenes)
    todo = [(path, take, scenes) for path, take, scenes in plan
            if not leap_chunk_path(out_folder, _source_index(path)).exists()]
    report = LeapDatagenReport(chunks_skipped=len(plan) - len(todo))
    manifest_path = out_folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    previous = manifest.get("config", {}).get("friction")
    if previous is not None and previous != config.friction:
        raise ValueError(f"{out_folder} holds LEAP data lift-tested at friction {previous}, not "
                         f"{config.friction}; use another --out folder")
    manifest.update({"format_version": FORMAT_VERSION, "source": str(Path(source_folder).resolve()),
                     "config": _config_json(config)})
    manifest.setdefault("runs", [])
    write_json_atomic(manifest_path, manifest)
    start = time.perf_counter()

    def record(result) -> None:
        index, scenes, grasps, positives, reasons = result
        report.chunks_written += 1
        report.scenes += scenes
        report.grasps += grasps
        report.positives += positives
        for reason, n in reasons.items():
            report.outcomes[reason] = report.outcomes.get(reason, 0) + n
        report.seconds = time.perf_counter() - start
        progress(f"  chunk {index:6d}: {scenes} scene(s), {grasps} grasps, {positives} held | "
                 f"total {report.chunks_written}/{len(todo)} chunks, {report.grasps} grasps, "
                 f"{100.0 * report.positives / max(report.grasps, 1):.1f} % held, "
                 f"{report.grasps_per_second:.2f} grasps/s")

    limits = [default_chunk_timeout_s(config, scenes) if chunk_timeout_s is None else chunk_timeout_s
              for *_, scenes in todo]
    with resumable_chunks(out_folder, "leap_chunk_*.npz"):
        for result in map_single_threaded(generate_leap_chunk, [(path, out_folder, config, take)
                                                                for path, take, _ in todo], workers, limits,
                                          describe=lambda job: f"leap-datagen chunk {_source_index(todo[job][0])}"):
            record(result)
    report.seconds = time.perf_counter() - start
    if report.chunks_written:
        manifest["runs"].append({
            "config": _config_json(config), "max_scenes": max_scenes, "workers": workers,
            "chunks": report.chunks_written, "scenes": report.scenes,
            "grasps": report.grasps, "positives": report.positives, "seconds": round(report.seconds, 2),
            "grasps_per_second": round(report.grasps_per_second, 3),
            "grasps_per_second_per_worker": round(report.grasps_per_second / max(1, min(workers, len(todo))), 3),
            "outcomes": report.outcomes,
        })
        write_json_atomic(manifest_path, manifest)
    return report


def _config_json(config: LeapDatagenConfig) -> dict:
    return asdict(config)


__all__: Sequence[str] = ("LeapDatagenConfig", "LeapChunk", "LeapGraspRecords", "generate_leap_dataset",
                          "iter_leap_chunks", "read_leap_chunk", "write_leap_chunk")
