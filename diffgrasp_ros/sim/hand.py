"""A free-floating parallel gripper executing grasps in the simulated world (the VGN protocol).

The hand is VGN's simulated Franka Hand (``data/urdfs/panda/hand.urdf`` of VGN / GIGA, driven by their
``simulation.Gripper``): its collision geometry, masses, contact parameters, finger force, motion and
success test. ``docs/simulator_comparison.md`` lists every point compared.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import make_transform, quaternion_xyzw
from ..robots.gripper import FRANKA_HAND, ParallelGripper
from .world import ClutterWorld

Point = tuple[float, float, float]


def _mirrored_in_x(points: tuple[Point, ...]) -> tuple[Point, ...]:
    """``points`` and their mirror images across x = 0."""
    return tuple((sx * x, y, z) for x, y, z in points for sx in (1.0, -1.0))


@dataclass(frozen=True)
class HandModel:
    """The simulated hand's bodies in its TCP frame (z = approach, y = closing, origin between the finger
    roots, as ``robots.gripper``). Collision shapes are convex hulls, as PyBullet makes of a moving
    body's meshes; the right finger is the left one turned 180° about z."""

    palm_hull_m: tuple[Point, ...]
    finger_hull_m: tuple[Point, ...]  # the left (+y) finger in its joint frame, at opening 0
    finger_joint_z_m: float  # where both prismatic finger joints sit along z
    finger_travel_m: float  # each finger's joint range is [0, finger_travel_m]
    palm_mass_kg: float
    palm_com_m: Point  # the base's inertial frame: PyBullet's base pose and the mount constraint's pivot
    finger_mass_kg: float
    finger_com_m: Point  # left finger, joint frame
    finger_force_n: float  # per finger, closing
    palm_friction: float
    finger_friction: float
    finger_spinning_friction: float
    finger_contact_stiffness_n_per_m: float
    finger_contact_damping_n_s_per_m: float


def _palm_hull(sections: tuple[tuple[float, ...], ...]) -> tuple[Point, ...]:
    """Vertices of a hull through cross-sections ``(z, half width, y from, half width there, taper, y to,
    half width there, taper)``: rectangles ``|x| <= half width``, ``y from <= y <= y to`` whose corners are
    cut, at each y end from ``(±half width, y end ∓ taper)`` to ``(±half width there, y end)``."""
    points: list[Point] = []
    for z, half_x, y_from, x_from, taper_from, y_to, x_to, taper_to in sections:
        for sx in (1.0, -1.0):
            points += [(sx * half_x, y_from + taper_from, z), (sx * x_from, y_from, z),
                       (sx * half_x, y_to - taper_to, z), (sx * x_to, y_to, z)]
    return tuple(points)


# VGN's hand.urdf: the hand link's origin is 0.062 m behind the TCP (VGN's Gripper.T_body_tcp = 0.022 m
# from the hand's inertial origin at z = 0.04), the finger joints at z = 0.0584 of the hand link. The
# hulls enclose the convex hulls of VGN's collision meshes (meshes/collision/hand.obj, finger.obj), which
# PyBullet collides with, and exceed them by at most a few mm at rounded edges (the palm's volume by 7 %,
# the fingers' by 7 %): no grasp fits this hand that would not fit VGN's.
VGN_FRANKA_HAND = HandModel(
    # The palm from 4 mm ahead of the TCP (a 31 × 188 mm face) to 88 mm behind it (the cable socket),
    # 65 × 206 mm at its widest: cross-sections of the hull of VGN's hand.obj.
    palm_hull_m=_palm_hull((
        (0.004, 0.0155, -0.0942, 0.015, 0.1685, 0.0941, 0.001, 0.0005),
        (0.0032, 0.0162, -0.0946, 0.016, 0.169, 0.0945, 0.016, 0.169),
        (0.0024, 0.0175, -0.0957, 0.017, 0.171, 0.0955, 0.0115, 0.0025),
        (0.0016, 0.0178, -0.0967, 0.001, 0.0015, 0.0965, 0.0175, 0.1725),
        (0.0, 0.0182, -0.0982, 0.001, 0.002, 0.0984, 0.018, 0.176),
        (-0.004, 0.0192, -0.101, 0.013, 0.0065, 0.1011, 0.01, 0.004),
        (-0.0073, 0.0201, -0.1013, 0.0175, 0.021, 0.1011, 0.017, 0.0075),
        (-0.012, 0.0213, -0.1016, 0.018, 0.0305, 0.101, 0.02, 0.0275),
        (-0.022, 0.0238, -0.1023, 0.0175, 0.043, 0.1004, 0.0215, 0.044),
        (-0.032, 0.0263, -0.103, 0.017, 0.06, 0.0995, 0.022, 0.053),
        (-0.047, 0.0301, -0.104, 0.016, 0.086, 0.0968, 0.024, 0.082),
        (-0.056, 0.0323, -0.1047, 0.0155, 0.102, 0.0945, 0.025, 0.097),
        (-0.0608, 0.0323, -0.1046, 0.015, 0.103, 0.092, 0.0255, 0.096),
        (-0.062, 0.0318, -0.1046, 0.015, 0.1015, 0.0912, 0.0255, 0.087),
        (-0.066, 0.0298, -0.1045, 0.015, 0.1105, 0.0874, 0.026, 0.0615),
        (-0.0684, 0.0287, -0.1045, 0.0135, 0.114, 0.0828, 0.025, 0.0375),
        (-0.0693, 0.0275, -0.1045, 0.013, 0.1095, 0.081, 0.025, 0.0465),
        (-0.07, 0.0266, -0.1045, 0.0125, 0.106, 0.0764, 0.024, 0.045),
        (-0.0712, 0.025, -0.1044, 0.0115, 0.099, 0.0682, 0.0225, 0.0425),
        (-0.0746, 0.0204, -0.1026, 0.0095, 0.08, 0.0452, 0.0185, 0.0365),
        (-0.0792, 0.0143, -0.1001, 0.007, 0.055, 0.014, 0.013, 0.0295),
        (-0.084, 0.0078, -0.093, 0.0045, 0.022, -0.0186, 0.0075, 0.066),
        (-0.0859, 0.0053, -0.0902, 0.0035, 0.01, -0.0314, 0.005, 0.052),
        (-0.087, 0.0037, -0.0884, 0.0015, 0.0045, -0.0389, 0.0035, 0.0435),
        (-0.088, 0.0029, -0.0855, 0.0025, 0.0375, -0.0423, 0.0025, 0.0055),
    )),
    # 21 mm wide, 24 mm thick at the root tapering to 14.5 mm at the tip, 53.9 mm long.
    finger_hull_m=_mirrored_in_x(((0.0105, 0.0025, 0.0), (0.0105, 0.0265, 0.0), (0.0105, 0.0255, 0.0195),
                                  (0.0105, -0.0001, 0.036), (0.009, -0.0002, 0.0539), (0.009, 0.0144, 0.0539))),
    finger_joint_z_m=0.0584 - 0.062,
    finger_travel_m=0.04,  # joint limits 0 .. 0.04
    palm_mass_kg=0.81,
    palm_com_m=(0.0, 0.0, 0.04 - 0.062),
    finger_mass_kg=0.1,
    finger_com_m=(0.0, 0.01, 0.02),
    finger_force_n=20.0,  # the joints' effort limit, which VGN's Joint.set_position uses as the force
    palm_friction=0.5,  # no <contact> on the hand link: PyBullet's default
    finger_friction=1.0,
    finger_spinning_friction=0.1,
    finger_contact_stiffness_n_per_m=30000.0,  # compliant finger contacts
    finger_contact_damping_n_s_per_m=1000.0,
)


@dataclass
class GraspOutcome:
    success: bool
    width_m: float  # final opening (the maximum opening when the grasp failed)
    object_id: int | None  # the body held, when successful
    reason: str  # why it failed, or "held"


class SimulatedHand:
    """Pre-grasp 0.05 m back along the approach, approach, close, lift 0.1 m, check the hold.

    As VGN's ``ClutterRemovalSim.execute_grasp``: the TCP moves in 2 mm steps at 0.1 m/s held by a fixed
    constraint of 300 N; closing drives both fingers to 0 for 0.5 s; the lift goes back along the
    approach, or straight up when the approach is more than 60° from vertical, and is measured from the
    grasp pose, not from where a touch stopped the approach. Success (VGN's ``check_success``), right
    after the lift: the hand touches an object and the fingers are more than 10 % of the maximum opening
    apart (8 mm for the Franka Hand). Stricter than VGN: a hand that spawns in contact at the pre-grasp
    fails at once (VGN's check there runs before any simulation step, so it never sees a contact).
    """

    pregrasp_distance_m = 0.05
    lift_distance_m = 0.10
    finger_force_n = VGN_FRANKA_HAND.finger_force_n
    step_m = 0.002  # VGN's move_tcp_xyz(eef_step=0.002, vel=0.10)
    speed_mps = 0.10
    mount_force_n = 300.0  # VGN's update_tcp_constraint(maxForce=300)
    close_duration_s = 0.5  # VGN's Gripper.move: 0.5 s of simulation

    def __init__(self, world: ClutterWorld, gripper: ParallelGripper = FRANKA_HAND,
                 model: HandModel = VGN_FRANKA_HAND):
        self.world = world
        self.gripper = gripper
        self.model = model
        self.p = world.p
        self.body: int | None = None
        self._left, self._right = 0, 1  # the finger links
        self._T_tcp_com = make_transform(np.eye(3), model.palm_com_m)
        self._T_com_tcp = np.linalg.inv(self._T_tcp_com)
        # Shapes once per hand, bodies per grasp (a labeller executes hundreds in one world).
        self._shapes = [self.p.createCollisionShape(self.p.GEOM_MESH, vertices=[list(v) for v in hull])
                        for hull in (model.palm_hull_m, model.finger_hull_m,
                                     tuple((-x, -y, z) for x, y, z in model.finger_hull_m))]

    # -- low level ------------------------------------------------------------------------------
    def _create_body(self, T_world_tcp: np.ndarray) -> int:
        p, h = self.p, self.model
        palm, left, right = self._shapes
        com_x, com_y, com_z = h.finger_com_m
        body = p.createMultiBody(
            h.palm_mass_kg, palm, -1, T_world_tcp[:3, 3], quaternion_xyzw(T_world_tcp),
            baseInertialFramePosition=h.palm_com_m,
            linkMasses=[h.finger_mass_kg] * 2, linkCollisionShapeIndices=[left, right],
            linkVisualShapeIndices=[-1, -1], linkPositions=[[0.0, 0.0, h.finger_joint_z_m]] * 2,
            linkOrientations=[[0.0, 0.0, 0.0, 1.0]] * 2,
            linkInertialFramePositions=[[com_x, com_y, com_z], [-com_x, -com_y, com_z]],
            linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]] * 2, linkParentIndices=[0, 0],
            linkJointTypes=[p.JOINT_PRISMATIC] * 2, linkJointAxis=[[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
        p.changeDynamics(body, -1, lateralFriction=h.palm_friction)
        for finger in (0, 1):
            p.changeDynamics(body, finger, lateralFriction=h.finger_friction,
                             spinningFriction=h.finger_spinning_friction,
                             contactStiffness=h.finger_contact_stiffness_n_per_m,
                             contactDamping=h.finger_contact_damping_n_s_per_m, frictionAnchor=True,
                             jointLowerLimit=0.0, jointUpperLimit=h.finger_travel_m)
        return body

    def _spawn(self, T_world_tcp: np.ndarray) -> None:
        p = self.p
        self.body = self._create_body(T_world_tcp)
        T_com = T_world_tcp @ self._T_tcp_com
        self._mount = p.createConstraint(self.body, -1, -1, -1, p.JOINT_FIXED, (0, 0, 0), (0, 0, 0),
                                         T_com[:3, 3], childFrameOrientation=quaternion_xyzw(T_com))
        self._hold(T_world_tcp)
        # Keep the fingers symmetric, as the real hand's mechanism does (VGN's gear constraint).
        gear = p.createConstraint(self.body, self._left, self.body, self._right, p.JOINT_GEAR,
                                  (1, 0, 0), (0, 0, 0), (0, 0, 0))
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50)
        half = 0.5 * self.gripper.max_opening_m
        for joint in (self._left, self._right):
            p.resetJointState(self.body, joint, half)
            p.setJointMotorControl2(self.body, joint, p.POSITION_CONTROL, targetPosition=half,
                                    force=self.finger_force_n)

    def _remove(self) -> None:
        if self.body is not None:
            self.p.removeBody(self.body)
            self.body = None

    def _hold(self, T_world_tcp: np.ndarray) -> None:
        """Drive the mount constraint (pivot at the hand's centre of mass) to put the TCP at ``T_world_tcp``."""
        T_com = T_world_tcp @ self._T_tcp_com
        self.p.changeConstraint(self._mount, T_com[:3, 3], jointChildFrameOrientation=quaternion_xyzw(T_com),
                                maxForce=self.mount_force_n)

    def _tcp(self) -> np.ndarray:
        position, orientation = self.p.getBasePositionAndOrientation(self.body)
        return make_transform(Rotation.from_quat(orientation).as_matrix(), position) @ self._T_com_tcp

    def _contacts(self) -> list:
        self.p.performCollisionDetection()
        return self.p.getContactPoints(bodyA=self.body)

    def _move_linear(self, target_position: np.ndarray, abort_on_contact: bool) -> bool:
        """Drag the TCP in a straight line; returns False when stopped by a contact."""
        T = self._tcp()
        delta = np.asarray(target_position) - T[:3, 3]
        n = max(1, int(np.linalg.norm(delta) / self.step_m))
        substeps = max(1, int(np.linalg.norm(delta) / n / self.speed_mps / self.world.dt))
        start = T[:3, 3].copy()
        for i in range(1, n + 1):
            T[:3, 3] = start + delta * i / n
            self._hold(T)
            self.world.step(substeps)
            if abort_on_contact and self._contacts():
                return False
        return True

    def _close(self) -> None:
        for joint in (self._left, self._right):
            self.p.setJointMotorControl2(self.body, joint, self.p.POSITION_CONTROL, targetPosition=0.0,
                                         force=self.finger_force_n)
        self.world.step(int(self.close_duration_s / self.world.dt))

    def opening_m(self) -> float:
        return sum(self.p.getJointState(self.body, j)[0] for j in (self._left, self._right))

    # -- protocol --------------------------------------------------------------------------------
    def execute(self, T_world_grasp: np.ndarray, remove_held: bool = True,
                allow_contact: bool = True) -> GraspOutcome:
        """Execute one grasp (TCP pose in the world frame); the held object is removed on success."""
        approach = T_world_grasp[:3, 2]
        pregrasp = T_world_grasp[:3, 3] - self.pregrasp_distance_m * approach
        if np.degrees(np.arccos(np.clip(-approach[2], -1.0, 1.0))) > 60.0:
            lift = T_world_grasp[:3, 3] + np.array([0.0, 0.0, self.lift_distance_m])
        else:
            lift = T_world_grasp[:3, 3] - self.lift_distance_m * approach

        T_pregrasp = T_world_grasp.copy()
        T_pregrasp[:3, 3] = pregrasp
        self._spawn(T_pregrasp)
        try:
            if self._contacts():
                return GraspOutcome(False, self.gripper.max_opening_m, None, "collision at pre-grasp")
            self._move_linear(T_world_grasp[:3, 3], abort_on_contact=True)
            if self._contacts() and not allow_contact:
                return GraspOutcome(False, self.gripper.max_opening_m, None, "collision on approach")
            self._close()
            self._move_linear(lift, abort_on_contact=False)
            held = [c[2] for c in self._contacts() if c[2] in self.world.object_ids]
            width = self.opening_m()
            if not held:
                return GraspOutcome(False, self.gripper.max_opening_m, None, "nothing held after lift")
            if width <= 0.1 * self.gripper.max_opening_m:
                return GraspOutcome(False, self.gripper.max_opening_m, None, "fingers closed on nothing")
            body = max(set(held), key=held.count)
            if remove_held:
                self.world.remove_object(body)
            return GraspOutcome(True, width, body, "held")
        finally:
            self._remove()
            if remove_held:
                self.world.remove_and_wait()
