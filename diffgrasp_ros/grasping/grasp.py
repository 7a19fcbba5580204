"""Grasps and planning results."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import pose_from_quaternion, quaternion_xyzw
from ..scene.scene import Scene


@dataclass
class Grasp:
    """A grasp: a parallel-jaw grasp, or a dexterous one when it carries hand joints.

    ``T_frame_grasp`` is the grasp TCP pose in ``frame_id`` (the workspace frame unless stated):
    origin midway between the finger roots, +z the approach direction, +y the closing axis (see
    ``robots.gripper``; a LEAP hand's TCP is ``robots.leap.T_PALM_TCP`` from its palm). ``width_m`` is
    the opening to pre-shape to; ``score`` is in [0, 1], higher is better; ``method`` names the planner
    that produced it. A dexterous planner also sets ``pregrasp_joints`` (the hand's pre-shape) and
    ``grasp_joints`` (the posture at contact), in radians in the embodiment's ``hand_joint_names``
    order; without them an executor derives both postures from ``width_m``.
    """

    T_frame_grasp: np.ndarray
    width_m: float
    score: float
    method: str
    frame_id: str = "workspace"
    info: dict = field(default_factory=dict)
    pregrasp_joints: np.ndarray | None = None
    grasp_joints: np.ndarray | None = None

    def __post_init__(self):
        if (self.pregrasp_joints is None) != (self.grasp_joints is None):
            raise ValueError("a dexterous grasp needs both pregrasp_joints and grasp_joints")
        if self.grasp_joints is not None:
            self.pregrasp_joints = np.asarray(self.pregrasp_joints, dtype=float)
            self.grasp_joints = np.asarray(self.grasp_joints, dtype=float)
            if self.pregrasp_joints.shape != self.grasp_joints.shape or self.grasp_joints.ndim != 1:
                raise ValueError(f"pregrasp_joints {self.pregrasp_joints.shape} and grasp_joints "
                                 f"{self.grasp_joints.shape} must be vectors of the same length")

    @property
    def dexterous(self) -> bool:
        return self.grasp_joints is not None

    @property
    def position_m(self) -> np.ndarray:
        return self.T_frame_grasp[:3, 3]

    @property
    def approach_axis(self) -> np.ndarray:
        return self.T_frame_grasp[:3, 2]

    @property
    def closing_axis(self) -> np.ndarray:
        return self.T_frame_grasp[:3, 1]

    def to_dict(self) -> dict:
        joints = {} if not self.dexterous else {"pregrasp_joints": self.pregrasp_joints.tolist(),
                                               "grasp_joints": self.grasp_joints.tolist()}
        return {
            "frame_id": self.frame_id,
            "position_m": self.position_m.tolist(),
            "orientation_xyzw": quaternion_xyzw(self.T_frame_grasp).tolist(),
            "approach_axis": self.approach_axis.tolist(),
            "closing_axis": self.closing_axis.tolist(),
            "width_m": float(self.width_m),
            "score": float(self.score),
            "method": self.method,
            "info": self.info,
            **joints,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Grasp":
        return cls(
            pose_from_quaternion(data["position_m"], data["orientation_xyzw"]),
            float(data["width_m"]), float(data["score"]), data["method"],
            data.get("frame_id", "workspace"), dict(data.get("info", {})),
            data.get("pregrasp_joints"), data.get("grasp_joints"),
        )


# Stages a plan's total is made of: fusion of depth frames or surface extraction from a grid, then the plan.
OUTER_STAGES = ("fusion", "surface", "plan")


@dataclass
class PlanResult:
    """Ranked grasps (best first) and what it took to get them.

    An empty ``grasps`` list is a normal answer: ``message`` then says why nothing came back.
    ``warnings`` say what a user should know about the input (e.g. objects cut off by the workspace).
    ``filtered`` counts per named filter the candidates it removed (summed over the passes of a plan).
    ``scene`` is the perceived scene the grasps were planned in (set by ``GraspPlanner.plan``); its
    surface points are what an arm plans its motions around. It is not part of ``to_dict``.
    """

    grasps: list[Grasp]
    method: str
    timings_s: dict[str, float] = field(default_factory=dict)
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    scene: Scene | None = field(default=None, repr=False, compare=False)
    filtered: dict[str, int] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.grasps)

    @property
    def total_s(self) -> float:
        """Depth or grid in to grasps out: the outer stages only (``plan`` already holds the planner's own
        stages, so summing every timing would count them twice)."""
        return sum(self.timings_s.get(stage, 0.0) for stage in OUTER_STAGES)

    @property
    def best(self) -> Grasp | None:
        return self.grasps[0] if self.grasps else None

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "found": self.found,
            "message": self.message,
            "warnings": self.warnings,
            "timings_s": self.timings_s,
            "total_s": self.total_s,
            "filtered": self.filtered,
            "grasps": [dict(g.to_dict(), rank=i) for i, g in enumerate(self.grasps)],
        }
