"""Every topic config/diffgrasp.rviz names, in the running graph with the type its display reads (real rclpy,
the graph as `diffgrasp up` brings it up, under a namespace, so RViz reads the launch file's namespaced copy
of the config). The topics only robot_state_publisher provides (it needs a ROS installation) are named, and
the launch file starts it for them; what it needs, joint_states for every movable joint, is checked live.
grasp_executor's plan preview (moveit_msgs/DisplayTrajectory) and its simulated joint states are checked
through a pick."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from moveit_msgs.msg import DisplayTrajectory, MoveItErrorCodes  # noqa: E402
from moveit_msgs.srv import GraspPlanning  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import Spinner, call, wait_for  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from test_launch_rviz_namespace import RVIZ, TOPIC_KEYS, launch_functions  # noqa: E402,F401 (a fixture)
from test_sros2_policy import launch_description, launched  # noqa: E402,F401 (a fixture)
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from diffgrasp_ros.cli.up import bring_up, tear_down  # noqa: E402

NAMESPACE = "/robot1"
# The message type each display class reads on the topic the config names.
DISPLAY_TYPES = {
    "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/PoseArray": "geometry_msgs/msg/PoseArray",
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/RobotModel": "std_msgs/msg/String",
    "moveit_rviz_plugin/Trajectory": "moveit_msgs/msg/DisplayTrajectory",
}
# Displays that name no topic: TF and RobotModel read /tf and /tf_static through RViz's TF listener.
TOPICLESS = {"rviz_default_plugins/Grid": (), "rviz_default_plugins/TF": ("/tf", "/tf_static")}
TF_TYPE = "tf2_msgs/msg/TFMessage"
# What robot_state_publisher publishes (ros/robot_state_publisher, src/robot_state_publisher.cpp):
# robot_description in its namespace, the moving joints on /tf, the fixed ones on /tf_static.
ROBOT_STATE_PUBLISHER = {f"{NAMESPACE}/robot_description": "std_msgs/msg/String", "/tf": TF_TYPE,
                         "/tf_static": TF_TYPE}


def topics_rviz_reads(text: str) -> dict[str, tuple[str, dict]]:
    """Topic -> (message type, QoS settings of the display) for every display of an .rviz file."""
    wanted = {}
    for display in yaml.safe_load(text)["Visualization Manager"]["Displays"]:
        kind = display["Class"]
        keys = [key for key in TOPIC_KEYS if key in display]
        if kind in TOPICLESS:
            assert not keys, kind
            wanted.update({topic: (TF_TYPE, {}) for topic in TOPICLESS[kind]})
            continue
        assert kind in DISPLAY_TYPES and len(keys) == 1, f"{kind}: which message does it read, on which topic?"
        setting = display[keys[0]]
        topic, qos = (setting["Value"], setting) if isinstance(setting, dict) else (setting, {})
        wanted[topic] = (DISPLAY_TYPES[kind], qos)
        if kind == "rviz_default_plugins/RobotModel":  # it places the links by TF
            wanted.update({tf: (TF_TYPE, {}) for tf in TOPICLESS["rviz_default_plugins/TF"]})
    return wanted


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_every_rviz_topic_is_in_the_graph_with_its_type(ros, launch_functions, launch_description):
    from diffgrasp_ros.nodes.conversions import ros_robot_description
    from diffgrasp_ros.robots.arm import load_arm

    wanted = topics_rviz_reads(launch_functions["namespaced_rviz_config"](RVIZ.read_text(), NAMESPACE))
    assert f"{NAMESPACE}/display_planned_path" in wanted and f"{NAMESPACE}/robot_description" in wanted
    # camera:=sim: the executor stands in for the robot driver (sim_joint_states:=auto), and may execute.
    executor, nodes = bring_up(ros_args=["-r", f"__ns:={NAMESPACE}", "-p", "publish_joint_states:=true",
                                         "-p", "motion_enabled:=true"],
                               robot="franka", camera="sim", depth_mode="passthrough")
    probe = rclpy.create_node("rviz_probe")
    executor.add_node(probe)
    states, previews, planned = [], [], []
    probe.create_subscription(JointState, f"{NAMESPACE}/joint_states", states.append, 100)
    probe.create_subscription(DisplayTrajectory, f"{NAMESPACE}/display_planned_path", previews.append, 10)
    probe.create_subscription(JointTrajectory, f"{NAMESPACE}/grasp_executor/planned_trajectory", planned.append, 10)
    try:
        with Spinner(executor):
            def publishers():
                return {topic: probe.get_publishers_info_by_topic(topic) for topic in wanted}

            ours = set(wanted) - set(ROBOT_STATE_PUBLISHER)
            assert wait_for(lambda: all(publishers()[topic] for topic in ours), 60.0), \
                [topic for topic, infos in publishers().items() if not infos]
            for topic, infos in publishers().items():
                kind, qos = wanted[topic]
                assert {info.topic_type for info in infos} <= {kind}, topic
                for info in infos:  # a display's subscription matches every publisher
                    if qos.get("Reliability Policy") == "Reliable":
                        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
                    if qos.get("Durability Policy") == "Transient Local":
                        assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL, topic
            # Only robot_state_publisher's topics are missing (/tf_static has the calibrations already) ...
            assert {topic for topic, infos in publishers().items() if not infos} == {
                f"{NAMESPACE}/robot_description", "/tf"}
            # ... and the launch file starts it, in the namespace, with the embodiment's URDF.
            _, started = launched(launch_description, namespace=NAMESPACE.strip("/"))
            assert "robot_description" in started["robot_state_publisher"].kwargs["parameters"][0]
            assert type(started["robot_state_publisher"].kwargs["namespace"]).__name__ == "LaunchConfiguration"

            # What it needs: joint_states naming every movable joint of that URDF, and the URDF's root in the
            # TF tree of RViz's fixed frame.
            urdf = ET.fromstring(ros_robot_description(load_arm("franka").urdf_path.read_text()))
            movable = {joint.get("name") for joint in urdf.findall("joint") if joint.get("type") != "fixed"}
            assert wait_for(lambda: states, 10.0), "no joint_states"
            assert set(states[-1].name) == movable
            children = {joint.find("child").get("link") for joint in urdf.findall("joint")}
            (root,) = {link.get("name") for link in urdf.findall("link")} - children
            statics = []
            probe.create_subscription(TFMessage, "/tf_static", statics.append,
                                      QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            assert wait_for(lambda: any(t.child_frame_id == "workspace" for m in statics for t in m.transforms), 10.0)
            workspace = next(t for m in statics for t in m.transforms if t.child_frame_id == "workspace")
            assert workspace.header.frame_id == root  # RViz's fixed frame hangs below the robot's root link

            # A pick: its preview is the planned trajectory from its first point, for the URDF's robot model.
            grasp_executor = next(node for node in nodes if node.get_name() == "grasp_executor")
            assert wait_for(lambda: grasp_executor._surface is not None, 60.0), "no scene reached the executor"
            response = call(probe.create_client(GraspPlanning, f"{NAMESPACE}/plan_grasp"), GraspPlanning.Request(),
                            60.0)
            assert response.error_code.val == MoveItErrorCodes.SUCCESS, grasp_executor.last_error
            assert wait_for(lambda: previews and planned, 10.0)
            preview, trajectory = previews[-1], planned[-1]
            assert preview.model_id == urdf.get("name")
            assert len(preview.trajectory) == 1 and preview.trajectory[0].joint_trajectory == trajectory
            assert set(trajectory.joint_names) <= movable and len(trajectory.points) > 10
            start = preview.trajectory_start.joint_state
            assert list(start.name) == list(trajectory.joint_names)
            assert list(start.position) == list(trajectory.points[0].positions)
            assert np.allclose([states[-1].position[list(states[-1].name).index(n)] for n in start.name],
                               start.position)  # planned from where the simulated robot stands

            # Executed, the simulated robot follows it and stays where it ends.
            answer = call(probe.create_client(Trigger, f"{NAMESPACE}/grasp_executor/execute"), Trigger.Request())
            assert answer.success, answer.message
            end = np.array(trajectory.points[-1].positions)
            last = trajectory.points[-1].time_from_start
            duration_s = last.sec + 1e-9 * last.nanosec

            def position(state):
                return np.array([state.position[list(state.name).index(n)] for n in trajectory.joint_names])

            seen = len(states)
            assert wait_for(lambda: np.allclose(position(states[-1]), end, atol=1e-9), duration_s + 10.0)
            along = [position(state) for state in states[seen:]]
            first = np.array(trajectory.points[0].positions)
            assert any(not np.allclose(q, first) and not np.allclose(q, end) for q in along)  # it moved through
    finally:
        tear_down(executor, nodes)
        probe.destroy_node()


def test_simulated_joint_states_follow_the_executors_lifecycle(ros):
    """Published while active only, stopped by deactivate, back after cleanup and configure; a rate that is not
    positive fails configure with the reason."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from ros_helpers import make_node

    from diffgrasp_ros.nodes.grasp_executor import GraspExecutorNode
    from diffgrasp_ros.robots.arm import load_arm

    ok = TransitionCallbackReturn.SUCCESS
    arm = load_arm("franka")
    node = make_node(GraspExecutorNode, publish_joint_states=True, joint_state_rate_hz=20.0, motion_backend="none")
    probe = rclpy.create_node("joint_state_probe")
    states = []
    probe.create_subscription(JointState, "/joint_states", states.append, 100)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        with Spinner(executor):
            assert node.trigger_configure() == ok, node.last_error
            assert node.trigger_activate() == ok
            assert wait_for(lambda: len(states) >= 3, 10.0)
            assert list(states[-1].name) == [*arm.arm_joint_names, *arm.hand_joint_names]
            assert np.allclose(states[-1].position, [*arm.home_q, *arm.hand_open_q])
            assert node.trigger_deactivate() == ok
            stopped = len(states)
            assert not wait_for(lambda: len(states) > stopped + 1, 0.5)  # one may have been under way
            assert node.trigger_cleanup() == ok and node.trigger_configure() == ok and node.trigger_activate() == ok
            seen = len(states)
            assert wait_for(lambda: len(states) > seen, 10.0)
            assert node.trigger_deactivate() == ok and node.trigger_cleanup() == ok
            node.set_parameters([Parameter("joint_state_rate_hz", value=0.0)])
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            assert "joint_state_rate_hz must be positive" in node.last_error
    finally:
        tear_down(executor, [node, probe])
