"""Arguments shared by the commands that train a grasp model on re-rendered scenes (``train``, ``train-leap``)."""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path


DEFAULT_STEPS = 1_000_000


def add_training_run_arguments(parser: argparse.ArgumentParser, data_help: str, cache_default: str,
                               set_example: str, several_datasets: bool = False) -> None:
    """The data, run-folder, budget, optimiser, resume / init / --set and input-variant arguments. With
    ``several_datasets``, --data takes one or more folders trained on together, and --cache one per folder."""
    from ..training.igd_train import DEFAULT_INPUTS, INPUT_VARIANTS

    if several_datasets:
        parser.add_argument("--data", type=Path, nargs="+", required=True, metavar="FOLDER", help=data_help)
        parser.add_argument("--cache", type=Path, nargs="+", default=None, metavar="FOLDER",
                            help=f"rendered-grid cache, one folder per --data folder in the same order (default: "
                                 f"each DATA/{cache_default}); datasets may share chunk numbers and scene seeds, so "
                                 "each keeps its own cache")
    else:
        parser.add_argument("--data", type=Path, required=True, help=data_help)
        parser.add_argument("--cache", type=Path, default=None,
                            help=f"rendered-grid cache (default: DATA/{cache_default})")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log and weights")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"stop at this total step count (default: {DEFAULT_STEPS})")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--batch-scenes", type=int, default=4, help="scenes per batch (default: 4)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default: 200)")
    parser.add_argument("--log-every", type=int, default=20, help="steps between loss lines (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batches (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--max-scenes", type=int, default=None, help="use only the first N scenes")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (tests and smoke runs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from the weights in this folder (config.json + weights.pt), new optimizer")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a model config field of a new run (repeatable), e.g. {set_example}")
    parser.add_argument("--inputs", default=",".join(DEFAULT_INPUTS), metavar="VARIANT[,VARIANT...]",
                        help="side-view depth the model learns from, one drawn per sample: any of "
                             f"{', '.join(INPUT_VARIANTS)} (clean; the benchmark's dex noise; noise grafted by "
                             "models/depth_noise; the simulated D435's stereo depth), default %(default)s")
    parser.add_argument("--noise-weights", type=Path, default=None, metavar="FOLDER",
                        help="depth noise model that grafts side_graft (a save_pretrained folder; default: "
                             "models/depth_noise); the cache keeps grids of different noise models apart")


def training_run_options(args: argparse.Namespace, method: str, config_cls) -> dict:
    """Checked keyword arguments common to ``igd_train.TrainOptions`` and ``leap_train.TrainOptions``
    (all but ``batch``)."""
    from ..grasping.planner import parse_method

    steps = DEFAULT_STEPS if args.steps is None else args.steps
    if steps < 1 or args.batch_scenes < 1 or args.checkpoint_every < 1 or args.log_every < 1:
        raise ValueError("--steps, --batch-scenes, --checkpoint-every and --log-every must be at least 1")
    _, overrides = parse_method(f"{method}:" + ",".join(args.set))
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"--set: unknown {method.upper()} config field(s) {unknown}; known: {sorted(known)}")
    return dict(data=_folders(args.data), out=args.out, cache=_folders(args.cache), max_steps=steps,
                max_minutes=args.max_minutes, lr=args.lr, checkpoint_every=args.checkpoint_every,
                log_every=args.log_every, seed=args.seed, threads=args.threads, tiny=args.tiny, resume=args.resume,
                max_scenes=args.max_scenes, init=args.init, config_overrides=tuple(overrides.items()),
                inputs=tuple(filter(None, (name.strip() for name in args.inputs.split(",")))),
                noise_weights=args.noise_weights)


def _folders(value):
    """A folder argument as the options take it: the folders of ``nargs="+"`` as a tuple (the options are frozen)."""
    return tuple(value) if isinstance(value, list) else value
