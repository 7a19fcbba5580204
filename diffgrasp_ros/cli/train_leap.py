"""``diffgrasp train-leap``: train the LEAP-hand grasp model (``--method leap``) on LEAP grasp chunks (resumable)."""
from __future__ import annotations

import argparse

from .training_args import add_training_run_arguments, training_run_options


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-leap", help="train the dexterous LEAP-hand grasp model (leap) on leap_chunk_*.npz data",
        description="Re-render every scene once (grids cached under --cache; the IGD cache of the same scenes "
                    "can be reused), then train for --steps or --max-minutes, whichever comes first. Checkpoints, "
                    "a JSON-lines loss log and the weights (config.json + weights.pt, loadable with "
                    "--method leap:weights=OUT) go to --out; --resume continues a run exactly where it stopped; "
                    "--init starts a new run from saved weights.",
    )
    add_training_run_arguments(parser, "folder of leap_chunk_*.npz files (`diffgrasp leap-datagen`)",
                               "leap_grid_cache", "--set seeds=32")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..grasping.leap.config import LeapConfig
    from ..training.leap_train import BatchSizes, TrainOptions, train

    options = TrainOptions(batch=BatchSizes(scenes=args.batch_scenes), **training_run_options(args, "leap", LeapConfig))
    report = train(options, log=lambda line: print(line, flush=True))
    print(f"diffgrasp train-leap: {report.steps} steps in total ({report.steps_this_run} now, "
          f"{report.seconds_this_run / 60:.1f} min) on {report.scenes} scenes / {report.grasps} grasps "
          f"({report.positives} successful); weights in {args.out}")
    return 0
