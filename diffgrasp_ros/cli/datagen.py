"""``diffgrasp datagen``: labelled grasps in simulated clutter, for training grasp models."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..sim.object_splits import SPLITS, ObjectSet, folder_objects, training_objects, validation_objects


def add_chunk_timeout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-timeout", type=float, default=None, metavar="SECONDS",
                        help="with several workers, a chunk still running after this long counts as hung: its "
                             "worker is replaced and the chunk made again once (default: derived from the chunk's "
                             "work, some 30 times what it needs)")


def chunk_timeout(args: argparse.Namespace) -> float | None:
    if args.chunk_timeout is not None and not args.chunk_timeout > 0:
        raise ValueError(f"--chunk-timeout must be positive, got {args.chunk_timeout}")
    return args.chunk_timeout


def object_sets(kinds: tuple[str, ...], folder: Path | None, split: str) -> dict[str, ObjectSet]:
    """The object set of each scene kind: a folder's objects, the training objects, or a validation ``split``."""
    if folder is not None:
        shared = folder_objects(folder)
        return {kind: shared for kind in kinds}
    if split == "training":
        return {kind: training_objects(kind) for kind in kinds}
    return {kind: validation_objects(kind, split) for kind in kinds}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "datagen", help="generate labelled grasps in simulated pile/packed scenes (training objects by default)",
        description="Generate scenes from the training objects (the shared sets minus the benchmark's "
                    "validation split, or the project's own train/ set when ../shared is absent), sample "
                    "grasp candidates on the fused surface and from the baseline planner, and label them by "
                    "simulated execution, an analytic antipodal + collision test, or both (which also "
                    "reports how well the analytic labels agree with simulation). Writes one .npz per "
                    "chunk of scenes (scene descriptions and grasps, no images) into --out; re-running "
                    "skips the chunks already there. --objects-split hash|families makes validation scenes "
                    "from a held-out split instead, for `diffgrasp train --val-data` only.",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; resumed if it exists)")
    parser.add_argument("--chunks", type=int, default=8, help="chunks to have in the dataset (default: 8)")
    parser.add_argument("--scenes-per-chunk", type=int, default=4, help="scenes per chunk file (default: 4)")
    parser.add_argument("--labels", choices=("sim", "analytic", "both", "checked"), default="sim",
                        help="labelling: simulated execution, analytic test, both, or checked (analytic, with every "
                             "analytic positive and --sim-check-fraction of the negatives executed in simulation, "
                             "whose label wins) (default: sim)")
    parser.add_argument("--sim-check-fraction", type=float, default=0.25,
                        help="with --labels checked, the share of analytic negatives also simulated (default: 0.25)")
    parser.add_argument("--randomise-physics", action="store_true",
                        help="per object, jitter the scale by x U[1 -/+ --scale-jitter], the mass by x U[0.5, 2] "
                             "and draw the lateral friction from U[0.4, 1.0] (recorded in the dataset)")
    parser.add_argument("--scale-jitter", type=float, default=0.15,
                        help="with --randomise-physics, the relative scale jitter (default: 0.15)")
    parser.add_argument("--max-negative-ratio", type=float, default=None, metavar="RATIO",
                        help="per scene, keep at most RATIO negatives per positive, dropping the rest at random "
                             "(default: keep all)")
    parser.add_argument("--scene", nargs="+", choices=("pile", "packed"), default=["pile", "packed"],
                        help="scene types, alternating (default: pile packed)")
    objects = parser.add_mutually_exclusive_group()
    objects.add_argument("--objects", type=Path, default=None,
                         help="folder of object URDF/OBJ/STL files to use instead of the training split")
    objects.add_argument("--objects-split", choices=("training", *SPLITS), default="training",
                         help="the objects' split: training (default), or the held-out validation objects of the "
                              "hash or families split, for validation losses (`diffgrasp train --val-data`) only: "
                              "never train on a dataset made from a validation split")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; chunk i derives from (seed, i) (default: 0)")
    parser.add_argument("--points-per-scene", type=int, default=12, help="surface points sampled per scene (default: 12)")
    parser.add_argument("--yaws", type=int, default=4, help="closing-axis angles per point (default: 4)")
    parser.add_argument("--depths", type=int, default=2, help="approach depths per point (default: 2)")
    parser.add_argument("--baseline-grasps", type=int, default=16,
                        help="baseline planner grasps added per scene (default: 16)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help=f"parallel worker processes (default: {os.cpu_count() or 1}, the cores); with "
                             "--ray local the CPUs of that cluster")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="make the chunks as tasks on a Ray cluster instead of the local pool, written by this "
                             "process and identical to the pool's: local (start one here), auto (the one `ray "
                             "start` runs here), HOST:PORT or ray://HOST:PORT; needs `pip install ray`")
    add_chunk_timeout_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.datagen import DatagenConfig, generate_dataset

    kinds = tuple(dict.fromkeys(args.scene))
    config = DatagenConfig(args.labels, args.scenes_per_chunk, args.seed, kinds, args.points_per_scene,
                           args.yaws, args.depths, args.baseline_grasps, args.sim_check_fraction,
                           args.randomise_physics, args.scale_jitter, args.max_negative_ratio)
    sets = object_sets(kinds, args.objects, args.objects_split)
    for kind, objects in sets.items():
        print(f"diffgrasp datagen: {kind} scenes from {objects.name} ({len(objects.objects)} objects)")
    if args.objects_split != "training":
        print(f"  validation objects ({args.objects_split} split): use this dataset as --val-data, never to train on")
    where = f"{args.workers} worker(s)" if args.ray is None else f"Ray cluster {args.ray}"
    print(f"  {args.chunks} chunks x {args.scenes_per_chunk} scenes into {args.out}, labels: {args.labels}, "
          f"{where}", flush=True)
    report = generate_dataset(args.out, config, args.chunks, sets, args.workers,
                              chunk_timeout_s=chunk_timeout(args), ray_address=args.ray)
    print(f"wrote {report.chunks_written} chunk(s), skipped {report.chunks_skipped} already there; "
          f"{report.scenes} scenes, {report.grasps} labelled grasps ({report.positives} positive) in "
          f"{report.seconds:.1f} s: {report.grasps_per_second:.1f} grasps/s")
    if args.labels == "checked":
        print(f"{report.disagreements} simulated label(s) overruled the analytic test")
    if report.agreement is not None:
        print(report.agreement)
    return 0
