"""Training the contact-map transfer model (``grasping.leap.transfer``) on pairs of ``training.transfer_data``.

Pairs are made once, in memory, from the given templates (``pairs_per_template`` each, targets among the training
instances of the template's category); a step's batch is ``batch_size`` of them drawn from ``(seed, step)``.
The loss is the model's: ε-prediction MSE of the contact map and of the part + direction maps, plus the
cycle-consistency error of the dual mapping. The shared loop (``training.loop``: AdamW, checkpoints, resume, a
JSON-lines log) writes ``save_pretrained`` weights to ``out``.

    python -m diffgrasp_ros.training.transfer_train --template mug_handle.npz --out runs/transfer --max-steps 2000
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..grasping.leap.templates import GraspTemplate, load_template
from ..grasping.igd.scheduler import DDIMScheduler
from ..grasping.leap.transfer.config import TINY, TransferConfig
from ..grasping.leap.transfer.model import TransferModel
from ..grasping.leap.transfer.pretrained import save_pretrained
from .loop import LoopResult, LoopSettings, open_run, run_loop
from .transfer_data import SURFACE_POINTS, TransferPair, collate, training_pairs


@dataclass(frozen=True)
class TransferTrainOptions:
    loop: LoopSettings  # the run folder, steps, learning rate, checkpoints, seed, resume
    pairs_per_template: int = 64
    batch_size: int = 4
    surface_points: int = SURFACE_POINTS  # target surface samples before the partial view
    tiny: bool = False


def train(options: TransferTrainOptions, templates: Sequence[GraspTemplate],
          log: Callable[[str], None] = print) -> tuple[TransferModel, LoopResult]:
    """Train (or resume) a transfer model on pairs of ``templates``; returns it and the loop's result."""
    if not templates:
        raise ValueError("training a transfer model needs at least one template")
    if options.batch_size < 1 or options.pairs_per_template < 1:
        raise ValueError("batch_size and pairs_per_template must be at least 1")
    run = open_run(options.loop)
    config = TransferConfig(**json.loads(run.state["config"])) if run.state else TransferConfig(
        **(TINY if options.tiny else {}))
    model = TransferModel(config)
    log(f"transfer model: {sum(p.numel() for p in model.parameters()) / 1e6:.3f} M parameters")
    pairs: list[TransferPair] = []
    for k, template in enumerate(templates):
        pairs += training_pairs(template, options.pairs_per_template, config, seed=options.loop.seed * 10_007 + k,
                                surface_points=options.surface_points)
    log(f"{len(pairs)} pairs from {len(templates)} templates")
    scheduler = DDIMScheduler(config.train_steps)

    def losses(rng: np.random.Generator, generator):
        chosen = rng.choice(len(pairs), min(options.batch_size, len(pairs)), replace=False)
        return model.losses(collate([pairs[i] for i in chosen], config, rng), scheduler, generator)

    result = run_loop(run, options.loop, model, losses, lambda: save_pretrained(model, run.out), log)
    return model, result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the LEAP contact-map transfer model (not trained yet: "
                                     "this is the loop weights are to come from).")
    parser.add_argument("--template", type=Path, action="append", required=True, help="a template .npz (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--pairs-per-template", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    loop = LoopSettings(args.out, max_steps=args.max_steps, lr=args.lr, seed=args.seed, resume=args.resume)
    options = TransferTrainOptions(loop, args.pairs_per_template, args.batch_size, tiny=args.tiny)
    train(options, [load_template(path) for path in args.template])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
