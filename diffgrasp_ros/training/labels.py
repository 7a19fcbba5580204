"""Grasp labels for training data: by executing the grasp in simulation, or by a fast analytic test.

Both work on a ``ClutterWorld`` holding the scene at rest and take grasp TCP poses in the workspace
frame (the convention of ``robots.gripper``). Each returns (success, width): the opening the grasp
ends at (the object's thickness) when it succeeds, the maximum opening when it fails.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import quaternion_xyzw, transform_points
from ..robots.gripper import FRANKA_HAND, ParallelGripper
from ..sim.hand import SimulatedHand
from ..sim.world import ClutterWorld


class SimLabeller:
    """Executes each grasp with the simulated hand from the same saved scene state (VGN's labels).

    Contact while approaching fails the grasp (the VGN data generator's rule: a label should not
    depend on pushing things aside). ``close()`` puts the scene back as it was.
    """

    def __init__(self, world: ClutterWorld, gripper: ParallelGripper = FRANKA_HAND):
        self.world = world
        self.hand = SimulatedHand(world, gripper)
        self._state = world.p.saveState()

    def label(self, T_world_grasp: np.ndarray) -> tuple[bool, float]:
        self.world.p.restoreState(self._state)
        outcome = self.hand.execute(T_world_grasp, remove_held=False, allow_contact=False)
        return outcome.success, outcome.width_m

    def close(self) -> None:
        self.world.p.restoreState(self._state)
        self.world.p.removeState(self._state)


@dataclass(frozen=True)
class AnalyticCriteria:
    friction_cone_deg: float = 45.0  # friction 1.0 on the fingers and the objects
    approach_steps: int = 11  # hand poses checked from the pre-grasp to the grasp (5 mm apart)
    rays_across: int = 3  # closing rays per finger across its width ...
    rays_along: int = 6  # ... and along its length
    contact_band_m: float = 0.003  # ray hits this close to a finger's first contact form its contact patch


class AnalyticLabeller:
    """Labels a grasp from the scene's exact collision geometry, without simulating dynamics.

    Positive when (1) the open hand (palm and fingers) moves from the pre-grasp to the grasp pose
    without touching the table or any object; (2) closing, both fingers first meet the same object;
    (3) on both sides the outward surface normals of the contact patch lie, on average, within the
    friction cone around the closing direction (a slanted contact squeezes the object out); and
    (4) the object is thicker than the opening at which the simulated hand counts a hold as lost.
    Contacts are found by casting rays across the closing region from each finger's inner face.
    """

    def __init__(self, world: ClutterWorld, gripper: ParallelGripper = FRANKA_HAND,
                 criteria: AnalyticCriteria = AnalyticCriteria()):
        self.world, self.gripper, self.criteria = world, gripper, criteria
        p = world.p
        boxes = gripper.collision_boxes(gripper.max_opening_m)
        self._hand_shape = p.createCollisionShapeArray(
            [p.GEOM_BOX] * len(boxes), halfExtents=[list(b.half_extents_m) for b in boxes],
            collisionFramePositions=[list(b.centre_m) for b in boxes])
        half_width, half_open = 0.4 * gripper.finger_width_m, 0.5 * gripper.max_opening_m
        x, z = np.meshgrid(np.linspace(-half_width, half_width, criteria.rays_across),
                           np.linspace(0.002, gripper.finger_depth_m - 0.002, criteria.rays_along))
        x, z = x.ravel(), z.ravel()
        # Rays start at a finger's inner face and cross to the other's: +y finger rays, then -y finger rays.
        self._ray_from = np.concatenate([np.column_stack([x, np.full_like(x, half_open), z]),
                                         np.column_stack([x, np.full_like(x, -half_open), z])])
        self._ray_to = self._ray_from * np.array([1.0, -1.0, 1.0])

    def _collides(self, T_world_grasp: np.ndarray) -> bool:
        p = self.world.p
        approach = T_world_grasp[:3, 2]
        orientation = quaternion_xyzw(T_world_grasp).tolist()
        bodies = [self.world.table_id, *self.world.object_ids]
        # From the grasp pose back to the pre-grasp: the grasp pose is the likeliest to collide.
        for back in np.linspace(0.0, SimulatedHand.pregrasp_distance_m, self.criteria.approach_steps):
            position = (T_world_grasp[:3, 3] - back * approach).tolist()
            for body in bodies:
                if p.getClosestPoints(bodyA=-1, bodyB=body, distance=0.0, collisionShapeA=self._hand_shape,
                                      collisionShapePositionA=position,
                                      collisionShapeOrientationA=orientation):
                    return True
        return False

    def _contact(self, hits: list, R: np.ndarray, side: float) -> tuple[int, float] | None:
        """The object a finger meets first and how far it travels, if its contact patch is antipodal."""
        objects = set(self.world.object_ids)
        hits = [h for h in hits if h[0] in objects]
        if not hits:
            return None
        opening = self.gripper.max_opening_m
        first = min(hits, key=lambda h: h[2])
        patch = [h for h in hits if h[0] == first[0] and (h[2] - first[2]) * opening <= self.criteria.contact_band_m]
        # The finger on the +y side pushes towards -y: the surface it meets faces +y.
        facing = np.mean([side * (R[:, 1] @ np.asarray(h[4])) for h in patch])
        if facing < np.cos(np.deg2rad(self.criteria.friction_cone_deg)):
            return None
        return first[0], first[2] * opening

    def label(self, T_world_grasp: np.ndarray) -> tuple[bool, float]:
        g = self.gripper
        failure = (False, g.max_opening_m)
        if self._collides(T_world_grasp):
            return failure
        ray_from = transform_points(T_world_grasp, self._ray_from)
        ray_to = transform_points(T_world_grasp, self._ray_to)
        hits = self.world.p.rayTestBatch(ray_from.tolist(), ray_to.tolist())
        n = len(hits) // 2
        R = T_world_grasp[:3, :3]
        plus, minus = self._contact(hits[:n], R, 1.0), self._contact(hits[n:], R, -1.0)
        if plus is None or minus is None or plus[0] != minus[0]:
            return failure
        width = g.max_opening_m - plus[1] - minus[1]
        if width <= 0.1 * g.max_opening_m:  # the simulated hand's "fingers closed on nothing"
            return failure
        return True, float(width)


@dataclass(frozen=True)
class LabelAgreement:
    """Analytic labels against simulated ones (simulation taken as the truth)."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @classmethod
    def of(cls, simulated: np.ndarray, analytic: np.ndarray) -> "LabelAgreement":
        s, a = np.asarray(simulated, bool), np.asarray(analytic, bool)
        return cls(int(np.sum(s & a)), int(np.sum(~s & a)), int(np.sum(s & ~a)), int(np.sum(~s & ~a)))

    @property
    def count(self) -> int:
        return self.true_positives + self.false_positives + self.false_negatives + self.true_negatives

    @property
    def precision(self) -> float | None:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else None

    @property
    def recall(self) -> float | None:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else None

    @property
    def accuracy(self) -> float | None:
        return (self.true_positives + self.true_negatives) / self.count if self.count else None

    def __str__(self) -> str:
        fmt = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
        return (f"analytic vs simulated labels on {self.count} grasps: precision {fmt(self.precision)}, "
                f"recall {fmt(self.recall)}, accuracy {fmt(self.accuracy)}")
