"""Execution: turning a ranked grasp list into a pick — the simulated free-floating hand, or a whole
arm (motion planning in ``execution.motion``, reachability in ``execution.reachability``)."""
from __future__ import annotations

from ..robots.registry import Embodiment
from ..sim.world import ClutterWorld
from .sim_executor import ExecutionReport, SimHandExecutor

EXECUTORS = ("hand", "arm")


def make_sim_executor(kind: str, world: ClutterWorld, robot: Embodiment, leap_friction: float = 1.0):
    """A simulated executor: ``"hand"``, the free-floating hand of the published benchmark protocol
    (``SimHandExecutor``), or ``"arm"``, the robot's whole arm (``arm_executor.SimArmExecutor``:
    reachability, mplib motion planning, the arm in PyBullet). Both ``execute(plan)``.
    ``leap_friction``: the LEAP hand's hand-object friction coefficient (LEAP robots only)."""
    if leap_friction <= 0:
        raise ValueError(f"the LEAP hand's friction must be positive, got {leap_friction}")
    if leap_friction != 1.0 and robot.hand != "leap":
        raise ValueError(f"a LEAP hand friction was given, but {robot.name!r} has no LEAP hand")
    if kind == "hand":
        return SimHandExecutor(world, robot, leap_friction=leap_friction)
    if kind == "arm":
        from ..robots.arm import load_arm
        from .arm_executor import SimArmExecutor

        return SimArmExecutor(world, load_arm(robot.name), hand_friction=leap_friction)
    raise ValueError(f"unknown executor {kind!r}: choose one of {EXECUTORS}")


__all__ = ["EXECUTORS", "ExecutionReport", "SimHandExecutor", "make_sim_executor"]
