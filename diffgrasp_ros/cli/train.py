"""``diffgrasp train``: train the IGD grasp model on a ``diffgrasp datagen`` dataset (resumable)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..training.igd_train import DEFAULT_INPUTS, INPUT_VARIANTS

    parser = subparsers.add_parser(
        "train", help="train the Implicit Grasp Diffusion (igd) model on a datagen dataset",
        description="Re-render every scene of the dataset once (grids cached under --cache), then train for "
                    "--steps or --max-minutes, whichever comes first. Checkpoints, a JSON-lines loss log and "
                    "the weights (config.json + weights.pt, loadable with --method igd and weights=OUT) go to "
                    "--out; --resume continues from its checkpoint exactly where it stopped; --init starts a new "
                    "run from saved weights (e.g. the shipped models/igd) to fine-tune them on other data.",
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder written by `diffgrasp datagen`")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log and weights")
    parser.add_argument("--cache", type=Path, default=None, help="rendered-grid cache (default: DATA/igd_grid_cache)")
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
                        help="override a model config field of a new run (repeatable), e.g. --set use_dam=false "
                             "for the ablation without deformable attention")
    parser.add_argument("--inputs", default=",".join(DEFAULT_INPUTS), metavar="VARIANT[,VARIANT...]",
                        help="side-view depth the model learns from, one drawn per sample: any of "
                             f"{', '.join(INPUT_VARIANTS)} (clean; the benchmark's dex noise; noise grafted by "
                             "models/depth_noise; the simulated D435's stereo depth), default %(default)s")
    parser.set_defaults(run=run)


def _config_overrides(items: list[str]) -> tuple[tuple[str, object], ...]:
    from dataclasses import fields

    from ..grasping.igd.config import IGDConfig
    from ..grasping.planner import parse_method

    _, options = parse_method("igd:" + ",".join(items))
    known = {f.name for f in fields(IGDConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"--set: unknown IGD config field(s) {unknown}; known: {sorted(known)}")
    return tuple(options.items())


def run(args: argparse.Namespace) -> int:
    from ..training.igd_train import BatchSizes, TrainOptions, train

    if args.steps < 1 or args.batch_scenes < 1 or args.checkpoint_every < 1 or args.log_every < 1:
        raise ValueError("--steps, --batch-scenes, --checkpoint-every and --log-every must be at least 1")
    overrides = _config_overrides(args.set)
    options = TrainOptions(args.data, args.out, args.cache, args.steps, args.max_minutes,
                           BatchSizes(scenes=args.batch_scenes), args.lr, checkpoint_every=args.checkpoint_every,
                           log_every=args.log_every, seed=args.seed, threads=args.threads, tiny=args.tiny,
                           resume=args.resume, max_scenes=args.max_scenes, init=args.init,
                           config_overrides=overrides,
                           inputs=tuple(filter(None, (name.strip() for name in args.inputs.split(",")))))
    report = train(options, log=lambda line: print(line, flush=True))
    print(f"diffgrasp train: {report.steps} steps in total ({report.steps_this_run} now, "
          f"{report.seconds_this_run / 60:.1f} min; {report.seconds_total / 60:.1f} min over all runs) on "
          f"{report.scenes} scenes / {report.grasps} grasps; weights in {args.out}")
    return 0
