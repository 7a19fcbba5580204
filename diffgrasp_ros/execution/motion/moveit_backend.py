"""The MoveIt 2 backend, through moveit_py (a ROS 2 machine with MoveIt and the robot's MoveIt config).

MoveIt owns the collision scene: the perceived cloud reaches it through its occupancy-map updater (point
``sensors`` at the ``scene/surface`` PointCloud2 of ``scene_builder``), so ``set_scene`` only decides
whether the hand may touch that octomap — on the approach, lift and retreat, through the allowed
collision matrix of a copy of the planning scene. Free motions use the ``transit_params`` plan-request
namespace (e.g. OMPL RRTConnect), straight ones ``straight_params`` (e.g. Pilz ``LIN``); both are
moveit_py parameter namespaces of the MoveItPy config.
"""
from __future__ import annotations

import copy
import time

import numpy as np
from scipy.spatial.transform import Rotation

from ...robots.arm import ArmModel
from .base import MOVEIT_ERROR_CODES, MotionPlan, MotionPlanner, MotionStatus, SceneObstacles, links_below

OCTOMAP_NAME = "<octomap>"  # MoveIt's name for the occupancy map in the collision world
_STATUS_BY_CODE = {code: status for status, code in MOVEIT_ERROR_CODES.items()}


def _moveit():
    try:
        from moveit.core.robot_state import RobotState
        from moveit.planning import MoveItPy, PlanRequestParameters
    except ImportError as error:
        raise RuntimeError(
            "the 'moveit' motion-planning backend needs moveit_py (ROS 2 with MoveIt 2: install "
            "ros-<distro>-moveit-py and source the ROS setup); without ROS use the 'mplib' backend") from error
    return MoveItPy, PlanRequestParameters, RobotState


def pose_goal_msg(T_base_tcp: np.ndarray, base_frame: str):
    """A ``geometry_msgs/PoseStamped`` of the TCP goal in the robot's base frame (no TF needed)."""
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.frame_id = base_frame
    x, y, z = (float(v) for v in T_base_tcp[:3, 3])
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    qx, qy, qz, qw = (float(v) for v in Rotation.from_matrix(T_base_tcp[:3, :3]).as_quat())
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = qx, qy, qz, qw
    return msg


def status_from_moveit(code: int) -> MotionStatus:
    return _STATUS_BY_CODE.get(code, MotionStatus.BACKEND_ERROR)


class MoveItPlanner(MotionPlanner):
    def __init__(self, arm: ArmModel, *, node_name: str = "diffgrasp_moveit_py", config_dict: dict | None = None,
                 transit_params: str = "ompl_rrtc", straight_params: str = "pilz_lin"):
        super().__init__(arm)
        MoveItPy, self._PlanRequestParameters, self._RobotState = _moveit()
        self.robot = MoveItPy(node_name=node_name, config_dict=config_dict)
        self.component = self.robot.get_planning_component(arm.planning_group)
        self._params = {False: transit_params, True: straight_params}
        self._hand_links = links_below(arm.urdf_path, arm.ee_link)
        self._hand_may_touch_cloud = False

    def set_scene(self, obstacles: SceneObstacles) -> None:
        self._hand_may_touch_cloud = bool(obstacles.allowed)

    def _state(self, q_arm: np.ndarray, hand_q: np.ndarray):
        state = self._RobotState(self.robot.get_robot_model())
        state.joint_positions = {**dict(zip(self.arm.arm_joint_names, map(float, q_arm))),
                                 **dict(zip(self.arm.hand_joint_names, map(float, hand_q)))}
        state.update()
        return state

    def plan_to_pose(self, q_start, T_workspace_tcp, *, hand_q, straight: bool = False, timeout_s: float = 1.0,
                     ik_seed: np.ndarray | None = None) -> MotionPlan:
        # MoveIt solves the goal's IK itself (``ik_seed`` has no counterpart in the pose-goal API).
        goal = pose_goal_msg(self.arm.T_base_workspace @ np.asarray(T_workspace_tcp), self.arm.base_link)
        self.component.set_start_state(robot_state=self._state(q_start, hand_q))
        self.component.set_goal_state(pose_stamped_msg=goal, pose_link=self.arm.tcp_link)
        return self._plan(straight, timeout_s)

    def plan_to_joints(self, q_start, q_goal, *, hand_q, timeout_s: float = 1.0) -> MotionPlan:
        self.component.set_start_state(robot_state=self._state(q_start, hand_q))
        self.component.set_goal_state(robot_state=self._state(q_goal, hand_q))
        return self._plan(False, timeout_s)

    def _plan(self, straight: bool, timeout_s: float) -> MotionPlan:
        start = time.perf_counter()
        params = self._PlanRequestParameters(self.robot, self._params[straight])
        params.planning_time = float(timeout_s)
        if self._hand_may_touch_cloud:
            with self.robot.get_planning_scene_monitor().read_only() as monitored:
                scene = copy.copy(monitored)
            for link in self._hand_links:
                scene.allowed_collision_matrix.set_entry(OCTOMAP_NAME, link, True)
            result = self.component.plan(single_plan_parameters=params, planning_scene=scene)
        else:
            result = self.component.plan(single_plan_parameters=params)
        elapsed = time.perf_counter() - start
        if not result:
            code = int(result.error_code.val)
            return MotionPlan.failure(self.arm.arm_joint_names, status_from_moveit(code),
                                      f"MoveIt error code {code}", elapsed)
        trajectory = result.trajectory.get_robot_trajectory_msg().joint_trajectory
        columns = [list(trajectory.joint_names).index(j) for j in self.arm.arm_joint_names]
        positions = np.array([[p.positions[c] for c in columns] for p in trajectory.points])
        times = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in trajectory.points])
        return MotionPlan(self.arm.arm_joint_names, positions, times, elapsed, MotionStatus.SUCCESS,
                          self._params[straight])

    def execute(self, motion: MotionPlan) -> None:
        """Run an arm (or, when the hand has a MoveIt controller, hand) trajectory on the robot; blocks until
        it ends, and raises RuntimeError unless MoveIt's execution status says it succeeded."""
        from moveit.core.robot_trajectory import RobotTrajectory
        from moveit_msgs.msg import RobotTrajectory as RobotTrajectoryMsg
        from trajectory_msgs.msg import JointTrajectoryPoint

        hand = motion.joint_names == self.arm.hand_joint_names
        controller = self.arm.hand_controller if hand else self.arm.arm_controller
        if controller.startswith("/"):
            raise ValueError(f"{self.arm.name}'s {'hand' if hand else 'arm'} is commanded on topic {controller}, "
                             "not through a MoveIt controller: publish the postures there")
        msg = RobotTrajectoryMsg()
        msg.joint_trajectory.joint_names = list(motion.joint_names)
        for q, t in zip(motion.positions, motion.times_s):
            point = JointTrajectoryPoint(positions=[float(v) for v in q])
            point.time_from_start.sec, point.time_from_start.nanosec = divmod(int(round(t * 1e9)), 10**9)
            msg.joint_trajectory.points.append(point)
        trajectory = RobotTrajectory(self.robot.get_robot_model())
        with self.robot.get_planning_scene_monitor().read_only() as scene:
            trajectory.set_robot_trajectory_msg(scene.current_state, msg)
        status = self.robot.execute(trajectory, controllers=[controller])
        if not status:  # moveit_py's ExecutionStatus is true only when the controllers report success
            raise RuntimeError(f"MoveIt did not execute the {'hand' if hand else 'arm'} trajectory on {controller}: "
                               f"{getattr(status, 'status', 'no execution status returned')}")
