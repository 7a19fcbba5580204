"""``diffgrasp train-leap``: train the LEAP-hand grasp model (``--method leap``) on LEAP grasp chunks (resumable)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..training.igd_train import DEFAULT_INPUTS, INPUT_VARIANTS

    parser = subparsers.add_parser(
        "train-leap", help="train the dexterous LEAP-hand grasp model (leap) on leap_chunk_*.npz data",
        description="Re-render every scene once (grids cached under --cache; the IGD cache of the same scenes "
                    "can be reused), then train for --steps or --max-minutes, whichever comes first. Checkpoints, "
                    "a JSON-lines loss log and the weights (config.json + weights.pt, loadable with "
                    "--method leap:weights=OUT) go to --out; --resume continues a run exactly where it stopped; "
                    "--init starts a new run from saved weights.",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of leap_chunk_*.npz files")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log and weights")
    parser.add_argument("--cache", type=Path, default=None, help="rendered-grid cache (default: DATA/leap_grid_cache)")
    parser.add_argument("--steps", type=int, default=1_000_000, help="stop at this total step count")
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
                        help="override a LeapConfig field of a new run (repeatable), e.g. --set seeds=32")
    parser.add_argument("--inputs", default=",".join(DEFAULT_INPUTS), metavar="VARIANT[,VARIANT...]",
                        help=f"side-view depth variants to learn from, any of {', '.join(INPUT_VARIANTS)} "
                             "(default %(default)s)")
    parser.set_defaults(run=run)


def _config_overrides(items: list[str]) -> tuple[tuple[str, object], ...]:
    from dataclasses import fields

    from ..grasping.leap.config import LeapConfig
    from ..grasping.planner import parse_method

    _, options = parse_method("leap:" + ",".join(items))
    known = {f.name for f in fields(LeapConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"--set: unknown LEAP config field(s) {unknown}; known: {sorted(known)}")
    return tuple(options.items())


def run(args: argparse.Namespace) -> int:
    from ..training.leap_train import BatchSizes, TrainOptions, train

    if args.steps < 1 or args.batch_scenes < 1 or args.checkpoint_every < 1 or args.log_every < 1:
        raise ValueError("--steps, --batch-scenes, --checkpoint-every and --log-every must be at least 1")
    options = TrainOptions(args.data, args.out, args.cache, args.steps, args.max_minutes,
                           BatchSizes(scenes=args.batch_scenes), args.lr, checkpoint_every=args.checkpoint_every,
                           log_every=args.log_every, seed=args.seed, threads=args.threads, tiny=args.tiny,
                           resume=args.resume, max_scenes=args.max_scenes, init=args.init,
                           config_overrides=_config_overrides(args.set),
                           inputs=tuple(filter(None, (name.strip() for name in args.inputs.split(",")))))
    report = train(options, log=lambda line: print(line, flush=True))
    print(f"diffgrasp train-leap: {report.steps} steps in total ({report.steps_this_run} now, "
          f"{report.seconds_this_run / 60:.1f} min) on {report.scenes} scenes / {report.grasps} grasps "
          f"({report.positives} successful); weights in {args.out}")
    return 0
