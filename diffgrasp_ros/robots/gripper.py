"""Parallel-jaw gripper geometry in the grasp TCP frame.

Grasp frame convention (shared with VGN / GIGA / IGD): origin = TCP, midway between the finger
roots; +z = approach direction (from the hand towards the object); +y = closing axis (the fingers
move along ±y); +x = y × z completes the right-handed frame. The fingertips reach ``finger_depth_m``
along +z, so an object is held between the fingers for z in [0, finger_depth].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

URDF_DIR = Path(__file__).parent / "urdf"


@dataclass(frozen=True)
class Box:
    centre_m: tuple[float, float, float]
    half_extents_m: tuple[float, float, float]


@dataclass(frozen=True)
class ParallelGripper:
    name: str
    max_opening_m: float
    finger_depth_m: float
    finger_width_m: float  # along x
    finger_thickness_m: float  # along y
    finger_root_z_m: float  # finger boxes start here (slightly behind the TCP)
    palm: Box
    urdf_path: Path

    def finger_boxes(self, opening_m: float) -> list[Box]:
        """The two fingers, their inner faces ``opening_m`` apart."""
        half_len = 0.5 * (self.finger_depth_m - self.finger_root_z_m)
        z = self.finger_root_z_m + half_len
        y = 0.5 * opening_m + 0.5 * self.finger_thickness_m
        half = (0.5 * self.finger_width_m, 0.5 * self.finger_thickness_m, half_len)
        return [Box((0.0, y, z), half), Box((0.0, -y, z), half)]

    def collision_boxes(self, opening_m: float | None = None) -> list[Box]:
        opening = self.max_opening_m if opening_m is None else opening_m
        return [self.palm, *self.finger_boxes(opening)]

    def closing_region(self, opening_m: float | None = None) -> Box:
        """The volume swept by the fingers while closing: what ends up between them."""
        opening = self.max_opening_m if opening_m is None else opening_m
        half_len = 0.5 * self.finger_depth_m
        return Box((0.0, 0.0, half_len), (0.5 * self.finger_width_m, 0.5 * opening, half_len))

    def corner_points(self, opening_m: float | None = None) -> np.ndarray:
        """Corners of every collision box, (8·n, 3) in the TCP frame (cheap table/workspace checks)."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return np.concatenate([
            np.asarray(b.centre_m) + signs * np.asarray(b.half_extents_m)
            for b in self.collision_boxes(opening_m)
        ])


FRANKA_HAND = ParallelGripper(
    name="franka_hand",
    max_opening_m=0.08,
    finger_depth_m=0.05,
    finger_width_m=0.02,
    finger_thickness_m=0.012,
    finger_root_z_m=-0.004,
    palm=Box((0.0, 0.0, -0.035), (0.025, 0.10, 0.031)),
    urdf_path=URDF_DIR / "franka_hand.urdf",
)
