"""Grasps and planning results."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import pose_from_quaternion, quaternion_xyzw
from ..scene.scene import Scene


@dataclass
class Grasp:
    """A parallel-jaw grasp.

    ``T_frame_grasp`` is the grasp TCP pose in ``frame_id`` (the workspace frame unless stated):
    origin midway between the finger roots, +z the approach direction, +y the closing axis (see
    ``robots.gripper``). ``width_m`` is the opening to pre-shape to; ``score`` is in [0, 1], higher is
    better; ``method`` names the planner that produced it.
    """

    T_frame_grasp: np.ndarray
    width_m: float
    score: float
    method: str
    frame_id: str = "workspace"
    info: dict = field(default_factory=dict)

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
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Grasp":
        return cls(
            pose_from_quaternion(data["position_m"], data["orientation_xyzw"]),
            float(data["width_m"]), float(data["score"]), data["method"],
            data.get("frame_id", "workspace"), dict(data.get("info", {})),
        )


@dataclass
class PlanResult:
    """Ranked grasps (best first) and what it took to get them.

    An empty ``grasps`` list is a normal answer: ``message`` then says why nothing came back.
    ``scene`` is the perceived scene the grasps were planned in (set by ``GraspPlanner.plan``); its
    surface points are what an arm plans its motions around. It is not part of ``to_dict``.
    """

    grasps: list[Grasp]
    method: str
    timings_s: dict[str, float] = field(default_factory=dict)
    message: str = ""
    scene: Scene | None = field(default=None, repr=False, compare=False)

    @property
    def found(self) -> bool:
        return bool(self.grasps)

    @property
    def best(self) -> Grasp | None:
        return self.grasps[0] if self.grasps else None

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "found": self.found,
            "message": self.message,
            "timings_s": self.timings_s,
            "grasps": [dict(g.to_dict(), rank=i) for i, g in enumerate(self.grasps)],
        }
