"""``diffgrasp train``: train the IGD grasp model on a ``diffgrasp datagen`` dataset (resumable)."""
from __future__ import annotations

import argparse

from .training_args import add_training_run_arguments, training_run_options


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the Implicit Grasp Diffusion (igd) model on a datagen dataset",
        description="Re-render every scene of the dataset once (grids cached under --cache), then train for "
                    "--steps or --max-minutes, whichever comes first. Checkpoints, a JSON-lines loss log and "
                    "the weights (config.json + weights.pt, loadable with --method igd and weights=OUT) go to "
                    "--out; --resume continues from its checkpoint exactly where it stopped; --init starts a new "
                    "run from saved weights (e.g. the shipped models/igd) to fine-tune them on other data.",
    )
    add_training_run_arguments(parser, "dataset folder written by `diffgrasp datagen`", "igd_grid_cache",
                               "--set use_dam=false for the ablation without deformable attention")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..grasping.igd.config import IGDConfig
    from ..training.igd_train import BatchSizes, TrainOptions, train

    options = TrainOptions(batch=BatchSizes(scenes=args.batch_scenes), **training_run_options(args, "igd", IGDConfig))
    report = train(options, log=lambda line: print(line, flush=True))
    print(f"diffgrasp train: {report.steps} steps in total ({report.steps_this_run} now, "
          f"{report.seconds_this_run / 60:.1f} min; {report.seconds_total / 60:.1f} min over all runs) on "
          f"{report.scenes} scenes / {report.grasps} grasps; weights in {args.out}")
    return 0
