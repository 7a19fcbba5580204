"""The standalone backend: mplib (OMPL RRTConnect, pinocchio IK, FCL collisions with an octree cloud)."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ...robots.arm import ArmModel
from .base import MotionPlan, MotionPlanner, MotionStatus, SceneObstacles

CLOUD_NAME = "scene_cloud"


def _mplib_urdf(urdf_path: Path) -> Path:
    """A copy of the URDF with mesh paths relative to the copy: mplib 0.2.1 prefixes every mesh
    filename with the URDF's directory, so absolute paths (and file:// URIs) do not load."""
    text = Path(urdf_path).read_text()
    folder = Path(tempfile.gettempdir()) / "diffgrasp_mplib"
    folder.mkdir(exist_ok=True)
    copy = folder / f"{Path(urdf_path).stem}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.urdf"
    if not copy.exists():
        def relative(match: re.Match) -> str:
            return f'filename="{os.path.relpath(match.group(1), folder)}"'

        copy.write_text(re.sub(r'filename="(?:file://)?(/[^"]+)"', relative, text))
    return copy


class MplibPlanner(MotionPlanner):
    """RRTConnect for free motions, a straight Cartesian line (IK at every ``straight_step_m``) for the
    approach and lift; the scene cloud becomes an octree of ``cloud_resolution_m`` voxels."""

    def __init__(self, arm: ArmModel, *, cloud_resolution_m: float = 0.005, max_joint_speed_rps: float = 1.0,
                 max_joint_accel_rps2: float = 2.0, straight_speed_scale: float = 0.2,
                 straight_step_m: float = 0.005, trajectory_step_s: float = 0.05, ik_restarts: int = 30,
                 seed: int | None = 1):
        super().__init__(arm)
        import mplib  # noqa: F401  (lazily: the library runs without it until an arm is planned for)
        from mplib import Planner, Pose

        if seed is not None:  # mplib's global seed: repeatable sampling
            mplib.pymp.set_global_seed(seed)
        self._Pose = Pose
        n = len(arm.arm_joint_names)
        self._speed = np.full(n, max_joint_speed_rps)
        self._accel = np.full(n, max_joint_accel_rps2)
        self.straight_speed_scale = straight_speed_scale
        self.straight_step_m = straight_step_m
        self.trajectory_step_s = trajectory_step_s
        self.ik_restarts = ik_restarts
        self.cloud_resolution_m = cloud_resolution_m
        self._planner = Planner(urdf=str(_mplib_urdf(arm.urdf_path)), srdf=str(arm.srdf_path),
                                move_group=arm.tcp_link, joint_vel_limits=self._speed,
                                joint_acc_limits=self._accel)
        self._planner.set_base_pose(Pose(np.asarray(arm.T_workspace_base, dtype=float)))
        self._model = self._planner.pinocchio_model
        names = list(self._planner.user_joint_names)
        missing = [j for j in (*arm.arm_joint_names, *arm.hand_joint_names) if j not in names]
        if missing:
            raise ValueError(f"{arm.urdf_path} has no joints {missing}")
        self._arm_index = np.array([names.index(j) for j in arm.arm_joint_names])
        self._hand_index = np.array([names.index(j) for j in arm.hand_joint_names], dtype=int)
        group = list(self._planner.move_group_joint_indices)
        if sorted(group) != sorted(self._arm_index.tolist()):
            raise ValueError(f"the chain {arm.base_link} -> {arm.tcp_link} moves joints "
                             f"{[names[i] for i in group]}, not the arm joints {list(arm.arm_joint_names)}")
        self._group = np.array(group)  # planner (move-group) order
        self._limits = self._planner.joint_limits
        self._tcp_index = self._planner.link_name_2_idx[arm.tcp_link]

    # -- configurations ---------------------------------------------------------------------------
    def _full_q(self, q_arm: np.ndarray, hand_q: np.ndarray) -> np.ndarray:
        q = np.zeros(len(self._planner.user_joint_names))
        q[self._arm_index] = q_arm
        q[self._hand_index] = hand_q
        return q

    def _arm_q(self, q_full: np.ndarray) -> np.ndarray:
        return np.asarray(q_full)[self._arm_index]

    def collisions(self, q_arm: np.ndarray, hand_q: np.ndarray) -> list[str]:
        """What the robot touches at ``q_arm`` ("link - object" pairs; self-collisions included)."""
        self._planner.robot.set_qpos(self._full_q(q_arm, hand_q), True)
        robot = self._planner.robot.get_name()
        return [f"{c.link_name1} - {c.link_name2 if c.object_name2 == robot else c.object_name2}"
                for c in self._planner.planning_world.check_collision()]

    def tcp_pose(self, q_arm: np.ndarray, hand_q: np.ndarray) -> np.ndarray:
        """``T_workspace_tcp`` at ``q_arm`` (forward kinematics)."""
        self._model.compute_forward_kinematics(self._full_q(q_arm, hand_q))
        T_base_tcp = self._model.get_link_pose(self._tcp_index).to_transformation_matrix()
        return self.arm.T_workspace_base @ T_base_tcp

    def _within_limits(self, q_full: np.ndarray) -> bool:
        q = q_full[self._group]
        limits = self._limits[self._group]
        return bool(np.all(q >= limits[:, 0] - 1e-6) and np.all(q <= limits[:, 1] + 1e-6))

    def _ik(self, T_workspace_tcp: np.ndarray, q_seed_full: np.ndarray, q_near_full: np.ndarray,
            tolerance_m: float = 1e-3):
        """Solve from the seed, then from random restarts; returns (the collision-free solution nearest
        ``q_near_full``, or None; whether any solution was found, colliding or not)."""
        goal = self._Pose(self.arm.T_base_workspace @ T_workspace_tcp)
        mask = np.ones(len(q_seed_full), dtype=bool)
        mask[self._group] = False  # the hand joints stay put
        q_init, found_any, best = q_seed_full.copy(), False, None
        for attempt in range(self.ik_restarts):
            q, ok, error = self._model.compute_IK_CLIK(self._tcp_index, goal, q_init, mask.tolist())
            if ok and np.linalg.norm(error[:3]) < tolerance_m and self._planner.wrap_joint_limit(q) \
                    and self._within_limits(q):
                found_any = True
                if not self.collisions(self._arm_q(q), q_seed_full[self._hand_index]):
                    if best is None or np.linalg.norm(q - q_near_full) < np.linalg.norm(best - q_near_full):
                        best = q
                    if attempt == 0:
                        break  # the seed's own branch is collision-free: keep the motion short
            q_init = q_seed_full.copy()
            random = self._model.get_random_configuration()
            q_init[self._group] = random[self._group]
        return best, found_any

    # -- scene -------------------------------------------------------------------------------------
    def set_scene(self, obstacles: SceneObstacles) -> None:
        points = obstacles.collision_points()
        self._planner.remove_point_cloud(CLOUD_NAME)
        if len(points):
            self._planner.update_point_cloud(np.asarray(points, dtype=float), resolution=self.cloud_resolution_m,
                                             name=CLOUD_NAME)

    # -- planning ----------------------------------------------------------------------------------
    def _timed(self, path_arm: np.ndarray, speed_scale: float, start: float, message: str) -> MotionPlan:
        """Time-parameterise a joint path (TOPP-RA, within the speed and acceleration limits)."""
        if len(path_arm) < 2 or np.allclose(path_arm[0], path_arm[-1], atol=1e-6):
            path_arm = np.vstack([path_arm[:1], path_arm[-1:]])
            times = np.array([0.0, self.trajectory_step_s])
        else:
            planner = self._planner
            planner.joint_vel_limits, planner.joint_acc_limits = self._speed * speed_scale, self._accel * speed_scale
            try:
                times, positions, *_ = planner.TOPP(path_arm, self.trajectory_step_s)
            finally:
                planner.joint_vel_limits, planner.joint_acc_limits = self._speed, self._accel
            if len(times) < 2:  # shorter than one step
                positions, times = path_arm[[0, -1]], np.array([0.0, self.trajectory_step_s])
            path_arm = np.asarray(positions)
        return MotionPlan(self.arm.arm_joint_names, path_arm, np.asarray(times, dtype=float),
                          time.perf_counter() - start, MotionStatus.SUCCESS, message)

    def _fail(self, status: MotionStatus, message: str, start: float) -> MotionPlan:
        return MotionPlan.failure(self.arm.arm_joint_names, status, message, time.perf_counter() - start)

    def _check_start(self, q_start: np.ndarray, hand_q: np.ndarray, start: float) -> MotionPlan | None:
        touching = self.collisions(q_start, hand_q)
        if touching:
            return self._fail(MotionStatus.START_IN_COLLISION, f"start state in collision: {touching[:3]}", start)
        return None

    def plan_to_joints(self, q_start, q_goal, *, hand_q, timeout_s: float = 1.0) -> MotionPlan:
        start = time.perf_counter()
        q_start, q_goal, hand_q = (np.asarray(v, dtype=float) for v in (q_start, q_goal, hand_q))
        if (failed := self._check_start(q_start, hand_q, start)) is not None:
            return failed
        if not self._within_limits(self._full_q(q_goal, hand_q)):
            return self._fail(MotionStatus.UNREACHABLE, "joint goal outside the joint limits", start)
        touching = self.collisions(q_goal, hand_q)
        if touching:
            return self._fail(MotionStatus.GOAL_IN_COLLISION, f"joint goal in collision: {touching[:3]}", start)
        return self._rrt(q_start, q_goal, hand_q, timeout_s, start)

    def _rrt(self, q_start, q_goal, hand_q, timeout_s: float, start: float) -> MotionPlan:
        full_start = self._full_q(q_start, hand_q)
        # plan_qpos works in move-group order; arm order is mapped back afterwards.
        status, path = self._planner.planner.plan(full_start[self._group], [self._full_q(q_goal, hand_q)[self._group]],
                                                  time=timeout_s, range=0.1, fixed_joints=set(), simplify=True,
                                                  constraint_function=None, constraint_jacobian=None,
                                                  constraint_tolerance=1e-3, verbose=False)
        if status != "Exact solution":
            return self._fail(MotionStatus.PLANNING_TIMEOUT,
                              f"RRTConnect found no path within {timeout_s:.2f} s ({status})", start)
        return self._timed(self._to_arm_order(np.asarray(path)), 1.0, start, "RRTConnect")

    def _to_arm_order(self, path_group: np.ndarray) -> np.ndarray:
        order = [list(self._group).index(i) for i in self._arm_index]
        return path_group[:, order]

    def plan_to_pose(self, q_start, T_workspace_tcp, *, hand_q, straight: bool = False,
                     timeout_s: float = 1.0, ik_seed: np.ndarray | None = None) -> MotionPlan:
        start = time.perf_counter()
        q_start, hand_q = np.asarray(q_start, dtype=float), np.asarray(hand_q, dtype=float)
        if (failed := self._check_start(q_start, hand_q, start)) is not None:
            return failed
        if straight:
            return self._straight(q_start, np.asarray(T_workspace_tcp, dtype=float), hand_q, timeout_s, start)
        seed = q_start if ik_seed is None else np.asarray(ik_seed, dtype=float)
        q_goal, found_any = self._ik(T_workspace_tcp, self._full_q(seed, hand_q), self._full_q(q_start, hand_q))
        if q_goal is None:
            if found_any:
                return self._fail(MotionStatus.GOAL_IN_COLLISION, "every IK solution of the goal is in collision",
                                  start)
            return self._fail(MotionStatus.UNREACHABLE, "no IK solution for the goal pose", start)
        remaining = timeout_s - (time.perf_counter() - start)
        if remaining <= 0.0:
            return self._fail(MotionStatus.PLANNING_TIMEOUT, f"IK alone took longer than {timeout_s:.2f} s", start)
        return self._rrt(q_start, self._arm_q(q_goal), hand_q, remaining, start)

    def _straight(self, q_start, T_goal, hand_q, timeout_s: float, start: float) -> MotionPlan:
        """IK along the line from the current TCP pose to ``T_goal`` (orientation slerped), each
        waypoint seeded by the previous one; blocked by collisions, joint limits or jumps."""
        T_from = self.tcp_pose(q_start, hand_q)
        distance = np.linalg.norm(T_goal[:3, 3] - T_from[:3, 3])
        n = max(2, int(np.ceil(distance / self.straight_step_m)) + 1)
        rotations = Slerp([0.0, 1.0], Rotation.from_matrix([T_from[:3, :3], T_goal[:3, :3]]))(np.linspace(0, 1, n))
        mask = np.ones(len(self._planner.user_joint_names), dtype=bool)
        mask[self._group] = False
        q = self._full_q(q_start, hand_q)
        path = [q_start]
        for i, s in enumerate(np.linspace(0.0, 1.0, n)[1:], start=1):
            if time.perf_counter() - start > timeout_s:
                return self._fail(MotionStatus.PLANNING_TIMEOUT, "straight-line IK ran out of time", start)
            T = np.eye(4)
            T[:3, :3] = rotations[i].as_matrix()
            T[:3, 3] = (1.0 - s) * T_from[:3, 3] + s * T_goal[:3, 3]
            q_next, ok, error = self._model.compute_IK_CLIK(self._tcp_index, self._Pose(self.arm.T_base_workspace @ T),
                                                           q, mask.tolist())
            where = f"at {s * distance:.3f} of {distance:.3f} m"
            if not ok or np.linalg.norm(error[:3]) > 1e-3 or not self._within_limits(q_next):
                return self._fail(MotionStatus.UNREACHABLE, f"straight line leaves the workspace {where}", start)
            if np.max(np.abs(q_next[self._group] - q[self._group])) > 0.2:
                return self._fail(MotionStatus.NO_COLLISION_FREE_PATH, f"straight line needs a joint flip {where}",
                                  start)
            touching = self.collisions(self._arm_q(q_next), hand_q)
            if touching:
                return self._fail(MotionStatus.NO_COLLISION_FREE_PATH,
                                  f"straight line blocked {where}: {touching[:3]}", start)
            q = q_next
            path.append(self._arm_q(q))
        return self._timed(np.array(path), self.straight_speed_scale, start, "straight line")
