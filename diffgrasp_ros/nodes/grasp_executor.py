"""``grasp_executor``: serves ``/plan_grasp`` (moveit_msgs/srv/GraspPlanning).

It asks the grasp server for ranked grasps, keeps those that pass its filters, best first, and answers;
``error_code`` says why nothing came back. Motion planning and execution backends plug in here.
"""
from __future__ import annotations

import time

from moveit_msgs.msg import MoveItErrorCodes
from moveit_msgs.srv import GraspPlanning

from .base import DiffgraspNode, grasp_planning_service, run


class GraspExecutorNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("grasp_executor", **kwargs)
        self.declare("robot", "franka", "embodiment executing the grasps")
        self.declare("planning_group", "panda_arm", "MoveIt planning group used when a request names none")
        self.declare("grasp_service", "grasp_server/generate_grasps", "the grasp server's GraspPlanning service")
        self.declare("service_timeout_s", 15.0, "how long to wait for the grasp server (it plans one request "
                     "at a time, so concurrent requests queue; 2-core machines need seconds under load)")
        self.declare("min_quality", 0.0, "grasps below this quality are dropped")
        self.declare("max_grasps", 10, "ranked grasps returned at most")

    def configure(self) -> None:
        from ..robots import get_robot

        self.robot = get_robot(self.param("robot"))  # an unknown or unavailable robot fails configure
        self.grasp_client = self.client(GraspPlanning, self.param("grasp_service"))
        self.service(GraspPlanning, "/plan_grasp", self._on_plan_grasp)

    def _call_grasp_server(self, request: GraspPlanning.Request):
        if not self.grasp_client.wait_for_service(timeout_sec=self.param("service_timeout_s")):
            return None, f"grasp server {self.param('grasp_service')!r} is not available"
        future = self.grasp_client.call_async(request)
        # Poll rather than add_done_callback: rclpy runs done-callbacks as executor tasks, which can
        # starve while every executor thread is busy in a service callback like this one.
        deadline = time.monotonic() + self.param("service_timeout_s")
        while not future.done():
            if time.monotonic() > deadline:
                future.cancel()
                return None, f"grasp server did not answer within {self.param('service_timeout_s')} s"
            time.sleep(0.01)
        return future.result(), ""

    @grasp_planning_service
    def _on_plan_grasp(self, request: GraspPlanning.Request, response: GraspPlanning.Response):
        codes = MoveItErrorCodes
        if not request.group_name:
            request.group_name = self.param("planning_group")
        answer, problem = self._call_grasp_server(request)
        if answer is None:
            response.error_code.val = codes.COMMUNICATION_FAILURE if "available" in problem else codes.TIMED_OUT
            self.report(problem)
            return response
        if answer.error_code.val != codes.SUCCESS:
            response.error_code = answer.error_code
            self.report(f"grasp server returned error code {answer.error_code.val}", level="warning")
            return response
        grasps = [g for g in answer.grasps if g.grasp_quality >= self.param("min_quality")]
        grasps.sort(key=lambda g: g.grasp_quality, reverse=True)
        response.grasps = grasps[: self.param("max_grasps")]
        response.error_code.val = codes.SUCCESS if response.grasps else codes.PLANNING_FAILED
        if not response.grasps:
            self.report(f"no grasp reaches min_quality {self.param('min_quality')}", level="warning")
        return response


def main(args=None) -> None:
    run(GraspExecutorNode, args)
