"""The loop every trainer here shares: a run folder with a resumable checkpoint, AdamW with linear
warm-up, step drops of the learning rate (x0.1 at each of ``lr_drop_steps``) and gradient clipping, batches
drawn from ``(seed, step)`` alone (so a resumed run continues exactly as an uninterrupted one would), a
JSON-lines loss log (``train_log.jsonl``: ``step``, ``seconds``, ``lr`` of the update that made the step and the
losses averaged since the previous line), and the model's weights saved with every checkpoint.

A trainer may pass ``validate``: every ``validate_every`` steps (default: at every checkpoint) and at the last
step, the model in eval mode and without gradients, its named losses on fixed validation batches are appended to
``val_log.jsonl`` as ``{"step", "seconds", "val_<name>": ...}`` (a file of its own, so that every line of the loss
log keeps the training losses). It draws nothing from the training batches' random streams, so training takes
the same steps with or without it.

Checkpoints are written whole or not at all (``atomic_files``). A failed write (a full disk) stops the run
with a ``WriteError`` naming the file and the last complete checkpoint; ``--resume`` continues from that
checkpoint, drops the log lines written after it (they are written again) and deletes temporary files left
by a run killed mid-write.

A trainer may run in a group of processes (``distributed.ProcessGroup``): DDP averages the gradients, the
ranks stop together, and rank 0 alone writes; the IGD trainer does (``igd_train``), the others run in one.

    run = open_run(settings, log)                  # run.state: the checkpoint when resuming, else None
    config = ...from run.state["config"] or new... # the trainer's own config handling
    model = Model(config)
    result = run_loop(run, settings, model, lambda rng, generator: model.losses(batch(rng), ..., generator),
                      save_weights=lambda: save_pretrained(model, settings.out), log=log)
"""
from __future__ import annotations

import errno
import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..model_files import WEIGHTS_FILE
from .atomic_files import (WriteError, remove_stale_temps, temp_path, torch_save_atomic, with_hint, write_error,
                           write_text_atomic)
from .distributed import SINGLE_PROCESS, ProcessGroup, group_from_environment

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"
VAL_LOG = "val_log.jsonl"
LR_DROP = 0.1  # the learning rate's factor at each of ``LoopSettings.lr_drop_steps``


def check_lr_drops(drops: Sequence[int], option: str = "--lr-drops") -> None:
    """Drops are positive and increasing (a drop at step 0 is a lower --lr)."""
    if any(d < 1 for d in drops) or any(b <= a for a, b in zip(drops, drops[1:])):
        raise ValueError(f"{option} must be positive and increasing, got {list(drops)}")


@dataclass(frozen=True)
class LoopSettings:
    out: Path
    max_steps: int = 1_000_000
    max_minutes: float | None = None
    lr: float = 1e-3
    warmup_steps: int = 100
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    threads: int | None = None  # torch intra-op threads (default: torch's choice)
    resume: bool = False
    lr_drop_steps: tuple[int, ...] = ()  # total step counts after which the learning rate is x LR_DROP
    validate_every: int | None = None  # steps between validations (default: checkpoint_every)

    def __post_init__(self):
        check_lr_drops(self.lr_drop_steps)
        if self.validate_every is not None and self.validate_every < 1:
            raise ValueError(f"the validation interval must be at least 1 step, got {self.validate_every}")

    def learning_rate(self, step: int) -> float:
        """The learning rate of the update that follows ``step`` completed steps: a function of the step alone,
        so a resumed run follows the schedule of an uninterrupted one."""
        drops = sum(step >= d for d in self.lr_drop_steps)
        return self.lr * min(1.0, (step + 1) / self.warmup_steps) * LR_DROP ** drops


class HasLoopSettings:
    """For a trainer's options dataclass with ``LoopSettings`` fields among its own: those it lacks keep their
    defaults."""

    @property
    def loop(self) -> LoopSettings:
        return LoopSettings(**{f.name: getattr(self, f.name) for f in fields(LoopSettings) if hasattr(self, f.name)})


@dataclass
class Run:
    out: Path
    checkpoint: Path
    state: dict | None  # the checkpoint of the run being resumed


@dataclass
class LoopResult:
    steps: int  # total, over every resumed run
    steps_this_run: int
    seconds_this_run: float
    seconds_total: float  # training time over every run, not counting data loading
    losses: dict[str, float] = field(default_factory=dict)  # means over the last logging window


def check_run_folder(settings: LoopSettings) -> None:
    """Refuse to overwrite a run unless resuming."""
    checkpoint = Path(settings.out) / CHECKPOINT
    if checkpoint.exists() and not settings.resume:
        raise ValueError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --out")


def open_run(settings: LoopSettings, group: ProcessGroup = SINGLE_PROCESS) -> Run:
    """Create ``settings.out``; refuse to overwrite a run unless resuming; set torch's threads and seed. In a
    group of processes rank 0 does the checks and reads the checkpoint, and every rank gets it."""
    import torch

    launched = group_from_environment()
    if launched.distributed and not group.distributed:
        raise ValueError(f"this trainer runs in one process, but the environment (torchrun) started "
                         f"{launched.world_size}: run it without torchrun")
    out = Path(settings.out)
    checkpoint = out / CHECKPOINT
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    state = None
    if group.is_main:
        check_run_folder(settings)
        out.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT, WEIGHTS_FILE):
            remove_stale_temps(out, name)  # left by a run killed mid-write
        state = torch.load(checkpoint, map_location="cpu", weights_only=True) if checkpoint.exists() else None
    return Run(out, checkpoint, group.from_main(state))


def trim_log(path: Path, step: int) -> None:
    """Keep the complete lines of the JSON-lines log ``path`` up to ``step`` (the checkpoint a run resumes from):
    the steps after it are trained and logged again, and a write that failed may have left half a line."""
    if not path.exists():
        return
    text = path.read_text()
    kept = []
    for line in text.splitlines(keepends=True):
        try:
            if line.endswith("\n") and json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except (json.JSONDecodeError, AttributeError):
            pass
    if "".join(kept) != text:
        write_text_atomic(path, "".join(kept))


def resume_hint(checkpoint: Path, step: int | None) -> str:
    """What is left after a failed write in a run whose last complete checkpoint is at ``step`` (None: none)."""
    if step is None:
        return f"no checkpoint was written yet ({checkpoint}): free space and start the run again"
    return (f"the last complete checkpoint, step {step}, is in {checkpoint}: free space and run the same command "
            "with --resume to continue from it")


def append_log(path: Path, record: dict) -> None:
    """``record`` appended to the JSON-lines log ``path`` as one line; a WriteError if that fails (``trim_log``
    drops a half-written line when the run resumes)."""
    try:
        with open(path, "a") as file:
            file.write(json.dumps(record) + "\n")
    except OSError as error:
        raise write_error(path, error) from error


def save_weights_checked(save_weights: Callable[[], None], folder: Path) -> None:
    """``save_weights()`` (``model_files.save_model_folder``), its failure a WriteError naming ``folder`` and its
    temporary file removed. torch reports a failed write as a RuntimeError, so that counts too."""
    try:
        save_weights()
    except (OSError, RuntimeError) as error:
        temp_path(Path(folder) / WEIGHTS_FILE).unlink(missing_ok=True)
        if isinstance(error, WriteError):
            raise
        if not isinstance(error, OSError):
            error = OSError(errno.EIO, str(error))
        raise write_error(Path(folder) / WEIGHTS_FILE, error) from error


def run_loop(run: Run, settings: LoopSettings, model, losses: Callable | Sequence[Callable],
             save_weights: Callable[[], None], log: Callable[[str], None] = print, objective: str = "total",
             group: ProcessGroup = SINGLE_PROCESS,
             validate: Callable[[], dict[str, float]] | None = None) -> LoopResult:
    """Train ``model`` (resumed from ``run.state`` when there is one) until ``max_steps`` or ``max_minutes``.

    ``losses(rng, generator)`` returns the step's named scalar losses; ``objective`` names the one that is
    minimised. The checkpoint stores ``model.config`` as JSON, for the trainer to rebuild the model. A list of
    such functions is a step of several batches: each one's forward and backward run on their own (the memory
    of one batch), each given the step's ``rng`` and ``generator`` afresh, and their gradients are averaged.

    In a group of processes (``model`` on ``group.device``) every rank gets the same ``rng`` and ``generator``, to
    draw the global batch from and take its own part of; DDP averages the gradients, the logged losses are the
    ranks' means, and rank 0 alone writes the log, the checkpoints and (``save_weights``) the weights. Scaling a
    gradient by a power of two is exact, so a batch's gradient is the same bits whether a rank or one process
    among its batches computed it: N processes take exactly the steps of one process with their N batches.

    ``validate()`` returns the model's named losses on the validation data (see the module's docstring); rank 0
    alone calls it (the others wait for it at the next step's gradient averaging).
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    step, seconds_before, saved = 0, 0.0, None
    if run.state:
        model.load_state_dict(run.state["model"])
        optimizer.load_state_dict(run.state["optimizer"])
        step, seconds_before = int(run.state["step"]), float(run.state["seconds"])
        saved = step
        log(f"resuming {run.checkpoint} at step {step}")
        before = tuple(run.state.get("lr_drop_steps", ()))
        if before != settings.lr_drop_steps:  # allowed (e.g. a drop added to a longer run), but rarely meant
            log(f"note: the learning-rate drops were after steps {list(before)}, now {list(settings.lr_drop_steps)}")
    if group.is_main:
        for name in (LOG, VAL_LOG):
            trim_log(run.out / name, step)
    batches = [losses] if callable(losses) else list(losses)
    forward = group.data_parallel(model)

    def save(elapsed: float) -> None:
        nonlocal saved
        if not group.is_main:
            return
        torch_save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                           "seconds": elapsed, "config": json.dumps(asdict(model.config)),
                           "lr_drop_steps": list(settings.lr_drop_steps)}, run.checkpoint)
        saved = step
        save_weights_checked(save_weights, run.out)

    def validation(elapsed: float) -> None:
        model.eval()
        with torch.no_grad():
            values = {f"val_{k}": float(v) for k, v in validate().items()}
        model.train()
        append_log(run.out / VAL_LOG, {"step": step, "seconds": round(elapsed, 1), **values})
        log(f"step {step:6d}  validation  " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))

    validate_every = settings.validate_every or settings.checkpoint_every
    deadline = None if settings.max_minutes is None else time.perf_counter() + 60.0 * settings.max_minutes
    model.train()
    first_step, loop_start = step, time.perf_counter()
    window: dict[str, list[float]] = {}
    means: dict[str, float] = {}
    try:
        while step < settings.max_steps and not group.any(deadline is not None and time.perf_counter() >= deadline):
            lr = settings.learning_rate(step)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            batch_values = []
            for i, batch_losses in enumerate(batches):
                rng = np.random.default_rng([settings.seed, step])
                generator = torch.Generator(group.device).manual_seed(settings.seed * 1_000_003 + step)
                with forward.no_sync() if i + 1 < len(batches) else nullcontext():  # the group averages once
                    values = forward(batch_losses, rng, generator)
                    (values[objective] / len(batches)).backward()
                batch_values.append(torch.stack([v.detach() for v in values.values()]))
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            for name, value in zip(values, group.mean(torch.stack(batch_values).mean(0)).tolist()):
                window.setdefault(name, []).append(value)
            elapsed = seconds_before + time.perf_counter() - loop_start
            if step % settings.log_every == 0 or step == settings.max_steps:
                means = {k: float(np.mean(v)) for k, v in window.items()}
                window.clear()
                if group.is_main:
                    append_log(run.out / LOG, {"step": step, "seconds": round(elapsed, 1), "lr": lr, **means})
                log(f"step {step:6d}  {elapsed / 60:6.1f} min  lr {lr:.2e}  "
                    + "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
            if validate is not None and group.is_main and (step % validate_every == 0 or step == settings.max_steps):
                validation(elapsed)
            if step % settings.checkpoint_every == 0:
                save(elapsed)
        if window:
            means = {k: float(np.mean(v)) for k, v in window.items()}
        seconds_total = seconds_before + time.perf_counter() - loop_start
        save(seconds_total)
    except WriteError as error:
        raise with_hint(error, resume_hint(run.checkpoint, saved)) from error
    log(f"saved step {step} to {run.out} ({step - first_step} steps in {time.perf_counter() - loop_start:.0f} s)")
    return LoopResult(step, step - first_step, time.perf_counter() - loop_start, seconds_total, means)
