"""Execution: turning a ranked grasp list into a pick — the simulated free-floating hand, or a whole
arm (motion planning in ``execution.motion``, reachability in ``execution.reachability``)."""
from __future__ import annotations

from ..robots.registry import Embodiment
from ..sim.world import ClutterWorld
from .sim_executor import ExecutionReport, SimHandExecutor

EXECUTORS = ("hand", "arm")


def make_sim_executor(kind: str, world: ClutterWorld, robot: Embodiment):
    """A simulated executor: ``"hand"``, the free-floating hand of the published benchmark protocol
    (``SimHandExecutor``), or ``"arm"``, the robot's whole arm (``arm_executor.SimArmExecutor``:
    reachability, mplib motion planning, the arm in PyBullet). Both ``execute(plan)``."""
    if kind == "hand":
        return SimHandExecutor(world, robot)
    if kind == "arm":
        from ..robots.arm import load_arm
        from .arm_executor import SimArmExecutor

        return SimArmExecutor(world, load_arm(robot.name))
    raise ValueError(f"unknown executor {kind!r}: choose one of {EXECUTORS}")


__all__ = ["EXECUTORS", "ExecutionReport", "SimHandExecutor", "make_sim_executor"]
