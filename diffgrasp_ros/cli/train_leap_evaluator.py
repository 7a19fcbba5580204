"""``diffgrasp train-leap-evaluator``: train the LEAP grasp evaluator on lift-tested model grasps (resumable)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-leap-evaluator", help="train the LEAP grasp evaluator, P(held), on leap_quality_*.npz data",
        description="Train the evaluator that ranks the leap method's grasps on the model's own grasps, lift-tested "
                    "by `diffgrasp leap-quality-datagen`. Every 10th round is held out and reported on at the end "
                    "(AUC; held fraction of the first-ranked grasp per state, evaluator against planner). Weights "
                    "(loadable with --method leap:evaluator=OUT), checkpoint, loss log and evaluation.json go to --out.",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of leap_quality_*.npz chunks")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log and weights")
    parser.add_argument("--steps", type=int, default=1500, help="stop at this total step count (default: 1500)")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--batch", type=int, default=128, help="grasps per batch, half held (default: 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    parser.add_argument("--holdout-every", type=int, default=10, help="hold out every Nth round (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batches (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.leap_eval_train import EvaluatorTrainOptions, train_evaluator

    if args.steps < 1 or args.batch < 2 or args.holdout_every < 2:
        raise ValueError("--steps must be at least 1, --batch and --holdout-every at least 2")
    options = EvaluatorTrainOptions(args.data, args.out, max_steps=args.steps, max_minutes=args.max_minutes,
                                    batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
                                    resume=args.resume, holdout_every=args.holdout_every)
    report = train_evaluator(options, log=lambda line: print(line, flush=True))
    print(f"diffgrasp train-leap-evaluator: {report['steps']} steps; weights in {args.out}")
    return 0
