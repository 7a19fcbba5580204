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
    parser.add_argument("--ddp", type=int, default=1, metavar="N",
                        help="train data-parallel in N processes on this machine (torch DDP: gloo on the CPU, NCCL "
                             "with a GPU each), each taking its batches of a step's N times as many; under torchrun "
                             "the processes are torchrun's instead (default: 1)")
    parser.add_argument("--accumulate", type=int, default=1, metavar="K",
                        help="batches of --batch-scenes per step and process, their gradients averaged; one process "
                             "with --accumulate N takes exactly the steps of N processes (default: 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..grasping.igd.config import IGDConfig
    from ..training.distributed import group_from_environment, joined
    from ..training.igd_train import BatchSizes, TrainOptions, train, train_in_processes

    options = TrainOptions(batch=BatchSizes(scenes=args.batch_scenes), accumulate=args.accumulate,
                           **training_run_options(args, "igd", IGDConfig))
    launched = group_from_environment()  # torchrun's processes, or this one alone
    if args.ddp != 1 and launched.distributed:
        raise ValueError(f"--ddp {args.ddp} under torchrun, which started {launched.world_size} processes already: "
                         "pass one or the other")
    if args.ddp != 1:
        report = train_in_processes(options, args.ddp)
    else:
        with joined(launched) as group:
            report = train(options, lambda line: print(line, flush=True), group)
        if not group.is_main:
            return 0
    print(f"diffgrasp train: {report.steps} steps in total ({report.steps_this_run} now, "
          f"{report.seconds_this_run / 60:.1f} min; {report.seconds_total / 60:.1f} min over all runs) on "
          f"{report.scenes} scenes / {report.grasps} grasps; weights in {args.out}")
    return 0
