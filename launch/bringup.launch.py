"""Bring up the diffgrasp node graph: five lifecycle nodes, configured and activated, plus RViz.

    ros2 launch diffgrasp bringup.launch.py robot:=franka camera:=realsense depth_mode:=passthrough rviz:=true \
        namespace:=robot1 use_sim_time:=false

On another driver's depth topics instead of depth_capture's (realsense-ros, for example):

    ros2 launch diffgrasp bringup.launch.py capture:=false \
        depth_topic:=/camera/camera/depth/image_rect_raw depth_info_topic:=/camera/camera/depth/camera_info

The graph, its launch arguments and the per-node config files come from diffgrasp_ros.nodes.graph,
which `diffgrasp up` reads too, so both bring up the same graph.
"""
import os

import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

from diffgrasp_ros.nodes.graph import GRAPH, LAUNCH_ARGUMENTS


def _transition(node, transition_id, condition=None):
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id),
                     condition=condition)


def generate_launch_description():
    share = get_package_share_directory("diffgrasp")
    config_dir = LaunchConfiguration("config_dir")
    actions = [
        DeclareLaunchArgument(name, default_value=argument.default, choices=list(argument.choices),
                              description=argument.description)
        for name, argument in LAUNCH_ARGUMENTS.items()
    ]
    actions += [
        DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"], description="start RViz"),
        DeclareLaunchArgument("config_dir", default_value=os.path.join(share, "config"),
                              description="folder of the per-node and per-robot YAML files"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node, its topics "
                              "and services (plan_grasp included), e.g. one per robot"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="take time from /clock (simulation, bag replay)"),
        DeclareLaunchArgument("capture", default_value="true", choices=["true", "false"],
                              description="start depth_capture (false: depth comes from another driver)"),
        DeclareLaunchArgument("depth_topic", default_value="depth/image_raw",
                              description="the depth image depth_processor reads"),
        DeclareLaunchArgument("depth_info_topic", default_value="depth/camera_info",
                              description="the camera_info depth_processor reads"),
    ]
    remappings = {"depth_processor": [("depth/image_raw", LaunchConfiguration("depth_topic")),
                                      ("depth/camera_info", LaunchConfiguration("depth_info_topic"))]}
    for spec in GRAPH:
        parameters = [PathJoinSubstitution([config_dir, f"{spec.name}.yaml"])]
        if spec.uses_embodiment:
            parameters.append(PathJoinSubstitution([config_dir, [LaunchConfiguration("robot"), ".yaml"]]))
        parameters.append({parameter: LaunchConfiguration(name)
                           for name, argument in LAUNCH_ARGUMENTS.items()
                           for node, parameter in argument.targets if node == spec.name})
        parameters.append({"use_sim_time": LaunchConfiguration("use_sim_time")})
        condition = IfCondition(LaunchConfiguration("capture")) if spec.name == "depth_capture" else None
        node = LifecycleNode(package="diffgrasp", executable=spec.name, name=spec.name,
                             namespace=LaunchConfiguration("namespace"), parameters=parameters,
                             remappings=remappings.get(spec.name, []), output="screen", condition=condition)
        actions += [
            node,
            # configure at start, activate once configured; only after configuring, so a node deactivated
            # by hand stays inactive
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                entities=[_transition(node, lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE)]),
                condition=condition),
            _transition(node, lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE, condition),
        ]
    actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                        arguments=["-d", os.path.join(share, "config", "diffgrasp.rviz")],
                        condition=IfCondition(LaunchConfiguration("rviz"))))
    return LaunchDescription(actions)
