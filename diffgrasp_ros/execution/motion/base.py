"""The motion-planning interface every backend implements, and its result types.

Frames: goals are TCP poses ``T_workspace_tcp`` in the workspace frame (the grasp convention: +z the
approach, +y the closing axis); backends place the robot at ``arm.T_workspace_base``. Joint vectors
are in the order of ``arm.arm_joint_names`` (hand joints in ``arm.hand_joint_names``), radians / metres.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from ...geometry import invert, transform_points
from ...robots.arm import ArmModel


class MotionStatus(str, Enum):
    SUCCESS = "success"
    UNREACHABLE = "unreachable"  # no inverse-kinematics solution for the goal pose
    GOAL_IN_COLLISION = "goal_in_collision"  # IK solutions exist, all of them in collision
    START_IN_COLLISION = "start_in_collision"
    PLANNING_TIMEOUT = "planning_timeout"  # the sampling planner found no path within its time budget
    NO_COLLISION_FREE_PATH = "no_collision_free_path"  # a straight-line motion is blocked
    BACKEND_ERROR = "backend_error"  # the backend failed or is not available


# moveit_msgs/MoveItErrorCodes values, for answering ROS requests.
MOVEIT_ERROR_CODES = {
    MotionStatus.SUCCESS: 1,
    MotionStatus.UNREACHABLE: -31,  # NO_IK_SOLUTION
    MotionStatus.GOAL_IN_COLLISION: -12,
    MotionStatus.START_IN_COLLISION: -10,
    MotionStatus.PLANNING_TIMEOUT: -6,  # TIMED_OUT
    MotionStatus.NO_COLLISION_FREE_PATH: -1,  # PLANNING_FAILED
    MotionStatus.BACKEND_ERROR: 99999,  # FAILURE
}


@dataclass
class MotionPlan:
    """A time-parameterised joint trajectory, or why there is none (empty ``positions``)."""

    joint_names: tuple[str, ...]
    positions: np.ndarray  # (T, n)
    times_s: np.ndarray  # (T,), from 0
    planning_time_s: float
    status: MotionStatus
    message: str = ""

    @property
    def success(self) -> bool:
        return self.status is MotionStatus.SUCCESS

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1]) if len(self.times_s) else 0.0

    @property
    def final_positions(self) -> np.ndarray:
        return self.positions[-1]

    def sample(self, t_s: float) -> np.ndarray:
        """Joint positions at ``t_s`` (linear between waypoints, held after the end)."""
        return np.array([np.interp(t_s, self.times_s, self.positions[:, j])
                         for j in range(self.positions.shape[1])])

    @classmethod
    def failure(cls, joint_names, status: MotionStatus, message: str, planning_time_s: float) -> "MotionPlan":
        n = len(joint_names)
        return cls(tuple(joint_names), np.zeros((0, n)), np.zeros(0), planning_time_s, status, message)


@dataclass(frozen=True)
class OrientedBox:
    """A box ``half_extents_m`` about the origin of its frame ``T_workspace_box``."""

    T_workspace_box: np.ndarray
    half_extents_m: np.ndarray

    def contains(self, points_workspace_m: np.ndarray) -> np.ndarray:
        local = transform_points(invert(self.T_workspace_box), points_workspace_m)
        return np.all(np.abs(local) <= self.half_extents_m, axis=1)

    def swept_bounds(self, offset_m: np.ndarray) -> "OrientedBox":
        """The workspace-axis-aligned box holding this box before and after moving by ``offset_m``."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        corners = transform_points(self.T_workspace_box, signs * self.half_extents_m)
        corners = np.vstack([corners, corners + offset_m])
        lower, upper = corners.min(axis=0), corners.max(axis=0)
        T = np.eye(4)
        T[:3, 3] = 0.5 * (lower + upper)
        return OrientedBox(T, 0.5 * (upper - lower))


@dataclass
class SceneObstacles:
    """What the robot must not touch: the perceived cloud minus regions it may touch."""

    points_workspace_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    allowed: tuple[OrientedBox, ...] = ()
    table_height_m: float = -np.inf  # points up to 3 mm above the table stay obstacles in any region

    def collision_points(self) -> np.ndarray:
        keep = self.points_workspace_m[:, 2] <= self.table_height_m + 0.003
        touchable = np.zeros(len(keep), dtype=bool)
        for box in self.allowed:
            touchable |= box.contains(self.points_workspace_m)
        return self.points_workspace_m[keep | ~touchable]


class MotionPlanner(ABC):
    """Plans arm motions for one ``ArmModel`` against a point-cloud scene."""

    def __init__(self, arm: ArmModel):
        self.arm = arm

    @abstractmethod
    def set_scene(self, obstacles: SceneObstacles) -> None:
        """Replace the collision geometry (the cloud, minus the allowed regions)."""

    @abstractmethod
    def plan_to_pose(self, q_start: np.ndarray, T_workspace_tcp: np.ndarray, *, hand_q: np.ndarray,
                     straight: bool = False, timeout_s: float = 1.0, ik_seed: np.ndarray | None = None) -> MotionPlan:
        """Arm joints from ``q_start`` to a TCP pose: any collision-free path, or (``straight``) a
        straight line of the TCP at constant orientation. ``hand_q`` is the hand posture held meanwhile;
        ``ik_seed`` (e.g. a reachability check's solution) is tried first for the goal's IK."""

    @abstractmethod
    def plan_to_joints(self, q_start: np.ndarray, q_goal: np.ndarray, *, hand_q: np.ndarray,
                       timeout_s: float = 1.0) -> MotionPlan:
        """Arm joints from ``q_start`` to ``q_goal`` along any collision-free path."""


def links_below(urdf_path: Path, link: str) -> tuple[str, ...]:
    """``link`` and every link below it in the URDF's kinematic tree (e.g. the hand under the flange)."""
    children: dict[str, list[str]] = {}
    for joint in ET.parse(urdf_path).getroot().iter("joint"):
        children.setdefault(joint.find("parent").get("link"), []).append(joint.find("child").get("link"))
    found, stack = [], [link]
    while stack:
        name = stack.pop()
        found.append(name)
        stack.extend(children.get(name, []))
    return tuple(found)
