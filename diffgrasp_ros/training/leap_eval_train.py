"""Training the LEAP grasp evaluator (``grasping.leap.evaluator``) on the model's own lift-tested grasps.

Data: a folder of ``leap_quality_NNNNNN.npz`` (``training.leap_quality_data``). Every grasp's inputs are
computed once from its state's TSDF; the rounds whose index is a multiple of ``holdout_every`` are held
out, and the end of training reports on them what matters for ranking: the ROC AUC of P(held), and per
state the held fraction of the grasp ranked first by the evaluator, against the planner's own first
grasp and against the best possible (some grasp of the state held). Batches are balanced between held
and failed grasps and drawn from ``(seed, step)`` alone (resumable).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..grasping.leap.evaluator import LeapEvaluatorConfig, grasp_inputs
from .atomic_files import write_json_atomic
from .loop import HasLoopSettings, open_run, run_loop


@dataclass
class QualitySet:
    volume: np.ndarray  # (N, 1, *lattice) float32
    vector: np.ndarray  # (N, 36) float32
    label: np.ndarray  # (N,) bool
    state: np.ndarray  # (N,) int: a global state index
    rank: np.ndarray  # (N,) the planner's order within the state

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, mask: np.ndarray) -> "QualitySet":
        return QualitySet(self.volume[mask], self.vector[mask], self.label[mask], self.state[mask], self.rank[mask])


def load_quality_data(folder: Path, config: LeapEvaluatorConfig, holdout_every: int,
                      log: Callable[[str], None] = print) -> tuple[QualitySet, QualitySet]:
    """(training, held-out) grasps of every chunk in ``folder``."""
    paths = sorted(Path(folder).glob("leap_quality_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no leap_quality_*.npz chunks in {folder} (make them with "
                                "`diffgrasp leap-quality-datagen`)")
    parts, states = [], 0
    for path in paths:
        with np.load(path) as chunk:
            if int(chunk["format_version"]) != 1:
                raise ValueError(f"{path}: unknown format version {int(chunk['format_version'])}")
            tsdf, s = chunk["tsdf"], chunk["grasp_state"]
            T, q, q_pre = chunk["T_tcp"], chunk["q_grasp"], chunk["q_pregrasp"]
            rounds = chunk["state_round"][s]
            for k in np.unique(s):
                rows = np.flatnonzero(s == k)
                volume, vector = grasp_inputs(config, tsdf[k].astype(np.float32), T[rows, :3, :3], T[rows, :3, 3],
                                              q[rows], q_pre[rows])
                parts.append((volume.numpy(), vector.numpy(), chunk["label"][rows] == 1,
                              np.full(len(rows), states + k), chunk["rank"][rows].astype(int),
                              rounds[rows] % holdout_every == 0))
            states += len(tsdf)
    data = QualitySet(*(np.concatenate([p[i] for p in parts]) for i in range(5)))
    held_out = np.concatenate([p[5] for p in parts])
    log(f"{len(paths)} chunks, {states} states, {len(data)} grasps ({int(data.label.sum())} held); "
        f"{int(held_out.sum())} grasps of every {holdout_every}th round held out")
    return data.subset(~held_out), data.subset(held_out)


def ranking_report(data: QualitySet, logits: np.ndarray) -> dict[str, float]:
    """AUC of the logits; per state with grasps, the held fraction of the evaluator's first grasp, of the
    planner's first, and the fraction of states where some grasp held."""
    from scipy.stats import rankdata

    y = data.label
    ranks = rankdata(logits)
    positives, negatives = int(y.sum()), int((~y).sum())
    auc = (ranks[y].sum() - positives * (positives + 1) / 2) / max(positives * negatives, 1)
    evaluator_first, planner_first, any_held = [], [], []
    for s in np.unique(data.state):
        rows = np.flatnonzero(data.state == s)
        evaluator_first.append(y[rows[np.argmax(logits[rows])]])
        planner_first.append(y[rows[np.argmin(data.rank[rows])]])
        any_held.append(y[rows].any())
    return {"auc": float(auc), "states": len(any_held), "held_first_evaluator": float(np.mean(evaluator_first)),
            "held_first_planner": float(np.mean(planner_first)), "held_any": float(np.mean(any_held)),
            "held_all": float(y.mean())}


@dataclass(frozen=True)
class EvaluatorTrainOptions(HasLoopSettings):
    data: Path
    out: Path
    max_steps: int = 1500
    max_minutes: float | None = None
    batch: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    checkpoint_every: int = 500
    log_every: int = 100
    seed: int = 0
    threads: int | None = None
    resume: bool = False
    holdout_every: int = 10


def train_evaluator(options: EvaluatorTrainOptions, log: Callable[[str], None] = print) -> dict:
    """Train (or resume) the evaluator; weights, checkpoint, loss log and ``evaluation.json`` (the
    held-out ranking report) go to ``options.out``. Returns that report."""
    import torch
    import torch.nn.functional as F

    from ..grasping.leap.evaluator import LeapGraspEvaluator, save_evaluator

    start = time.perf_counter()
    run = open_run(options.loop)
    config = LeapEvaluatorConfig(**json.loads(run.state["config"])) if run.state else LeapEvaluatorConfig()
    model = LeapGraspEvaluator(config)
    log(f"LEAP evaluator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, config {asdict(config)}")
    train, held_out = load_quality_data(options.data, config, options.holdout_every, log)
    if not train.label.any() or train.label.all():
        raise ValueError(f"the training grasps in {options.data} are all {'held' if train.label.all() else 'failed'}: "
                         "the evaluator needs both")
    log(f"data ready in {time.perf_counter() - start:.0f} s")
    volume, vector = torch.from_numpy(train.volume), torch.from_numpy(train.vector)
    label = torch.from_numpy(train.label.astype(np.float32))
    positives, negatives = np.flatnonzero(train.label), np.flatnonzero(~train.label)

    def losses(rng: np.random.Generator, generator) -> dict:
        rows = torch.from_numpy(np.concatenate([rng.choice(positives, options.batch // 2),
                                                rng.choice(negatives, options.batch - options.batch // 2)]))
        logits = model(volume[rows], vector[rows])
        loss = F.binary_cross_entropy_with_logits(logits, label[rows])
        accuracy = ((logits > 0).float() == label[rows]).float().mean()
        return {"total": loss, "accuracy": accuracy}

    result = run_loop(run, options.loop, model, losses, lambda: save_evaluator(model, run.out), log)
    model.eval()
    report: dict = {"steps": result.steps, "training_minutes": round(result.seconds_total / 60, 1),
                    "training_grasps": len(train), "training_held": int(train.label.sum())}
    if len(held_out):
        with torch.inference_mode():
            logits = torch.cat([model(torch.from_numpy(held_out.volume[i:i + 4096]),
                                      torch.from_numpy(held_out.vector[i:i + 4096]))
                                for i in range(0, len(held_out), 4096)]).numpy()
        report.update(held_out_grasps=len(held_out), **ranking_report(held_out, logits))
        log("held-out rounds: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in report.items()))
    write_json_atomic(run.out / "evaluation.json", report)
    return report
