"""Work spread over spawned processes that each run single-threaded (one PyBullet world, one core each)."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


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


def map_single_threaded(function: Callable, jobs: Sequence[tuple], workers: int) -> Iterator:
    """``function(*job)`` for every job, results in the order they finish: in this process when ``workers``
    is 1 or there is one job, else in ``workers`` spawned processes. torch and the BLAS libraries run one
    thread per process either way, so the processes do not compete."""
    if workers <= 1 or len(jobs) <= 1:
        one_torch_thread()
        for job in jobs:
            yield function(*job)
        return
    import concurrent.futures
    import multiprocessing

    with single_threaded_children(), concurrent.futures.ProcessPoolExecutor(
            workers, multiprocessing.get_context("spawn"), one_torch_thread) as pool:
        for future in concurrent.futures.as_completed([pool.submit(function, *job) for job in jobs]):
            yield future.result()
