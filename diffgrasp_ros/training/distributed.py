"""Data-parallel training over processes: ``torch.distributed`` with gloo on the CPU and NCCL where GPUs exist.

A process joins a group either from the environment that ``torchrun`` (or another launcher) sets, RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (``group_from_environment``, then ``joined``), or by being
one of the processes ``run_in_processes`` spawns on this machine (``diffgrasp train --ddp N``).

Each rank draws the same global batch from ``(seed, step)`` and takes its own rows of it; DDP averages the
gradients, so N ranks with b rows each take the steps that one process takes with N·b rows. Rank 0 alone
writes (checkpoints, the loss log, the weights) and hands a resumed run's checkpoint to the others.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# How long a rank waits for the others at one collective: long enough for a rank filling its share of a
# large grid cache before the first step (``igd_train.load_scenes``).
COLLECTIVE_TIMEOUT = timedelta(hours=2)


def backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the processes training one model (one process: ``SINGLE_PROCESS``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # among the group's processes on this machine: which GPU it uses under NCCL

    def __post_init__(self):
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(f"rank {self.rank} and local rank {self.local_rank} do not fit a group of "
                             f"{self.world_size} process(es)")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes and logs."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where this rank trains: its GPU in a group over NCCL, else the CPU (one process trains on the CPU)."""
        import torch

        if self.distributed and backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def data_parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """A module whose ``forward(losses, *args)`` returns ``losses(*args)``, losses computed with ``model``'s
        parameters; in a group it is wrapped in DDP (which hooks into a module's forward), so that their
        ``backward`` averages the gradients over the group, except inside ``no_sync()``."""
        import torch
        from torch.nn.parallel import DistributedDataParallel

        class LossesOf(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model  # the parameters whose gradients DDP averages

            def forward(self, losses: Callable[..., dict], *args) -> dict:
                return losses(*args)

            def no_sync(self) -> AbstractContextManager:
                return nullcontext()  # one process: nothing to hold back

        if not self.distributed:
            return LossesOf()
        on_gpu = self.device.type == "cuda"
        return DistributedDataParallel(LossesOf(), device_ids=[self.device] if on_gpu else None)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` averaged over the group's ranks (a copy on every rank)."""
        values = values.detach().clone()
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(values)
            values /= self.world_size
        return values

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank: the ranks stop together (a time budget each rank checks alone
        could end them at different steps, and the others would wait forever for the next step's gradients)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        flags = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags.item())

    def from_main(self, value):
        """Rank 0's ``value`` on every rank (a picklable object, e.g. a checkpoint read by rank 0 alone)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


SINGLE_PROCESS = ProcessGroup()


def group_from_environment(environ: Mapping[str, str] = os.environ) -> ProcessGroup:
    """The place of this process in a group started by ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK), else
    ``SINGLE_PROCESS``."""
    present = [name for name in LAUNCHER_VARIABLES if name in environ]
    if not present:
        return SINGLE_PROCESS
    if len(present) != len(LAUNCHER_VARIABLES):
        missing = sorted(set(LAUNCHER_VARIABLES) - set(present))
        raise ValueError(f"the environment sets {', '.join(present)} but not {', '.join(missing)}: start the "
                         "processes with torchrun, or set all of them")
    try:
        values = {name: int(environ[name]) for name in LAUNCHER_VARIABLES}
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         + ", ".join(f"{name}={environ[name]!r}" for name in LAUNCHER_VARIABLES)) from None
    return ProcessGroup(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


@contextmanager
def joined(group: ProcessGroup, init_method: str = "env://") -> Iterator[ProcessGroup]:
    """This process in ``group`` for the block (nothing to join for one process). ``env://`` meets the others at
    MASTER_ADDR:MASTER_PORT, as torchrun sets them."""
    if not group.distributed:
        yield group
        return
    import torch
    import torch.distributed as dist

    if backend() == "nccl":
        torch.cuda.set_device(group.local_rank)
    dist.init_process_group(backend(), init_method=init_method, rank=group.rank, world_size=group.world_size,
                            timeout=COLLECTIVE_TIMEOUT)
    try:
        yield group
    finally:
        dist.destroy_process_group()


def check_process_count(processes: int) -> None:
    """``processes`` ranks fit this machine: at least one, and one GPU each under NCCL."""
    import torch

    if processes < 1:
        raise ValueError(f"the number of training processes must be at least 1, got {processes}")
    if backend() == "nccl" and processes > torch.cuda.device_count():
        raise ValueError(f"{processes} training processes need a GPU each, torch sees {torch.cuda.device_count()}")


def _rank_main(rank: int, function: Callable[[ProcessGroup], object], processes: int, init_method: str,
               results) -> None:
    group = ProcessGroup(rank, processes, rank)
    with joined(group, init_method):
        result = function(group)
    if group.is_main:
        results.put(result)


def run_in_processes(function: Callable[[ProcessGroup], object], processes: int):
    """``function(group)`` in ``processes`` spawned processes on this machine, joined in one group; rank 0's
    result (a small one: it comes through a pipe that is read once the processes have ended). A failing rank
    ends the others (``torch.multiprocessing``) and raises a RuntimeError here."""
    import torch.multiprocessing as mp

    check_process_count(processes)
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    # The ranks meet in a file of a fresh folder: no port to pick, none taken by another run.
    with tempfile.TemporaryDirectory(prefix="diffgrasp_ddp_") as folder:
        try:
            mp.start_processes(_rank_main, (function, processes, f"file://{folder}/rendezvous", results),
                               nprocs=processes, start_method="spawn")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:
            raise RuntimeError(f"a training process failed, the others were stopped: {error}") from error
    return results.get()
