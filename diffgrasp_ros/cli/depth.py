"""``diffgrasp depth-data`` and ``diffgrasp train-restore``: simulated stereo pairs and the learned
depth restoration model trained on them."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..camera.real_frames import add_real_sets_argument


def add_parsers(subparsers) -> None:
    data = subparsers.add_parser(
        "depth-data", help="simulate D435 stereo pairs (raw + clean depth, IR, materials) for depth learning",
        description="Render pile/packed clutter of the training (or held-out validation) objects with the "
                    "physically based D435 simulator from varied camera poses, objects given random materials "
                    "(mostly diffuse, some dark/specular/transparent). Writes chunk_NNNNNN.npz files (uint16 mm "
                    "depth, uint8 IR and material ids) into --out; re-running skips the chunks already there.",
    )
    data.add_argument("--out", type=Path, required=True, help="dataset folder (created; resumed if it exists)")
    data.add_argument("--chunks", type=int, default=8, help="chunks to have in the dataset (default: 8)")
    data.add_argument("--frames-per-chunk", type=int, default=8, help="frames per chunk file (default: 8)")
    data.add_argument("--views-per-scene", type=int, default=2, help="camera poses per scene (default: 2)")
    data.add_argument("--split", choices=("train", "val"), default="train",
                      help="object split: training objects, or the held-out validation objects (default: train)")
    data.add_argument("--seed", type=int, default=0, help="dataset seed; chunk i derives from (seed, split, i)")
    data.set_defaults(run=run_data)

    train = subparsers.add_parser(
        "train-restore", help="train the learned depth restoration model on depth-data pairs (resumable)",
        description="Train the depth restoration CNN (raw depth + optional colour -> dense depth that keeps the "
                    "valid raw depth) on simulated pairs and, with --real, self-supervised on real frames, for --steps or "
                    "--max-minutes, whichever comes first. Checkpoint, JSON-lines log and the weights "
                    "(config.json + weights.pt, loadable by DepthProcessor('restore', weights=OUT)) go to --out; "
                    "--resume continues from the checkpoint where it stopped (give it the same --steps).",
    )
    train.add_argument("--data", type=Path, required=True, help="training pairs written by `diffgrasp depth-data`")
    train.add_argument("--val-data", type=Path, default=None, help="validation pairs, scored at each checkpoint")
    train.add_argument("--real", type=Path, default=None,
                       help="real frames laid out like ../shared/real (<set>/<frame>/depth.png, color.png, "
                            "camera.json): the --real-sets train hidden-hole filling with colour")
    add_real_sets_argument(train)
    train.add_argument("--real-fraction", type=float, default=0.7,
                       help="share of training crops taken from --real frames (default: 0.7)")
    train.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log and weights")
    train.add_argument("--steps", type=int, default=10_000,
                       help="total step count; the learning rate decays to zero there (cosine; default: 10000)")
    train.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    train.add_argument("--batch", type=int, default=4, help="crops per batch (default: 4)")
    train.add_argument("--crop", type=int, default=256, help="square training crop, pixels (default: 256)")
    train.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (default: 2e-3)")
    train.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default: 200)")
    train.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batches (default: 0)")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    train.add_argument("--tiny", action="store_true", help="a tiny model (tests and smoke runs)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.set_defaults(run=run_train)


def run_data(args: argparse.Namespace) -> int:
    from ..training.depth_pairs import generate_pairs

    start = time.perf_counter()
    paths = generate_pairs(args.out, args.chunks, args.frames_per_chunk, args.split, args.seed,
                           args.views_per_scene, log=lambda line: print(line, flush=True))
    print(f"diffgrasp depth-data: {len(paths)} chunks of {args.frames_per_chunk} frames in {args.out} "
          f"({time.perf_counter() - start:.0f} s this run)")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from ..training.restore_train import RestoreTrainOptions, train_restore

    options = RestoreTrainOptions(args.data, args.out, val_data=args.val_data, real=args.real,
                                  real_sets=tuple(args.real_sets),
                                  real_fraction=args.real_fraction, steps=args.steps,
                                  max_minutes=args.max_minutes, batch=args.batch, crop=args.crop, lr=args.lr,
                                  checkpoint_every=args.checkpoint_every, seed=args.seed, threads=args.threads,
                                  tiny=args.tiny, resume=args.resume)
    report = train_restore(options, log=lambda line: print(line, flush=True))
    print(f"diffgrasp train-restore: {report.steps} steps in total ({report.steps_this_run} now, "
          f"{report.seconds_this_run / 60:.1f} min) on {report.frames} frames; weights in {args.out}")
    return 0
