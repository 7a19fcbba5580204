"""Limits on a GraspPlanning request, shared by the nodes that serve one (grasp_server, grasp_executor):
declared as parameters, checked by counting and measuring before anything is converted, copied or planned,
so a request over them costs what a small one does (``benchmarks/request_limits.py``)."""
from __future__ import annotations

from moveit_msgs.msg import MoveItErrorCodes

from .base import MAX_NAME_LENGTH
from .conversions import MAX_HAND_JOINTS, ObjectLimits, check_collision_object, check_limit, check_name

# A request over a limit is answered INVALID_GOAL_CONSTRAINTS: MoveItErrorCodes has no "request too large",
# and this is MoveIt's code for a request whose goal is malformed as given (it fails whatever the scene or
# the robot does, so retrying it unchanged never helps), which keeps it apart from FAILURE (planning went
# wrong) and from the codes for the scene (UNABLE_TO_AQUIRE_SENSOR_DATA, SENSOR_INFO_STALE).
OVER_LIMIT = MoveItErrorCodes.INVALID_GOAL_CONSTRAINTS


def declare_request_limits(node) -> None:
    """The limits' parameters on ``node`` (a ``DiffgraspNode``)."""
    node.declare("max_candidate_grasps", 200, "candidate_grasps per request at most (each is checked and "
                 "scored: 200 cost about what a few plans do, benchmarks/request_limits.py; a grasp generator "
                 "sends tens to a hundred or two)")
    node.declare("max_object_shapes", 64, "primitives + meshes + planes of one object of a request (its target, "
                 "each movable obstacle) at most")
    node.declare("max_object_vertices", 100_000, "mesh vertices of one object of a request at most, all its "
                 "meshes (a scanned household object has 10k-100k; each is read to bound the object)")
    node.declare("max_object_triangles", 200_000, "mesh triangles of one object of a request at most, all its "
                 "meshes (about twice its vertices for a closed mesh)")
    node.declare("max_name_length", MAX_NAME_LENGTH, "characters per string of a request at most: group_name, "
                 "target id and frame, candidate ids, frames and joint names (ROS names and DDS topics stay "
                 "under 256)")


def target_limits(node) -> ObjectLimits:
    return ObjectLimits(max_shapes=node.param("max_object_shapes"), max_vertices=node.param("max_object_vertices"),
                        max_triangles=node.param("max_object_triangles"), parameter_prefix="max_object_")


def check_grasp_request(node, request) -> None:
    """LimitError for a request over ``node``'s limits. Counts and lengths only: the candidate count is checked
    before any candidate is looked at, the target's sizes before any vertex is read."""
    candidates = request.candidate_grasps
    check_limit("candidate_grasps", len(candidates), node.param("max_candidate_grasps"), "max_candidate_grasps",
                " grasps")
    length = node.param("max_name_length")
    check_name("group_name", request.group_name, length)
    check_collision_object(request.target, target_limits(node), "target", length)
    for i, grasp in enumerate(candidates):
        check_name(f"candidate_grasps[{i}].id", grasp.id, length)
        check_name(f"candidate_grasps[{i}] frame_id", grasp.grasp_pose.header.frame_id, length)
        for posture in (grasp.pre_grasp_posture, grasp.grasp_posture):
            check_limit(f"candidate_grasps[{i}] posture", len(posture.joint_names), MAX_HAND_JOINTS,
                        "no hand has more", " joint names")
            for name in posture.joint_names:
                check_name(f"candidate_grasps[{i}] joint name", name, length)
