"""The scene the arm tests plan and pick in (``sim.pick_scene``): the box on the table, its cloud, and
top-down grasps of it."""
from __future__ import annotations

from diffgrasp_ros.grasping.grasp import Grasp
from diffgrasp_ros.sim.pick_scene import BOX_CENTRE_M, box_scene_cloud, top_down_pose  # noqa: F401

TOP_DOWN = top_down_pose(0.0, 0.0, 0.0)[:3, :3]  # approach -z, closing along x


def top_down_grasp(z: float) -> Grasp:
    return Grasp(top_down_pose(BOX_CENTRE_M[0], BOX_CENTRE_M[1], z), 0.04, 0.9, "test")
