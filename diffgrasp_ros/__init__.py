"""diffgrasp: from a depth camera to ranked, executable grasps.

The library (everything here but ``nodes``) never imports ROS. Typical use::

    from diffgrasp_ros import make_planner, DepthFrame, CameraIntrinsics

    planner = make_planner("baseline", robot="franka")
    result = planner.plan_from_depth(DepthFrame(depth_m, intrinsics), T_workspace_camera)
    for grasp in result.grasps:          # best first, poses in the workspace frame
        grasp.T_frame_grasp, grasp.width_m, grasp.score
"""
from .camera import SIM_CAMERA, CameraIntrinsics, DepthError, DepthFrame
from .grasping import Grasp, GraspPlanner, PlanResult, make_planner, planner_names
from .robots import get_robot, robot_names
from .scene import STANDARD_WORKSPACE, Scene, SceneBuilder, Workspace, scene_from_grid

__version__ = "0.1.0"

__all__ = [
    "CameraIntrinsics", "DepthError", "DepthFrame", "Grasp", "GraspPlanner", "PlanResult",
    "SIM_CAMERA", "STANDARD_WORKSPACE", "Scene", "SceneBuilder", "Workspace", "get_robot",
    "make_planner", "planner_names", "robot_names", "scene_from_grid",
]
