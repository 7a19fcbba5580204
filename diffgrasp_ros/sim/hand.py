"""A free-floating parallel gripper executing grasps in the simulated world (the VGN protocol)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import make_transform, quaternion_xyzw
from ..robots.gripper import FRANKA_HAND, ParallelGripper
from .world import ClutterWorld


@dataclass
class GraspOutcome:
    success: bool
    width_m: float  # final opening (the maximum opening when the grasp failed)
    object_id: int | None  # the body held, when successful
    reason: str  # why it failed, or "held"


class SimulatedHand:
    """Pre-grasp 0.05 m back along the approach, approach, close, lift 0.1 m, check the hold.

    The lift goes back along the approach, or straight up when the approach is more than 60° from
    vertical. Success: the hand touches an object and the fingers stay more than 10 % of the maximum
    opening apart (8 mm for the Franka Hand).
    """

    pregrasp_distance_m = 0.05
    lift_distance_m = 0.10
    finger_force_n = 20.0  # per finger, closing

    def __init__(self, world: ClutterWorld, gripper: ParallelGripper = FRANKA_HAND):
        self.world = world
        self.gripper = gripper
        self.p = world.p
        self.body: int | None = None

    # -- low level ------------------------------------------------------------------------------
    def _spawn(self, T_world_tcp: np.ndarray) -> None:
        p = self.p
        position, orientation = T_world_tcp[:3, 3], quaternion_xyzw(T_world_tcp)
        self.body = p.loadURDF(str(self.gripper.urdf_path), position, orientation)
        self._joints = {p.getJointInfo(self.body, j)[1].decode(): j for j in range(p.getNumJoints(self.body))}
        self._left, self._right = self._joints["finger_joint_left"], self._joints["finger_joint_right"]
        self._mount = p.createConstraint(self.body, -1, -1, -1, p.JOINT_FIXED, (0, 0, 0), (0, 0, 0),
                                         position, childFrameOrientation=orientation)
        p.changeConstraint(self._mount, position, jointChildFrameOrientation=orientation, maxForce=300)
        # Keep the fingers symmetric, as the real hand's mechanism does.
        gear = p.createConstraint(self.body, self._left, self.body, self._right, p.JOINT_GEAR,
                                  (0, 1, 0), (0, 0, 0), (0, 0, 0))
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

    def _tcp(self) -> np.ndarray:
        position, orientation = self.p.getBasePositionAndOrientation(self.body)
        return make_transform(Rotation.from_quat(orientation).as_matrix(), position)

    def _contacts(self) -> list:
        self.p.performCollisionDetection()
        return self.p.getContactPoints(bodyA=self.body)

    def _move_linear(self, target_position: np.ndarray, abort_on_contact: bool, step_m: float = 0.002,
                     speed_mps: float = 0.10) -> bool:
        """Drag the TCP in a straight line; returns False when stopped by a contact."""
        T = self._tcp()
        orientation = quaternion_xyzw(T)
        delta = np.asarray(target_position) - T[:3, 3]
        n = max(1, int(np.linalg.norm(delta) / step_m))
        substeps = max(1, int(np.linalg.norm(delta) / n / speed_mps / self.world.dt))
        for i in range(1, n + 1):
            self.p.changeConstraint(self._mount, T[:3, 3] + delta * i / n,
                                    jointChildFrameOrientation=orientation, maxForce=300)
            self.world.step(substeps)
            if abort_on_contact and self._contacts():
                return False
        return True

    def _close(self) -> None:
        for joint in (self._left, self._right):
            self.p.setJointMotorControl2(self.body, joint, self.p.POSITION_CONTROL, targetPosition=0.0,
                                         force=self.finger_force_n)
        self.world.step(int(0.5 / self.world.dt))

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
