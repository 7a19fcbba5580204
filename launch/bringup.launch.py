"""Bring up the diffgrasp node graph: five lifecycle nodes, kept configured and active by the lifecycle
manager (which brings a respawned node back up), robot_state_publisher with the embodiment's URDF, plus RViz.

    ros2 launch diffgrasp bringup.launch.py robot:=franka camera:=realsense depth_mode:=passthrough rviz:=true \
        namespace:=robot1 use_sim_time:=false

On another driver's depth topics instead of depth_capture's (realsense-ros, for example; docs/ros.md
has the calibration that goes with them):

    ros2 launch diffgrasp bringup.launch.py capture:=false \
        depth_topic:=/camera/camera/depth/image_rect_raw depth_info_topic:=/camera/camera/depth/camera_info

Secured with SROS2 (DDS-Security: authentication, encryption, access control), on a keystore made from
config/security/diffgrasp_policy.xml as docs/security.md says; each node runs in its enclave
/diffgrasp/<node> (ENCLAVES), and RViz is not started (run it on an operator machine with its own enclave):

    ros2 launch diffgrasp bringup.launch.py security:=true keystore:=$HOME/diffgrasp_keystore

The graph, its launch arguments and the per-node config files come from diffgrasp_ros.nodes.graph,
which `diffgrasp up` reads too, so both bring up the same graph. Under a namespace RViz gets a copy of
config/diffgrasp.rviz whose display topics are in that namespace (an .rviz file holds absolute names).

robot_state_publisher (in the namespace) publishes robot_description and /tf from joint_states; the robot's
driver publishes those, or in simulation grasp_executor does (sim_joint_states). When the robot's own bringup
already runs a robot_state_publisher, leave this one out:

    ros2 launch diffgrasp bringup.launch.py robot:=ur5_leap camera:=realsense robot_state_publisher:=false
"""
import os
import re
import tempfile

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription, Substitution
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
from launch_ros.actions import LifecycleNode, Node

from diffgrasp_ros.nodes.graph import GRAPH, LAUNCH_ARGUMENTS

# Topics that stay where they are when the displays move into a namespace: the graph's transforms and
# clock are global (nodes under namespace:= still use /tf, /tf_static, /clock).
GLOBAL_TOPICS = ("/tf", "/tf_static", "/clock", "/rosout", "/parameter_events")
# The display properties that name a topic: rviz_default_plugins' "Topic", RobotModel's "Description Topic",
# MoveIt's Trajectory display's "Trajectory Topic".
TOPIC_KEYS = "Topic|Description Topic|Trajectory Topic"

# SROS2: every node in its own enclave, as config/security/diffgrasp_policy.xml grants them (docs/security.md).
ENCLAVE_ROOT = "/diffgrasp"


def enclave(node: str) -> str:
    """The SROS2 enclave a node of the graph runs in: /diffgrasp/<node>."""
    return f"{ENCLAVE_ROOT}/{node}"


def security_environment(keystore) -> dict:
    """The environment that turns DDS-Security on for the nodes (security:=true): authentication, encryption
    and access control, Enforce (a node without its keystore enclave fails to start rather than running
    unsecured)."""
    return {"ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": "Enforce", "ROS_SECURITY_KEYSTORE": keystore}


def namespaced_rviz_config(text: str, namespace: str) -> str:
    """``text``, an .rviz file, with every absolute display topic moved into ``namespace`` ("robot1" or
    "/robot1": /scene/surface becomes /robot1/scene/surface), except GLOBAL_TOPICS and topics already in
    it; everything else is kept as written. An empty namespace changes nothing.

    RViz 2 writes a display's topic as a ``Topic:`` mapping whose ``Value:`` is the name (older displays, and
    plain topic properties such as ``Trajectory Topic``, as ``Topic: /name``); both are rewritten, for every key
    of TOPIC_KEYS. nav2_bringup does the same with nav2_common's ReplaceString.
    """
    prefix = "/" + namespace.strip().strip("/")
    if prefix == "/":
        return text

    def moved(topic: str) -> str:
        if topic in GLOBAL_TOPICS or topic == prefix or topic.startswith(prefix + "/"):
            return topic
        return prefix + topic

    lines, topic_indent = [], None  # indentation of the `Topic:` mapping being read, if any
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" "))
        if topic_indent is not None and line.strip() and indent <= topic_indent:
            topic_indent = None  # left the Topic mapping
        key = re.match(rf"^(\s*(?:- )?)({TOPIC_KEYS}|Value):([ \t]*)(/[^\s#'\"]*)([ \t]*(?:#.*)?\r?\n?)$", line)
        if re.match(rf"^\s*(?:- )?(?:{TOPIC_KEYS}):[ \t]*\r?\n?$", line):
            topic_indent = indent
        elif key and (key.group(2) != "Value" or topic_indent is not None):
            line = key.group(1) + key.group(2) + ":" + key.group(3) + moved(key.group(4)) + key.group(5)
        lines.append(line)
    return "".join(lines)


def write_namespaced_rviz_config(path: str, namespace: str) -> str:
    """``path`` itself without a namespace, else a temporary copy of it with namespaced display topics."""
    if not namespace.strip().strip("/"):
        return path
    with open(path) as source:
        text = namespaced_rviz_config(source.read(), namespace)
    label = re.sub(r"[^A-Za-z0-9_]+", "_", namespace.strip("/"))
    with tempfile.NamedTemporaryFile("w", prefix=f"diffgrasp_{label}_", suffix=".rviz", delete=False) as copy:
        copy.write(text)
    return copy.name


class NamespacedRvizConfig(Substitution):
    """The path of an .rviz file for the launch's namespace (``write_namespaced_rviz_config`` at launch
    time), as nav2_common's ReplaceString gives nav2_bringup's rviz_launch.py."""

    def __init__(self, path, namespace):
        super().__init__()
        self.path = normalize_to_list_of_substitutions(path)
        self.namespace = normalize_to_list_of_substitutions(namespace)

    def describe(self) -> str:
        return "NamespacedRvizConfig(" + " + ".join(s.describe() for s in self.path) + ")"

    def perform(self, context) -> str:
        return write_namespaced_rviz_config(perform_substitutions(context, self.path),
                                            perform_substitutions(context, self.namespace))


class RobotDescriptionParameter(Substitution):
    """The URDF of embodiment ``robot`` (``<config_dir>/<robot>.yaml``, composed by diffgrasp_ros.robots.arm as
    the nodes compose it, mesh paths as file:// URLs) as a ``robot_description`` parameter value. launch_ros
    reads a substituted parameter value as YAML, so it is given as a YAML string: the URDF comes through whole."""

    def __init__(self, robot, config_dir):
        super().__init__()
        self.robot = normalize_to_list_of_substitutions(robot)
        self.config_dir = normalize_to_list_of_substitutions(config_dir)

    def describe(self) -> str:
        return "RobotDescriptionParameter(" + " + ".join(s.describe() for s in self.robot) + ")"

    def perform(self, context) -> str:
        from diffgrasp_ros.nodes.conversions import ros_robot_description
        from diffgrasp_ros.robots.arm import load_arm

        arm = load_arm(perform_substitutions(context, self.robot), perform_substitutions(context, self.config_dir))
        return yaml.safe_dump(ros_robot_description(arm.urdf_path.read_text()))


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
        DeclareLaunchArgument("security", default_value="false", choices=["true", "false"],
                              description="run the nodes secured with SROS2 in their enclaves /diffgrasp/<node> "
                              "(ROS_SECURITY_ENABLE=true, ROS_SECURITY_STRATEGY=Enforce, ROS_SECURITY_KEYSTORE="
                              "keystore); RViz is not started. docs/security.md makes the keystore"),
        DeclareLaunchArgument("keystore", default_value=EnvironmentVariable("ROS_SECURITY_KEYSTORE", default_value=""),
                              description="the SROS2 keystore with the /diffgrasp/<node> enclaves (security:=true; "
                              "default: $ROS_SECURITY_KEYSTORE)"),
        DeclareLaunchArgument("robot_state_publisher", default_value="true", choices=["true", "false"],
                              description="start robot_state_publisher with the embodiment's URDF (robot_description, "
                              "/tf); false: the robot's own bringup runs one. Not with security:=true"),
        DeclareLaunchArgument("sim_joint_states", default_value="auto", choices=["auto", "true", "false"],
                              description="grasp_executor publishes the simulated robot's joint_states (no robot "
                              "driver); auto: with camera:=sim"),
    ]
    # Set for every process launched after them; false leaves the environment as it is.
    actions += [SetEnvironmentVariable(name, value, condition=IfCondition(LaunchConfiguration("security")))
                for name, value in security_environment(LaunchConfiguration("keystore")).items()]
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
        if spec.name == "grasp_executor":
            sim, camera = LaunchConfiguration("sim_joint_states"), LaunchConfiguration("camera")
            parameters.append({"publish_joint_states": PythonExpression(
                ["'", sim, "' == 'true' or ('", sim, "' == 'auto' and '", camera, "' == 'sim')"])})
        condition = IfCondition(LaunchConfiguration("capture")) if spec.name == "depth_capture" else None
        # A node that dies is started again; the lifecycle manager configures and activates it.
        actions.append(LifecycleNode(package="diffgrasp", executable=spec.name, name=spec.name,
                                     namespace=LaunchConfiguration("namespace"), parameters=parameters,
                                     remappings=remappings.get(spec.name, []), output="screen", condition=condition,
                                     ros_arguments=["--enclave", enclave(spec.name)],  # used when secured
                                     respawn=True, respawn_delay=2.0))
    # Brings the nodes up in order, keeps them up, answers ~/get_graph_state (without depth_capture when
    # another driver supplies the depth).
    for names, condition in (([spec.name for spec in GRAPH], IfCondition(LaunchConfiguration("capture"))),
                             ([spec.name for spec in GRAPH if spec.name != "depth_capture"],
                              UnlessCondition(LaunchConfiguration("capture")))):
        actions.append(Node(package="diffgrasp", executable="lifecycle_manager", name="lifecycle_manager",
                            namespace=LaunchConfiguration("namespace"), output="screen", condition=condition,
                            ros_arguments=["--enclave", enclave("lifecycle_manager")],
                            parameters=[{"node_names": names, "use_sim_time": LaunchConfiguration("use_sim_time")}]))
    # robot_description (transient local) and the robot's /tf from joint_states, for RViz's RobotModel and TF
    # displays. Not with security:=true: the policy has no enclave for it.
    robot_description = {"robot_description": RobotDescriptionParameter(LaunchConfiguration("robot"), config_dir)}
    actions.append(Node(package="robot_state_publisher", executable="robot_state_publisher",
                        name="robot_state_publisher", namespace=LaunchConfiguration("namespace"), output="screen",
                        parameters=[robot_description, {"use_sim_time": LaunchConfiguration("use_sim_time")}],
                        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("robot_state_publisher"),
                                                                "' == 'true' and '", LaunchConfiguration("security"),
                                                                "' != 'true'"]))))
    # RViz shows the graph's topics in its namespace: a copy of the .rviz file with namespaced topics. Not
    # with security:=true: the policy grants it nothing (docs/security.md has an enclave for an operator's RViz).
    # MoveIt's Trajectory display reads the URDF from RViz's robot_description parameter (as MoveIt's launch
    # files give it), which needs no topic name in the namespace.
    rviz_config = NamespacedRvizConfig(os.path.join(share, "config", "diffgrasp.rviz"),
                                       LaunchConfiguration("namespace"))
    actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                        arguments=["-d", rviz_config], parameters=[robot_description],
                        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("rviz"), "' == 'true' and '",
                                                                LaunchConfiguration("security"), "' != 'true'"]))))
    return LaunchDescription(actions)
