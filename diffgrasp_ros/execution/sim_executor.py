"""Executes the best grasp of a plan with the simulated free-floating hand of the embodiment.

A parallel-gripper embodiment (``franka``) executes with the free-floating parallel hand
(``sim.hand``, the VGN protocol); a LEAP embodiment with the free-floating LEAP hand
(``sim.leap_hand``): a dexterous grasp from its own ``pregrasp_joints`` (the palm is
``T_frame_grasp @ inv(leap.T_PALM_TCP)``), closed towards ``leap.DEXTEROUS_CLOSED_Q`` until the digits
stop on the object (its ``grasp_joints`` are where they are expected to stop), a plain parallel grasp retargeted onto the hand by
``leap.retarget_parallel_grasp`` (pre-shaped for its width, closed to the fixed ``leap.CLOSED_Q``:
the heuristic baseline). Either way the LEAP hand's approach is guarded: it goes on up to
``LEAP_GUARDED_APPROACH_M`` past the palm pose until the hand touches something (the LEAP grasp data's
palm poses are where such an approach stopped), and a held object is removed, as the benchmark
protocol does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..geometry import invert
from ..grasping.grasp import Grasp, PlanResult
from ..robots import leap
from ..robots.registry import Embodiment
from ..sim.hand import GraspOutcome, SimulatedHand
from ..sim.leap_hand import LeapGraspOutcome, SimulatedLeapHand
from ..sim.world import ClutterWorld


@dataclass
class ExecutionReport:
    grasp: Grasp | None
    outcome: GraspOutcome | LeapGraspOutcome | None
    duration_s: float
    message: str

    @property
    def success(self) -> bool:
        return self.outcome is not None and self.outcome.success


# How far past its palm pose the LEAP hand's approach may go until it touches something. On tuning piles
# (seed 100, 25 rounds) 0.02 m raised both methods' GSR / DR: the retargeted baseline 26.4 / 17.6 ->
# 33.3 / 25.0 %, leap (every pose backed off the table) 31.8 / 25.0 -> 36.7 / 33.3 %; 0.04 m: 35.7 / 27.8.
LEAP_GUARDED_APPROACH_M = 0.02


class SimHandExecutor:
    """``leap_friction``: the hand-object friction coefficient of the LEAP hand's tests (1.0, as the
    arm simulation's hand; 0.2 is DexGraspNet's strict value)."""

    def __init__(self, world: ClutterWorld, robot: Embodiment, leap_friction: float = 1.0):
        self.robot = robot
        self.world = world
        if robot.hand == "leap":
            self.hand = SimulatedLeapHand(world, friction=leap_friction)
        else:
            self.hand = SimulatedHand(world, robot.gripper)

    def leap_postures(self, grasp: Grasp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(T_workspace_palm, q_pregrasp, q_closing)`` the LEAP hand executes ``grasp`` with."""
        if grasp.dexterous:
            if grasp.grasp_joints.shape != (len(leap.JOINT_NAMES),):
                raise ValueError(f"a LEAP grasp needs 16 hand joints, got {grasp.grasp_joints.shape}")
            return grasp.T_frame_grasp @ invert(leap.T_PALM_TCP), grasp.pregrasp_joints, leap.DEXTEROUS_CLOSED_Q
        return leap.retarget_parallel_grasp(grasp.T_frame_grasp, grasp.width_m)

    def execute_grasp(self, grasp: Grasp, remove_held: bool = True) -> GraspOutcome | LeapGraspOutcome:
        """The lift test of one grasp; ``remove_held``: the held object is removed afterwards (the
        benchmark protocol), else the world is left as the test left it."""
        if isinstance(self.hand, SimulatedLeapHand):
            T_palm, q_pre, q_closing = self.leap_postures(grasp)
            return self.hand.execute(T_palm, q_pre, q_closing, remove_held=remove_held,
                                     approach_beyond_m=LEAP_GUARDED_APPROACH_M)
        return self.hand.execute(grasp.T_frame_grasp, remove_held=remove_held)

    def execute(self, plan: PlanResult) -> ExecutionReport:
        start = time.perf_counter()
        if not plan.found:
            return ExecutionReport(None, None, 0.0, f"nothing to execute: {plan.message}")
        grasp = plan.best
        if grasp.frame_id != self.world.workspace.frame_id:
            raise ValueError(f"grasp is in frame {grasp.frame_id!r}, the simulated hand needs "
                             f"{self.world.workspace.frame_id!r}")
        outcome = self.execute_grasp(grasp)
        message = "grasp succeeded" if outcome.success else f"grasp failed: {outcome.reason}"
        return ExecutionReport(grasp, outcome, time.perf_counter() - start, message)
