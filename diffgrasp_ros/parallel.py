"""Work spread over spawned processes that each run single-threaded (one PyBullet world, one core each),
with a time limit per job.

A job that overruns its limit (a hung PyBullet call, a deadlock) or whose process dies (a crash, the OOM
killer) is reported, its process is terminated and replaced by a fresh one, and the job is run again up to
``retries`` times; after that it is given up and reported as a ``JobFailed`` in its place, never dropped in
silence. An exception raised by a job stops everything and is raised again in the caller.

The same jobs can run as tasks on a Ray cluster instead (``ray_cluster``, ``run_on_ray``): one CPU each, the
same time limit (the worker process is ended, and Ray runs the task again like that of any dead worker), the
same ``JobFailed`` for a job that failed in every attempt. Ray is imported only there.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_START_TIMEOUT_S = 600.0  # spawn, imports and the initializer (building planners) of one worker
STOP_GRACE_S = 5.0  # a terminated worker gets this long to exit before it is killed


def one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """OpenMP and MKL (open3d's, torch's BLAS) at one thread in the processes spawned inside the block: they
    inherit the environment. The caller's variables are restored afterwards."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in saved})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class WorkerFailure:
    """One run of a job that did not come back: it overran its time limit or its process died."""

    job: int  # index into the jobs
    attempt: int  # 1 for the first run
    reason: str  # "timed out after 12.0 s (limit 12 s)", "worker process died (exit code -9)"
    seconds: float  # from the job's start to its process being stopped
    rerun: bool  # whether the job is run again; False: given up (a ``JobFailed`` takes its result's place)


@dataclass(frozen=True)
class JobFailed:
    """In place of a job's result: every run of it failed (``failures``, the last one last)."""

    job: int
    failures: tuple[WorkerFailure, ...]

    @property
    def reason(self) -> str:
        return self.failures[-1].reason


class WorkerError(RuntimeError):
    """Jobs that failed in every run (``failures``: their ``JobFailed``)."""

    def __init__(self, message: str, failures: Sequence[JobFailed] = ()):
        super().__init__(message)
        self.failures = tuple(failures)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as its ``__cause__`` (as ``concurrent.futures``)."""

    def __str__(self) -> str:
        return self.args[0]


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError saying what it was."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _worker_main(conn, function: Callable, initializer: Callable | None, initargs: tuple) -> None:
    """A worker process: ``initializer(*initargs)``, then ``(index, args)`` jobs for ``function`` until None.
    ``function`` comes with the process's start, so importing its module does not count as a job's time."""
    try:
        if initializer is not None:
            initializer(*initargs)
    except BaseException as error:
        conn.send(("init-error", _portable(error), traceback.format_exc()))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, args = message
        try:
            result = function(*args)
        except BaseException as error:
            conn.send(("error", index, _portable(error), traceback.format_exc()))
        else:
            conn.send(("done", index, result))


class _Worker:
    def __init__(self, context, function: Callable, initializer: Callable | None, initargs: tuple):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, function, initializer, initargs),
                                       daemon=True)
        with single_threaded_children():  # the environment is copied when the process starts
            self.process.start()
        child.close()
        self.spawned = time.monotonic()
        self.ready = False
        self.job: int | None = None
        self.started = 0.0

    def send(self, job: int, args: tuple) -> None:
        self.conn.send((job, args))
        self.job, self.started = job, time.monotonic()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Ask an idle worker to exit, terminate a busy or hung one; kill it if that does not work either."""
        if self.process.is_alive() and self.job is None and self.ready:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(grace_s)
        self.conn.close()


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_jobs(function: Callable, jobs: Sequence[tuple], workers: int, timeout_s: float | Sequence[float],
             retries: int = 1, initializer: Callable | None = one_torch_thread, initargs: tuple = (),
             describe: Callable[[int], str] = lambda job: f"job {job}",
             log: Callable[[str], None] | None = None,
             on_failure: Callable[[WorkerFailure], None] | None = None) -> Iterator[tuple[int, object]]:
    """``(index, function(*jobs[index]))`` for every job in the order they finish, run in ``workers`` spawned
    single-threaded processes that each ran ``initializer(*initargs)`` first (its time is not counted).

    A job still running ``timeout_s`` (one limit, or one per job) after it started, or whose process died, is
    logged (``describe(index)`` names it), its process terminated and replaced, and the job run again up to
    ``retries`` times; then ``(index, JobFailed)`` is yielded in its place. ``on_failure`` sees every such
    event, ``log`` (default: stderr) a line on it. An exception raised by a job stops the workers and is
    raised here."""
    import multiprocessing
    from multiprocessing.connection import wait

    limits = [float(timeout_s)] * len(jobs) if isinstance(timeout_s, (int, float)) else [float(t) for t in timeout_s]
    if len(limits) != len(jobs) or any(not t > 0 for t in limits):
        raise ValueError(f"need one positive time limit per job, got {timeout_s}")
    if retries < 0:
        raise ValueError(f"retries must not be negative, got {retries}")
    if not jobs:
        return
    context = multiprocessing.get_context("spawn")  # a forked child would inherit OpenMP and PyBullet state
    pending = deque(range(len(jobs)))
    failures: dict[int, list[WorkerFailure]] = {}
    pool = [_Worker(context, function, initializer, initargs) for _ in range(max(1, min(workers, len(jobs))))]

    def fail(worker: _Worker, reason: str) -> JobFailed | None:
        job, seconds = worker.job, time.monotonic() - worker.started
        pid = worker.process.pid
        worker.stop(grace_s=1.0)
        attempt = len(failures.setdefault(job, [])) + 1
        failure = WorkerFailure(job, attempt, reason, seconds, attempt <= retries)
        failures[job].append(failure)
        if failure.rerun or pending:
            pool[pool.index(worker)] = _Worker(context, function, initializer, initargs)
        else:  # nothing left for a new process to do
            pool.remove(worker)
        then = f"running it again (attempt {attempt + 1} of {retries + 1})" if failure.rerun \
            else f"given up after {attempt} attempt(s)"
        (log or _log_to_stderr)(f"{describe(job)}: {reason}; worker process {pid} stopped, {then}")
        if on_failure is not None:
            on_failure(failure)
        if failure.rerun:
            pending.appendleft(job)
            return None
        return JobFailed(job, tuple(failures[job]))

    try:
        while pending or any(w.job is not None for w in pool):
            for worker in pool:
                if worker.ready and worker.job is None and pending:
                    job = pending.popleft()
                    worker.send(job, jobs[job])
            now = time.monotonic()
            deadlines = [w.started + limits[w.job] if w.job is not None else w.spawned + WORKER_START_TIMEOUT_S
                         for w in pool if w.job is not None or not w.ready]
            wait([w.conn for w in pool] + [w.process.sentinel for w in pool],  # at most a minute: a huge
                 min(max(0.0, min(deadlines) - now), 60.0) if deadlines else None)  # limit would overflow
            for worker in list(pool):
                message = None
                if worker.conn.poll():
                    try:
                        message = worker.conn.recv()
                    except (EOFError, OSError):  # the process is going: let it exit before judging it
                        message = None
                        worker.process.join(STOP_GRACE_S)
                if message is not None:
                    kind = message[0]
                    if kind == "ready":
                        worker.ready = True
                    elif kind == "init-error":
                        raise message[1] from RemoteTraceback(message[2])
                    elif kind == "error":
                        raise message[2] from RemoteTraceback(message[3])
                    else:
                        worker.job = None
                        yield message[1], message[2]
                elif not worker.process.is_alive():
                    if not worker.ready:  # the imports or the initializer crashed: every worker would
                        raise RuntimeError(f"a worker process exited (code {worker.process.exitcode}) while "
                                           "starting")
                    if worker.job is None:  # died idle: nothing lost
                        worker.stop()
                        pool[pool.index(worker)] = _Worker(context, function, initializer, initargs)
                        continue
                    given_up = fail(worker, f"worker process died (exit code {worker.process.exitcode})")
                    if given_up is not None:
                        yield given_up.job, given_up
                elif worker.job is not None and time.monotonic() - worker.started > limits[worker.job]:
                    limit = limits[worker.job]
                    given_up = fail(worker, f"timed out after {time.monotonic() - worker.started:.1f} s "
                                            f"(limit {limit:g} s)")
                    if given_up is not None:
                        yield given_up.job, given_up
                elif not worker.ready and time.monotonic() - worker.spawned > WORKER_START_TIMEOUT_S:
                    raise RuntimeError(f"a worker process did not start within {WORKER_START_TIMEOUT_S:g} s")
    finally:
        for worker in pool:
            worker.stop()


def map_single_threaded(function: Callable, jobs: Sequence[tuple], workers: int,
                        timeout_s: float | Sequence[float] | None = None,
                        initializer: Callable | None = one_torch_thread,
                        describe: Callable[[int], str] = lambda job: f"job {job}",
                        log: Callable[[str], None] | None = None) -> Iterator:
    """``function(*job)`` for every job, results in the order they finish: in this process when ``workers``
    is 1 or there is one job (no time limit then), else in ``workers`` spawned processes (``run_jobs``, each
    job limited to ``timeout_s`` and run once more after a time-out). torch and the BLAS libraries run one
    thread per process either way, so the processes do not compete. Jobs that failed twice raise a
    ``WorkerError`` naming them once every other job has finished."""
    if workers <= 1 or len(jobs) <= 1:
        if initializer is not None:
            initializer()
        for job in jobs:
            yield function(*job)
        return
    if timeout_s is None:
        raise ValueError("parallel jobs need a time limit (timeout_s)")
    yield from _results_then_given_up(
        run_jobs(function, jobs, workers, timeout_s, initializer=initializer, describe=describe, log=log), describe)


def _results_then_given_up(results: Iterator[tuple[int, object]], describe: Callable[[int], str]) -> Iterator:
    """The results of ``run_jobs`` / ``run_on_ray`` that are not ``JobFailed``; then a ``WorkerError`` naming the
    jobs given up, if any."""
    given_up = []
    for _, result in results:
        if isinstance(result, JobFailed):
            given_up.append(result)
        else:
            yield result
    if given_up:
        names = ", ".join(f"{describe(f.job)} ({f.reason})" for f in sorted(given_up, key=lambda f: f.job))
        raise WorkerError(f"{len(given_up)} job(s) failed in every attempt and left no output: {names}; the other "
                          "jobs' output is complete, run the same command again to retry them", given_up)


# -- on a Ray cluster -------------------------------------------------------------------------------
RAY_ADDRESS_FORMS = ("local (a cluster on this machine), auto (the one `ray start` runs here), "
                     "HOST:PORT or ray://HOST:PORT")
RAY_VERSION_TESTED = "2.60.0"
EXIT_TIMED_OUT = 124  # a Ray worker that overran its job's time limit ends with this code (as timeout(1))


def check_ray_address(address: str) -> str:
    if address in ("local", "auto") or re.fullmatch(r"(ray://)?[A-Za-z0-9_.\-]+:\d{1,5}", address):
        return address
    raise ValueError(f"unknown Ray address {address!r}: use {RAY_ADDRESS_FORMS}")


@contextmanager
def ray_cluster(address: str, local_cpus: int) -> Iterator[None]:
    """This process connected to the Ray cluster at ``address`` for the block: ``local`` starts one on this machine
    with ``local_cpus`` CPUs and stops it afterwards, ``auto`` joins the one `ray start` runs on this machine,
    ``HOST:PORT`` a cluster's head (as a driver on one of its nodes), ``ray://HOST:PORT`` one through Ray Client.
    A process that is connected already (``ray.init`` in a notebook or a test) keeps its connection."""
    check_ray_address(address)
    try:
        import ray
    except ImportError as error:
        raise RuntimeError(f"--ray needs Ray, which is not installed: pip install ray=={RAY_VERSION_TESTED} (the "
                           "version tested)") from error
    if ray.is_initialized():
        yield
        return
    if address == "local":
        ray.init(num_cpus=local_cpus, include_dashboard=False, logging_level="WARNING")
    else:
        try:
            ray.init(address=address, logging_level="WARNING")
        except ConnectionError as error:
            raise RuntimeError(f"could not join the Ray cluster at {address!r}: {error}") from error
    try:
        yield
    finally:
        ray.shutdown()


def _end_hung_worker(description: str, timeout_s: float) -> None:
    print(f"{description}: timed out after {timeout_s:g} s; ending its Ray worker process {os.getpid()}, so that "
          "Ray runs the job again", file=sys.stderr, flush=True)
    os._exit(EXIT_TIMED_OUT)


def _within_time_limit(function: Callable, args: tuple, timeout_s: float, description: str):
    """A Ray task: ``function(*args)``, its worker process ended once it has run ``timeout_s``. A hung PyBullet
    call cannot be interrupted, only its process ended; Ray then runs the task again as for any dead worker."""
    timer = threading.Timer(timeout_s, _end_hung_worker, (description, timeout_s))
    timer.daemon = True
    timer.start()
    try:
        return function(*args)
    finally:
        timer.cancel()


def run_on_ray(function: Callable, jobs: Sequence[tuple], timeout_s: float, retries: int = 1,
               describe: Callable[[int], str] = lambda job: f"job {job}",
               log: Callable[[str], None] | None = None) -> Iterator[tuple[int, object]]:
    """``(index, function(*jobs[index]))`` for every job in the order they finish, each job a Ray task of one CPU
    on the cluster this process is connected to (``ray_cluster``); results come back to this process.

    A task whose worker process died (a crash, the OOM killer, a lost node) or ran longer than ``timeout_s`` (its
    worker is ended, ``_within_time_limit``) is run again by Ray (``max_retries``) up to ``retries`` times; then
    ``(index, JobFailed)`` is yielded in its place and ``log`` (default: stderr) says so. An exception raised by
    a job cancels the other tasks and is raised here."""
    if not timeout_s > 0:
        raise ValueError(f"need a positive time limit per job, got {timeout_s}")
    if retries < 0:
        raise ValueError(f"retries must not be negative, got {retries}")
    if not jobs:
        return
    import ray
    from ray.exceptions import NodeDiedError, OutOfMemoryError, WorkerCrashedError

    task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(_within_time_limit)
    started = time.monotonic()
    running = {task.remote(function, args, timeout_s, describe(index)): index for index, args in enumerate(jobs)}
    try:
        while running:
            (done,), _ = ray.wait(list(running), num_returns=1)
            index = running.pop(done)
            try:
                result = ray.get(done)
            except (WorkerCrashedError, NodeDiedError, OutOfMemoryError) as error:
                reason = (f"its Ray worker died or ran past the time limit of {timeout_s:g} s in every attempt "
                          f"({type(error).__name__})")
                (log or _log_to_stderr)(f"{describe(index)}: {reason}; given up after {retries + 1} attempt(s)")
                failure = WorkerFailure(index, retries + 1, reason, time.monotonic() - started, False)
                yield index, JobFailed(index, (failure,))
            else:
                yield index, result
    finally:
        for ref in running:
            ray.cancel(ref, force=True)


def map_on_ray(function: Callable, jobs: Sequence[tuple], timeout_s: float,
               describe: Callable[[int], str] = lambda job: f"job {job}",
               log: Callable[[str], None] | None = None) -> Iterator:
    """``function(*job)`` for every job as Ray tasks (``run_on_ray``, each run once more after its worker died or
    it timed out), results in the order they finish; jobs that failed twice raise a ``WorkerError`` naming them
    once every other job has finished, as ``map_single_threaded`` does."""
    yield from _results_then_given_up(run_on_ray(function, jobs, timeout_s, describe=describe, log=log), describe)
