"""Which grasp an arm picks with: the reachability of every grasp (grasp and pre-grasp IK, one batch),
then the pick motion planned for the reachable ones in rank order until one plans."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..grasping.grasp import Grasp
from .motion import MotionPlanner, MotionStatus, PickPlan, PickSettings, plan_pick
from .reachability import ReachabilityChecker, ReachabilityResult


@dataclass(frozen=True)
class Attempt:
    rank: int  # in the grasp planner's ranking
    status: MotionStatus
    message: str
    planning_time_s: float


@dataclass
class PickSelection:
    reachability: ReachabilityResult  # per grasp, in the given order
    pick: PickPlan | None  # of the best reachable grasp that planned
    rank: int | None  # that grasp's index in the given grasps
    attempts: list[Attempt]
    status: MotionStatus  # SUCCESS, UNREACHABLE (no grasp is), or why the last attempt failed
    message: str
    planning_time_s: float  # reachability + every motion-planning attempt

    @property
    def reachable(self) -> np.ndarray:
        return self.reachability.reachable


def select_pick(checker: ReachabilityChecker, planner: MotionPlanner | None, grasps: list[Grasp],
                points_workspace_m: np.ndarray, q_start: np.ndarray, settings: PickSettings = PickSettings(),
                max_attempts: int = 5) -> PickSelection:
    """Grasps (workspace frame, best first) -> the pick of the best reachable one that plans.

    Without a ``planner`` only the reachability is checked (``pick`` stays None). ``points_workspace_m``
    is the perceived scene, the collision geometry; ``q_start`` the arm's joints where the pick starts.
    """
    if not grasps:
        raise ValueError("no grasps to pick from")
    start = time.perf_counter()
    arm = checker.arm
    goals = np.stack([arm.T_base_workspace @ g.T_frame_grasp for g in grasps])
    reach = checker.check(goals, pregrasp_offset_m=settings.pregrasp_offset_m)
    ranks = np.flatnonzero(reach.reachable)

    def done(status: MotionStatus, message: str, attempts=(), pick=None, rank=None) -> PickSelection:
        return PickSelection(reach, pick, rank, list(attempts), status, message, time.perf_counter() - start)

    if not len(ranks):
        return done(MotionStatus.UNREACHABLE, f"none of the {len(grasps)} grasps is reachable by {arm.name}")
    if planner is None:
        return done(MotionStatus.SUCCESS, f"{len(ranks)} of {len(grasps)} grasps are reachable")
    attempts = []
    for rank in ranks[:max_attempts]:
        pick = plan_pick(planner, q_start, grasps[rank], points_workspace_m, settings,
                         q_pregrasp=reach.q_pregrasp[rank])
        attempts.append(Attempt(int(rank), pick.status, pick.message, pick.planning_time_s))
        if pick.success:
            return done(MotionStatus.SUCCESS, f"grasp {rank} planned", attempts, pick, int(rank))
    last = attempts[-1]
    return done(last.status, f"no pick planned for the {len(attempts)} best reachable grasps "
                             f"(last: grasp {last.rank}, {last.status.value}: {last.message})", attempts)
