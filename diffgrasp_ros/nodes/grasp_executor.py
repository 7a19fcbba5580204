"""``grasp_executor``: serves ``plan_grasp`` (moveit_msgs/srv/GraspPlanning, in its namespace) and executes picks.

It asks the grasp server for ranked grasps and answers with those its arm can reach (IK for the grasp
and the pre-grasp), best first, with its hand's open and closed postures. With a motion backend it
also plans the pick of the best reachable grasp that plans (pre-grasp -> approach -> close -> lift ->
retreat) against the latest scene cloud, publishes it for RViz (also as MoveIt's ``display_planned_path``) and
executes it when asked (the ``execute`` parameter, or ``~/execute`` for the last plan). ``error_code`` says why
nothing came back.

Where no robot driver publishes ``joint_states`` (simulation), ``publish_joint_states: true`` makes this node
publish its simulated robot's: the arm at its start, following the picks it executes, so robot_state_publisher
and RViz show the robot.

Moving the robot is off unless the robot configuration enables it (``motion_enabled: true`` in
``config/<robot>.yaml``; read-only, so no parameter call can turn it on): without it the arm and hand command
publishers are not created, ``~/execute`` answers "motion disabled" and ``execute: true`` is refused.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
from geometry_msgs.msg import PoseArray
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from moveit_msgs.msg import DisplayTrajectory, MoveItErrorCodes
from moveit_msgs.srv import GraspPlanning
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import JointState, PointCloud2
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ..geometry import invert
from .base import (EXPECTED_ERRORS, DiffgraspNode, grasp_planning_service, guarded, run, trigger_service,
                   wait_for_future)
from .conversions import (LimitError, ObjectLimits, check_collision_object, check_limit, check_name, cloud_to_array,
                          collision_object_points, display_trajectory, hand_postures, joint_state,
                          joint_trajectory, moveit_to_grasp, pose_array)
from .request_limits import OVER_LIMIT, check_grasp_request, declare_request_limits
from .transforms import express_grasp

MOTION_BACKENDS = ("none", "mplib", "moveit")
MOTION_DISABLED = ("motion disabled: this node moves the robot only when its robot configuration says "
                   "motion_enabled: true (config/<robot>.yaml)")
# rclpy hands a service or parameter callback no identity of the calling node; SROS2's access control
# (docs/security.md) is what decides who may call.
UNKNOWN_CALLER = "the caller is not known: ROS gives services and parameter calls no caller identity"


class FrameError(RuntimeError):
    """A frame has no pose where it is needed (a missing or unknown transform)."""


class GraspExecutorNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("grasp_executor", **kwargs)
        self.declare("robot", "franka", "embodiment executing the grasps")
        self.declare("planning_group", "panda_arm", "MoveIt planning group used when a request names none")
        self.declare_embodiment()
        self.declare_workspace()
        self.declare("grasp_service", "grasp_server/generate_grasps", "the grasp server's GraspPlanning service")
        self.declare("service_timeout_s", 15.0, "how long to wait for the grasp server's answer (it plans one "
                     "request at a time, so concurrent requests queue; 2-core machines need seconds under load)")
        self.declare("server_wait_s", 1.0, "how long to wait for the grasp server's service to appear: a server "
                     "that is down is reported within this")
        self.declare("min_quality", 0.0, "grasps below this quality are dropped")
        self.declare("max_grasps", 10, "ranked grasps returned at most")
        self.declare("motion_backend", "mplib", "pick motion planning: 'mplib' (standalone; execution publishes "
                     "on the controllers' topics), 'moveit' (a running MoveIt 2 through moveit_py, which also "
                     "executes) or 'none' (reachability only)")
        self.declare("motion_enabled", False, "let this node move the robot (command topics, ~/execute, execute: "
                     "true); set in the robot configuration, config/<robot>.yaml, and read-only: no parameter call "
                     "can turn it on", read_only=True)
        self.declare("execute", False, "execute every planned pick; false: plan only (~/execute runs the last plan); "
                     "needs motion_enabled")
        self.declare("pregrasp_offset_m", 0.10, "pre-grasp: the grasp moved back along its approach axis")
        self.declare("planning_timeout_s", 1.0, "motion-planning time budget of each pick segment")
        self.declare("pick_attempts", 3, "reachable grasps motion-planned at most per request, best first, "
                     "until one plans")
        self.declare("base_pose_source", "config", "'config' (the embodiment's calibrated T_workspace_base) or "
                     "'tf' (the base link in TF, in the workspace frame; needs tf2_ros)")
        self.declare("transform_timeout_s", 0.5, "how long to wait for a transform in TF")
        self.declare("publish_tf", True, "publish the calibrated T_workspace_base on /tf_static (base link -> "
                     "workspace frame; base_pose_source 'config'), so TF users can place the workspace")
        self.declare("output_frame", "", "frame of the answered grasp poses: the workspace frame (empty), the "
                     "robot base link (e.g. panda_link0) or, with tf2_ros, any frame in TF")
        self.declare("grasp_pose_link", "tcp", "what the answered grasp poses place: 'tcp' (the grasp frame: "
                     "+z approach, +y closing) or 'end_effector' (the link the TCP is fixed to, tcp.parent_link, "
                     "e.g. panda_hand; the pose MoveIt's grasp pipelines expect)")
        declare_request_limits(self)  # checked before a request is forwarded to the grasp server
        self.declare("max_movable_obstacles", 16, "movable_obstacles (and support_surfaces) per request at most")
        self.declare("max_object_points", 200_000, "surface points sampled from one movable obstacle at most "
                     "(1 cm apart; a 1 m box has about 60,000), counted before sampling")
        self.declare("max_cloud_points", 1_000_000, "points of a scene/surface cloud at most (the scene builder's "
                     "finest, cloud_resolution 80, has at most 80^3 = 512,000)")
        self.declare("execution_margin_s", 5.0, "moveit backend: a pick that has not finished executing "
                     "within twice its duration plus this is reported as failed (MoveIt may still run it)")
        self.declare("publish_joint_states", False, "publish the simulated robot's joint states on joint_states "
                     "(arm at its start, following executed picks; hand open), for robot_state_publisher and RViz "
                     "where no robot driver publishes them (simulation); never beside a real robot's driver")
        self.declare("joint_state_rate_hz", 10.0, "rate of the simulated joint states (publish_joint_states)")
        self._lock = threading.RLock()  # the models and the last plan: one plan or execution at a time
        self._moveit_finished = threading.Event()  # set while no MoveIt execution runs
        self._moveit_finished.set()
        self._close_timer = self._tf_buffer = self._tf_listener = self.static_tf = None
        self._closed_q = None  # the LEAP posture the close timer commands
        self._joint_state_timer = self.joint_state_pub = None
        self.add_on_set_parameters_callback(self._refuse_execution_without_motion)

    def _refuse_execution_without_motion(self, parameters) -> SetParametersResult:
        if self.param("motion_enabled") or not any(p.name == "execute" and p.value for p in parameters):
            return SetParametersResult(successful=True)
        reason = self.report(f"refused to set execute: true: {MOTION_DISABLED} ({UNKNOWN_CALLER})", "warning")
        return SetParametersResult(successful=False, reason=reason)

    # -- lifecycle ----------------------------------------------------------------------------------
    def configure(self) -> None:
        from ..execution.reachability import ReachabilityChecker
        from ..robots import get_robot

        if self.param("execute") and not self.param("motion_enabled"):
            raise ValueError(f"execute: true, but {MOTION_DISABLED}")
        self.robot = get_robot(self.param("robot"))  # an unknown robot fails configure
        arm = self.embodiment_from_params()
        if (arm.hand_kind, arm.hand_joint_names) != (self.robot.hand, self.robot.hand_joint_names):
            raise ValueError(f"robot {self.robot.name!r} is not configured: the embodiment parameters describe a "
                             f"{arm.hand_kind} hand with joints {list(arm.hand_joint_names)} (load "
                             f"config/{self.robot.name}.yaml)")
        self.backend = self.param("motion_backend")
        if self.backend not in MOTION_BACKENDS:
            raise ValueError(f"motion_backend must be one of {MOTION_BACKENDS}, got {self.backend!r}")
        self.workspace = self.workspace_from_params()
        self._base_pose_source = self.param("base_pose_source")
        if self._base_pose_source == "tf":
            self._listen_to_tf("base_pose_source 'tf'", "use 'config' with the calibrated T_workspace_base of the "
                                                        "embodiment")
        elif self._base_pose_source != "config":
            raise ValueError(f"base_pose_source must be 'tf' or 'config', got {self._base_pose_source!r}")
        self.arm = arm
        self._output_frame = self.param("output_frame") or self.workspace.frame_id
        if self._output_frame not in (self.workspace.frame_id, arm.base_link):
            self._listen_to_tf(f"output_frame {self._output_frame!r}", f"answer in the workspace frame "
                               f"{self.workspace.frame_id!r} or the robot base link {arm.base_link!r}")
        self._T_tcp_answered = self._answered_link_offset()
        self.static_tf = self.static_transforms() if self.param("publish_tf") and self._base_pose_source == "config" \
            else None
        self.checker = ReachabilityChecker(arm)
        self.motion_planner = self._make_motion_planner(arm)
        self._surface = None
        self._joints: dict[str, float] = {}
        self._last_pick = None
        self._busy_until = 0.0
        self.grasp_client = self.client(GraspPlanning, self.param("grasp_service"))
        # The grasp server's lifecycle state, asked beside each request: DDS lists a killed server for ~20 s.
        server_node = self.param("grasp_service").rpartition("/")[0] or "."
        self.server_state_client = self.client(GetState, f"{server_node}/get_state")
        self.trajectory_pub = self.publisher(JointTrajectory, "~/planned_trajectory")
        self.path_pub = self.publisher(PoseArray, "~/planned_tcp_path")
        # MoveIt's name for plan previews, which its RViz Trajectory display reads by default.
        self.display_pub = self.publisher(DisplayTrajectory, "display_planned_path")
        self._model_id = ET.parse(arm.urdf_path).getroot().get("name")  # the robot model RViz loads from the URDF
        # The simulated robot: its joints now, and the executed motion it follows (with its start time).
        self._sim_q = np.concatenate([arm.home_q, arm.hand_open_q])
        self._sim_motion = None
        if self.param("publish_joint_states"):
            if self.param("joint_state_rate_hz") <= 0:
                raise ValueError(f"joint_state_rate_hz must be positive, got {self.param('joint_state_rate_hz')}")
            self.joint_state_pub = self.publisher(JointState, "joint_states", depth=10)
        # Execution without MoveIt: the arm's joint_trajectory_controller takes trajectories on its topic.
        # The LEAP driver takes postures (sensor_msgs/JointState, its own zero) on a topic, e.g. /cmd_leap;
        # other hands are trajectory controllers, driven by MoveIt with the moveit backend.
        self.arm_command_pub = self.hand_command_pub = None
        if self.param("motion_enabled"):
            if self.backend == "mplib":
                self.arm_command_pub = self.publisher(JointTrajectory, f"/{arm.arm_controller}/joint_trajectory")
            if arm.hand_kind == "leap":
                self.hand_command_pub = self.publisher(JointState, arm.hand_controller)
            elif self.backend == "mplib":
                self.hand_command_pub = self.publisher(JointTrajectory, f"/{arm.hand_controller}/joint_trajectory")
        self.subscription(PointCloud2, "scene/surface", self._on_surface)
        self.subscription(JointState, "joint_states", self._on_joint_state, depth=10)
        self.service(GraspPlanning, "plan_grasp", self._on_plan_grasp)  # in the node's namespace
        self.service(Trigger, "~/execute", self._on_execute)

    def _listen_to_tf(self, why: str, instead: str) -> None:
        if self._tf_buffer is not None:
            return
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError as error:
            raise ValueError(f"{why} needs tf2_ros, which is not installed; {instead}") from error
        self._tf_buffer = Buffer()
        self._tf_listener = TransformListener(self._tf_buffer, self)

    def _answered_link_offset(self) -> np.ndarray:
        """``T_tcp_link`` of the link the answered poses place (``grasp_pose_link``)."""
        link = self.param("grasp_pose_link")
        if link == "tcp":
            return np.eye(4)
        if link == "end_effector":
            return invert(np.asarray(self.param("tcp.T_parent_tcp"), dtype=float).reshape(4, 4))
        raise ValueError(f"grasp_pose_link must be 'tcp' or 'end_effector', got {link!r}")

    def _make_motion_planner(self, arm):
        from ..execution.motion import make_motion_planner

        return None if self.backend == "none" else make_motion_planner(self.backend, arm)

    def activate_work(self) -> None:
        if self.static_tf is not None:  # the robot base is TF's root side: the workspace hangs below it
            self.static_tf.send(invert(self.arm.T_workspace_base), self.arm.base_link, self.workspace.frame_id,
                                self.now_s())
        if self.joint_state_pub is not None:
            self._joint_state_timer = self.create_timer(1.0 / self.param("joint_state_rate_hz"),
                                                        self._publish_joint_state, self.callback_group)

    def deactivate_work(self) -> None:
        # A pick running on the topics is no longer driven: its pending hand command is dropped (the arm
        # controller finishes the trajectory it has).
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._stop_joint_states()

    def _stop_joint_states(self) -> None:
        if self._joint_state_timer is not None:
            self.destroy_timer(self._joint_state_timer)
            self._joint_state_timer = None

    def cleanup(self) -> None:
        self._stop_joint_states()  # an error transition cleans up without deactivating
        if self._close_timer is not None:
            self.destroy_timer(self._close_timer)
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        self._close_timer = self._tf_buffer = self._tf_listener = self.static_tf = None
        self.motion_planner = self.checker = self._last_pick = self.joint_state_pub = self._sim_motion = None

    # -- inputs -------------------------------------------------------------------------------------
    def _on_surface(self, cloud: PointCloud2) -> None:
        self._surface = cloud  # converted when a pick is planned

    def _on_joint_state(self, msg: JointState) -> None:
        self._joints.update(zip(msg.name, msg.position))  # arm and hand may publish separately

    def _start_q(self) -> np.ndarray:
        """The arm's joints now, or (nothing on ``joint_states`` yet) the embodiment's home_q."""
        if all(name in self._joints for name in self.arm.arm_joint_names):
            return np.array([self._joints[name] for name in self.arm.arm_joint_names])
        return np.asarray(self.arm.home_q)

    def _base_pose(self) -> np.ndarray:
        """``T_workspace_base``: the calibrated one, or the base link's pose in TF now."""
        if self._base_pose_source == "config":
            return self.arm.T_workspace_base
        return self._lookup(self.workspace.frame_id, self.arm.base_link, "robot base pose")

    def _lookup(self, target: str, source: str, what: str) -> np.ndarray:
        """``T_target_source`` from TF now; FrameError when TF does not have it within transform_timeout_s."""
        from rclpy.duration import Duration
        from rclpy.time import Time
        from tf2_ros import TransformException

        from ..geometry import pose_from_quaternion

        try:
            t = self._tf_buffer.lookup_transform(target, source, Time(),
                                                 timeout=Duration(seconds=self.param("transform_timeout_s")))
        except TransformException as error:
            raise FrameError(f"{what} {target} <- {source} is not in TF: {error}") from error
        tr, q = t.transform.translation, t.transform.rotation
        return pose_from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))

    def _T_frame_workspace(self, frame: str) -> np.ndarray:
        """Maps workspace points into ``frame``: the workspace frame itself (or ""), the robot base link (the
        calibrated or TF base pose), or any frame in TF."""
        if frame in ("", self.workspace.frame_id):
            return np.eye(4)
        if frame == self.arm.base_link:
            return invert(self._base_pose())
        if self._tf_buffer is None:
            raise FrameError(f"frame {frame!r} is unknown here: without tf2_ros only the workspace frame "
                             f"{self.workspace.frame_id!r} and the robot base link {self.arm.base_link!r} are")
        return self._lookup(frame, self.workspace.frame_id, f"frame {frame!r}:")

    def _request_obstacles(self, request, grasps) -> tuple[np.ndarray, float, str]:
        """The request's movable obstacles as surface points in the workspace frame, for the pick planning;
        the table height (the top of the highest obstacle that ``support_surfaces`` names and that lies under
        every grasp, else the workspace's table); and what the answer says about them. FrameError, or
        ValueError for a shape it cannot sample."""
        from ..geometry import transform_points

        points, tops = [np.zeros((0, 3))], []
        lowest_grasp_m = min(g.position_m[2] for g in grasps)
        supports = set(request.support_surfaces)
        for obj in request.movable_obstacles:
            surface = transform_points(invert(self._T_frame_workspace(obj.header.frame_id)),
                                       collision_object_points(obj, limits=self._obstacle_limits()))
            if len(surface) == 0:
                raise ValueError(f"movable_obstacles: {obj.id or '(unnamed)'} has no shape")
            points.append(surface)
            if obj.id in supports and surface[:, 2].max() < lowest_grasp_m:
                tops.append(surface[:, 2].max())
        table_height_m = max(tops, default=self.workspace.table_height_m)
        note = (f"; picks planned around {len(request.movable_obstacles)} movable obstacle(s), table at "
                f"z = {table_height_m:.3f} m")
        unknown = sorted(supports - {obj.id for obj in request.movable_obstacles})
        if unknown:
            note += (f"; support_surfaces {unknown} not used: they name no object of movable_obstacles, and this "
                     "executor keeps no planning scene to look them up in")
        return np.concatenate(points), table_height_m, note

    def _place_base(self, T_workspace_base: np.ndarray) -> None:
        """Rebuild the models when the base stands elsewhere than they were built for (TF source)."""
        if np.allclose(T_workspace_base, self.arm.T_workspace_base, atol=1e-4):
            return
        from ..execution.reachability import ReachabilityChecker

        self.arm = dataclasses.replace(self.arm, T_workspace_base=np.array(T_workspace_base))
        self.checker = ReachabilityChecker(self.arm)
        self.motion_planner = self._make_motion_planner(self.arm)

    # -- /plan_grasp --------------------------------------------------------------------------------
    def _call_grasp_server(self, request: GraspPlanning.Request):
        """The grasp server's answer, or None, an error code and why not: it is not in the graph, its node
        does not answer (DDS still lists a server that was killed, for about 20 s), it is not active, or it
        did not answer within service_timeout_s. The first three are said within server_wait_s."""
        down = MoveItErrorCodes.COMMUNICATION_FAILURE
        wait_s = self.param("server_wait_s")
        if not self.grasp_client.wait_for_service(timeout_sec=wait_s):
            return None, down, (f"grasp server {self.param('grasp_service')!r} is not available (down, or not started "
                          "yet): no grasps")
        future = self.grasp_client.call_async(request)
        state = self.server_state_client.call_async(GetState.Request())
        if not wait_for_future(state, wait_s):
            future.cancel()
            return None, down, (f"grasp server {self.param('grasp_service')!r} does not respond within {wait_s} s (its "
                          "process died or is restarting): no grasps")
        current = state.result().current_state
        if current.id != State.PRIMARY_STATE_ACTIVE:
            future.cancel()
            return None, down, f"grasp server is {current.label}, not active (a lifecycle manager activates it): no grasps"
        if not wait_for_future(future, self.param("service_timeout_s")):
            return None, MoveItErrorCodes.TIMED_OUT, (f"grasp server did not answer within "
                                                      f"{self.param('service_timeout_s')} s")
        return future.result(), MoveItErrorCodes.SUCCESS, ""

    def _obstacle_limits(self) -> ObjectLimits:
        return ObjectLimits(max_shapes=self.param("max_object_shapes"), max_vertices=self.param("max_object_vertices"),
                            max_triangles=self.param("max_object_triangles"),
                            max_points=self.param("max_object_points"), parameter_prefix="max_object_")

    def _check_request(self, request: GraspPlanning.Request) -> None:
        """LimitError for a request over the limits: the grasp server's (candidates, target, names) and the
        movable obstacles' this node plans around (counts and sizes only, nothing sampled)."""
        check_grasp_request(self, request)
        limit, length = self.param("max_movable_obstacles"), self.param("max_name_length")
        check_limit("movable_obstacles", len(request.movable_obstacles), limit, "max_movable_obstacles", " objects")
        check_limit("support_surfaces", len(request.support_surfaces), limit, "max_movable_obstacles", " names")
        for i, obj in enumerate(request.movable_obstacles):
            check_collision_object(obj, self._obstacle_limits(), f"movable_obstacles[{i}]", length)
        for i, name in enumerate(request.support_surfaces):
            check_name(f"support_surfaces[{i}]", name, length)

    def _fail(self, response, code: int, message: str, level: str = "error"):
        response.grasps = []
        response.error_code.val, response.error_code.message = code, self.report(message, level)
        return response

    @grasp_planning_service
    def _on_plan_grasp(self, request: GraspPlanning.Request, response: GraspPlanning.Response):
        from ..execution.motion import MOVEIT_ERROR_CODES, MotionStatus, PickSettings
        from ..execution.pick_selection import select_pick

        codes = MoveItErrorCodes
        self._last_pick = None  # ~/execute runs the pick of the latest answer only
        try:  # before the request is forwarded: a request over the limits costs what a small one does
            self._check_request(request)
        except LimitError as error:
            return self._fail(response, OVER_LIMIT, f"request refused: {error}")
        # The grasp server takes what chooses grasps; the collision geometry is this node's.
        answer, code, problem = self._call_grasp_server(GraspPlanning.Request(
            group_name=request.group_name or self.param("planning_group"), target=request.target,
            candidate_grasps=request.candidate_grasps))
        if answer is None:
            return self._fail(response, code, problem)
        if answer.error_code.val != codes.SUCCESS:
            response.error_code = answer.error_code  # with the grasp server's reason
            self.report(f"grasp server: {answer.error_code.message} (code {answer.error_code.val})", level="warning")
            return response
        candidates = sorted((g for g in answer.grasps if g.grasp_quality >= self.param("min_quality")),
                            key=lambda g: g.grasp_quality, reverse=True)
        if not candidates:
            return self._fail(response, codes.PLANNING_FAILED,
                              f"no grasp reaches min_quality {self.param('min_quality')}", "warning")
        frame = self.workspace.frame_id
        if any(g.grasp_pose.header.frame_id != frame for g in candidates):
            frames = sorted({g.grasp_pose.header.frame_id for g in candidates} - {frame})
            return self._fail(response, codes.FRAME_TRANSFORM_FAILURE,
                              f"grasps in frame(s) {frames}: no transform to the workspace frame {frame!r} "
                              "the robot base is placed in")
        hands = {tuple(g.pre_grasp_posture.joint_names) for g in candidates}
        if hands != {self.arm.hand_joint_names}:
            return self._fail(response, codes.FAILURE, f"the grasp server plans for hand joints {sorted(hands)}, "
                                                       f"this robot's are {list(self.arm.hand_joint_names)}")
        points = np.zeros((0, 3))
        if self.motion_planner is not None:
            cloud = self._surface
            if cloud is None:
                return self._fail(response, codes.UNABLE_TO_AQUIRE_SENSOR_DATA,
                                  "no scene/surface cloud yet: picks are planned against it")
            if cloud.header.frame_id != frame:
                return self._fail(response, codes.FRAME_TRANSFORM_FAILURE,
                                  f"the scene cloud is in {cloud.header.frame_id!r}, not the workspace frame {frame!r}")
            try:
                points = cloud_to_array(cloud, ("x", "y", "z"), max_points=self.param("max_cloud_points"))
            except LimitError as error:
                return self._fail(response, codes.UNABLE_TO_AQUIRE_SENSOR_DATA, f"the scene cloud is refused: {error}")
        grasps = [moveit_to_grasp(g, self.robot, "grasp_server") for g in candidates]
        table_height_m, obstacles_note = self.workspace.table_height_m, ""
        if request.support_surfaces or request.movable_obstacles:
            if self.motion_planner is None:
                obstacles_note = "; support_surfaces and movable_obstacles not used (motion_backend 'none')"
            else:
                try:
                    obstacles, table_height_m, obstacles_note = self._request_obstacles(request, grasps)
                except FrameError as error:
                    return self._fail(response, codes.FRAME_TRANSFORM_FAILURE, str(error))
                except LimitError as error:  # points sampled from an obstacle's size, before sampling
                    return self._fail(response, OVER_LIMIT, f"request refused: {error}")
                except ValueError as error:
                    return self._fail(response, codes.FAILURE, str(error))
                points = np.concatenate([points, obstacles])
        timeout = self.param("planning_timeout_s")
        settings = PickSettings(pregrasp_offset_m=self.param("pregrasp_offset_m"), transit_timeout_s=timeout,
                                straight_timeout_s=timeout, table_height_m=table_height_m)
        with self._lock:
            try:
                self._place_base(self._base_pose())
                T_output_workspace = self._T_frame_workspace(self._output_frame)
            except FrameError as error:
                return self._fail(response, codes.FRAME_TRANSFORM_FAILURE, str(error))
            selection = select_pick(self.checker, self.motion_planner, grasps, points, self._start_q(), settings,
                                    self.param("pick_attempts"))
            if selection.status is not MotionStatus.SUCCESS:
                return self._fail(response, MOVEIT_ERROR_CODES[selection.status], selection.message, "warning")
            # Reachable grasps, from the one whose pick planned on (those above it did not plan).
            first = selection.rank or 0
            ranks = [r for r in np.flatnonzero(selection.reachable) if r >= first][: self.param("max_grasps")]
            response.grasps = [express_grasp(self._as_planned(candidates[r], grasps[r]), T_output_workspace,
                                             self._output_frame, self._T_tcp_answered) for r in ranks]
            response.error_code.val = codes.SUCCESS
            response.error_code.message = (
                f"{len(ranks)} reachable of {len(candidates)} grasps ({answer.error_code.message}); poses of the "
                f"{self._answered_link()} in {self._output_frame}" + obstacles_note
                + (f"; the pick of {response.grasps[0].id} planned" if selection.pick else ""))
            if selection.pick is not None:
                self._last_pick = selection.pick
                self._publish_plan(selection.pick)
                if self.param("execute"):
                    executed, message = self._execute_last_pick()
                    if not executed:
                        response.error_code.val = codes.CONTROL_FAILED
                        response.error_code.message = self.report(message)
        return response

    def _answered_link(self) -> str:
        if self.param("grasp_pose_link") == "tcp":
            return "TCP"
        return f"end effector {self.param('tcp.parent_link')}"

    def _as_planned(self, grasp, planned):
        """The grasp message with the postures and pre-grasp distance the executor checks and executes
        (``planned``: the library ``Grasp`` it was read into)."""
        from ..execution.motion.pick import pick_hand_postures

        grasp.pre_grasp_posture, grasp.grasp_posture = hand_postures(
            self.arm.hand_joint_names, *pick_hand_postures(self.arm, planned))
        grasp.pre_grasp_approach.desired_distance = float(self.param("pregrasp_offset_m"))
        grasp.pre_grasp_approach.min_distance = 0.5 * grasp.pre_grasp_approach.desired_distance
        return grasp

    def _publish_plan(self, pick) -> None:
        """The planned pick for RViz: the joint trajectory (also as MoveIt's plan preview, from its first point)
        and the TCP path (workspace frame)."""
        motion, _ = pick.trajectory()
        trajectory = joint_trajectory(motion.joint_names, motion.positions, motion.times_s, self.arm.base_link)
        self.trajectory_pub.publish(trajectory)
        self.display_pub.publish(display_trajectory(self._model_id, trajectory))
        arm_q = motion.positions[:, : len(self.arm.arm_joint_names)]
        T_workspace_tcp = self.arm.T_workspace_base @ self.checker.fk(arm_q)
        self.path_pub.publish(pose_array(T_workspace_tcp, self.workspace.frame_id, self.now_s()))

    # -- execution ----------------------------------------------------------------------------------
    @trigger_service
    def _on_execute(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self.active:
            response.success, response.message = False, self.report("execute: the node is not active")
            return response
        if not self.param("motion_enabled"):
            response.success = False
            response.message = self.report(f"refused ~/execute: {MOTION_DISABLED} ({UNKNOWN_CALLER})", "warning")
            return response
        response.success, response.message = self._execute_last_pick()
        if not response.success:
            self.report(response.message)
        return response

    def _execute_last_pick(self) -> tuple[bool, str]:
        with self._lock:
            pick = self._last_pick
            if self.motion_planner is None:
                return False, "motion_backend is 'none': no pick is planned"
            if pick is None:
                return False, "no planned pick to execute (/plan_grasp plans one when it succeeds; it executes once)"
            if time.monotonic() < self._busy_until:
                return False, f"the previous pick still executes for {self._busy_until - time.monotonic():.1f} s"
            if not self._moveit_finished.is_set():
                return False, "the previous pick still executes (MoveIt has not finished it)"
            self._last_pick = None  # the next pick starts where this one ends, so it needs a new plan
            motion, close_start_s = pick.trajectory()
            try:
                if self.backend == "moveit":
                    self._execute_with_moveit_in_time(pick, 2.0 * motion.duration_s + self.param("execution_margin_s"))
                else:
                    self._execute_on_topics(motion, close_start_s)
                    self._busy_until = time.monotonic() + motion.duration_s
                    self._sim_motion = (motion, time.monotonic())  # the simulated robot follows it
            except EXPECTED_ERRORS as error:  # a failing backend, controller or deadline: the caller reports it
                return False, f"execution failed: {error}"
        done = "executed" if self.backend == "moveit" else "executing"
        return True, f"{done} the pick of grasp {pick.grasp.info['id']} ({motion.duration_s:.1f} s)"

    def _execute_with_moveit_in_time(self, pick, deadline_s: float) -> None:
        """``_execute_with_moveit`` in a thread, waited for at most ``deadline_s`` (moveit_py's execution
        blocks without a timeout, and the node's lock must not wait on it unbounded). Raises its error, or
        TimeoutError; an execution past its deadline keeps the next one out until it ends."""
        failure: list[Exception] = []

        def execute() -> None:
            try:
                self._execute_with_moveit(pick)
            except Exception as error:  # handed to the waiting call, which raises it there
                failure.append(error)
            finally:
                self._moveit_finished.set()

        self._moveit_finished.clear()
        threading.Thread(target=execute, name="moveit_execution", daemon=True).start()
        if not self._moveit_finished.wait(deadline_s):
            raise TimeoutError(f"not finished within {deadline_s:.1f} s (twice the pick's duration plus "
                               "execution_margin_s); MoveIt may still be running it")
        if failure:
            raise failure[0]

    def _execute_on_topics(self, motion, close_start_s: float) -> None:
        """Open loop: the arm trajectory to its controller now, the hand's commands at their times."""
        n = len(self.arm.arm_joint_names)
        self.arm_command_pub.publish(joint_trajectory(motion.joint_names[:n], motion.positions[:, :n],
                                                      motion.times_s, self.arm.base_link))
        if self.arm.hand_kind != "leap":
            self.hand_command_pub.publish(joint_trajectory(motion.joint_names[n:], motion.positions[:, n:],
                                                           motion.times_s))
            return
        n_hand = len(self.arm.hand_joint_names)
        self._command_leap(motion.positions[0, -n_hand:])
        self._closed_q = motion.positions[-1, -n_hand:]
        if self._close_timer is not None:
            self.destroy_timer(self._close_timer)
        self._close_timer = self.create_timer(close_start_s, self._on_close_time, callback_group=self.callback_group)

    @guarded
    def _publish_joint_state(self) -> None:
        """The simulated robot's joints: along the executed motion while it runs, then where it ended."""
        if self._sim_motion is not None:
            motion, start = self._sim_motion
            elapsed_s = time.monotonic() - start
            self._sim_q = motion.sample(min(elapsed_s, motion.duration_s))
            if elapsed_s >= motion.duration_s:
                self._sim_motion = None
        self.joint_state_pub.publish(joint_state((*self.arm.arm_joint_names, *self.arm.hand_joint_names),
                                                 self._sim_q, self.now_s()))

    @guarded
    def _on_close_time(self) -> None:
        self._close_timer.cancel()  # one shot
        self._command_leap(self._closed_q)

    def _command_leap(self, q: np.ndarray) -> None:
        from ..robots.leap import to_driver_command

        self.hand_command_pub.publish(joint_state(self.arm.hand_joint_names, to_driver_command(q), self.now_s()))

    def _execute_with_moveit(self, pick) -> None:
        """Segment by segment through moveit_py (blocking); a LEAP hand gets its postures on its topic."""
        leap = self.arm.hand_kind == "leap"
        close = pick.segment("close").plan
        if leap:
            self._command_leap(close.positions[0])
        for segment in pick.segments:
            if segment.name == "close" and leap:
                self._command_leap(close.positions[-1])
                time.sleep(segment.plan.duration_s)
            else:
                self.motion_planner.execute(segment.plan)


def main(args=None) -> None:
    run(GraspExecutorNode, args)
