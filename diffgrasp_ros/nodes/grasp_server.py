"""``grasp_server``: the latest scene -> ranked grasps (service), PoseArray and RViz markers."""
from __future__ import annotations

import dataclasses
import itertools
import os
import threading

from geometry_msgs.msg import PoseArray
from moveit_msgs.msg import MoveItErrorCodes
from moveit_msgs.srv import GraspPlanning
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from ..grasping import Grasp, PlanResult, device_option, make_planner, planner_names
from ..scene import TargetBox
from .base import DiffgraspNode, grasp_planning_service, guarded, run
from .conversions import (LimitError, clouds_to_scene, collision_object_bounds, from_time, grasp_to_moveit,
                          grasps_to_markers, grasps_to_pose_array, moveit_to_grasp)
from .request_limits import OVER_LIMIT, check_grasp_request, declare_request_limits, target_limits


class GraspServerNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("grasp_server", **kwargs)
        self.declare("method", "igd", f"grasp planning method: {', '.join(planner_names())}; options may follow "
                                      "as method:key=value,... (e.g. igd:evaluator=affordance)")
        self.declare("weights", "", "igd, leap: folder with config.json + weights.pt (empty: the shipped model)")
        self.declare("rounds", 0, "igd: orientations sampled per grasp centre, N; leap: wrist poses per seed "
                                  "(0: the model's default)")
        self.declare("denoising_steps", 0, "igd, leap: DDIM steps per sample (0: the model's default)")
        self.declare("approach", "", "leap: guide grasps to approach along this direction: top, +x, -x, +y, -y "
                                     "or x:y:z in the workspace frame (empty: any direction)")
        self.declare("region", "", "leap: grasp only in this sphere, x:y:z:radius in workspace metres "
                                   "(empty: anywhere)")
        self.declare("device", "auto", "where igd and leap run their models: auto (CUDA when available, else "
                     "CPU), cpu, cuda, cuda:N (baseline has no model)")
        self.declare("robot", "franka", "embodiment the grasps are for")
        self.declare("planning_group", "panda_arm", "MoveIt planning group; requests naming another are refused")
        self.declare("max_grasps", 20, "ranked grasps returned at most")
        self.declare("seed", 0, "planner random seed (repeatable answers for the same scene)")
        self.declare_workspace()
        self.declare_embodiment()
        self.declare("max_scene_age_s", 10.0, "no new scene for longer than this (node clock) means the scene "
                                              "is stale: requests are refused")
        self.declare("plan_continuously", False, "also plan whenever a new scene arrives, for live displays "
                     "(false: plan only when asked; costs a CPU core while the camera runs)")
        self.declare("republish_period_s", 1.0, "the latest answer's grasps are published again this often, so "
                     "a display that starts later shows them (0: only when planned)")
        declare_request_limits(self)
        self.declare("max_cloud_points", 1_000_000, "points per scene/surface or scene/tsdf cloud at most (the "
                     "scene builder's finest cloud, cloud_resolution 80, has at most 80^3 = 512,000)")
        self.planner = None
        self._republish_timer = None
        # Answer ids: this process's token and a count, so grasp ids never repeat across calls or restarts.
        self._session, self._answers = os.urandom(2).hex(), itertools.count()
        self._plan_lock = threading.Lock()
        self._scene_lock = threading.Lock()

    def configure(self) -> None:
        workspace = self.workspace_from_params()
        # Model options only when set, so a method without them (baseline) configures with the defaults.
        model_options = {name: self.param(name) for name in ("weights", "rounds", "denoising_steps", "approach",
                                                             "region") if self.param(name)}
        model_options |= device_option(self.param("method"), self.param("device"))
        self.planner = make_planner(self.param("method"), self.param("robot"), workspace,
                                    max_grasps=self.param("max_grasps"), seed=self.param("seed"), **model_options)
        self._surface = self._tsdf = self._scene = None
        self._scene_stamp = self._scene_received_s = 0.0
        self.poses_pub = self.publisher(PoseArray, "grasps/poses")
        self.markers_pub = self.publisher(MarkerArray, "grasps/markers")
        self._latest: PlanResult | None = None  # the latest answer, republished for displays
        self.subscription(PointCloud2, "scene/surface", self._on_surface)
        self.subscription(PointCloud2, "scene/tsdf", self._on_tsdf)
        self.service(GraspPlanning, "~/generate_grasps", self._on_generate)

    def activate_work(self) -> None:
        if self.param("republish_period_s") > 0:
            self._republish_timer = self.create_timer(self.param("republish_period_s"), self._republish,
                                                      self.callback_group)

    def deactivate_work(self) -> None:
        if self._republish_timer is not None:
            self.destroy_timer(self._republish_timer)
            self._republish_timer = None

    def cleanup(self) -> None:
        self.planner = None
        self._scene = self._latest = None

    # -- scene assembly: the two clouds of one scene share a stamp ------------------------------------
    def _on_surface(self, cloud: PointCloud2) -> None:
        self._surface = cloud
        self._assemble()

    def _on_tsdf(self, cloud: PointCloud2) -> None:
        self._tsdf = cloud
        self._assemble()

    @guarded
    def _assemble(self) -> None:
        with self._scene_lock:
            surface, tsdf = self._surface, self._tsdf
            if surface is None or tsdf is None or surface.header.stamp != tsdf.header.stamp:
                return
            self._scene = clouds_to_scene(surface, tsdf, self.planner.workspace, self.param("max_cloud_points"))
            self._scene_stamp = from_time(surface.header.stamp)
            self._scene_received_s = self.now_s()  # staleness: how long ago a scene last arrived
        # Live displays: plan the new scene unless a plan is already running (on a 2-core machine the
        # camera outpaces planning, and queueing plans here would starve the service).
        if self.param("plan_continuously") and self._plan_lock.acquire(blocking=False):
            try:
                result = self._plan_unlocked()
            finally:
                self._plan_lock.release()
            self._publish(result)

    # -- planning ---------------------------------------------------------------------------------------
    def plan(self, target: TargetBox | None = None, candidates: list[Grasp] | None = None) -> PlanResult:
        """Grasps on the latest scene (at ``target`` when given): planned, or the ``candidates`` ranked."""
        with self._plan_lock:  # one plan at a time: the CPU is the limit, not the callers
            return self._plan_unlocked(target, candidates)

    def _plan_unlocked(self, target: TargetBox | None = None, candidates: list[Grasp] | None = None) -> PlanResult:
        with self._scene_lock:
            scene, stamp = self._scene, self._scene_stamp
        if target is not None:
            scene = dataclasses.replace(scene, target=target)
        result = self.planner.plan(scene) if candidates is None else self.planner.rank(scene, candidates)
        result.timings_s["scene_stamp"] = stamp
        return result

    def _publish(self, result: PlanResult) -> None:
        self._latest = result
        frame, stamp = self.planner.workspace.frame_id, self.now_s()
        self.poses_pub.publish(grasps_to_pose_array(result.grasps, frame, stamp))
        self.markers_pub.publish(grasps_to_markers(result.grasps, self.planner.robot, frame, stamp))

    @guarded
    def _republish(self) -> None:
        if self._latest is not None:
            self._publish(self._latest)

    @grasp_planning_service
    def _on_generate(self, request: GraspPlanning.Request, response: GraspPlanning.Response):
        codes = MoveItErrorCodes
        try:  # first: sizes are counted, nothing is converted or copied until they are within the limits
            check_grasp_request(self, request)
        except LimitError as error:
            return self._refuse(response, OVER_LIMIT, f"request refused: {error}")
        if request.group_name and request.group_name != self.param("planning_group"):
            return self._refuse(response, codes.INVALID_GROUP_NAME, f"unknown planning group {request.group_name!r} "
                                f"(this server plans for {self.param('planning_group')!r})")
        if self._scene is None:
            return self._refuse(response, codes.UNABLE_TO_AQUIRE_SENSOR_DATA,
                                "no scene received yet (is the camera running and the scene builder active?)")
        age = self.now_s() - self._scene_received_s
        if age > self.param("max_scene_age_s"):
            return self._refuse(response, codes.SENSOR_INFO_STALE, f"the latest scene arrived {age:.1f} s ago, "
                                f"the scene is old (max_scene_age_s = {self.param('max_scene_age_s')})")
        try:
            target = self._target(request.target)
        except ValueError as error:
            return self._refuse(response, codes.INVALID_OBJECT_NAME, str(error))
        except LookupError as error:
            return self._refuse(response, codes.FRAME_TRANSFORM_FAILURE, str(error))
        try:
            candidates = self._candidates(request.candidate_grasps)
            result = self.plan(target, candidates)
        except LookupError as error:
            return self._refuse(response, codes.FRAME_TRANSFORM_FAILURE, f"candidate_grasps: {error}")
        except (ValueError, NotImplementedError) as error:  # candidates this planner cannot take
            return self._refuse(response, codes.FAILURE, f"candidate_grasps: {error}")
        self._publish(result)
        if not result.found:
            return self._refuse(response, codes.PLANNING_FAILED, result.message, "warning")
        stamp, answer_id = self.now_s(), f"{self._session}-{next(self._answers)}"
        response.grasps = [grasp_to_moveit(g, rank, self.planner.robot, stamp, answer_id=answer_id)
                           for rank, g in enumerate(result.grasps)]
        if candidates is not None:  # a client refers to its own grasps by its own ids
            for msg, grasp in zip(response.grasps, result.grasps):
                msg.id = grasp.info["id"] or msg.id
        response.error_code.val = codes.SUCCESS
        response.error_code.message = (
            (f"{len(result.grasps)} grasps by {self.planner.name}" if candidates is None else result.message)
            + f" (answer {answer_id}) on a scene received {age:.1f} s ago"
            + ("" if target is None else f", on the target {request.target.id or '(unnamed)'}")
            + self._not_used_here(request))
        return response

    def _candidates(self, messages) -> list[Grasp] | None:
        """The request's ``candidate_grasps`` as library grasps (None: plan new ones). ValueError for grasps
        for another hand, LookupError for grasps in another frame (this node has no TF)."""
        if not messages:
            return None
        frame = self.planner.workspace.frame_id
        frames = sorted({g.grasp_pose.header.frame_id for g in messages} - {frame})
        if frames:
            raise LookupError(f"grasps in frame(s) {frames}; give them in the workspace frame {frame!r}")
        robot = self.planner.robot
        hands = {tuple(g.pre_grasp_posture.joint_names) for g in messages} - {(), tuple(robot.hand_joint_names)}
        if hands:
            raise ValueError(f"grasps for hand joints {sorted(hands)}; this server plans for {robot.name}'s "
                             f"{list(robot.hand_joint_names)} (or give no postures)")
        return [moveit_to_grasp(g, robot, "given") for g in messages]

    def _target(self, obj) -> TargetBox | None:
        """The request's ``target`` as a box in the workspace frame; None for an empty target (any object).
        ValueError for a shape it cannot bound, LookupError for another frame (this node has no TF)."""
        bounds = collision_object_bounds(obj, target_limits(self))
        if bounds is None:
            return None
        frame = self.planner.workspace.frame_id
        if obj.header.frame_id not in ("", frame):
            raise LookupError(f"the target {obj.id!r} is in frame {obj.header.frame_id!r}; give it in the "
                              f"workspace frame {frame!r}")
        return TargetBox(*bounds, category=obj.type.key or None)  # object_recognition_msgs/ObjectType key

    @staticmethod
    def _not_used_here(request) -> str:
        unused = [name for name in ("support_surfaces", "movable_obstacles") if len(getattr(request, name))]
        return f"; {' and '.join(unused)}: for the executor's pick planning (plan_grasp), not used here" if unused \
            else ""

    def _refuse(self, response, code: int, message: str, level: str = "error"):
        response.error_code.val, response.error_code.message = code, self.report(message, level)
        return response


def main(args=None) -> None:
    run(GraspServerNode, args)
