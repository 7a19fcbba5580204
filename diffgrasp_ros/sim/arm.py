"""A whole arm in the simulated world, following planned picks with position control.

The robot (the embodiment's combined arm + hand URDF) stands at ``arm.T_workspace_base`` in an existing
``ClutterWorld``. A pick succeeds by the free-floating hand's test (``sim.hand``), measured after the
lift: the hand touches an object that rose with it, and the hand did not close on nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..execution.motion import MotionPlan, PickPlan
from ..geometry import make_transform, quaternion_xyzw
from ..robots.arm import ArmModel
from .hand import SimulatedHand
from .quiet import c_output_silenced
from .world import ClutterWorld


@dataclass
class PickOutcome:
    success: bool
    object_id: int | None  # the body held, when successful
    reason: str  # "held", or why not
    rise_m: float  # how far the most-touched object rose during the pick; 0 when nothing was touched
    tracking_error_m: float  # worst TCP distance from a segment's planned end


class SimulatedArm:
    """The embodiment in PyBullet. Joint targets come from ``MotionPlan``s, interpolated at every
    physics step. Arm joints push with their URDF effort limit but at least ``min_effort`` (stiff, as
    a real arm's high-gain controller tracks). A parallel gripper's fingers squeeze with the
    free-floating hand's force (``SimulatedHand.finger_force_n``), so both executors grasp alike (the
    Panda URDF's 100 N makes light objects squirt out); a LEAP hand's joints with their URDF limit,
    the real motors' 0.95 N m."""

    settle_s = 0.25  # held at each segment's end, so the arm arrives before the next one starts

    def __init__(self, world: ClutterWorld, arm: ArmModel, hand_friction: float = 1.0, min_effort: float = 20.0):
        self.world, self.arm, self.p = world, arm, world.p
        p = self.p
        T = arm.T_workspace_base
        with c_output_silenced():  # mesh loaders print per file
            self.body = p.loadURDF(str(arm.urdf_path), T[:3, 3], quaternion_xyzw(T), useFixedBase=True)
        info = [p.getJointInfo(self.body, j) for j in range(p.getNumJoints(self.body))]
        self._joint = {i[1].decode(): i[0] for i in info}
        self._effort = {i[0]: max(float(i[10]), min_effort) for i in info}
        for i in info:
            if i[1].decode() in arm.hand_joint_names:
                self._effort[i[0]] = SimulatedHand.finger_force_n if arm.hand_kind == "parallel" else float(i[10])
        links = {i[12].decode(): i[0] for i in info}  # a link's index is its parent joint's
        links[p.getBodyInfo(self.body)[0].decode()] = -1
        missing = [n for n in (*arm.arm_joint_names, *arm.hand_joint_names) if n not in self._joint]
        if missing or arm.tcp_link not in links or arm.ee_link not in links:
            raise ValueError(f"{arm.urdf_path} lacks joints {missing} or the links {arm.ee_link!r}/{arm.tcp_link!r}")
        self._tcp = links[arm.tcp_link]
        parent = {i[0]: i[16] for i in info}
        flange = links[arm.ee_link]

        def below_flange(link: int) -> bool:
            while link != -1 and link != flange:
                link = parent[link]
            return link == flange

        self.hand_links = frozenset(link for link in links.values() if link != -1 and below_flange(link))
        for link in self.hand_links:
            p.changeDynamics(self.body, link, lateralFriction=hand_friction)
        self.reset(arm.home_q, arm.hand_open_q)

    def close(self) -> None:
        self.p.removeBody(self.body)

    # -- state -------------------------------------------------------------------------------------
    def _indices(self, names) -> list[int]:
        return [self._joint[n] for n in names]

    def joint_positions(self, names) -> np.ndarray:
        return np.array([s[0] for s in self.p.getJointStates(self.body, self._indices(names))])

    @property
    def q_arm(self) -> np.ndarray:
        return self.joint_positions(self.arm.arm_joint_names)

    @property
    def q_hand(self) -> np.ndarray:
        return self.joint_positions(self.arm.hand_joint_names)

    def _command(self, names, q: np.ndarray, qd: np.ndarray | None = None) -> None:
        indices = self._indices(names)
        self.p.setJointMotorControlArray(
            self.body, indices, self.p.POSITION_CONTROL, targetPositions=list(q),
            targetVelocities=list(np.zeros(len(q)) if qd is None else qd),
            forces=[self._effort[j] for j in indices])

    def reset(self, q_arm: np.ndarray, q_hand: np.ndarray) -> None:
        """Teleport to a configuration and hold it."""
        for names, q in ((self.arm.arm_joint_names, q_arm), (self.arm.hand_joint_names, q_hand)):
            for j, value in zip(self._indices(names), q):
                self.p.resetJointState(self.body, j, float(value))
            self._command(names, q)

    def tcp_pose(self) -> np.ndarray:
        """``T_workspace_tcp`` (the world frame is the workspace frame)."""
        state = self.p.getLinkState(self.body, self._tcp, computeForwardKinematics=True)
        return make_transform(Rotation.from_quat(state[5]).as_matrix(), state[4])

    def hand_contacts(self) -> list[int]:
        """Bodies of the world's objects the hand touches (one entry per contact point)."""
        self.p.performCollisionDetection()
        return [c[2] for c in self.p.getContactPoints(bodyA=self.body)
                if c[3] in self.hand_links and c[2] in self.world.object_ids]

    # -- motion ------------------------------------------------------------------------------------
    def follow(self, motion: MotionPlan) -> None:
        """Track a trajectory of the named joints in real (simulated) time, then settle."""
        if not motion.success:
            raise ValueError(f"cannot follow a failed motion plan: {motion.message}")
        dt = self.world.dt
        steps = int(np.ceil(motion.duration_s / dt)) + int(self.settle_s / dt)
        velocities = np.gradient(motion.positions, motion.times_s, axis=0) if len(motion.times_s) > 1 else None
        for k in range(1, steps + 1):
            t = min(k * dt, motion.duration_s)
            qd = None if velocities is None or k * dt >= motion.duration_s else np.array(
                [np.interp(t, motion.times_s, velocities[:, j]) for j in range(velocities.shape[1])])
            self._command(motion.joint_names, motion.sample(t), qd)
            self.world.step()

    def _closed_fraction(self) -> float:
        """0 = open posture, 1 = the closed posture (reached only when nothing is between the fingers)."""
        span = np.linalg.norm(self.arm.hand_open_q - self.arm.hand_closed_q)
        return 1.0 - float(np.linalg.norm(self.q_hand - self.arm.hand_closed_q) / span)

    def execute_pick(self, pick: PickPlan, remove_held: bool = True) -> PickOutcome:
        """Run every segment of a planned pick, judge the hold after the lift, finish the retreat; then
        (as the free-floating hand does) remove the held object, return home open and let the rest settle."""
        if not pick.success:
            raise ValueError(f"cannot execute a pick that was not planned: {pick.message}")
        z_before = {b: self.world.object_pose(b)[0][2] for b in self.world.object_ids}
        tracking, outcome = 0.0, None
        try:
            for segment in pick.segments:
                self.follow(segment.plan)
                if segment.T_workspace_tcp_goal is not None:
                    error = np.linalg.norm(self.tcp_pose()[:3, 3] - segment.T_workspace_tcp_goal[:3, 3])
                    tracking = max(tracking, float(error))
                if segment.name == "lift":
                    outcome = self._judge(z_before, pick.lift_m)
            outcome.tracking_error_m = tracking
            if outcome.success and remove_held:
                self.world.remove_object(outcome.object_id)
            return outcome
        finally:
            self.reset(self.arm.home_q, self.arm.hand_open_q)
            if remove_held:
                self.world.remove_and_wait()

    def _judge(self, z_before: dict[int, float], lift_m: float) -> PickOutcome:
        touched = self.hand_contacts()
        if not touched:
            return PickOutcome(False, None, "nothing held after lift", 0.0, 0.0)
        body = max(set(touched), key=touched.count)
        rise = float(self.world.object_pose(body)[0][2] - z_before[body])
        if self._closed_fraction() >= 0.9:
            return PickOutcome(False, None, "hand closed on nothing", rise, 0.0)
        if rise < 0.5 * lift_m:
            return PickOutcome(False, None, f"object rose {rise:.3f} m, less than half the {lift_m} m lift", rise, 0.0)
        return PickOutcome(True, body, "held", rise, 0.0)
