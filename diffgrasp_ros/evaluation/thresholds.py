"""What a quality threshold would do, from one benchmark run without it.

A threshold on the planner's score ends a clutter-removal round at its first attempt whose best grasp
scores below it ("no grasp found"); until then the round is the same, since the world and the noise draws
do not depend on the threshold. So the rounds of a run with a lower threshold (``RoundResult``'s
``attempt_scores`` and ``attempt_successes``) give every higher threshold's GSR and DR, exactly for the
hand executor (the arm executor picks among the grasps it reaches, which a threshold also thins).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdRates:
    threshold: float
    attempts: int
    successes: int
    objects_placed: int
    rounds_ended_by_threshold: int

    @property
    def gsr(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None

    @property
    def dr(self) -> float | None:
        return self.successes / self.objects_placed if self.objects_placed else None


def rates_at(rounds: Sequence[Mapping], threshold: float) -> ThresholdRates:
    """GSR and DR had the rounds (``RoundResult`` fields, e.g. from a bench JSON) stopped at their first attempt
    scoring below ``threshold``."""
    attempts = successes = placed = ended = 0
    for r in rounds:
        scores, held = r["attempt_scores"], r["attempt_successes"]
        if len(scores) != r["attempts"]:
            raise ValueError(f"round {r['index']} records {len(scores)} attempt scores for {r['attempts']} attempts: "
                             "a benchmark from before scores were recorded")
        below = [i for i, score in enumerate(scores) if score < threshold]
        kept = below[0] if below else len(scores)
        attempts += kept
        successes += int(sum(held[:kept]))
        placed += r["objects_placed"]
        ended += bool(below)
    return ThresholdRates(threshold, attempts, successes, placed, ended)


def calibration(rounds: Sequence[Mapping], bins: Sequence[float]) -> list[tuple[float, float, int, float | None]]:
    """Success rate of the executed grasps by score: (low, high, attempts, success rate) per bin."""
    scores = np.array([s for r in rounds for s in r["attempt_scores"]], float)
    held = np.array([h for r in rounds for h in r["attempt_successes"]], bool)
    table = []
    for low, high in zip(bins[:-1], bins[1:]):
        inside = (scores >= low) & (scores < high)
        table.append((low, high, int(inside.sum()), float(held[inside].mean()) if inside.any() else None))
    return table
