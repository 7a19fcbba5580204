"""Lift-tested samples of the LEAP grasp model itself: the training data of its grasp evaluator.

The pose diffusion learns where held grasps are, but its log-likelihood does not tell which of its
own samples hold (on tuning piles the held fraction was the same at every rank). So the evaluator
(``grasping.leap.evaluator``) learns from what the model proposes: a clutter round (training objects,
``pile`` or ``packed``) is perceived as the benchmark perceives it (side view, ``noise``), planned
with the ``leap`` method without an evaluator (``poses_per_seed`` poses per seed; the best
``grasps_per_state`` after duplicate suppression, the planner's
noise seeded per state), and every proposed grasp is lift-tested from the same world state (PyBullet
``saveState`` / ``restoreState``) by ``execution.sim_executor``'s LEAP hand: guarded approach,
closing towards ``leap.DEXTEROUS_CLOSED_Q``, lift, judge, at hand-object ``friction`` (1.0, the
executor's). Then the first grasp that held (in the planner's order) is executed for real, the held
object removed, and the next state of the round perceived, so later, sparser states are in the data as
in the benchmark; a round ends after ``states_per_round`` states, when the table is clear, or when no
proposed grasp held.

Output (``--out``): ``leap_quality.json`` (settings, per run throughput) and ``leap_quality_NNNNNN.npz``
(``rounds_per_chunk`` rounds each; written atomically, a resumed run skips the chunks already there):

- ``format_version`` (1), ``chunk_index``, ``friction``, ``noise``;
- per state: ``tsdf`` (S, R, R, R float16: the fused TSDF the planner saw), ``state_round`` (int32),
  ``state_kind`` (uint8: 0 pile, 1 packed), ``state_objects`` (int16: objects on the table);
- per grasp: ``grasp_state`` (int32), ``T_tcp`` (N, 4, 4 float32, workspace frame), ``q_pregrasp``,
  ``q_grasp`` (N, 16 float32), ``rank`` (int16, the planner's order), ``log_likelihood``, ``graspness``
  (float32), ``label`` (int8, 1 = held) and ``reason`` (the outcome, str).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..parallel import map_single_threaded
from .atomic_files import remove_stale_temps, resumable_chunks, save_npz_atomic, write_json_atomic

FORMAT_VERSION = 1
MANIFEST = "leap_quality.json"
KINDS = ("pile", "packed")
# A chunk's time limit in a worker: per round two minutes (scene, perception, planning) plus this per lift
# test, some 40 times the 0.25 s a test takes on a loaded 2-core machine (README: 8 lift tests/s on 2 workers).
ROUND_BUDGET_S, LIFT_TEST_BUDGET_S = 120.0, 10.0



@dataclass(frozen=True)
class QualityDatagenConfig:
    rounds_per_chunk: int = 4
    states_per_round: int = 4
    grasps_per_state: int = 24
    poses_per_seed: int = 4  # the planner's sampling (``rounds``), pinned so the data do not follow the model's default
    objects_per_round: int = 5
    friction: float = 1.0  # the executor's hand-object friction (sim.leap_hand)
    noise: str = "dex"  # sim.noise model of the rendered depth, as the clutter benchmark's
    weights: str = ""  # LEAP model folder (default: the shipped models/leap)
    seed: int = 0


def quality_chunk_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"leap_quality_{index:06d}.npz"


def default_chunk_timeout_s(config: QualityDatagenConfig) -> float:
    """How long one chunk may take in a worker before it counts as hung."""
    tests = config.states_per_round * config.grasps_per_state
    return config.rounds_per_chunk * (ROUND_BUDGET_S + LIFT_TEST_BUDGET_S * tests)


def generate_quality_chunk(index: int, out_folder: Path, config: QualityDatagenConfig) -> dict:
    """Lift-test the LEAP model's grasps in ``config.rounds_per_chunk`` rounds; write the chunk. Returns
    its index, counts (states, grasps, held, outcomes) and the wall time."""
    from ..evaluation.clutter_removal import round_seed
    from ..execution.sim_executor import SimHandExecutor
    from ..grasping import make_planner
    from ..grasping.grasp import PlanResult
    from ..scene.tsdf import SceneBuilder
    from ..sim.camera import view_poses
    from ..sim.noise import apply_depth_noise
    from ..sim.object_splits import training_objects
    from ..sim.world import ClutterWorld

    start = time.perf_counter()
    # The evaluator learns to rank the diffusion's own proposals, so they are planned without one; on the
    # CPU, so that a chunk is the same on any machine (CUDA draws other noise from the same seed).
    spec = (f"leap:evaluator=none,rounds={config.poses_per_seed},max_grasps={config.grasps_per_state},device=cpu"
            + (f",weights={config.weights}" if config.weights else ""))
    planner = make_planner(spec, "xarm_leap")
    poses = view_poses("side")
    states: dict[str, list] = {"tsdf": [], "state_round": [], "state_kind": [], "state_objects": []}
    grasps: dict[str, list] = {k: [] for k in ("grasp_state", "T_tcp", "q_pregrasp", "q_grasp", "rank",
                                               "log_likelihood", "graspness", "label", "reason")}
    for r in range(config.rounds_per_chunk):
        round_index = index * config.rounds_per_chunk + r
        kind_index = round_index % len(KINDS)
        objects = training_objects(KINDS[kind_index]).objects
        rng = np.random.default_rng([config.seed, round_index, 1])
        with ClutterWorld(objects, seed=round_seed(config.seed, round_index)) as world:
            world.generate(KINDS[kind_index], config.objects_per_round)
            executor = SimHandExecutor(world, planner.robot, leap_friction=config.friction)
            for state in range(config.states_per_round):
                if world.num_objects == 0:
                    break
                builder = SceneBuilder(world.workspace)
                for T in poses:
                    builder.integrate(apply_depth_noise(world.camera.render(T).depth, config.noise, rng), T)
                scene = builder.scene()
                planner.seed = int(rng.integers(2**31))
                plan = planner.plan(scene)
                if not plan.found:
                    break
                s = len(states["tsdf"])
                states["tsdf"].append(scene.tsdf_grid.astype(np.float16))
                states["state_round"].append(round_index)
                states["state_kind"].append(kind_index)
                states["state_objects"].append(world.num_objects)
                saved = world.p.saveState()
                first_held = None
                for rank, grasp in enumerate(plan.grasps):
                    world.p.restoreState(saved)
                    outcome = executor.execute_grasp(grasp, remove_held=False)
                    grasps["grasp_state"].append(s)
                    grasps["T_tcp"].append(grasp.T_frame_grasp)
                    grasps["q_pregrasp"].append(grasp.pregrasp_joints)
                    grasps["q_grasp"].append(grasp.grasp_joints)
                    grasps["rank"].append(rank)
                    grasps["log_likelihood"].append(grasp.info["log_likelihood"])
                    grasps["graspness"].append(grasp.info["graspness"])
                    grasps["label"].append(int(outcome.success))
                    grasps["reason"].append(outcome.reason)
                    if outcome.success and first_held is None:
                        first_held = grasp
                world.p.restoreState(saved)
                world.p.removeState(saved)
                if first_held is None:
                    break
                executor.execute(PlanResult([first_held], planner.name, {}, ""))  # removes what it lifts
    arrays = {
        "format_version": np.int32(FORMAT_VERSION), "chunk_index": np.int32(index),
        "friction": np.float32(config.friction), "noise": np.array(config.noise),
        "tsdf": np.array(states["tsdf"], np.float16).reshape(-1, *[planner.workspace.resolution] * 3),
        "state_round": np.array(states["state_round"], np.int32),
        "state_kind": np.array(states["state_kind"], np.uint8),
        "state_objects": np.array(states["state_objects"], np.int16),
        "grasp_state": np.array(grasps["grasp_state"], np.int32),
        "T_tcp": np.array(grasps["T_tcp"], np.float32).reshape(-1, 4, 4),
        "q_pregrasp": np.array(grasps["q_pregrasp"], np.float32).reshape(-1, 16),
        "q_grasp": np.array(grasps["q_grasp"], np.float32).reshape(-1, 16),
        "rank": np.array(grasps["rank"], np.int16),
        "log_likelihood": np.array(grasps["log_likelihood"], np.float32),
        "graspness": np.array(grasps["graspness"], np.float32),
        "label": np.array(grasps["label"], np.int8),
        "reason": np.array(grasps["reason"], dtype=str),
    }
    save_npz_atomic(quality_chunk_path(out_folder, index), arrays)
    return {"chunk": index, "states": len(states["tsdf"]), "grasps": len(grasps["label"]), "held": int(sum(grasps["label"])),
            "outcomes": dict(Counter(grasps["reason"])), "seconds": time.perf_counter() - start}


def generate_quality_dataset(out_folder: Path, config: QualityDatagenConfig, chunks: int, workers: int = 1,
                             progress=print, chunk_timeout_s: float | None = None) -> dict:
    """Chunks ``0 .. chunks-1`` (those not already in ``out_folder``) over ``workers`` processes; the
    manifest records the settings and each run's throughput. With several workers a chunk running longer
    than ``chunk_timeout_s`` (default ``default_chunk_timeout_s``) is stopped and made again once; a write
    error stops the run (``atomic_files.WriteError``) and running again resumes."""
    if chunks < 1 or workers < 1:
        raise ValueError(f"chunks and workers must be at least 1, got {chunks} and {workers}")
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    manifest_path = out_folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"runs": []}
    if manifest.get("config", asdict(config)) != asdict(config):
        raise ValueError(f"{out_folder} was generated with other settings {manifest['config']}; "
                         "use a new --out folder")
    remove_stale_temps(out_folder, "leap_quality_*.npz")  # left by a run killed mid-write
    todo = [i for i in range(chunks) if not quality_chunk_path(out_folder, i).exists()]
    total = {"chunks": 0, "states": 0, "grasps": 0, "held": 0, "outcomes": Counter()}
    start = time.perf_counter()

    def record(result: dict) -> None:
        total["chunks"] += 1
        for key in ("states", "grasps", "held"):
            total[key] += result[key]
        total["outcomes"].update(result["outcomes"])
        progress(f"chunk {result['chunk']}: {result['states']} states, {result['grasps']} grasps, {result['held']} held "
                 f"({result['seconds']:.0f} s); {total['grasps'] / (time.perf_counter() - start):.2f} grasps/s")

    limit = default_chunk_timeout_s(config) if chunk_timeout_s is None else chunk_timeout_s
    with resumable_chunks(out_folder, "leap_quality_*.npz"):
        for result in map_single_threaded(generate_quality_chunk, [(i, out_folder, config) for i in todo], workers,
                                          limit, describe=lambda job: f"leap-quality-datagen chunk {todo[job]}"):
            record(result)
    seconds = time.perf_counter() - start
    run = {"chunks": total["chunks"], "states": total["states"], "grasps": total["grasps"], "held": total["held"],
           "seconds": round(seconds, 1), "workers": workers,
           "grasps_per_second": round(total["grasps"] / seconds, 3) if seconds > 0 else None,
           "outcomes": dict(total["outcomes"]), "date": time.strftime("%Y-%m-%d")}
    manifest = {"format_version": FORMAT_VERSION, "config": asdict(config), "runs": [*manifest["runs"], run]}
    write_json_atomic(manifest_path, manifest)
    return run
