"""The loop every trainer here shares: a run folder with a resumable checkpoint, AdamW with linear
warm-up and gradient clipping, batches drawn from ``(seed, step)`` alone (so a resumed run continues
exactly as an uninterrupted one would), a JSON-lines loss log, and the model's weights saved with
every checkpoint.

    run = open_run(settings, log)                  # run.state: the checkpoint when resuming, else None
    config = ...from run.state["config"] or new... # the trainer's own config handling
    model = Model(config)
    result = run_loop(run, settings, model, lambda rng, generator: model.losses(batch(rng), ..., generator),
                      save_weights=lambda: save_pretrained(model, settings.out), log=log)
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"


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


class HasLoopSettings:
    """For a trainer's options dataclass with the ``LoopSettings`` fields among its own."""

    @property
    def loop(self) -> LoopSettings:
        return LoopSettings(self.out, self.max_steps, self.max_minutes, self.lr, self.warmup_steps,
                            self.checkpoint_every, self.log_every, self.seed, self.threads, self.resume)


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


def open_run(settings: LoopSettings) -> Run:
    """Create ``settings.out``; refuse to overwrite a run unless resuming; set torch's threads and seed."""
    import torch

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not settings.resume:
        raise ValueError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --out")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True) if checkpoint.exists() else None
    return Run(out, checkpoint, state)


def run_loop(run: Run, settings: LoopSettings, model, losses: Callable, save_weights: Callable[[], None],
             log: Callable[[str], None] = print, objective: str = "total") -> LoopResult:
    """Train ``model`` (resumed from ``run.state`` when there is one) until ``max_steps`` or ``max_minutes``.

    ``losses(rng, generator)`` returns the step's named scalar losses; ``objective`` names the one that is
    minimised. The checkpoint stores ``model.config`` as JSON, for the trainer to rebuild the model.
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    step, seconds_before = 0, 0.0
    if run.state:
        model.load_state_dict(run.state["model"])
        optimizer.load_state_dict(run.state["optimizer"])
        step, seconds_before = int(run.state["step"]), float(run.state["seconds"])
        log(f"resuming {run.checkpoint} at step {step}")

    def save(elapsed: float) -> None:
        tmp = run.checkpoint.with_name(run.checkpoint.name + ".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "seconds": elapsed, "config": json.dumps(asdict(model.config))}, tmp)
        tmp.replace(run.checkpoint)
        save_weights()

    deadline = None if settings.max_minutes is None else time.perf_counter() + 60.0 * settings.max_minutes
    model.train()
    first_step, loop_start = step, time.perf_counter()
    window: dict[str, list[float]] = {}
    means: dict[str, float] = {}
    with open(run.out / LOG, "a") as log_file:
        while step < settings.max_steps and (deadline is None or time.perf_counter() < deadline):
            rng = np.random.default_rng([settings.seed, step])
            generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
            values = losses(rng, generator)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * min(1.0, (step + 1) / settings.warmup_steps)
            optimizer.zero_grad(set_to_none=True)
            values[objective].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            for name, value in values.items():
                window.setdefault(name, []).append(value.detach().item())
            elapsed = seconds_before + time.perf_counter() - loop_start
            if step % settings.log_every == 0 or step == settings.max_steps:
                means = {k: float(np.mean(v)) for k, v in window.items()}
                window.clear()
                log_file.write(json.dumps({"step": step, "seconds": round(elapsed, 1), **means}) + "\n")
                log_file.flush()
                log(f"step {step:6d}  {elapsed / 60:6.1f} min  " + "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
            if step % settings.checkpoint_every == 0:
                save(elapsed)
    if window:
        means = {k: float(np.mean(v)) for k, v in window.items()}
    seconds_total = seconds_before + time.perf_counter() - loop_start
    save(seconds_total)
    log(f"saved step {step} to {run.out} ({step - first_step} steps in {time.perf_counter() - loop_start:.0f} s)")
    return LoopResult(step, step - first_step, time.perf_counter() - loop_start, seconds_total, means)
