"""Training the depth restoration model (``depth.restoration``) on simulated stereo pairs and real frames.

Two kinds of crops, mixed in every batch:

- **Simulated** (``diffgrasp depth-data`` pairs, no colour): the simulated D435's raw depth against the
  renderer's clean depth. Half the crops are centred on a pixel the sensor got wrong (invalid, or more
  than 1 cm off), since most pixels are right.
- **Real** (the frames of ``../shared/real`` that may be learned from, with colour): self-supervised
  hidden-hole filling. Valid pixels are hidden in the shape of another real frame's sensor holes
  (``depth.holes``), and the model fills them from the rest; the hidden readings are the truth. Crops
  are rescaled at random (×0.6–2), so the model meets holes and objects at other resolutions and focal
  lengths, and colour is dropped on a share of them.

Losses, in centimetres: the fill's L1 error on the pixels the model has to fill (holes and hidden
pixels with truth, and simulated readings that are wrong; averaged per crop, so a crop with a large
transparent object does not outweigh the others), and the cross-entropy of the "reading is wrong" logit on valid input pixels (simulated: more than 1 cm
off; real: never, the readings that stayed valid are taken as right), so the model learns to keep good
depth exactly.

The learning rate warms up over ``WARMUP_STEPS`` then follows a cosine down to zero at ``steps``.

A run folder holds ``checkpoint.pt`` (model, optimizer, step, time), ``train_log.jsonl`` and the
weights (``config.json`` + ``weights.pt``), rewritten at every checkpoint. Batch ``k`` is drawn from
a generator seeded with (seed, k), so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..camera.real_frames import LEARNABLE_SETS, RealFrame, load_learnable_frames, within_range
from ..depth.holes import hide_holes, sensor_hole_masks
from ..depth.restoration import DEPTH_SCALE, TINY, DepthRestorer, RestorationConfig, _median_valid
from ..model_files import WEIGHTS_FILE
from .atomic_files import WriteError, remove_stale_temps, torch_save_atomic, with_hint
from .depth_pairs import PairChunk, load_pairs
from .loop import CHECKPOINT, LOG, append_log, resume_hint, save_weights_checked, trim_log
WRONG_M = 0.01  # a raw pixel this far from the clean depth counts as wrong
WRONG_WEIGHT = 1.0
NO_COLOR_FRACTION = 0.5  # share of real crops without colour, so depth-only pipelines are served as well
SIM_HIDDEN_FRACTION = 0.5  # share of simulated crops that also get hidden real hole shapes
SCALE_RANGE = (0.6, 2.0)  # real crops are rescaled by a log-uniform factor in this range
# Learnable frames kept out of training and scored at every checkpoint (hidden holes, fixed seeds).
VALIDATION_FRAMES = ("ucn_tabletop/000008", "posecnn_tabletop/000004")
WARMUP_STEPS = 200


@dataclass(frozen=True)
class RestoreTrainOptions:
    data: Path
    out: Path
    val_data: Path | None = None
    real: Path | None = None  # ../shared/real, or a folder of your own sets laid out the same way
    real_sets: tuple[str, ...] = LEARNABLE_SETS  # the sets of ``real`` to learn from (never evaluation-only ones)
    real_fraction: float = 0.7  # share of crops from real frames (when given)
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
    val_mae_mm: float | None  # simulated validation, at the last checkpoint, when validation data was given
    val_hidden_mae_mm: float | None  # real held-out frames' hidden holes, when real frames were given


@dataclass
class Batch:
    """(B, 1, H, W) raw input (m, 0 = invalid), truth (m, 0 = none), the pixels to fill, the valid input
    pixels whose reading is wrong / right, and colour (B, 3, H, W) in 0..1 (zeros and ``has_color``
    False where a crop has none)."""

    raw_m: torch.Tensor
    truth_m: torch.Tensor
    fill_mask: torch.Tensor
    wrong: torch.Tensor
    right: torch.Tensor
    color: torch.Tensor
    has_color: torch.Tensor  # (B,) bool


@dataclass(frozen=True)
class RealTrainingSet:
    frames: list[RealFrame]
    hole_masks: list[np.ndarray]  # sensor hole shapes, one per frame of ``frames``


def frames_in_working_range(root: Path, sets: Sequence[str] = LEARNABLE_SETS) -> list[RealFrame]:
    """The frames of ``sets`` under ``root`` (evaluation-only sets are refused), in the pipeline's default
    working range (``DepthProcessor``: 0.1-2 m)."""
    return [within_range(f, 0.1, 2.0) for f in load_learnable_frames(root, sets)]


def load_real_training_set(root: Path, exclude: Sequence[str] = VALIDATION_FRAMES,
                           sets: Sequence[str] = LEARNABLE_SETS) -> RealTrainingSet:
    """The real frames of ``sets`` under ``root``, minus ``exclude``, and their sensor hole shapes."""
    frames = [f for f in frames_in_working_range(root, sets) if f.key not in exclude]
    if not frames:
        raise ValueError(f"no real frames to learn from under {root} (sets {list(sets)})")
    return RealTrainingSet(frames, sensor_hole_masks(frames))


def _rescaled(frame: RealFrame, scale: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    size = (max(1, round(frame.depth_m.shape[1] * scale)), max(1, round(frame.depth_m.shape[0] * scale)))
    depth = cv2.resize(frame.depth_m, size, interpolation=cv2.INTER_NEAREST)  # no blending across edges
    color = cv2.resize(frame.color_rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return depth, color


def _real_crop(real: RealTrainingSet, rng: np.random.Generator, crop: int):
    i = int(rng.integers(len(real.frames)))
    frame = real.frames[i]
    smallest = crop / min(frame.depth_m.shape)
    scale = float(np.exp(rng.uniform(*np.log(SCALE_RANGE))))
    depth, color = _rescaled(frame, max(scale, smallest))
    v, u = rng.integers(0, depth.shape[0] - crop + 1), rng.integers(0, depth.shape[1] - crop + 1)
    depth, color = depth[v:v + crop, u:u + crop], color[v:v + crop, u:u + crop]
    if rng.random() < 0.5:
        depth, color = depth[:, ::-1], color[:, ::-1]
    others = [k for k in range(len(real.hole_masks)) if k != i]
    hidden = hide_holes(depth > 0, real.hole_masks[int(rng.choice(others))], rng)
    raw = np.where(hidden, 0.0, depth).astype(np.float32)
    truth = np.where(hidden, depth, 0.0).astype(np.float32)
    right = (raw > 0)
    with_color = rng.random() >= NO_COLOR_FRACTION
    return raw, truth, hidden, np.zeros_like(hidden), right, (color if with_color else None)


def _sim_crop(pairs: PairChunk, real: RealTrainingSet | None, rng: np.random.Generator, crop: int):
    height, width = pairs.raw_depth_mm.shape[1:]
    i = int(rng.integers(len(pairs)))
    raw, clean = pairs.raw_depth_mm[i].astype(np.int32), pairs.clean_depth_mm[i].astype(np.int32)
    v, u = rng.integers(0, height - crop + 1), rng.integers(0, width - crop + 1)
    if rng.random() < 0.5:
        wrong_v, wrong_u = np.nonzero((clean > 0) & ((raw == 0) | (np.abs(raw - clean) > 1000 * WRONG_M)))
        if len(wrong_v):
            k = rng.integers(len(wrong_v))
            v = int(np.clip(wrong_v[k] - crop // 2, 0, height - crop))
            u = int(np.clip(wrong_u[k] - crop // 2, 0, width - crop))
    window = np.s_[v:v + crop, u:u + crop]
    raw = raw[window].astype(np.float32) * np.float32(0.001)
    truth = clean[window].astype(np.float32) * np.float32(0.001)
    if real is not None and rng.random() < SIM_HIDDEN_FRACTION:
        hidden = hide_holes(raw > 0, real.hole_masks[int(rng.integers(len(real.hole_masks)))], rng)
        raw = np.where(hidden, 0.0, raw).astype(np.float32)
    has_truth = truth > 0
    valid = raw > 0
    wrong = valid & has_truth & (np.abs(raw - truth) > WRONG_M)
    fill = has_truth & (~valid | wrong)
    return raw, truth, fill, wrong, valid & has_truth & ~wrong, None


def sample_batch(pairs: PairChunk, real: RealTrainingSet | None, rng: np.random.Generator, batch: int,
                 crop: int, real_fraction: float = 0.7) -> Batch:
    crops = [_real_crop(real, rng, crop) if real is not None and rng.random() < real_fraction
             else _sim_crop(pairs, real, rng, crop) for _ in range(batch)]

    def stack(k: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.ascontiguousarray(c[k]) for c in crops]))[:, None]

    colors = [np.zeros((crop, crop, 3), np.uint8) if c[5] is None else np.ascontiguousarray(c[5]) for c in crops]
    return Batch(stack(0), stack(1), stack(2), stack(3), stack(4),
                 torch.from_numpy(np.stack(colors)).permute(0, 3, 1, 2).float() / 255.0,
                 torch.tensor([c[5] is not None for c in crops]))


def learning_rate(options: RestoreTrainOptions, step: int) -> float:
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    return float(options.lr * warmup * 0.5 * (1.0 + np.cos(np.pi * min(step / options.steps, 1.0))))


def _forward(model: DepthRestorer, batch: Batch):
    """The model's prediction with colour only for the crops that have it (one pass per group)."""
    mu = _median_valid(batch.raw_m).view(-1, 1, 1, 1)
    groups = [(batch.has_color, batch.color), (~batch.has_color, None)]
    parts = {}
    for select, color in groups:
        if select.any():
            parts[select] = model.predict(batch.raw_m[select], None if color is None else color[select], mu[select])
    fill, logit = torch.empty_like(batch.raw_m), torch.empty_like(batch.raw_m)
    for select, out in parts.items():
        fill[select], logit[select] = out.fill, out.wrong_logit
    return fill, logit, mu


def restoration_loss(model: DepthRestorer, batch: Batch) -> tuple[torch.Tensor, dict]:
    fill, logit, mu = _forward(model, batch)

    def metres(normalised):
        return mu * (1.0 + normalised / DEPTH_SCALE)

    def per_crop_l1_cm(pred):  # each crop weighs the same, however many pixels it has to fill
        error = (100.0 * (metres(pred) - batch.truth_m).abs() * batch.fill_mask).sum(dim=(1, 2, 3))
        count = batch.fill_mask.sum(dim=(1, 2, 3))
        return (error / count.clamp_min(1))[count > 0].mean() if (count > 0).any() else pred.new_zeros(())

    l1 = per_crop_l1_cm(fill)
    judged = batch.wrong | batch.right
    bce = F.binary_cross_entropy_with_logits(logit[judged], batch.wrong[judged].float()) if judged.any() \
        else logit.new_zeros(())
    loss = l1 + WRONG_WEIGHT * bce
    return loss, {"fill_cm": l1.item(), "wrong_bce": bce.item()}


@torch.no_grad()
def validation_mae_mm(model: DepthRestorer, pairs: PairChunk) -> float:
    """Mean absolute error (mm) of whole restored simulated frames over all pixels with clean depth."""
    model.eval()
    abs_sum, count = 0.0, 0
    with warnings.catch_warnings():  # simulated frames have no colour: no news
        warnings.simplefilter("ignore")
        for raw, clean in zip(pairs.raw_depth_m, pairs.clean_depth_m):
            has = clean > 0.0
            abs_sum += float(np.abs(model.restore(raw) - clean)[has].sum())
            count += int(has.sum())
    model.train()
    return 1000.0 * abs_sum / max(count, 1)


@torch.no_grad()
def hidden_hole_mae_mm(model: DepthRestorer, frames: Sequence[RealFrame], hole_masks: Sequence[np.ndarray],
                       trials: int = 3, with_color: bool = True) -> float:
    """Mean over ``frames`` of the MAE (mm) on real readings hidden in sensor hole shapes (fixed seeds),
    restored from depth and colour or, ``with_color=False``, from depth alone."""
    model.eval()
    maes = []
    for k, frame in enumerate(frames):
        errors = []
        for trial in range(trials):
            rng = np.random.default_rng([k, trial])
            hidden = hide_holes(frame.depth_m > 0, hole_masks[int(rng.integers(len(hole_masks)))], rng)
            with warnings.catch_warnings():  # asked for: no news
                warnings.simplefilter("ignore")
                restored = model.restore(np.where(hidden, 0.0, frame.depth_m).astype(np.float32),
                                         frame.color_rgb if with_color else None)
            errors.append(np.abs(restored - frame.depth_m)[hidden])
        maes.append(1000.0 * float(np.concatenate(errors).mean()))
    model.train()
    return float(np.mean(maes))


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
    real = load_real_training_set(options.real, sets=options.real_sets) if options.real is not None else None
    val_real = ([f for f in frames_in_working_range(options.real, options.real_sets) if f.key in VALIDATION_FRAMES]
                if options.real is not None else [])
    if real is not None:
        log(f"real frames: {len(real.frames)} to learn from, {len(val_real)} held out for validation")

    torch.manual_seed(options.seed)
    step, seconds_total, saved = 0, 0.0, None
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
        saved = step
        log(f"resuming at step {step} ({seconds_total / 60:.1f} min trained)")
    out.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT, WEIGHTS_FILE):
        remove_stale_temps(out, name)  # left by a run killed mid-write
    trim_log(out / LOG, step)  # the steps after the checkpoint are trained and logged again

    def checkpoint() -> tuple[float | None, float | None]:
        nonlocal saved
        val = validation_mae_mm(model, val_pairs) if val_pairs is not None else None
        hidden = hidden_hole_mae_mm(model, val_real, real.hole_masks) if val_real else None
        depth_only = hidden_hole_mae_mm(model, val_real, real.hole_masks, with_color=False) if val_real else None
        torch_save_atomic({"config": asdict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "step": step, "seconds_total": seconds_total + time.perf_counter() - start}, checkpoint_path)
        saved = step
        save_weights_checked(lambda: model.save_pretrained(out), out)
        append_log(out / LOG, {"step": step, "event": "checkpoint", "val_mae_mm": val, "val_hidden_mae_mm": hidden,
                               "val_hidden_depth_only_mae_mm": depth_only})
        if val is not None:
            log(f"step {step}: checkpoint, validation MAE {val:.2f} mm over {len(val_pairs)} simulated frames")
        if hidden is not None:
            log(f"step {step}: hidden-hole MAE {hidden:.2f} mm on {len(val_real)} held-out real frames "
                f"({depth_only:.2f} mm from depth alone)")
        return val, hidden

    start, first_step = time.perf_counter(), step
    deadline = start + 60.0 * options.max_minutes if options.max_minutes is not None else float("inf")
    model.train()
    val, running = (None, None), []
    try:
        while step < options.steps and time.perf_counter() < deadline:
            batch = sample_batch(pairs, real, np.random.default_rng([options.seed, step]), options.batch, crop,
                                 options.real_fraction)
            loss, parts = restoration_loss(model, batch)
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
                append_log(out / LOG, {"step": step, "seconds": round(elapsed, 1), **means})
                log(f"step {step} ({elapsed / 60:.1f} min): " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
            if step % options.checkpoint_every == 0:
                val = checkpoint()
        if step % options.checkpoint_every or step == first_step:
            val = checkpoint()
    except WriteError as error:
        raise with_hint(error, resume_hint(checkpoint_path, saved)) from error
    seconds_run = time.perf_counter() - start
    return RestoreTrainReport(step, step - first_step, seconds_run, seconds_total + seconds_run, len(pairs), *val)
