"""Executes a ranked grasp list with a whole arm in the simulated world.

Grasps the arm cannot reach (grasp or pre-grasp, ``ReachabilityChecker``) are dropped; the rest are
planned in rank order (``plan_pick``) until one plans (``select_pick``), and that one is executed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..grasping.grasp import Grasp, PlanResult
from ..robots.arm import ArmModel
from ..sim.arm import PickOutcome, SimulatedArm
from ..sim.world import ClutterWorld
from .motion import MotionPlanner, PickPlan, PickSettings, make_motion_planner
from .pick_selection import Attempt, select_pick
from .reachability import ReachabilityChecker


@dataclass
class ArmExecutionReport:
    grasp: Grasp | None
    rank: int | None  # of the executed grasp
    outcome: PickOutcome | None
    planning_time_s: float  # reachability + every motion-planning attempt
    reachable: int  # grasps the arm can reach, of the plan's
    attempts: list[Attempt] = field(default_factory=list)
    message: str = ""
    ranked: int = 0  # grasps in the plan
    duration_s: float = 0.0  # planning and the simulated pick, wall time
    pick: PickPlan | None = None  # the executed pick as planned (its trajectory: the demo's grasps.json)

    @property
    def success(self) -> bool:
        return self.outcome is not None and self.outcome.success

    @property
    def motion_planning_time_s(self) -> float:
        return sum(a.planning_time_s for a in self.attempts)

    @property
    def reachability_time_s(self) -> float:
        """The batched grasp + pre-grasp IK of every ranked grasp."""
        return self.planning_time_s - self.motion_planning_time_s

    @property
    def reachable_fraction(self) -> float | None:
        return self.reachable / self.ranked if self.ranked else None


class SimArmExecutor:
    """``max_attempts`` reachable grasps are motion-planned at most per ``execute``."""

    def __init__(self, world: ClutterWorld, arm: ArmModel, backend: str | MotionPlanner = "mplib",
                 max_attempts: int = 5, settings: PickSettings = PickSettings(), hand_friction: float = 1.0):
        self.world, self.arm = world, arm
        self.sim_arm = SimulatedArm(world, arm, hand_friction=hand_friction)
        self.planner = make_motion_planner(backend, arm) if isinstance(backend, str) else backend
        self.reachability = ReachabilityChecker(arm)
        self.max_attempts, self.settings = max_attempts, settings

    def execute(self, plan: PlanResult, points_workspace_m: np.ndarray | None = None) -> ArmExecutionReport:
        """Pick with the best grasp that plans. ``points_workspace_m`` is the perceived scene, the
        collision geometry: by default the surface of the scene the grasps were planned in (``plan.scene``)."""
        start = time.perf_counter()
        if not plan.found:
            return ArmExecutionReport(None, None, None, 0.0, 0, message=f"nothing to execute: {plan.message}")
        frame = self.world.workspace.frame_id
        if any(g.frame_id != frame for g in plan.grasps):
            raise ValueError(f"grasps must be in the simulated world's frame {frame!r}")
        if points_workspace_m is None:
            if plan.scene is None:
                raise ValueError("no collision geometry: pass points_workspace_m, or a plan that carries its scene")
            points_workspace_m = plan.scene.points_m
        selection = select_pick(self.reachability, self.planner, plan.grasps, points_workspace_m,
                                self.sim_arm.q_arm, self.settings, self.max_attempts)
        report = ArmExecutionReport(None, None, None, selection.planning_time_s, int(selection.reachable.sum()),
                                    selection.attempts, selection.message, ranked=len(plan.grasps))
        if selection.pick is not None:
            rank = selection.rank
            report.grasp, report.rank, report.pick = selection.pick.grasp, rank, selection.pick
            report.outcome = self.sim_arm.execute_pick(selection.pick)
            report.message = (f"grasp {rank} succeeded" if report.outcome.success
                              else f"grasp {rank} failed: {report.outcome.reason}")
        report.duration_s = time.perf_counter() - start
        return report
