"""Long jobs under faults (issue 20): a full disk while ``datagen`` writes its chunks and while ``train``
writes its checkpoints, and a benchmark worker that hangs.

Each function injects its fault, lets the job stop, resumes it and returns a JSON-able dict:

- ``datagen_write_fault``: the k-th chunk write fails with ENOSPC half-way through (a partial temporary
  file is on disk when it fails), and a temporary file of a run killed mid-write is planted; then the same
  command runs again. Counted: did the run stop with a message naming the file, chunks before / after, files
  left that do not load, grasps missing or different against an unfaulted run of the same seed.
- ``training_write_fault``: the k-th checkpoint write of ``diffgrasp train --tiny`` fails with ENOSPC; then
  ``--resume``. Counted: the message, the checkpoint step kept, files that do not load, the steps trained
  again, and how far the resumed weights are from an unfaulted run's.
- ``hung_worker``: one round of a parallel benchmark sleeps forever once (re-run) and another every time
  (marked). Counted: how long until each was timed out, what was reported, whether the benchmark finished,
  and the re-run round's outcome against a sequential run's.

The faults are injected in this process (``DiskFull`` replaces ``open`` in ``training.atomic_files``; a
tmpfs needs root), the hang through ``run_benchmark_parallel``'s ``round_function``. With ``quick=True``
each function takes well under a minute on a loaded 2-core machine.

    .venv/bin/python benchmarks/reliability_jobs.py [--full] [--out /tmp/reliability_jobs.json]
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffgrasp_ros.training import atomic_files  # noqa: E402


# -- fault injection --------------------------------------------------------------------------------
class _FullFile(io.FileIO):
    """A file on a disk with ``budget`` bytes left: the write that crosses it writes what fits, then fails."""

    budget = 0

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if len(data) <= self.budget:
            self.budget -= len(data)
            return super().write(data)
        super().write(data[:self.budget])
        self.budget = 0
        raise OSError(errno.ENOSPC, "No space left on device")


class DiskFull:
    """While active, the ``fail_on``-th write through ``atomic_files`` of a file whose name contains ``name``
    runs out of space after ``after_bytes`` bytes (ENOSPC); every other write works. ``partial_seen`` says
    whether the partial temporary file was on disk when the error was raised."""

    def __init__(self, name: str, fail_on: int = 1, after_bytes: int = 256):
        self.name, self.fail_on, self.after_bytes = name, fail_on, after_bytes
        self.writes = 0
        self.failed_path: Path | None = None
        self.partial_seen = False

    def open(self, path, mode="r", *args, **kwargs):
        if self.name in Path(path).name and "w" in mode:
            self.writes += 1
            if self.writes == self.fail_on:
                self.failed_path = Path(path)
                file = _FullFile(path, "w")
                file.budget = self.after_bytes
                return _Watched(file, self)
        return open(path, mode, *args, **kwargs)

    def __enter__(self) -> "DiskFull":
        atomic_files.open = self.open  # the module's name lookup finds this before the builtin
        return self

    def __exit__(self, *exc) -> None:
        del atomic_files.open


class _Watched:
    """The failing file as a context manager that notes whether its partial bytes were on disk."""

    def __init__(self, file: _FullFile, fault: DiskFull):
        self.file, self.fault = file, fault

    def __enter__(self) -> _FullFile:
        return self.file

    def __exit__(self, *exc) -> None:
        self.fault.partial_seen = self.fault.failed_path.exists() and self.fault.failed_path.stat().st_size > 0
        self.file.close()


def _cli(argv: list[str]) -> tuple[int, str]:
    """``diffgrasp ARGV`` in this process: exit code and the lines it printed to stderr that are not progress
    bars (its error message)."""
    from diffgrasp_ros.cli.main import main

    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        code = main(argv)
    lines = [line for line in stderr.getvalue().replace("\r", "\n").splitlines()
             if line.strip() and "%|" not in line]  # not tqdm's bars
    return code, "\n".join(lines)


def _unloadable(folder: Path, pattern: str, load) -> list[str]:
    """Files of ``pattern`` in ``folder`` that ``load`` cannot read, and temporary files left."""
    bad = [p.name for p in Path(folder).glob(f"*{atomic_files.TEMP_MARK}*")]
    for path in sorted(Path(folder).glob(pattern)):
        try:
            load(path)
        except Exception:
            bad.append(path.name)
    return bad


# -- datagen ----------------------------------------------------------------------------------------
def _datagen_argv(out: Path, chunks: int, quick: bool) -> list[str]:
    from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR

    small = ["--scenes-per-chunk", "1", "--points-per-scene", "3", "--yaws", "2", "--depths", "1",
             "--baseline-grasps", "4", "--labels", "analytic"] if quick else \
        ["--scenes-per-chunk", "2", "--labels", "sim"]
    return ["datagen", "--out", str(out), "--chunks", str(chunks), "--scene", "pile", "packed", "--seed", "7",
            "--objects", str(DEFAULT_OBJECTS_DIR / "train"), "--workers", "1", *small]


def _dataset_arrays(folder: Path) -> dict[str, np.ndarray]:
    from diffgrasp_ros.training.dataset import iter_chunks

    chunks = list(iter_chunks(folder))
    return {"index": np.array([c.index for c in chunks]),
            "scene_seed": np.concatenate([[s.seed for s in c.scenes] for c in chunks]),
            **{name: np.concatenate([getattr(c.grasps, name) for c in chunks])
               for name in ("scene", "position_m", "quaternion_xyzw", "width_m", "label", "source")}}


def datagen_write_fault(quick: bool = True) -> dict:
    """A full disk at the ``fail_on``-th chunk of ``diffgrasp datagen``, then the same command again."""
    from diffgrasp_ros.training.dataset import read_chunk

    chunks, fail_on = (3, 2) if quick else (6, 4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability_datagen_") as tmp:
        faulted, clean = Path(tmp) / "faulted", Path(tmp) / "clean"
        with DiskFull("chunk_", fail_on) as fault:
            code, message = _cli(_datagen_argv(faulted, chunks, quick))
        before = sorted(p.name for p in faulted.glob("chunk_*.npz"))
        left_after_fault = _unloadable(faulted, "chunk_*.npz", read_chunk)
        # A run killed mid-write (no exception handler ran) leaves its temporary file behind.
        crashed = faulted / f"chunk_{chunks - 1:06d}.npz{atomic_files.TEMP_MARK}999999999"  # no such process
        crashed.write_bytes(b"PK\x03\x04 half a chunk")
        resumed_code, _ = _cli(_datagen_argv(faulted, chunks, quick))
        after = sorted(p.name for p in faulted.glob("chunk_*.npz"))
        corrupt = _unloadable(faulted, "chunk_*.npz", read_chunk)
        clean_code, _ = _cli(_datagen_argv(clean, chunks, quick))
        mine, theirs = _dataset_arrays(faulted), _dataset_arrays(clean)
        identical = mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
        return {
            "fault": f"ENOSPC on chunk write {fail_on} of {chunks}, {fault.after_bytes} bytes into the file",
            "survived": code == 1 and "could not write" in message and "No space left" in message,
            "exit_code": code, "message": message,
            "partial_temp_on_disk_when_it_failed": fault.partial_seen,
            "files_left_after_fault_not_loadable": left_after_fault,
            "chunks_before": len(before), "chunks_after": len(after), "chunks_wanted": chunks,
            "planted_crash_temp_removed": not crashed.exists(),
            "resumed_ok": resumed_code == 0 and clean_code == 0 and len(after) == chunks,
            "corrupt_files_left": corrupt,
            "grasps_resumed": int(len(mine["label"])), "grasps_clean_run": int(len(theirs["label"])),
            "lost_grasps": int(len(theirs["label"]) - len(mine["label"])),
            "identical_to_clean_run": bool(identical),
            "seconds": round(time.perf_counter() - start, 1),
        }


# -- training ---------------------------------------------------------------------------------------
def _training_dataset(folder: Path) -> None:
    from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR
    from diffgrasp_ros.sim.object_splits import folder_objects
    from diffgrasp_ros.training.datagen import DatagenConfig, generate_dataset

    objects = folder_objects(DEFAULT_OBJECTS_DIR / "train")
    config = DatagenConfig("analytic", scenes_per_chunk=1, seed=3, points_per_scene=8, yaws=4, depths=1,
                           baseline_grasps=8)
    generate_dataset(folder, config, 2, {"pile": objects, "packed": objects}, workers=1, progress=False)


def _load_checkpoint(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def training_write_fault(quick: bool = True) -> dict:
    """A full disk at the ``fail_on``-th checkpoint of ``diffgrasp train --tiny``, then ``--resume``."""
    from diffgrasp_ros.training.loop import CHECKPOINT, LOG

    steps, every, fail_on = (12, 4, 2) if quick else (60, 10, 4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability_training_") as tmp:
        data, cache = Path(tmp) / "data", Path(tmp) / "cache"
        _training_dataset(data)

        def argv(out: Path, *extra: str) -> list[str]:
            return ["train", "--data", str(data), "--cache", str(cache), "--out", str(out), "--tiny",
                    "--steps", str(steps), "--checkpoint-every", str(every), "--log-every", "2", "--threads", "1",
                    *extra]

        faulted, clean = Path(tmp) / "faulted", Path(tmp) / "clean"
        _cli(argv(clean))  # also fills the grid cache, so the faulted run's time is training
        with DiskFull(CHECKPOINT, fail_on) as fault:
            code, message = _cli(argv(faulted))
        kept = _load_checkpoint(faulted / CHECKPOINT)["step"] if (faulted / CHECKPOINT).exists() else None
        left_after_fault = _unloadable(faulted, "*.pt", _load_checkpoint)
        resumed_code, _ = _cli(argv(faulted, "--resume"))
        corrupt = _unloadable(faulted, "*.pt", _load_checkpoint)
        mine, theirs = _load_checkpoint(faulted / CHECKPOINT), _load_checkpoint(clean / CHECKPOINT)
        difference = max(float((mine["model"][k].float() - theirs["model"][k].float()).abs().max())
                         for k in theirs["model"])
        log_steps = [json.loads(line)["step"] for line in (faulted / LOG).read_text().splitlines()]
        clean_steps = [json.loads(line)["step"] for line in (clean / LOG).read_text().splitlines()]
        return {
            "fault": f"ENOSPC on checkpoint write {fail_on} (step {fail_on * every}) of a {steps}-step run, "
                     f"{fault.after_bytes} bytes into the file",
            "survived": code == 1 and "could not write" in message and "--resume" in message,
            "exit_code": code, "message": message,
            "partial_temp_on_disk_when_it_failed": fault.partial_seen,
            "files_left_after_fault_not_loadable": left_after_fault,
            "checkpoint_step_before": kept, "checkpoint_step_after": int(mine["step"]),
            "resumed_ok": resumed_code == 0 and int(mine["step"]) == steps,
            "corrupt_files_left": corrupt,
            "steps_trained_again": fail_on * every - (kept or 0),
            "log_equals_clean_run": log_steps == clean_steps,
            "max_weight_difference_to_clean_run": difference,
            "identical_to_clean_run": difference == 0.0 and mine["model"].keys() == theirs["model"].keys(),
            "seconds": round(time.perf_counter() - start, 1),
        }


# -- a hung benchmark worker ------------------------------------------------------------------------
def hang_in_round(marks: str, hangs: dict, objects, settings, index: int):
    """A benchmark round that sleeps forever the first ``hangs[index]`` times it runs (counted with files in
    ``marks``, as each run is in a fresh process), else runs normally."""
    from diffgrasp_ros.evaluation.clutter_removal import _worker_round

    runs = len(list(Path(marks).glob(f"round_{index}_*")))
    if runs < hangs.get(index, 0):
        (Path(marks) / f"round_{index}_{runs}").touch()
        time.sleep(1e9)
    return _worker_round(objects, settings, index)


def hung_worker(quick: bool = True) -> dict:
    """A parallel benchmark whose round 1 hangs once and round 2 hangs every time."""
    from diffgrasp_ros.evaluation import BenchmarkSettings, run_benchmark
    from diffgrasp_ros.evaluation.clutter_removal import END_WORKER_FAILED, run_benchmark_parallel
    from diffgrasp_ros.grasping import make_planner
    from diffgrasp_ros.sim.object_set import default_objects

    objects = default_objects("val")
    rounds, limit = (3, 10.0) if quick else (6, 60.0)
    settings = BenchmarkSettings("packed", rounds=rounds, seed=5, objects_per_round=2 if quick else 5)
    hangs = {1: 1, 2: 2}  # round 1 hangs once (re-run), round 2 every time (marked)
    lines: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability_hang_") as marks:
        result = run_benchmark_parallel(["baseline"], "franka", objects, settings, workers=2,
                                        round_timeout_s=limit, log=lines.append,
                                        round_function=functools.partial(hang_in_round, marks, hangs))
    seconds = time.perf_counter() - start
    sequential = run_benchmark({"baseline": make_planner("baseline")}, objects, settings)

    def outcome(r):
        return r.scene_seed, r.objects_placed, r.attempts, r.successes, r.end

    parallel_rounds, sequential_rounds = result.rounds["baseline"], sequential.rounds["baseline"]
    return {
        "fault": f"round 1 of {rounds} sleeps forever once, round 2 every time; time limit {limit:g} s per round, "
                 "2 workers",
        "finished": len(parallel_rounds) == rounds,
        "seconds": round(seconds, 1),
        "reported": lines,
        "timed_out_after_s": [round(f.seconds, 1) for f in result.worker_failures],
        "completed_round_seconds": [round(r.duration_s, 1) for r in parallel_rounds if r.end != END_WORKER_FAILED],
        "within_limit": all(f.seconds < limit + 5.0 for f in result.worker_failures),
        "rounds_rerun": result.rounds_rerun, "rounds_failed": result.rounds_failed,
        "marked": [r.index for r in parallel_rounds if r.end == END_WORKER_FAILED],
        "summary_rounds": result.summaries["baseline"].rounds,
        "summary_rounds_failed": result.summaries["baseline"].rounds_failed,
        "rerun_round_equals_sequential": outcome(parallel_rounds[1]) == outcome(sequential_rounds[1]),
        "other_rounds_equal_sequential": all(outcome(p) == outcome(s) for i, (p, s) in
                                             enumerate(zip(parallel_rounds, sequential_rounds)) if i not in (1, 2)),
    }


JOBS = {"datagen_write_fault": datagen_write_fault, "training_write_fault": training_write_fault,
        "hung_worker": hung_worker}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="larger runs (minutes) instead of the quick ones")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "reliability_jobs.json")
    parser.add_argument("--only", choices=list(JOBS), nargs="+", default=list(JOBS))
    args = parser.parse_args(argv)
    results = {}
    for name in args.only:
        results[name] = JOBS[name](quick=not args.full)
        print(f"{name}: {json.dumps(results[name], indent=2)}", flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
