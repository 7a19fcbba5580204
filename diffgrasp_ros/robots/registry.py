"""Embodiments by name: the robot a grasp is planned for."""
from __future__ import annotations

from dataclasses import dataclass

from . import leap
from .gripper import FRANKA_HAND, ParallelGripper

HAND_KINDS = ("parallel", "leap")


@dataclass(frozen=True)
class Embodiment:
    name: str
    description: str
    # The parallel-jaw geometry grasps are planned with; for a LEAP hand a stand-in whose grasps are
    # retargeted onto the hand (robots.leap.retarget_parallel_grasp).
    gripper: ParallelGripper
    # Hand joints as the robot's driver names them; a parallel gripper's joints each move half the width.
    hand_joint_names: tuple[str, ...]
    hand: str = "parallel"  # "parallel" | "leap"

    def __post_init__(self):
        if self.hand not in HAND_KINDS:
            raise ValueError(f"hand must be one of {HAND_KINDS}, got {self.hand!r}")

    def hand_posture(self, width_m: float) -> list[float]:
        """Hand joint positions for an opening of ``width_m`` (clamped to the hand's range).

        Parallel gripper: half the width per finger. LEAP: the pre-shape for that width, and at
        0 the closed power grasp (a target past contact, so the fingers squeeze).
        """
        if self.hand == "leap":
            q = leap.CLOSED_Q if width_m <= 0.0 else leap.posture_for_width(width_m)
            return [float(v) for v in q]
        width = min(max(width_m, 0.0), self.gripper.max_opening_m)
        return [0.5 * width] * len(self.hand_joint_names)


_EMBODIMENTS = {
    "franka": Embodiment("franka", "Franka Panda with the Franka Hand (parallel gripper)", FRANKA_HAND,
                         ("panda_finger_joint1", "panda_finger_joint2")),
    "xarm_leap": Embodiment("xarm_leap", "xArm7 with the LEAP hand (parallel grasps: thumb against fingers)",
                            leap.PARALLEL_PROXY, leap.JOINT_NAMES, hand="leap"),
    "ur5_leap": Embodiment("ur5_leap", "UR5 with the LEAP hand (parallel grasps: thumb against fingers)",
                           leap.PARALLEL_PROXY, leap.JOINT_NAMES, hand="leap"),
}


def robot_names() -> list[str]:
    return sorted(_EMBODIMENTS)


def get_robot(name: str) -> Embodiment:
    if name in _EMBODIMENTS:
        return _EMBODIMENTS[name]
    raise ValueError(f"unknown robot {name!r}: choose one of {robot_names()}")
