"""Long jobs under faults (issue 20): writes that fail leave no partial file and the run resumes from what is
complete; a hung or dead worker is timed out, reported, and its job run again or marked."""
import errno
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reliability_jobs import DiskFull, hang_in_round  # noqa: E402  (importable by spawned workers too)

from diffgrasp_ros.training import atomic_files  # noqa: E402
from diffgrasp_ros.training.atomic_files import WriteError, save_npz_atomic  # noqa: E402


def leftovers(folder):
    return sorted(p.name for p in Path(folder).glob(f"*{atomic_files.TEMP_MARK}*"))


# -- atomic writes ------------------------------------------------------------------------------------
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "chunk_000000.npz"
    save_npz_atomic(path, {"a": np.arange(3)})
    with DiskFull("chunk_") as fault, pytest.raises(WriteError) as caught:
        save_npz_atomic(path, {"a": np.arange(100_000)})
    assert fault.partial_seen  # the half-written temporary file was there when the disk filled up
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, RuntimeError)
    assert str(path) in str(caught.value) and "No space left" in str(caught.value)
    assert leftovers(tmp_path) == []
    with np.load(path) as data:
        assert data["a"].tolist() == [0, 1, 2]


def test_only_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead, alive = tmp_path / "chunk_000001.npz.tmp999999999", tmp_path / f"chunk_000002.npz.tmp{os.getppid()}"
    for path in (dead, alive, tmp_path / "chunk_000003.npz"):
        path.write_bytes(b"x")
    assert atomic_files.remove_stale_temps(tmp_path, "chunk_*.npz") == [dead]
    assert alive.exists() and (tmp_path / "chunk_000003.npz").exists()


# -- datagen ------------------------------------------------------------------------------------------
@pytest.fixture()
def box_folder(box_objects):
    return Path(box_objects[0].path).parent  # conftest's two boxes


DATAGEN = ["--labels", "analytic", "--scenes-per-chunk", "1", "--points-per-scene", "3", "--yaws", "2", "--depths",
           "1", "--baseline-grasps", "4", "--seed", "5", "--workers", "1"]


def test_datagen_stops_on_a_full_disk_and_resumes_from_its_complete_chunks(box_folder, tmp_path, capsys):
    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.sim.object_splits import folder_objects
    from diffgrasp_ros.training.datagen import ChunkTask, DatagenConfig, generate_chunk
    from diffgrasp_ros.training.dataset import chunk_path, read_chunk

    out = tmp_path / "faulted"
    argv = ["datagen", "--out", str(out), "--chunks", "2", "--objects", str(box_folder), *DATAGEN]
    with DiskFull("chunk_", fail_on=2):
        assert main(argv) == 1
    message = capsys.readouterr().err
    assert f"could not write {chunk_path(out, 1)}: No space left on device" in message
    assert "1 complete chunk(s)" in message and "run the same command again" in message
    assert sorted(p.name for p in out.glob("chunk_*")) == ["chunk_000000.npz"]  # nothing partial
    (out / "chunk_000001.npz.tmp999999999").write_bytes(b"PK half a chunk")  # a run killed mid-write
    assert main(argv) == 0
    assert "wrote 1 chunk(s), skipped 1" in capsys.readouterr().out
    assert leftovers(out) == []
    objects = folder_objects(box_folder)
    config = DatagenConfig("analytic", 1, 5, ("pile", "packed"), 3, 2, 1, 4)
    generate_chunk(ChunkTask(1, config, {"pile": objects, "packed": objects}, tmp_path))  # as an unfaulted run
    mine, clean = read_chunk(chunk_path(out, 1)), read_chunk(chunk_path(tmp_path, 1))
    assert read_chunk(chunk_path(out, 0)).index == 0 and mine.scenes == clean.scenes
    assert np.array_equal(mine.grasps.position_m, clean.grasps.position_m)
    assert np.array_equal(mine.grasps.label, clean.grasps.label)


# -- training -----------------------------------------------------------------------------------------
def toy_training(out, resume=False, max_steps=12, log=None):
    """``training.loop`` (every trainer's loop) on a tiny linear model, checkpoints every 4 steps."""
    from dataclasses import dataclass

    import torch

    from diffgrasp_ros.training.atomic_files import torch_save_atomic
    from diffgrasp_ros.training.loop import LoopSettings, open_run, run_loop

    @dataclass
    class Config:
        size: int = 4

    settings = LoopSettings(out, max_steps=max_steps, checkpoint_every=4, log_every=2, warmup_steps=2, resume=resume)
    run = open_run(settings)  # seeds torch: the model's initial weights are the same in every run
    model = torch.nn.Linear(4, 1)
    model.config = Config()

    def losses(rng, generator):
        x = torch.randn(8, 4, generator=generator)
        return {"total": ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()}

    return run_loop(run, settings, model, losses, lambda: torch_save_atomic(model.state_dict(), out / "weights.pt"),
                    log or (lambda _: None))


def test_training_stops_on_a_full_disk_and_resumes_from_its_last_checkpoint(tmp_path):
    import torch

    from diffgrasp_ros.training.loop import CHECKPOINT, LOG

    out = tmp_path / "faulted"
    with DiskFull(CHECKPOINT, fail_on=2), pytest.raises(WriteError) as caught:  # the step-8 checkpoint
        toy_training(out)
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC and f"could not write {out / CHECKPOINT}" in message
    assert "last complete checkpoint, step 4" in message and "--resume" in message
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 4
    assert leftovers(out) == []
    with open(out / LOG, "a") as log:
        log.write('{"step": 9, "tot')  # half a line, as a full disk leaves it
    lines = []
    assert toy_training(out, resume=True, log=lines.append).steps_this_run == 8
    assert lines[0].startswith(f"resuming {out / CHECKPOINT} at step 4")
    toy_training(tmp_path / "clean")
    mine, clean = (torch.load(folder / CHECKPOINT, weights_only=True) for folder in (out, tmp_path / "clean"))
    assert all(torch.equal(mine["model"][k], clean["model"][k]) for k in clean["model"])  # nothing lost
    assert (out / LOG).read_text().count("\n") == 6
    assert [json.loads(line)["step"] for line in (out / LOG).read_text().splitlines()] == [2, 4, 6, 8, 10, 12]


def test_a_failed_weights_write_names_the_file_and_removes_its_temporary_file(tmp_path):
    from diffgrasp_ros.training.loop import save_weights_checked

    def save_weights():  # as torch.save reports a full disk: a RuntimeError, with a partial file behind
        atomic_files.temp_path(tmp_path / "weights.pt").write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    with pytest.raises(WriteError, match=r"could not write .*weights\.pt"):
        save_weights_checked(save_weights, tmp_path)
    assert leftovers(tmp_path) == []


def test_a_model_folder_whose_config_write_fails_keeps_its_previous_files(tmp_path):
    import torch

    from diffgrasp_ros.model_files import CONFIG_FILE, WEIGHTS_FILE, save_model_folder

    class Config:
        def __init__(self, width: int, disk_full: bool = False):
            self.width, self.disk_full = width, disk_full

        def to_json(self, path):
            Path(path).write_text('{"width": ' if self.disk_full else json.dumps({"width": self.width}))
            if self.disk_full:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))

    model = torch.nn.Linear(2, 3)
    model.config = Config(3)
    save_model_folder(model, tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in (CONFIG_FILE, WEIGHTS_FILE)}
    bigger = torch.nn.Linear(2, 5)
    bigger.config = Config(5, disk_full=True)
    with pytest.raises(OSError, match="No space left"):
        save_model_folder(bigger, tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in (CONFIG_FILE, WEIGHTS_FILE)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])


# -- hung and dead workers ----------------------------------------------------------------------------
def misbehave(marks: str, index: int, action: str, times: int) -> int:
    """Job ``index``: ``action`` ("hang" or "die") the first ``times`` times it runs, else its index."""
    runs = len(list(Path(marks).glob(f"job_{index}_*")))
    if runs < times:
        (Path(marks) / f"job_{index}_{runs}").touch()
        if action == "hang":
            time.sleep(1e9)
        os._exit(3)
    return index


def test_hung_and_dead_workers_are_replaced_and_their_jobs_rerun_or_marked(tmp_path):
    from diffgrasp_ros.parallel import JobFailed, run_jobs

    jobs = [(str(tmp_path), 0, "hang", 0), (str(tmp_path), 1, "die", 1), (str(tmp_path), 2, "hang", 2)]
    lines, failures = [], []
    results = dict(run_jobs(misbehave, jobs, 2, timeout_s=2.0, initializer=None, log=lines.append,
                            on_failure=failures.append))
    assert {i: results[i] for i in (0, 1)} == {0: 0, 1: 1}  # job 1's process died: run again
    assert isinstance(results[2], JobFailed) and len(results[2].failures) == 2  # timed out twice: marked
    assert [(f.job, f.attempt, f.rerun) for f in failures if f.job == 2] == [(2, 1, True), (2, 2, False)]
    assert all(1.9 < f.seconds < 10 for f in failures if "timed out" in f.reason)
    assert any(line.startswith("job 1: worker process died (exit code 3)") and "running it again" in line
               for line in lines)
    assert any(line.startswith("job 2: timed out after") and "given up" in line for line in lines)


def test_jobs_given_up_stop_a_parallel_map_once_the_others_are_done(monkeypatch):
    import diffgrasp_ros.parallel as parallel

    failure = parallel.WorkerFailure(1, 2, "timed out after 3.0 s (limit 3 s)", 3.0, False)
    monkeypatch.setattr(parallel, "run_jobs", lambda *args, **kwargs: iter(
        [(1, parallel.JobFailed(1, (failure,))), (0, "done"), (2, "done")]))
    results = []
    given_up = r"1 job\(s\) failed in every attempt.*chunk 1 \(timed out"
    with pytest.raises(parallel.WorkerError, match=given_up) as caught:
        for result in parallel.map_single_threaded(print, [(), (), ()], 2, timeout_s=3.0,
                                                   describe=lambda job: f"chunk {job}"):
            results.append(result)
    assert results == ["done", "done"] and caught.value.failures[0].job == 1


def test_a_hung_benchmark_round_is_reported_rerun_or_marked_and_the_benchmark_finishes(box_folder, tmp_path):
    from functools import partial

    from diffgrasp_ros.evaluation import BenchmarkSettings
    from diffgrasp_ros.evaluation.clutter_removal import END_WORKER_FAILED, run_benchmark_parallel
    from diffgrasp_ros.sim.object_splits import folder_objects

    objects = folder_objects(box_folder).objects
    settings = BenchmarkSettings("packed", rounds=2, seed=4, objects_per_round=1)
    lines, seen = [], []
    result = run_benchmark_parallel(["baseline"], "franka", objects, settings, workers=2, round_timeout_s=8.0,
                                    log=lines.append, on_round=lambda i, by_method: seen.append(i),
                                    round_function=partial(hang_in_round, str(tmp_path), {1: 2}))
    assert sorted(seen) == [0, 1]
    first, second = result.rounds["baseline"]
    assert first.end != END_WORKER_FAILED and first.objects_placed == 1
    assert second.end == END_WORKER_FAILED and "timed out" in second.end_message
    assert (result.rounds_rerun, result.rounds_failed) == (1, 1)
    assert [line.split(":")[0] for line in lines] == [f"packed round 1 (scene seed {second.scene_seed})"] * 2
    summary = result.summaries["baseline"]
    assert (summary.rounds, summary.rounds_failed, summary.objects_placed) == (1, 1, 1)
    assert result.to_dict()["workers"]["rounds_failed"] == 1
