"""Embodiments by name: the robot a grasp is planned for."""
from __future__ import annotations

from dataclasses import dataclass

from .gripper import FRANKA_HAND, ParallelGripper


@dataclass(frozen=True)
class Embodiment:
    name: str
    description: str
    gripper: ParallelGripper


_EMBODIMENTS = {
    "franka": Embodiment("franka", "Franka Panda with the Franka Hand (parallel gripper)", FRANKA_HAND),
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
