"""Training the contact-map transfer model (``grasping.leap.transfer``) on pairs of ``training.transfer_data``.

Pairs are made once, in memory, from the given templates (``pairs_per_template`` each, targets among the training
instances of the template's category); a step's batch is ``batch_size`` of them drawn from ``(seed, step)``.
The loss is the model's: ε-prediction MSE of the contact map and of the part + direction maps, plus the
cycle-consistency error of the dual mapping. The shared loop (``training.loop``: AdamW, checkpoints, resume, a
JSON-lines log) writes ``save_pretrained`` weights to ``out``. Validation: the same losses on fixed batches of
pairs whose targets are the categories' held-out instances (``val_log.jsonl``).

    python -m diffgrasp_ros.training.transfer_train --template TEMPLATES_DIR --out runs/transfer --max-steps 2000
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

VALIDATION_SEED = 90_001  # validation pairs and batches: fixed, and drawn from no training stream


@dataclass(frozen=True)
class TransferTrainOptions:
    loop: LoopSettings  # the run folder, steps, learning rate, checkpoints, seed, resume
    pairs_per_template: int = 64
    batch_size: int = 4
    surface_points: int = SURFACE_POINTS  # target surface samples before the partial view
    tiny: bool = False
    val_pairs_per_template: int = 0  # pairs with held-out targets for validation (0: none)
    val_batches: int = 8


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

    validate = None
    if options.val_pairs_per_template > 0:
        held_out: list[TransferPair] = []
        for k, template in enumerate(templates):
            held_out += training_pairs(template, options.val_pairs_per_template, config, seed=VALIDATION_SEED + k,
                                       surface_points=options.surface_points, split="held_out")
        validate = validation_losses(model, scheduler, held_out, config, options.batch_size, options.val_batches)
        log(f"{len(held_out)} validation pairs on held-out instances")
    result = run_loop(run, options.loop, model, losses, lambda: save_pretrained(model, run.out), log,
                      validate=validate)
    return model, result


def validation_losses(model: TransferModel, scheduler: DDIMScheduler, pairs: Sequence[TransferPair],
                      config: TransferConfig, batch_size: int, batches: int) -> Callable[[], dict[str, float]]:
    """The model's mean losses on ``batches`` fixed batches of ``pairs`` (fixed draws, fixed noise)."""
    import torch

    rng = np.random.default_rng(VALIDATION_SEED)
    fixed = [collate([pairs[i] for i in rng.choice(len(pairs), min(batch_size, len(pairs)), replace=False)],
                     config, rng) for _ in range(batches)]

    def validate() -> dict[str, float]:
        totals: dict[str, float] = {}
        for k, batch in enumerate(fixed):
            generator = torch.Generator().manual_seed(VALIDATION_SEED + k)
            for name, value in model.losses(batch, scheduler, generator).items():
                totals[name] = totals.get(name, 0.0) + float(value) / len(fixed)
        return totals

    return validate


def template_files(paths: Sequence[Path]) -> list[Path]:
    """The template files named, a folder standing for every .npz in it."""
    files: list[Path] = []
    for path in paths:
        found = sorted(path.glob("*.npz")) if path.is_dir() else [path]
        if not found:
            raise ValueError(f"no template (.npz) in {path}")
        files += found
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the LEAP contact-map transfer model on grasp templates "
                                     "(models/leap_transfer/MODEL_CARD.md has the shipped weights' command).")
    parser.add_argument("--template", type=Path, action="append", required=True,
                        help="a template .npz, or a folder of them (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--pairs-per-template", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-pairs-per-template", type=int, default=0,
                        help="validation pairs with held-out targets per template (default: 0, no validation)")
    parser.add_argument("--max-minutes", type=float, help="stop (and save) after this long")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--lr-drop-steps", type=int, nargs="*", default=(), help="steps after which the lr drops x0.1")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    loop = LoopSettings(args.out, max_steps=args.max_steps, max_minutes=args.max_minutes, lr=args.lr,
                        checkpoint_every=args.checkpoint_every, seed=args.seed, threads=args.threads,
                        resume=args.resume, lr_drop_steps=tuple(args.lr_drop_steps))
    options = TransferTrainOptions(loop, args.pairs_per_template, args.batch_size, tiny=args.tiny,
                                   val_pairs_per_template=args.val_pairs_per_template)
    train(options, [load_template(path) for path in template_files(args.template)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
