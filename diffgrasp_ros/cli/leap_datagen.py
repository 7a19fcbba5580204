"""``diffgrasp leap-datagen``: LEAP-hand grasps built from a gripper dataset, labelled by lift tests."""
from __future__ import annotations

import argparse
from pathlib import Path

from .datagen import add_chunk_timeout_argument, chunk_timeout


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "leap-datagen", help="build LEAP-hand grasps from a gripper grasp dataset and label them by lift tests",
        description="For each scene of a gripper grasp dataset (made by 'diffgrasp datagen' from the training "
                    "objects), take gripper grasp candidates (positives up to a cap, perturbed positives and "
                    "negatives), retarget them onto the LEAP hand (palm aligned to the grasp, pre-shape open for "
                    "the width), close the fingers to contact, lift-test with the free-floating simulated LEAP "
                    "hand at the given hand-object friction (retrying a failed grasp turned 180 deg about its "
                    "approach, keeping the variant that holds) and store palm pose, pre-grasp and contact joints and labels in "
                    "compact leap_chunk_NNNNNN.npz files (one per source chunk) in --out; re-running skips the "
                    "chunks already there.",
    )
    parser.add_argument("--data", type=Path, required=True, help="gripper dataset folder (chunk_*.npz)")
    parser.add_argument("--out", type=Path, required=True, help="LEAP dataset folder (created; resumed if it exists)")
    parser.add_argument("--max-scenes", type=int, default=None, help="use at most this many source scenes (default: all)")
    parser.add_argument("--grasps-per-scene", type=int, default=32, help="candidates lift-tested per scene (default: 32)")
    parser.add_argument("--friction", type=float, default=0.2,
                        help="hand-object friction coefficient of the lift tests (default: 0.2, DexGraspNet's)")
    parser.add_argument("--no-refine", action="store_true",
                        help="do not retry a failed grasp turned 180 deg about its approach (thumb and fingers swapped)")
    parser.add_argument("--seed", type=int, default=0, help="candidate selection seed (default: 0)")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: 1)")
    add_chunk_timeout_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.leap_data import LeapDatagenConfig, generate_leap_dataset

    if args.grasps_per_scene < 1:
        raise ValueError("--grasps-per-scene must be at least 1")
    if args.max_scenes is not None and args.max_scenes < 1:
        raise ValueError("--max-scenes must be at least 1")
    config = LeapDatagenConfig(grasps_per_scene=args.grasps_per_scene, friction=args.friction,
                               try_flipped=not args.no_refine, seed=args.seed)
    print(f"diffgrasp leap-datagen: {args.data} -> {args.out}, {args.max_scenes or 'all'} scenes x "
          f"{args.grasps_per_scene} grasps, friction {args.friction}, refine {'off' if args.no_refine else 'flip'}, "
          f"{args.workers} worker(s)", flush=True)
    report = generate_leap_dataset(args.data, args.out, config, args.max_scenes, args.workers,
                                   progress=lambda line: print(line, flush=True), chunk_timeout_s=chunk_timeout(args))
    rate = 100.0 * report.positives / max(report.grasps, 1)
    print(f"wrote {report.chunks_written} chunk(s), skipped {report.chunks_skipped} already there; "
          f"{report.scenes} scenes, {report.grasps} lift-tested grasps ({report.positives} held, {rate:.1f} %) in "
          f"{report.seconds:.1f} s: {report.grasps_per_second:.2f} grasps/s")
    if report.outcomes:
        print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items(), key=lambda kv: -kv[1])))
    return 0
