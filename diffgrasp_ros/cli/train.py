"""``diffgrasp train``: train the IGD grasp model on a ``diffgrasp datagen`` dataset (resumable)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .training_args import add_training_run_arguments, training_run_options


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the Implicit Grasp Diffusion (igd) model on a datagen dataset",
        description="Re-render every scene of the dataset once (grids cached under --cache), then train for "
                    "--steps or --max-minutes, whichever comes first. Checkpoints, a JSON-lines loss log and "
                    "the weights (config.json + weights.pt, loadable with --method igd and weights=OUT) go to "
                    "--out; --resume continues from its checkpoint exactly where it stopped; --init starts a new "
                    "run from saved weights (e.g. the shipped models/igd) to fine-tune them on other data. "
                    "The IGD paper's schedule: --epochs 12 --lr 2e-4 --lr-drop-epochs 9 11. With --val-data, "
                    "the losses on held-out scenes go to OUT/val_log.jsonl (the learning curves).",
    )
    add_training_run_arguments(parser, "dataset folder(s) written by `diffgrasp datagen`, several trained on together "
                                       "as one set (e.g. an analytic-label dataset and a checked-label one)",
                               "igd_grid_cache", "--set use_dam=false for the ablation without deformable attention",
                               several_datasets=True)
    parser.add_argument("--epochs", type=int, default=None, metavar="E",
                        help="train E epochs instead of --steps; an epoch is ceil(training scenes / (--batch-scenes "
                             "x --accumulate x processes)) steps, printed when the data is loaded")
    parser.add_argument("--lr-drops", type=int, nargs="+", default=[], metavar="STEP",
                        help="multiply the learning rate by 0.1 after each of these total step counts (increasing; "
                             "on top of the warm-up), the same schedule when a run is resumed")
    parser.add_argument("--lr-drop-epochs", type=int, nargs="+", default=[], metavar="EPOCH",
                        help="--lr-drops given in epochs (see --epochs), e.g. 9 11 as in the IGD paper")
    parser.add_argument("--val-data", type=Path, nargs="+", default=[], metavar="FOLDER",
                        help="dataset folder(s) of held-out objects (`diffgrasp datagen --objects-split families`; "
                             "grids cached in FOLDER/igd_grid_cache) that are never trained on: the model's losses "
                             "on fixed batches of them are appended to OUT/val_log.jsonl")
    parser.add_argument("--val-every", type=int, default=None, metavar="N",
                        help="with --val-data, steps between validations; also at the last step (default: "
                             "--checkpoint-every)")
    parser.add_argument("--val-batches", type=int, default=None, metavar="N",
                        help="with --val-data, the fixed validation batches of --batch-scenes scenes, the same at "
                             "every validation and in every run (default: 8)")
    parser.add_argument("--ddp", type=int, default=1, metavar="N",
                        help="train data-parallel in N processes on this machine (torch DDP: gloo on the CPU, NCCL "
                             "with a GPU each), each taking its batches of a step's N times as many; under torchrun "
                             "the processes are torchrun's instead (default: 1)")
    parser.add_argument("--accumulate", type=int, default=1, metavar="K",
                        help="batches of --batch-scenes per step and process, their gradients averaged; one process "
                             "with --accumulate N takes exactly the steps of N processes (default: 1)")
    parser.set_defaults(run=run)


def schedule_options(args: argparse.Namespace) -> dict:
    """The run length, learning-rate drop and validation keyword arguments of ``igd_train.TrainOptions``."""
    if args.epochs is not None and args.steps is not None:
        raise ValueError("pass --epochs or --steps, not both: --epochs sets the step count")
    if not args.val_data and (args.val_every is not None or args.val_batches is not None):
        raise ValueError("--val-every and --val-batches need --val-data")
    return dict(epochs=args.epochs, lr_drop_steps=tuple(args.lr_drops), lr_drop_epochs=tuple(args.lr_drop_epochs),
                val_data=tuple(args.val_data), validate_every=args.val_every,
                **({} if args.val_batches is None else {"val_batches": args.val_batches}))


def run(args: argparse.Namespace) -> int:
    from ..grasping.igd.config import IGDConfig
    from ..training.distributed import group_from_environment, joined
    from ..training.igd_train import BatchSizes, TrainOptions, train, train_in_processes

    options = TrainOptions(batch=BatchSizes(scenes=args.batch_scenes), accumulate=args.accumulate,
                           **training_run_options(args, "igd", IGDConfig), **schedule_options(args))
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
