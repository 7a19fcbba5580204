"""A free-floating LEAP hand executing dexterous grasps in the simulated world (lift tests).

The protocol follows the free-floating parallel hand (``sim.hand``, the VGN protocol) with the LEAP
hand's own joints: spawn the hand with its ``leap_palm`` 0.05 m back along the approach (+z of the
palm) in the pre-grasp posture, fail if it starts inside something, approach in a straight line
(stopping when the hand presses on something with more than 1 N; optionally continuing past the palm
pose until it does, ``approach_beyond_m``), close the 16 joints from the pre-grasp posture towards
a closing target (for a dexterous grasp, ``leap.DEXTEROUS_CLOSED_Q``) with effort-limited
position control (the URDF's 0.95 N m, the real motors'), record the settled joints (``q_contact``),
lift 0.1 m straight up, hold briefly and judge: held when the object most touched by the hand rose
at least half the lift with the hand, and the thumb and at least one finger touch it.

Friction. Bullet combines the two bodies' lateral friction coefficients of a contact by multiplying
them, and every object of this project has lateral friction 1.0 (``sim.object_set``). So during a test
the hand's links get ``friction`` and the objects are held at 1.0: the hand-object coefficient is then
exactly ``friction`` (0.2 is the strict value of DexGraspNet's benchmark), while objects keep their
usual friction against the table and each other. Setting both sides to 0.2 would give 0.04. The
digits' torsional (spinning) friction scales with ``friction`` the same way (0.1 at 1.0, the Franka
Hand URDF's value). ``execution.sim_executor`` uses friction 1.0 for the benchmark (as the arm
simulation's hand, ``sim.arm``); ``training.leap_data`` labels at 0.2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import invert, make_transform, quaternion_xyzw
from ..robots import leap
from .quiet import c_output_silenced
from .world import ClutterWorld

# Which digit a link belongs to (palm links map to None).
_DIGIT_OF_LINK = {
    **{name: "index" for name in ("mcp_joint", "pip", "dip", "fingertip", "index_tip")},
    **{name: "middle" for name in ("mcp_joint_2", "pip_2", "dip_2", "fingertip_2", "middle_tip")},
    **{name: "ring" for name in ("mcp_joint_3", "pip_3", "dip_3", "fingertip_3", "ring_tip")},
    **{name: "thumb" for name in ("pip_4", "thumb_pip", "thumb_dip", "thumb_fingertip", "thumb_tip")},
}
FINGERS = ("index", "middle", "ring")


@dataclass
class LeapGraspOutcome:
    success: bool
    q_contact: np.ndarray | None  # (16,) settled joints after closing (None when the hand never closed)
    object_id: int | None  # the body held (success) or most touched (failure after closing)
    reason: str  # why it failed, or "held"
    digits: tuple[str, ...] = ()  # digits touching the object after the lift
    rise_m: float = 0.0  # how far that object rose
    T_palm_contact: np.ndarray | None = None  # the leap_palm pose where the approach stopped (closing pose)


@dataclass
class ContactResult:
    ok: bool  # the hand reached the grasp and closed (no collision at the pre-grasp)
    q_contact: np.ndarray | None
    object_id: int | None  # the object most touched after closing
    digits: tuple[str, ...]  # digits touching it
    reason: str
    T_palm_contact: np.ndarray | None = None


class SimulatedLeapHand:
    """The LEAP hand, its base held by a fixed constraint that moves it (see the module docstring).

    ``execute`` does the whole lift test; ``close_to_contact`` only the pre-grasp / approach / close
    part (data generation). Both leave the hand removed afterwards. No randomness: the same world
    state (e.g. a scene rebuilt the same way) gives the same outcome; a repeat in the same PyBullet
    world may differ slightly (its contact caches are warm-started).
    """

    pregrasp_distance_m = 0.05
    lift_distance_m = 0.10
    close_s = 0.4  # the joint targets sweep from pre-grasp to the closing target in this time
    settle_s = 0.3  # then held, before reading q_contact
    hold_s = 0.25  # held after the lift, before judging
    mount_force_n = 300.0
    # Torsional friction of the digits' pads, per unit of lateral friction: the Franka Hand URDF's
    # fingers have 0.1 at lateral friction 1 (Bullet combines it with the object's lateral friction).
    spinning_friction_m = 0.1
    stop_force_n = 1.0  # the approach stops when the hand presses on something this hard

    def __init__(self, world: ClutterWorld, friction: float = 1.0):
        if not friction > 0.0:
            raise ValueError(f"friction must be positive, got {friction}")
        self.world = world
        self.p = world.p
        self.friction = float(friction)
        self.body: int | None = None
        self._T_com_palm: np.ndarray | None = None

    # -- hand body ---------------------------------------------------------------------------------
    def _spawn(self, T_world_palm: np.ndarray, q: np.ndarray) -> None:
        p = self.p
        with c_output_silenced():
            self.body = p.loadURDF(str(leap.URDF_PATH), (0.0, 0.0, 5.0), (0.0, 0.0, 0.0, 1.0))
        info = [p.getJointInfo(self.body, j) for j in range(p.getNumJoints(self.body))]
        self._joint = {i[1].decode(): i[0] for i in info}
        self._indices = [self._joint[name] for name in leap.JOINT_NAMES]
        self._effort = [float(info[j][10]) for j in self._indices]
        links = {i[12].decode(): i[0] for i in info}
        self._digit = {index: _DIGIT_OF_LINK.get(name) for name, index in links.items()}
        self._digit[-1] = None
        if self._T_com_palm is None:  # the palm frame in the base's inertial frame (a fixed joint)
            com = p.getBasePositionAndOrientation(self.body)
            palm = p.getLinkState(self.body, links[leap.PALM_LINK], computeForwardKinematics=True)[4:6]
            T_world_com = make_transform(Rotation.from_quat(com[1]).as_matrix(), com[0])
            T_world_palm0 = make_transform(Rotation.from_quat(palm[1]).as_matrix(), palm[0])
            self._T_com_palm = invert(T_world_com) @ T_world_palm0
        for link in [-1, *links.values()]:
            p.changeDynamics(self.body, link, lateralFriction=self.friction, rollingFriction=0.0,
                             spinningFriction=self.spinning_friction_m * self.friction)
        T_world_com = T_world_palm @ invert(self._T_com_palm)
        p.resetBasePositionAndOrientation(self.body, T_world_com[:3, 3], quaternion_xyzw(T_world_com))
        for j, value in zip(self._indices, q):
            p.resetJointState(self.body, j, float(value))
        self._command(q)
        self._mount = p.createConstraint(
            self.body, -1, -1, -1, p.JOINT_FIXED, (0, 0, 0), self._T_com_palm[:3, 3], T_world_palm[:3, 3],
            parentFrameOrientation=quaternion_xyzw(self._T_com_palm),
            childFrameOrientation=quaternion_xyzw(T_world_palm))
        p.changeConstraint(self._mount, T_world_palm[:3, 3], jointChildFrameOrientation=quaternion_xyzw(T_world_palm),
                           maxForce=self.mount_force_n)
        self._T_target = T_world_palm.copy()

    def _remove(self) -> None:
        if self.body is not None:
            self.p.removeBody(self.body)
            self.body = None

    def _command(self, q: np.ndarray) -> None:
        self.p.setJointMotorControlArray(self.body, self._indices, self.p.POSITION_CONTROL,
                                         targetPositions=[float(v) for v in q],
                                         targetVelocities=[0.0] * 16, forces=self._effort)

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in self.p.getJointStates(self.body, self._indices)])

    def _contacts(self, penetrating_only: bool = False) -> list:
        self.p.performCollisionDetection()
        contacts = self.p.getContactPoints(bodyA=self.body)
        return [c for c in contacts if c[8] < 0.0] if penetrating_only else list(contacts)

    def _pushing(self) -> bool:
        """The hand presses on something: more than ``stop_force_n`` of contact force in total. (A
        grazing touch does not stop the approach: the LEAP digits reach 3 cm past the TCP.)"""
        return sum(c[9] for c in self._contacts()) > self.stop_force_n

    def _object_contacts(self) -> dict[int, list[str | None]]:
        """Per touched object: the digit of each contact point (None for the palm)."""
        touched: dict[int, list[str | None]] = {}
        for c in self._contacts():
            if c[2] in self.world.object_ids:
                touched.setdefault(c[2], []).append(self._digit.get(c[3]))
        return touched

    def _move_palm(self, target_position: np.ndarray, abort_on_contact: bool, speed_mps: float = 0.10,
                   check_every_m: float = 0.002) -> bool:
        """Drag the palm in a straight line, its target moved at every physics step (a smooth motion,
        no jerks that shake a weakly held object loose); False when stopped by a contact."""
        start = self._T_target[:3, 3].copy()
        orientation = quaternion_xyzw(self._T_target)
        delta = np.asarray(target_position, dtype=float) - start
        distance = float(np.linalg.norm(delta))
        steps = max(1, int(np.ceil(distance / speed_mps / self.world.dt)))
        check = max(1, int(round(check_every_m / speed_mps / self.world.dt)))
        for k in range(1, steps + 1):
            self._T_target[:3, 3] = start + delta * k / steps
            self.p.changeConstraint(self._mount, self._T_target[:3, 3], jointChildFrameOrientation=orientation,
                                    maxForce=self.mount_force_n)
            self.world.step()
            if abort_on_contact and (k % check == 0 or k == steps) and self._pushing():
                return False
        return True

    def _close(self, q_from: np.ndarray, q_to: np.ndarray) -> None:
        steps = max(1, int(round(self.close_s / self.world.dt)))
        for k in range(1, steps + 1):
            self._command(q_from + (q_to - q_from) * k / steps)
            self.world.step()
        self.world.step(int(round(self.settle_s / self.world.dt)))

    # -- objects' friction -------------------------------------------------------------------------
    def _hold_object_friction(self) -> dict[int, float]:
        saved = {}
        for body in self.world.object_ids:
            saved[body] = float(self.p.getDynamicsInfo(body, -1)[1])
            if saved[body] != 1.0:
                self.p.changeDynamics(body, -1, lateralFriction=1.0)
        return saved

    def _restore_object_friction(self, saved: dict[int, float]) -> None:
        for body, value in saved.items():
            if body in self.world.object_ids and value != 1.0:
                self.p.changeDynamics(body, -1, lateralFriction=value)

    # -- protocol ----------------------------------------------------------------------------------
    def _reach_and_close(self, T_world_palm: np.ndarray, q_pregrasp: np.ndarray, q_closing: np.ndarray,
                         approach_beyond_m: float = 0.0) -> ContactResult:
        q_pre = np.clip(leap._check_q(q_pregrasp), leap.LOWER_RAD, leap.UPPER_RAD)
        target = np.clip(leap._check_q(q_closing), leap.LOWER_RAD, leap.UPPER_RAD)
        T_pre = np.array(T_world_palm, dtype=float)
        T_pre[:3, 3] = T_pre[:3, 3] - self.pregrasp_distance_m * T_pre[:3, 2]
        self._spawn(T_pre, q_pre)
        if self._contacts(penetrating_only=True):
            return ContactResult(False, None, None, (), "collision at pre-grasp")
        self._move_palm(T_world_palm[:3, 3] + approach_beyond_m * T_world_palm[:3, 2], abort_on_contact=True)
        self._close(q_pre, target)
        q_contact = self.joint_positions()
        T_contact = self._T_target.copy()
        touched = self._object_contacts()
        if not touched:
            return ContactResult(True, q_contact, None, (), "no object touched after closing", T_contact)
        body = max(touched, key=lambda b: len(touched[b]))
        digits = tuple(sorted({d for d in touched[body] if d is not None}))
        return ContactResult(True, q_contact, body, digits, "closed", T_contact)

    def close_to_contact(self, T_world_palm: np.ndarray, q_pregrasp: np.ndarray, q_closing: np.ndarray = leap.CLOSED_Q,
                         approach_beyond_m: float = 0.0) -> ContactResult:
        """Pre-grasp, approach and close only: the settled joints and what they touch. The hand is
        removed afterwards; the objects stay where the hand left them."""
        saved = self._hold_object_friction()
        try:
            return self._reach_and_close(T_world_palm, q_pregrasp, q_closing, approach_beyond_m)
        finally:
            self._remove()
            self._restore_object_friction(saved)

    def execute(self, T_world_palm: np.ndarray, q_pregrasp: np.ndarray, q_closing: np.ndarray,
                remove_held: bool = False, approach_beyond_m: float = 0.0) -> LeapGraspOutcome:
        """The lift test of one grasp (``leap_palm`` pose in the world frame, 16-joint postures).

        ``remove_held``: on success remove the held object and let the rest settle, as the parallel
        hand does in the clutter-removal benchmark. ``approach_beyond_m``: keep approaching up to this
        far past the palm pose until the hand presses on something (a power grasp, the palm closer to
        the object); the pre-grasp stays 0.05 m behind ``T_world_palm``."""
        saved = self._hold_object_friction()
        try:
            contact = self._reach_and_close(T_world_palm, q_pregrasp, q_closing, approach_beyond_m)
            if not contact.ok:
                return LeapGraspOutcome(False, None, None, contact.reason)
            if contact.object_id is None:
                return LeapGraspOutcome(False, contact.q_contact, None, "nothing touched after closing",
                                        T_palm_contact=contact.T_palm_contact)
            z_before = {b: float(self.world.object_pose(b)[0][2]) for b in self.world.object_ids}
            self._move_palm(self._T_target[:3, 3] + np.array([0.0, 0.0, self.lift_distance_m]), abort_on_contact=False)
            self.world.step(int(round(self.hold_s / self.world.dt)))
            touched = self._object_contacts()
            if not touched:
                return LeapGraspOutcome(False, contact.q_contact, contact.object_id, "nothing held after lift",
                                        T_palm_contact=contact.T_palm_contact)
            body = max(touched, key=lambda b: len(touched[b]))
            digits = tuple(sorted({d for d in touched[body] if d is not None}))
            rise = float(self.world.object_pose(body)[0][2] - z_before[body])
            if rise < 0.5 * self.lift_distance_m:
                return LeapGraspOutcome(False, contact.q_contact, body,
                                        f"object rose {rise:.3f} m, less than half the {self.lift_distance_m} m lift",
                                        digits, rise, contact.T_palm_contact)
            if "thumb" not in digits or not any(f in digits for f in FINGERS):
                return LeapGraspOutcome(False, contact.q_contact, body,
                                        f"held by {', '.join(digits) or 'the palm'} only, not thumb against a finger",
                                        digits, rise, contact.T_palm_contact)
            if remove_held:
                self.world.remove_object(body)
            return LeapGraspOutcome(True, contact.q_contact, body, "held", digits, rise, contact.T_palm_contact)
        finally:
            self._remove()
            self._restore_object_friction(saved)
            if remove_held:
                self.world.remove_and_wait()
