"""Training of the depth-noise diffusion model (``depth.noise_diffusion``), resumable, chunked by time.

Three kinds of data, mixed freely:

- simulated pairs (``training.depth_pairs`` chunks): the renderer's clean depth and the simulated
  stereo's raw depth of the same frame;
- recorded static-scene sequences (``camera.sequence`` folders, ``diffgrasp record``), which have no
  ground truth: the temporal prior fuses the sequence into a clean reference (per-pixel median of the
  valid readings, valid where most frames are) and every raw frame becomes a sample of the artifacts on
  it. What is invalid in most frames is invalid in the reference too, so persistent holes are not
  learned from sequences, only the frame-to-frame ones and the noise;
- single real frames (``--real``, the learnable sets of ``camera.real_frames`` only), which teach where
  the real sensor's holes fall given the depth: the condition is a stand-in clean depth, the frame with
  its holes filled (``stand_in_clean``), the target's invalid channel is the frame's own invalid mask,
  and the error channel gets no loss (its truth is unknown). A real frame's condition uses its own
  f·B (its fx × the D435's 50 mm baseline), so disparities keep their meaning in pixels.

    python -m diffgrasp_ros.training.noise_train --pairs PAIRS --out RUN [--sequences SEQ ...]
        [--real ../shared/real] [--init models/depth_noise] [--max-minutes 25]
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..camera.real_frames import LEARNABLE_SETS, add_real_sets_argument, load_learnable_frames
from ..sim.stereo import D435Config  # its baseline_m: the D435's stereo baseline, real and simulated
from .loop import HasLoopSettings, open_run, run_loop

MIN_SEQUENCE_FRAMES = 5  # fewer frames give a median too noisy to stand in for the clean depth
FILL_EDGE_STEP = 0.03  # a hole whose two sides differ by more than 3 % spans a depth edge (as stereo_sim's edges)


def stand_in_clean(depth_m: np.ndarray, edge_step: float = FILL_EDGE_STEP) -> np.ndarray:
    """A clean-depth stand-in for a real frame (H, W, metres, 0 = invalid): every hole filled, then a 5×5
    median over the whole image, so filled and measured pixels look alike (speckle-free, like rendered
    depth) and the condition does not betray where the holes were.

    Holes are filled along rows, the stereo baseline's direction: linearly between the two sides where
    they lie on one surface, and with the farther side where the hole spans a depth edge, since a
    stereo sensor's occlusion holes (and a registered image's shadow) lie on the background beside a
    foreground edge. Rows with no valid pixel take their nearest valid pixel's depth."""
    import cv2

    from ..depth.classical import nearest_fill

    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be an (H, W) image, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError("depth has no valid pixel to fill its holes from")
    h, w = depth.shape
    columns = np.broadcast_to(np.arange(w), (h, w))
    left_index = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
    right_index = np.minimum.accumulate(np.where(valid, columns, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    left = np.where(left_index >= 0, depth[rows, np.clip(left_index, 0, w - 1)], 0.0)
    right = np.where(right_index < w, depth[rows, np.clip(right_index, 0, w - 1)], 0.0)
    share = (columns - left_index) / np.maximum(right_index - left_index, 1)
    same_surface = np.abs(left - right) <= edge_step * np.minimum(left, right)
    both = np.where(same_surface, left + share * (right - left), np.maximum(left, right))
    filled = np.where(valid, depth, np.where((left > 0) & (right > 0), both, np.maximum(left, right)))
    filled = nearest_fill(filled.astype(np.float32))  # rows without a valid pixel
    return cv2.medianBlur(filled, 5)


def sequence_to_training_pairs(frames: Sequence[np.ndarray], min_frames: int = MIN_SEQUENCE_FRAMES,
                               min_valid_share: float = 0.5) -> tuple[np.ndarray, list[np.ndarray]]:
    """The temporal prior on a static-scene sequence of (H, W) depth images (metres, 0 = invalid):
    (clean reference, raw frames). The reference is the per-pixel median of the valid readings where
    more than ``min_valid_share`` of the frames are valid, else 0."""
    if len(frames) < min_frames:
        raise ValueError(f"a static-scene sequence needs at least {min_frames} frames to fuse a clean reference "
                         f"from, got {len(frames)}: record more (diffgrasp record --frames N)")
    stack = np.stack([np.asarray(f, dtype=np.float32) for f in frames])
    if stack.ndim != 3:
        raise ValueError(f"sequence frames must be (H, W) depth images, got shape {stack.shape[1:]}")
    valid = np.isfinite(stack) & (stack > 0)
    count = valid.sum(axis=0)
    trusted = count > min_valid_share * len(frames)
    readings = np.where(valid, stack, np.nan)
    median = np.zeros(stack.shape[1:], np.float32)
    median[trusted] = np.nanmedian(readings[:, trusted], axis=0)
    raws = [np.where(v, f, 0.0).astype(np.float32) for v, f in zip(valid, stack)]
    return median, raws


@dataclass
class TrainingSet:
    """Clean and raw depth (metres, 0 = invalid) of every training frame; clean is shared by a sequence's
    frames. Real frames (``real[i]``) are kept apart: their error channel is not learned, and batches
    draw a set share of crops from them."""

    cleans: list[np.ndarray] = field(default_factory=list)
    raws: list[np.ndarray] = field(default_factory=list)
    clean_index: list[int] = field(default_factory=list)  # raws[i] is a sample on cleans[clean_index[i]]
    real: list[bool] = field(default_factory=list)  # per raw frame
    focal_baseline_px_m: list[float | None] = field(default_factory=list)  # per raw frame; None: the model's

    def add(self, clean: np.ndarray, raws: Sequence[np.ndarray], real: bool = False,
            focal_baseline_px_m: float | None = None) -> None:
        for raw in raws:
            if raw.shape != clean.shape:
                raise ValueError(f"raw depth {raw.shape} does not match its clean depth {clean.shape}")
        self.cleans.append(clean.astype(np.float32))
        self.raws.extend(r.astype(np.float32) for r in raws)
        self.clean_index.extend([len(self.cleans) - 1] * len(raws))
        self.real.extend([real] * len(raws))
        self.focal_baseline_px_m.extend([focal_baseline_px_m] * len(raws))

    def __len__(self) -> int:
        return len(self.raws)


def add_real_frames(data: TrainingSet, root: Path, sets: Sequence[str] = LEARNABLE_SETS) -> int:
    """Add the real frames of ``sets`` under ``root`` (``camera.real_frames`` layout; evaluation-only sets are
    refused) as (stand-in clean, raw) pairs; returns how many were added."""
    frames = load_learnable_frames(root, sets)
    for frame in frames:
        data.add(stand_in_clean(frame.depth_m), [frame.depth_m], real=True,
                 focal_baseline_px_m=frame.intrinsics.fx * D435Config.baseline_m)
    return len(frames)


def load_training_set(pairs: Sequence[Path] = (), sequences: Sequence[Path] = (),
                      max_frames: int | None = None, real: Path | None = None,
                      real_sets: Sequence[str] = LEARNABLE_SETS) -> TrainingSet:
    from ..camera.sequence import load_sequence
    from .depth_pairs import iter_pairs

    data = TrainingSet()
    for folder in pairs:
        for chunk in iter_pairs(folder):
            for clean, raw in zip(chunk.clean_depth_m, chunk.raw_depth_m):
                data.add(clean, [raw])
            if max_frames is not None and len(data) >= max_frames:
                break
        if max_frames is not None and len(data) >= max_frames:
            break
    for folder in sequences:
        data.add(*sequence_to_training_pairs([f.depth_m for f in load_sequence(folder)]))
    if real is not None and not add_real_frames(data, real, real_sets):
        raise ValueError(f"no learnable real frame under {real}")
    if not len(data):
        raise ValueError("no training data: pass simulated pairs (--pairs), recorded sequences (--sequences) "
                         "and/or real frames (--real)")
    return data


def sample_batch(data: TrainingSet, config, rng: np.random.Generator, batch: int, crop_px: int,
                 real_share: float = 0.5):
    """Random crops (aligned to the packing grid, so the coordinate channels mean the same as on whole
    images): (condition, artifacts, top, left, loss weights) tensors. When the set has both real and
    other frames, each crop comes from a real frame with probability ``real_share``."""
    import torch

    from ..depth.noise_diffusion import artifact_map, condition_map

    real = np.flatnonzero(data.real)
    other = np.flatnonzero(~np.asarray(data.real, bool))
    if len(real) and len(other):
        picks = [int(rng.choice(real)) if rng.random() < real_share else int(rng.choice(other)) for _ in range(batch)]
    else:
        picks = rng.integers(0, len(data), batch).tolist()
    conditions, artifacts, tops, lefts, weights = [], [], [], [], []
    for i in picks:
        raw, clean, fb = data.raws[i], data.cleans[data.clean_index[i]], data.focal_baseline_px_m[i]
        h, w = raw.shape
        if h < crop_px or w < crop_px:
            raise ValueError(f"training frames ({w}x{h}) are smaller than the crop ({crop_px} px)")
        top = int(rng.integers(0, (h - crop_px) // config.pack + 1)) * config.pack
        left = int(rng.integers(0, (w - crop_px) // config.pack + 1)) * config.pack
        window = np.s_[top:top + crop_px, left:left + crop_px]
        conditions.append(condition_map(clean[window], config, fb))
        # On a real frame the error channel (raw minus the smoothed stand-in) still enters the noised
        # input, so that input looks as on simulated frames, but it gets no loss.
        artifacts.append(artifact_map(clean[window], raw[window], config))
        weights.append(np.stack([np.ones((crop_px, crop_px), np.float32),
                                 np.full((crop_px, crop_px), 0.0 if data.real[i] else 1.0, np.float32)]))
        tops.append(top)
        lefts.append(left)
    return (torch.from_numpy(np.stack(conditions)), torch.from_numpy(np.stack(artifacts)),
            torch.tensor(tops), torch.tensor(lefts), torch.from_numpy(np.stack(weights)))


@dataclass(frozen=True)
class NoiseTrainOptions(HasLoopSettings):
    out: Path
    pairs: tuple[Path, ...] = ()
    sequences: tuple[Path, ...] = ()
    max_steps: int = 1_000_000
    max_minutes: float | None = None
    batch: int = 12
    crop_px: int = 192  # a multiple of the model's ``multiple_px``
    lr: float = 5e-4
    warmup_steps: int = 100
    checkpoint_every: int = 100
    log_every: int = 20
    seed: int = 0
    threads: int | None = None
    tiny: bool = False
    resume: bool = False
    max_frames: int | None = None
    real: Path | None = None  # real frames root (``../shared/real`` or a folder of your own sets)
    real_sets: tuple[str, ...] = LEARNABLE_SETS  # the sets of ``real`` to learn from (evaluation-only ones are refused)
    real_share: float = 0.5  # share of crops from real frames when there are others too
    init: Path | None = None  # start from this model folder's config and weights (fine-tuning)


# A model small enough to train in tests in seconds.
TINY = dict(channels=(8, 16), time_dim=16, groups=4, train_steps=20, sampling_steps=4)


@dataclass
class NoiseTrainReport:
    steps: int
    steps_this_run: int
    seconds_total: float
    frames: int
    loss: float  # mean over the last logging window


def train(options: NoiseTrainOptions, log: Callable[[str], None] = print) -> NoiseTrainReport:
    """Train (or resume) a depth-noise model; checkpoint, JSON-lines log and ``save_pretrained`` weights in ``out``."""
    from ..depth.noise_diffusion import NoiseDiffusionConfig, NoiseDiffusionModel
    from ..grasping.igd.scheduler import DDIMScheduler

    if not 0.0 <= options.real_share <= 1.0:
        raise ValueError(f"real_share must be in [0, 1], got {options.real_share}")
    run = open_run(options.loop)
    if run.state:
        config = NoiseDiffusionConfig.from_dict(json.loads(run.state["config"]), str(run.checkpoint))
        model = NoiseDiffusionModel(config)
    elif options.init is not None:
        model = NoiseDiffusionModel.from_pretrained(options.init, device="cpu")  # training runs on the CPU
        config = model.config
        log(f"fine-tuning {options.init}")
    else:
        config = NoiseDiffusionConfig(**(TINY if options.tiny else {}))
        model = NoiseDiffusionModel(config)
    if options.crop_px % config.multiple_px:
        raise ValueError(f"crop_px must be a multiple of {config.multiple_px}, got {options.crop_px}")
    log(f"depth-noise model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"config {asdict(config)}")
    data = load_training_set(options.pairs, options.sequences, options.max_frames, options.real, options.real_sets)
    log(f"{len(data)} raw frames ({sum(data.real)} real) on {len(data.cleans)} clean references")

    scheduler = DDIMScheduler(config.train_steps, clip_sample=1.0)

    def losses(rng, generator):
        condition, artifacts, top, left, weights = sample_batch(data, config, rng, options.batch, options.crop_px,
                                                                options.real_share)
        return {"loss": model.loss(condition, artifacts, scheduler, generator, top, left, weights)}

    result = run_loop(run, options.loop, model, losses, lambda: model.save_pretrained(run.out), log, objective="loss")
    return NoiseTrainReport(result.steps, result.steps_this_run, result.seconds_total, len(data),
                            result.losses.get("loss", math.nan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, nargs="*", default=[], help="simulated stereo-pair dataset folders")
    parser.add_argument("--sequences", type=Path, nargs="*", default=[], help="recorded static-scene sequence folders")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log and weights")
    parser.add_argument("--steps", type=int, default=1_000_000, help="stop at this total step count")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--batch", type=int, default=12, help="crops per batch (default: 12)")
    parser.add_argument("--crop-px", type=int, default=192, help="crop size in pixels (default: 192)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--max-frames", type=int, default=None, help="use only the first N simulated frames")
    parser.add_argument("--real", type=Path, default=None,
                        help="real frames root (../shared/real, or a folder of your own sets laid out the same "
                             "way): learn where the sensor's holes fall")
    add_real_sets_argument(parser)
    parser.add_argument("--real-share", type=float, default=0.5,
                        help="share of crops from real frames when mixed with other data (default: 0.5)")
    parser.add_argument("--init", type=Path, default=None,
                        help="fine-tune: start from this model folder (e.g. models/depth_noise)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (tests and smoke runs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise SystemExit("--steps and --batch must be at least 1")
    report = train(NoiseTrainOptions(args.out, tuple(args.pairs), tuple(args.sequences), args.steps,
                                     args.max_minutes, args.batch, args.crop_px, args.lr, seed=args.seed,
                                     threads=args.threads, tiny=args.tiny, resume=args.resume,
                                     max_frames=args.max_frames, real=args.real, real_sets=tuple(args.real_sets),
                                     real_share=args.real_share,
                                     init=args.init),
                   log=lambda line: print(line, flush=True))
    print(f"{report.steps} steps in total ({report.steps_this_run} now), {report.seconds_total / 60:.1f} min of "
          f"training over all runs, {report.frames} frames, last loss {report.loss:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
