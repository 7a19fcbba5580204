"""Training the depth restoration model (``depth.restoration``) on simulated stereo pairs.

Batches are random crops of the training frames, half of them centred on a pixel the sensor got
wrong (invalid, or more than 1 cm off), since most pixels are already right; a quarter have their IR
blanked, which is how frames without IR are restored. The loss, on pixels
with clean depth, is the L1 depth error plus an edge-aware term (L1 of the depth gradients' error,
so edges stay sharp instead of being smeared across) and half the coarse U-Net output's L1 error
(deep supervision), all in centimetres.

The learning rate warms up over ``WARMUP_STEPS`` then follows a cosine down to zero at ``steps``.

A run folder holds ``checkpoint.pt`` (model, optimizer, step, time), ``train_log.jsonl`` and the
weights (``config.json`` + ``weights.pt``), rewritten at every checkpoint. Batch ``k`` is drawn from
a generator seeded with (seed, k), so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..depth.restoration import TINY, DepthRestorer, RestorationConfig
from .depth_pairs import PairChunk, load_pairs

CHECKPOINT, LOG = "checkpoint.pt", "train_log.jsonl"
WRONG_M = 0.01  # a raw pixel this far from the clean depth counts as wrong
EDGE_WEIGHT, COARSE_WEIGHT = 1.0, 0.5
# Share of crops without IR (all zero), so the model also serves pipelines that carry depth alone.
NO_IR_FRACTION = 0.25
WARMUP_STEPS = 200


@dataclass(frozen=True)
class RestoreTrainOptions:
    data: Path
    out: Path
    val_data: Path | None = None
    steps: int = 10_000
    max_minutes: float | None = None
    batch: int = 4
    crop: int = 256
    lr: float = 2e-3
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    threads: int | None = 1
    tiny: bool = False
    resume: bool = False
    max_val_frames: int = 16


@dataclass(frozen=True)
class RestoreTrainReport:
    steps: int
    steps_this_run: int
    seconds_this_run: float
    seconds_total: float
    frames: int
    val_mae_mm: float | None  # at the last checkpoint, when validation data was given


def _tensors(pairs: PairChunk, index, rows: slice, cols: slice) -> tuple[torch.Tensor, ...]:
    raw = torch.from_numpy(pairs.raw_depth_mm[index, rows, cols].astype(np.float32) * np.float32(0.001))
    ir = torch.from_numpy(pairs.ir_left[index, rows, cols].astype(np.float32) / np.float32(255.0))
    clean = torch.from_numpy(pairs.clean_depth_mm[index, rows, cols].astype(np.float32) * np.float32(0.001))
    return raw[:, None], ir[:, None], clean[:, None]


def sample_batch(pairs: PairChunk, rng: np.random.Generator, batch: int, crop: int) -> tuple[torch.Tensor, ...]:
    """(raw_m, ir, clean_m), each (batch, 1, crop, crop)."""
    height, width = pairs.raw_depth_mm.shape[1:]
    raws, irs, cleans = [], [], []
    for _ in range(batch):
        i = int(rng.integers(len(pairs)))
        v, u = rng.integers(0, height - crop + 1), rng.integers(0, width - crop + 1)
        if rng.random() < 0.5:
            raw, clean = pairs.raw_depth_mm[i].astype(np.int32), pairs.clean_depth_mm[i].astype(np.int32)
            wrong_v, wrong_u = np.nonzero((clean > 0) & ((raw == 0) | (np.abs(raw - clean) > 1000 * WRONG_M)))
            if len(wrong_v):
                k = rng.integers(len(wrong_v))
                v = int(np.clip(wrong_v[k] - crop // 2, 0, height - crop))
                u = int(np.clip(wrong_u[k] - crop // 2, 0, width - crop))
        raw, ir, clean = _tensors(pairs, [i], slice(v, v + crop), slice(u, u + crop))
        if rng.random() < NO_IR_FRACTION:
            ir = torch.zeros_like(ir)
        raws.append(raw), irs.append(ir), cleans.append(clean)
    return torch.cat(raws), torch.cat(irs), torch.cat(cleans)


def learning_rate(options: RestoreTrainOptions, step: int) -> float:
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    return float(options.lr * warmup * 0.5 * (1.0 + np.cos(np.pi * min(step / options.steps, 1.0))))


def restoration_loss(pred_m: torch.Tensor, coarse_m: torch.Tensor, clean_m: torch.Tensor) -> tuple[torch.Tensor, dict]:
    has = clean_m > 0.0
    count = has.sum().clamp_min(1)
    l1 = (100.0 * (pred_m - clean_m).abs() * has).sum() / count
    coarse = (100.0 * (coarse_m - clean_m).abs() * has).sum() / count
    edge = pred_m.new_zeros(())
    for dim in (2, 3):
        both = has.narrow(dim, 1, has.shape[dim] - 1) & has.narrow(dim, 0, has.shape[dim] - 1)
        error = 100.0 * (torch.diff(pred_m, dim=dim) - torch.diff(clean_m, dim=dim)).abs()
        edge = edge + (error * both).sum() / both.sum().clamp_min(1)
    loss = l1 + EDGE_WEIGHT * edge + COARSE_WEIGHT * coarse
    return loss, {"l1_cm": l1.item(), "edge_cm": edge.item(), "coarse_cm": coarse.item()}


@torch.no_grad()
def validation_mae_mm(model: DepthRestorer, pairs: PairChunk) -> float:
    """Mean absolute error (mm) of whole restored frames over all pixels with clean depth."""
    model.eval()
    abs_sum, count = 0.0, 0
    for i in range(len(pairs)):
        raw, ir, clean = _tensors(pairs, [i], slice(None), slice(None))
        has = clean > 0.0
        abs_sum += float(((model(raw, ir) - clean).abs() * has).sum())
        count += int(has.sum())
    model.train()
    return 1000.0 * abs_sum / max(count, 1)


def train_restore(options: RestoreTrainOptions, log: Callable[[str], None] = print) -> RestoreTrainReport:
    if options.steps < 1 or options.batch < 1 or options.checkpoint_every < 1 or options.log_every < 1:
        raise ValueError("steps, batch, checkpoint_every and log_every must be at least 1")
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    out = Path(options.out)
    checkpoint_path = out / CHECKPOINT
    if checkpoint_path.exists() and not options.resume:
        raise ValueError(f"{out} already holds a run ({CHECKPOINT}); pass --resume to continue it or use another folder")
    if options.resume and not checkpoint_path.exists():
        raise FileNotFoundError(f"nothing to resume: {checkpoint_path} does not exist")
    pairs = load_pairs(options.data)
    height, width = pairs.raw_depth_mm.shape[1:]
    val_pairs = load_pairs(options.val_data, options.max_val_frames) if options.val_data else None

    torch.manual_seed(options.seed)
    step, seconds_total = 0, 0.0
    if options.resume:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        config = RestorationConfig(**state["config"])
    else:
        config = RestorationConfig(**TINY) if options.tiny else RestorationConfig()
    crop = options.crop
    if crop % config.multiple_px or not 0 < crop <= min(height, width):
        raise ValueError(f"crop must be a positive multiple of {config.multiple_px} px no larger than the "
                         f"{width}x{height} frames, got {crop}")
    model = DepthRestorer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=1e-4)
    if options.resume:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds_total = int(state["step"]), float(state["seconds_total"])
        log(f"resuming at step {step} ({seconds_total / 60:.1f} min trained)")
    out.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> float | None:
        val = validation_mae_mm(model, val_pairs) if val_pairs is not None else None
        torch.save({"config": asdict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "seconds_total": seconds_total + time.perf_counter() - start},
                   out / f"{CHECKPOINT}.tmp")
        (out / f"{CHECKPOINT}.tmp").replace(checkpoint_path)
        model.save_pretrained(out)
        with open(out / LOG, "a") as file:
            file.write(json.dumps({"step": step, "event": "checkpoint", "val_mae_mm": val}) + "\n")
        if val is not None:
            log(f"step {step}: checkpoint, validation MAE {val:.2f} mm over {len(val_pairs)} frames")
        return val

    start, first_step = time.perf_counter(), step
    deadline = start + 60.0 * options.max_minutes if options.max_minutes is not None else float("inf")
    model.train()
    val, running = None, []
    while step < options.steps and time.perf_counter() < deadline:
        raw, ir, clean = sample_batch(pairs, np.random.default_rng([options.seed, step]), options.batch, crop)
        pred, coarse = model.forward_with_coarse(raw, ir)
        loss, parts = restoration_loss(pred, coarse, clean)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(options, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        running.append(parts)
        if step % options.log_every == 0:
            means = {k: round(float(np.mean([p[k] for p in running])), 4) for k in running[0]}
            running = []
            elapsed = seconds_total + time.perf_counter() - start
            with open(out / LOG, "a") as file:
                file.write(json.dumps({"step": step, "seconds": round(elapsed, 1), **means}) + "\n")
            log(f"step {step} ({elapsed / 60:.1f} min): " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
        if step % options.checkpoint_every == 0:
            val = checkpoint()
    if step % options.checkpoint_every or step == first_step:
        val = checkpoint()
    seconds_run = time.perf_counter() - start
    return RestoreTrainReport(step, step - first_step, seconds_run, seconds_total + seconds_run, len(pairs), val)
