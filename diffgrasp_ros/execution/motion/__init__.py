"""Motion planning for arms: one interface (``MotionPlanner``), the ``mplib`` and ``moveit`` backends,
and the pick sequence (``plan_pick``)."""
from __future__ import annotations

from ...robots.arm import ArmModel
from .base import (MOVEIT_ERROR_CODES, MotionPlan, MotionPlanner, MotionStatus, OrientedBox, SceneObstacles,
                   links_below)
from .pick import HAND_REGIONS, PickPlan, PickSegment, PickSettings, contact_box, plan_pick, pregrasp_pose

BACKENDS = ("mplib", "moveit")


def make_motion_planner(backend: str, arm: ArmModel, **options) -> MotionPlanner:
    """``mplib`` (standalone) or ``moveit`` (a running MoveIt 2 through moveit_py)."""
    if backend == "mplib":
        from .mplib_backend import MplibPlanner

        return MplibPlanner(arm, **options)
    if backend == "moveit":
        from .moveit_backend import MoveItPlanner

        return MoveItPlanner(arm, **options)
    raise ValueError(f"unknown motion planning backend {backend!r}: choose one of {BACKENDS}")


__all__ = ["BACKENDS", "HAND_REGIONS", "MOVEIT_ERROR_CODES", "MotionPlan", "MotionPlanner", "MotionStatus",
           "OrientedBox", "PickPlan", "PickSegment", "PickSettings", "SceneObstacles", "contact_box",
           "links_below", "make_motion_planner", "plan_pick", "pregrasp_pose"]
