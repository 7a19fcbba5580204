"""Bring up the diffgrasp node graph: five lifecycle nodes, kept configured and active by the lifecycle
manager (which brings a respawned node back up), plus RViz.

    ros2 launch diffgrasp bringup.launch.py robot:=franka camera:=realsense depth_mode:=passthrough rviz:=true \
        namespace:=robot1 use_sim_time:=false

On another driver's depth topics instead of depth_capture's (realsense-ros, for example):

    ros2 launch diffgrasp bringup.launch.py capture:=false \
        depth_topic:=/camera/camera/depth/image_rect_raw depth_info_topic:=/camera/camera/depth/camera_info

The graph, its launch arguments and the per-node config files come from diffgrasp_ros.nodes.graph,
which `diffgrasp up` reads too, so both bring up the same graph.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node

from diffgrasp_ros.nodes.graph import GRAPH, LAUNCH_ARGUMENTS


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
        # A node that dies is started again; the lifecycle manager configures and activates it.
        actions.append(LifecycleNode(package="diffgrasp", executable=spec.name, name=spec.name,
                                     namespace=LaunchConfiguration("namespace"), parameters=parameters,
                                     remappings=remappings.get(spec.name, []), output="screen", condition=condition,
                                     respawn=True, respawn_delay=2.0))
    # Brings the nodes up in order, keeps them up, answers ~/get_graph_state (without depth_capture when
    # another driver supplies the depth).
    for names, condition in (([spec.name for spec in GRAPH], IfCondition(LaunchConfiguration("capture"))),
                             ([spec.name for spec in GRAPH if spec.name != "depth_capture"],
                              UnlessCondition(LaunchConfiguration("capture")))):
        actions.append(Node(package="diffgrasp", executable="lifecycle_manager", name="lifecycle_manager",
                            namespace=LaunchConfiguration("namespace"), output="screen", condition=condition,
                            parameters=[{"node_names": names, "use_sim_time": LaunchConfiguration("use_sim_time")}]))
    actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                        arguments=["-d", os.path.join(share, "config", "diffgrasp.rviz")],
                        condition=IfCondition(LaunchConfiguration("rviz"))))
    return LaunchDescription(actions)
