"""Beyond one machine (issue 21): dataset chunks as tasks on a Ray cluster, byte-identical to the local pool's,
a lost worker's chunk made again; IGD training data-parallel over processes (torch DDP, gloo), taking the
steps of one process with the whole batch."""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from diffgrasp_ros.cli.main import main
from diffgrasp_ros.parallel import WorkerError
from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR
from diffgrasp_ros.sim.object_splits import folder_objects
from diffgrasp_ros.training import atomic_files
from diffgrasp_ros.training.datagen import DatagenConfig, generate_dataset, make_chunk
from diffgrasp_ros.training.dataset import chunk_path, read_chunk

OWN_OBJECTS = DEFAULT_OBJECTS_DIR / "train"  # the project's own training objects: no ../shared needed
SMALL = dict(scenes_per_chunk=1, points_per_scene=3, yaws=2, depths=1, baseline_grasps=4)
CONFIG = DatagenConfig("analytic", seed=5, **SMALL)
DATAGEN_ARGS = ["--objects", str(OWN_OBJECTS), "--labels", "analytic", "--seed", "5", "--scenes-per-chunk", "1",
                "--points-per-scene", "3", "--yaws", "2", "--depths", "1", "--baseline-grasps", "4"]
CHUNKS = 3


@pytest.fixture(scope="module")
def objects():
    own = folder_objects(OWN_OBJECTS)
    return {"pile": own, "packed": own}


@pytest.fixture(scope="module")
def pool_dataset(objects, tmp_path_factory):
    """The reference: the dataset made by the local pool of two worker processes."""
    folder = tmp_path_factory.mktemp("pool")
    generate_dataset(folder, CONFIG, CHUNKS, objects, workers=2, progress=False)
    return folder


def chunk_files(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("chunk_"))


def assert_same_chunks(folder, reference):
    assert chunk_files(folder) == [chunk_path(reference, i).name for i in range(CHUNKS)]  # nothing else
    for index in range(CHUNKS):
        assert chunk_path(folder, index).read_bytes() == chunk_path(reference, index).read_bytes(), index
        assert read_chunk(chunk_path(folder, index)).index == index


# -- data generation on Ray -------------------------------------------------------------------------------------
def test_npz_bytes_do_not_depend_on_when_they_are_written(tmp_path, monkeypatch):
    arrays = {"a": np.arange(5, dtype=np.float32), "kind": np.array(["pile", "packed"])}
    atomic_files.save_npz_atomic(tmp_path / "now.npz", arrays)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # 2033: were it in the zip, the bytes would differ
    monkeypatch.setattr(time, "localtime", lambda *args: time.gmtime(2_000_000_000))
    atomic_files.save_npz_atomic(tmp_path / "later.npz", arrays)
    assert (tmp_path / "now.npz").read_bytes() == (tmp_path / "later.npz").read_bytes()


@pytest.mark.timeout(240)
def test_a_local_two_worker_ray_cluster_writes_the_pools_chunks_byte_for_byte(pool_dataset, tmp_path, capsys):
    out = tmp_path / "ray"
    assert main(["datagen", "--out", str(out), "--chunks", str(CHUNKS), "--ray", "local", "--workers", "2",
                 *DATAGEN_ARGS]) == 0
    printed = capsys.readouterr().out
    assert "Ray cluster local" in printed and f"wrote {CHUNKS} chunk(s), skipped 0" in printed
    assert_same_chunks(out, pool_dataset)
    assert (out / "dataset.json").read_text() == (pool_dataset / "dataset.json").read_text()


def misbehaving_chunk(marks: str, faults: dict, task):
    """``make_chunk``, but a chunk's first run ends its worker process ("die") or hangs ("hang"), or every run
    ends it ("always die"). Each run is counted in a file of ``marks``."""
    runs = Path(marks) / f"runs_{task.index}"
    with open(runs, "a") as file:
        file.write(f"{os.getpid()}\n")
    first = len(runs.read_text().split()) == 1
    fault = faults.get(task.index)
    if fault == "always die" or (fault == "die" and first):
        os._exit(3)
    if fault == "hang" and first:
        time.sleep(1e9)
    return make_chunk(task)


def runs(marks, index):
    path = Path(marks) / f"runs_{index}"
    return len(path.read_text().split()) if path.exists() else 0


@pytest.fixture()
def ray_connected():
    """One local Ray cluster for a test's several datagen runs (each would otherwise start its own)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.timeout(420)
def test_a_lost_ray_worker_s_chunk_is_made_again_and_a_chunk_lost_twice_on_resume(objects, pool_dataset, tmp_path,
                                                                                   ray_connected):
    from functools import partial

    ray = ray_connected

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this file
    out, marks = tmp_path / "ray", tmp_path / "marks"
    marks.mkdir()
    faults = {0: "always die", 1: "die", 2: "hang"}
    with pytest.raises(WorkerError, match=r"1 job\(s\) failed in every attempt.*datagen chunk 0 \(its Ray worker "
                                          r"died or ran past the time limit of 45 s") as caught:
        # 45 s: a chunk takes some 5 s on an idle machine and past 30 s on a loaded one; only the hang waits
        # for the limit.
        generate_dataset(out, CONFIG, CHUNKS, objects, workers=2, progress=False, chunk_timeout_s=45.0,
                         ray_address="local", chunk_function=partial(misbehaving_chunk, str(marks), faults))
    assert [f.job for f in caught.value.failures] == [0]
    assert [runs(marks, i) for i in range(CHUNKS)] == [2, 2, 2]  # each run once more by Ray (max_retries=1)
    assert chunk_files(out) == ["chunk_000001.npz", "chunk_000002.npz"]  # complete ones only, no temporary file

    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])

    resumed = generate_dataset(out, CONFIG, CHUNKS, objects, workers=2, progress=False, ray_address="local")
    assert (resumed.chunks_written, resumed.chunks_skipped, resumed.written) == (1, 2, [0])
    assert_same_chunks(out, pool_dataset)


def test_ray_addresses_are_checked(tmp_path, capsys):
    assert main(["datagen", "--out", str(tmp_path / "d"), "--chunks", "1", "--ray", "head-node", *DATAGEN_ARGS]) == 1
    assert "unknown Ray address 'head-node': use local" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


# -- data-parallel training -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def igd_data(labelled_box_scenes):
    """The two labelled box scenes with their grids rendered into the default cache the processes share."""
    from diffgrasp_ros.training.igd_train import GridCache, load_scenes

    scenes = load_scenes(labelled_box_scenes, GridCache(labelled_box_scenes / "igd_grid_cache"),
                         log=lambda _: None)
    assert all(s.label.sum() > 0 for s in scenes)  # every row has positives to denoise
    return labelled_box_scenes


# Smaller than --tiny: 200 steps of one process and of two in some 30 s on two cores.
SMALLER = (("voxel_channels", 2), ("plane_channels", 4), ("hidden", 16), ("denoiser_hidden", 16))


def loss_log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.timeout(240)
def test_two_ddp_processes_take_the_steps_of_one_with_the_doubled_batch(igd_data, tmp_path):
    from dataclasses import replace

    from diffgrasp_ros.training.igd_train import BatchSizes, TrainOptions, train, train_in_processes

    # One process, two batches of one scene a step (the doubled batch, in the shards the two processes take).
    options = TrainOptions(igd_data, tmp_path / "one", tiny=True, max_steps=200, log_every=1, checkpoint_every=100,
                           lr=3e-3, warmup_steps=20, threads=1, accumulate=2, config_overrides=SMALLER,
                           batch=BatchSizes(scenes=1, grasps=16, centres=16, diffusion=16, occupancy=64))
    started = time.perf_counter()
    one = train(options, log=lambda _: None)
    one_seconds = time.perf_counter() - started

    two_options = replace(options, out=tmp_path / "two", accumulate=1, max_steps=120)
    started = time.perf_counter()
    assert train_in_processes(two_options, 2).steps == 120
    two = train_in_processes(replace(two_options, max_steps=200, resume=True, config_overrides=()), 2)  # resumed
    two_seconds = time.perf_counter() - started
    assert (one.steps, two.steps, two.steps_this_run) == (200, 200, 80)

    single, parallel = loss_log(tmp_path / "one"), loss_log(tmp_path / "two")
    assert [r["step"] for r in parallel] == list(range(1, 201))  # rank 0 alone logs: every step once
    assert not list((tmp_path / "two").glob(f"*{atomic_files.TEMP_MARK}*"))
    total_one = np.array([r["total"] for r in single])
    total_two = np.array([r["total"] for r in parallel])
    worst = float(np.max(np.abs(total_two - total_one) / np.abs(total_one)))
    print(f"200 steps: one process {one_seconds:.1f} s, two {two_seconds:.1f} s; largest per-step difference of "
          f"the total loss {100 * worst:.2g} %", file=sys.stderr)
    assert worst < 0.02
    assert total_one[-20:].mean() < 0.7 * total_one[:20].mean()  # it learns: the losses compared move


def test_the_torchrun_environment_is_read_and_checked(tmp_path, capsys, monkeypatch):
    from diffgrasp_ros.training.distributed import ProcessGroup, group_from_environment

    assert group_from_environment({}) == ProcessGroup()
    assert group_from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == ProcessGroup(3, 4, 1)
    with pytest.raises(ValueError, match="sets RANK but not LOCAL_RANK, WORLD_SIZE"):
        group_from_environment({"RANK": "0"})
    with pytest.raises(ValueError, match="rank 4 and local rank 0 do not fit a group of 4"):
        group_from_environment({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--tiny"]
    assert main([*argv, "--ddp", "2"]) == 1
    assert "--ddp 2 under torchrun, which started 2 processes already" in capsys.readouterr().err
    from diffgrasp_ros.training.loop import LoopSettings, open_run

    with pytest.raises(ValueError, match="this trainer runs in one process, but the environment"):
        open_run(LoopSettings(tmp_path / "leap"))  # a trainer that stays single-process (e.g. train-leap)


def test_ddp_needs_at_least_one_process(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--tiny", "--ddp", "0"]) == 1
    assert "number of training processes must be at least 1, got 0" in capsys.readouterr().err
