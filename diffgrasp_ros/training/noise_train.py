"""Training of the depth-noise diffusion model (``depth.noise_diffusion``), resumable, chunked by time.

Two kinds of data, mixed freely:

- simulated pairs (``training.depth_pairs`` chunks): the renderer's clean depth and the simulated
  stereo's raw depth of the same frame;
- recorded static-scene sequences (``camera.sequence`` folders, ``diffgrasp record``), which have no
  ground truth: the temporal prior fuses the sequence into a clean reference (per-pixel median of the
  valid readings, valid where most frames are) and every raw frame becomes a sample of the artifacts on
  it. What is invalid in most frames is invalid in the reference too, so persistent holes are not
  learned from sequences, only the frame-to-frame ones and the noise.

    python -m diffgrasp_ros.training.noise_train --pairs PAIRS --out RUN [--sequences SEQ ...] [--max-minutes 25]
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .loop import HasLoopSettings, open_run, run_loop

MIN_SEQUENCE_FRAMES = 5  # fewer frames give a median too noisy to stand in for the clean depth


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
    """Clean and raw depth (metres, 0 = invalid) of every training frame; clean is shared by a sequence's frames."""

    cleans: list[np.ndarray] = field(default_factory=list)
    raws: list[np.ndarray] = field(default_factory=list)
    clean_index: list[int] = field(default_factory=list)  # raws[i] is a sample on cleans[clean_index[i]]

    def add(self, clean: np.ndarray, raws: Sequence[np.ndarray]) -> None:
        for raw in raws:
            if raw.shape != clean.shape:
                raise ValueError(f"raw depth {raw.shape} does not match its clean depth {clean.shape}")
        self.cleans.append(clean.astype(np.float32))
        self.raws.extend(r.astype(np.float32) for r in raws)
        self.clean_index.extend([len(self.cleans) - 1] * len(raws))

    def __len__(self) -> int:
        return len(self.raws)


def load_training_set(pairs: Sequence[Path] = (), sequences: Sequence[Path] = (),
                      max_frames: int | None = None) -> TrainingSet:
    from ..camera.sequence import load_sequence
    from .depth_pairs import iter_pairs

    data = TrainingSet()
    for folder in pairs:
        for chunk in iter_pairs(folder):
            for clean, raw in zip(chunk.clean_depth_m, chunk.raw_depth_m):
                data.add(clean, [raw])
            if max_frames is not None and len(data) >= max_frames:
                return data
    for folder in sequences:
        data.add(*sequence_to_training_pairs([f.depth_m for f in load_sequence(folder)]))
    if not len(data):
        raise ValueError("no training data: pass simulated pairs (--pairs) and/or recorded sequences (--sequences)")
    return data


def sample_batch(data: TrainingSet, config, rng: np.random.Generator, batch: int, crop_px: int):
    """Random crops (aligned to the packing grid, so the coordinate channels mean the same as on whole
    images): (condition, artifacts, top, left) tensors."""
    import torch

    from ..depth.noise_diffusion import artifact_map, condition_map

    conditions, artifacts, tops, lefts = [], [], [], []
    for i in rng.integers(0, len(data), batch):
        raw, clean = data.raws[i], data.cleans[data.clean_index[i]]
        h, w = raw.shape
        if h < crop_px or w < crop_px:
            raise ValueError(f"training frames ({w}x{h}) are smaller than the crop ({crop_px} px)")
        top = int(rng.integers(0, (h - crop_px) // config.pack + 1)) * config.pack
        left = int(rng.integers(0, (w - crop_px) // config.pack + 1)) * config.pack
        window = np.s_[top:top + crop_px, left:left + crop_px]
        conditions.append(condition_map(clean[window], config))
        artifacts.append(artifact_map(clean[window], raw[window], config))
        tops.append(top)
        lefts.append(left)
    return (torch.from_numpy(np.stack(conditions)), torch.from_numpy(np.stack(artifacts)),
            torch.tensor(tops), torch.tensor(lefts))


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

    run = open_run(options.loop)
    if run.state:
        config = NoiseDiffusionConfig.from_dict(json.loads(run.state["config"]), str(run.checkpoint))
    else:
        config = NoiseDiffusionConfig(**(TINY if options.tiny else {}))
    if options.crop_px % config.multiple_px:
        raise ValueError(f"crop_px must be a multiple of {config.multiple_px}, got {options.crop_px}")
    model = NoiseDiffusionModel(config)
    log(f"depth-noise model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"config {asdict(config)}")
    data = load_training_set(options.pairs, options.sequences, options.max_frames)
    log(f"{len(data)} raw frames on {len(data.cleans)} clean references")

    scheduler = DDIMScheduler(config.train_steps, clip_sample=1.0)

    def losses(rng, generator):
        condition, artifacts, top, left = sample_batch(data, config, rng, options.batch, options.crop_px)
        return {"loss": model.loss(condition, artifacts, scheduler, generator, top, left)}

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
    parser.add_argument("--tiny", action="store_true", help="a tiny model (tests and smoke runs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise SystemExit("--steps and --batch must be at least 1")
    report = train(NoiseTrainOptions(args.out, tuple(args.pairs), tuple(args.sequences), args.steps,
                                     args.max_minutes, args.batch, args.crop_px, args.lr, seed=args.seed,
                                     threads=args.threads, tiny=args.tiny, resume=args.resume,
                                     max_frames=args.max_frames),
                   log=lambda line: print(line, flush=True))
    print(f"{report.steps} steps in total ({report.steps_this_run} now), {report.seconds_total / 60:.1f} min of "
          f"training over all runs, {report.frames} frames, last loss {report.loss:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
