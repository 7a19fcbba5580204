"""Executes the best grasp of a plan with the simulated free-floating hand."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..grasping.grasp import Grasp, PlanResult
from ..robots.registry import Embodiment
from ..sim.hand import GraspOutcome, SimulatedHand
from ..sim.world import ClutterWorld


@dataclass
class ExecutionReport:
    grasp: Grasp | None
    outcome: GraspOutcome | None
    duration_s: float
    message: str

    @property
    def success(self) -> bool:
        return self.outcome is not None and self.outcome.success


class SimHandExecutor:
    def __init__(self, world: ClutterWorld, robot: Embodiment):
        self.robot = robot
        self.hand = SimulatedHand(world, robot.gripper)

    def execute(self, plan: PlanResult) -> ExecutionReport:
        start = time.perf_counter()
        if not plan.found:
            return ExecutionReport(None, None, 0.0, f"nothing to execute: {plan.message}")
        grasp = plan.best
        if grasp.frame_id != self.hand.world.workspace.frame_id:
            raise ValueError(f"grasp is in frame {grasp.frame_id!r}, the simulated hand needs "
                             f"{self.hand.world.workspace.frame_id!r}")
        outcome = self.hand.execute(grasp.T_frame_grasp)
        message = "grasp succeeded" if outcome.success else f"grasp failed: {outcome.reason}"
        return ExecutionReport(grasp, outcome, time.perf_counter() - start, message)
