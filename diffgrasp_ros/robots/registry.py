"""Embodiments by name: the robot a grasp is planned for."""
from __future__ import annotations

from dataclasses import dataclass

from .gripper import FRANKA_HAND, ParallelGripper


@dataclass(frozen=True)
class Embodiment:
    name: str
    description: str
    gripper: ParallelGripper
    # Hand joints as the robot's driver names them; a parallel gripper's joints each move half the width.
    hand_joint_names: tuple[str, ...]

    def hand_posture(self, width_m: float) -> list[float]:
        """Hand joint positions for an opening of ``width_m`` (clamped to the gripper's range)."""
        width = min(max(width_m, 0.0), self.gripper.max_opening_m)
        return [0.5 * width] * len(self.hand_joint_names)


_EMBODIMENTS = {
    "franka": Embodiment("franka", "Franka Panda with the Franka Hand (parallel gripper)", FRANKA_HAND,
                         ("panda_finger_joint1", "panda_finger_joint2")),
}
# Named in the product but not built yet; asking for them must say so, not fall back silently.
_PLANNED = {"xarm_leap": "xArm7 + LEAP hand", "ur5_leap": "UR5 + LEAP hand"}


def robot_names() -> list[str]:
    return sorted(_EMBODIMENTS)


def get_robot(name: str) -> Embodiment:
    if name in _EMBODIMENTS:
        return _EMBODIMENTS[name]
    if name in _PLANNED:
        raise NotImplementedError(
            f"robot {name!r} ({_PLANNED[name]}) is not available yet: only {robot_names()} "
            "are supported in this version"
        )
    raise ValueError(f"unknown robot {name!r}: choose one of {robot_names()}")
