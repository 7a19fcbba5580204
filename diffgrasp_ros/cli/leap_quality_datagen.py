"""``diffgrasp leap-quality-datagen``: the LEAP model's own grasps, lift-tested (the evaluator's data)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .datagen import add_chunk_timeout_argument, chunk_timeout


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "leap-quality-datagen", help="lift-test the LEAP model's own grasps in training clutter (evaluator data)",
        description="Clutter rounds of training objects (pile and packed alternating) perceived as the benchmark "
                    "perceives them, planned with the leap method; every proposed grasp is lift-tested from the same "
                    "world state by the simulated LEAP hand, then the first that held is executed and the next state "
                    "perceived. Writes leap_quality_NNNNNN.npz chunks to --out; re-running skips chunks already there.",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; resumed if it exists)")
    parser.add_argument("--chunks", type=int, required=True, help="chunks 0..N-1 to have in --out")
    parser.add_argument("--rounds-per-chunk", type=int, default=4, help="clutter rounds per chunk (default: 4)")
    parser.add_argument("--states-per-round", type=int, default=4, help="perceptions per round at most (default: 4)")
    parser.add_argument("--grasps-per-state", type=int, default=24,
                        help="grasps planned and tested per state (default: 24)")
    parser.add_argument("--poses-per-seed", type=int, default=4,
                        help="wrist poses the planner samples per seed (default: 4, the shipped data's)")
    parser.add_argument("--friction", type=float, default=1.0,
                        help="hand-object friction of the lift tests (default: 1.0, the executor's)")
    parser.add_argument("--noise", default="dex", help="depth noise model of the rendered views (default: dex)")
    parser.add_argument("--weights", default="", help="LEAP model folder (default: the shipped models/leap)")
    parser.add_argument("--seed", type=int, default=0, help="scene and planner seed (default: 0)")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: 1)")
    add_chunk_timeout_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sim.noise import NOISE_MODELS
    from ..training.leap_quality_data import QualityDatagenConfig, generate_quality_dataset

    for name in ("rounds_per_chunk", "states_per_round", "grasps_per_state", "poses_per_seed"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.noise not in NOISE_MODELS:
        raise ValueError(f"unknown --noise {args.noise!r}: choose one of {list(NOISE_MODELS)}")
    if not args.friction > 0:
        raise ValueError(f"--friction must be positive, got {args.friction}")
    config = QualityDatagenConfig(args.rounds_per_chunk, args.states_per_round, args.grasps_per_state,
                                  args.poses_per_seed, friction=args.friction, noise=args.noise, weights=args.weights,
                                  seed=args.seed)
    print(f"diffgrasp leap-quality-datagen: {args.chunks} chunk(s) x {args.rounds_per_chunk} rounds -> {args.out}, "
          f"{args.workers} worker(s)", flush=True)
    run = generate_quality_dataset(args.out, config, args.chunks, args.workers,
                                   progress=lambda line: print(line, flush=True), chunk_timeout_s=chunk_timeout(args))
    rate = 100.0 * run["held"] / max(run["grasps"], 1)
    print(f"wrote {run['chunks']} chunk(s): {run['states']} states, {run['grasps']} lift-tested grasps "
          f"({run['held']} held, {rate:.1f} %) in {run['seconds']:.1f} s: {run['grasps_per_second']} grasps/s")
    return 0
