"""``diffgrasp render-grids``: fill a dataset's grid cache, the scenes `diffgrasp train` renders first, in parallel."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..training.igd_train import DEFAULT_INPUTS, INPUT_VARIANTS

    parser = subparsers.add_parser(
        "render-grids", help="render a dataset's training grids in parallel (what `diffgrasp train` renders first)",
        description="Render the TSDF grids `diffgrasp train` learns from (each scene's side view in every --inputs "
                    "variant and the multi-view occupancy target) for every chunk of a datagen dataset, a chunk per "
                    "job in worker processes, into the cache `train` reads. Scenes already cached are skipped, so "
                    "it can run beside a datagen still writing chunks and be run again to catch up; `train` then "
                    "starts at once instead of rendering every scene in one process.")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder written by `diffgrasp datagen`")
    parser.add_argument("--cache", type=Path, default=None,
                        help="rendered-grid cache (default: DATA/igd_grid_cache, train's default)")
    parser.add_argument("--inputs", default=",".join(DEFAULT_INPUTS), metavar="VARIANT[,VARIANT...]",
                        help=f"side-view depth variants to render, as train's --inputs: any of "
                             f"{', '.join(INPUT_VARIANTS)} (default: %(default)s)")
    parser.add_argument("--noise-weights", type=Path, default=None, metavar="FOLDER",
                        help="depth noise model for side_graft (default: models/depth_noise)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2, the cores)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.igd_train import dataset_caches, render_dataset_grids

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    cache = dataset_caches([args.data], args.cache)[0]
    inputs = tuple(filter(None, (name.strip() for name in args.inputs.split(","))))
    chunks, rendered = render_dataset_grids(args.data, cache, inputs, args.noise_weights, args.workers)
    print(f"diffgrasp render-grids: {chunks} chunk file(s) of {args.data}; {rendered} scene(s) rendered into {cache}, "
          "the others were cached already")
    return 0
