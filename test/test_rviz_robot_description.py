"""RViz shows the robot: the launch file's robot_state_publisher, run on stand-ins for launch and launch_ros
(test_sros2_policy.py's), gets each embodiment's URDF as its robot_description; config/diffgrasp.rviz's
RobotModel, TF and MoveIt Trajectory displays read what robot_state_publisher and grasp_executor publish.
robot_state_publisher itself needs a ROS installation; test_rviz_topics.py checks the rest of the graph."""
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")

from test_sros2_policy import GRAPH_NODES, launch_description, launched, value  # noqa: E402,F401 (a fixture)

from diffgrasp_ros.nodes.graph import ROBOTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RVIZ = ROOT / "config" / "diffgrasp.rviz"


def displays() -> dict[str, dict]:
    return {d["Class"]: d for d in yaml.safe_load(RVIZ.read_text())["Visualization Manager"]["Displays"]}


def robot_description(action, arguments: dict, monkeypatch) -> str:
    """The robot_description parameter of a launched Node, as launch_ros would evaluate it: the substitution
    performed for ``arguments``, then read as YAML."""
    substitution = next(p for p in action.kwargs["parameters"] if "robot_description" in p)["robot_description"]
    # The launch file's perform_substitutions is the stand-in's; perform as launch would for these arguments.
    monkeypatch.setitem(type(substitution).perform.__globals__, "perform_substitutions",
                        lambda context, substitutions: value(substitutions, arguments))
    return yaml.safe_load(substitution.perform(None))


def arguments_for(actions, **given) -> dict:
    arguments = {action.args[0] if action.args else action.kwargs["name"]:
                 value(action.kwargs.get("default_value", ""), {})
                 for action in actions if type(action).__name__ == "DeclareLaunchArgument"}
    arguments.update(given)
    return arguments


def test_robot_state_publisher_runs_in_the_namespace_unless_left_out_or_secured(launch_description):
    _, started = launched(launch_description)
    publisher = started["robot_state_publisher"]
    assert (publisher.kwargs["package"], publisher.kwargs["executable"]) == ("robot_state_publisher",) * 2
    assert value(publisher.kwargs["namespace"], {"namespace": "robot1"}) == "robot1"  # robot_description in it
    assert {"use_sim_time"} <= set(publisher.kwargs["parameters"][1])
    _, started = launched(launch_description, namespace="robot1")
    assert "robot_state_publisher" in started
    _, started = launched(launch_description, robot_state_publisher="false")  # the robot's bringup runs one
    assert "robot_state_publisher" not in started and set(GRAPH_NODES) <= set(started)
    _, started = launched(launch_description, security="true")  # the SROS2 policy has no enclave for it
    assert "robot_state_publisher" not in started


@pytest.mark.parametrize("robot", ROBOTS)
def test_robot_description_is_the_embodiments_urdf(launch_description, robot, monkeypatch):
    """For each robot:= the URDF robot_state_publisher gets (and RViz, for MoveIt's display) is the
    embodiment the nodes plan with: config/<robot>.yaml's base link at the root, its arm and hand joints
    movable, every mesh a file:// URL of an existing file, and otherwise the library's assembly unchanged."""
    import pytorch_kinematics as pk

    from diffgrasp_ros.robots.arm import load_arm

    arguments = arguments_for(launch_description, robot=robot)
    _, started = launched(launch_description, robot=robot)
    urdf = robot_description(started["robot_state_publisher"], arguments, monkeypatch)
    assert robot_description(started["rviz2"], arguments, monkeypatch) == urdf

    config = yaml.safe_load((ROOT / "config" / f"{robot}.yaml").read_text())["/**"]["ros__parameters"]
    tree = ET.fromstring(urdf)
    children = {joint.find("child").get("link") for joint in tree.findall("joint")}
    assert [link.get("name") for link in tree.findall("link") if link.get("name") not in children] == [
        config["arm"]["base_link"]]  # one root: the frame grasp_executor places in the workspace on /tf_static
    movable = {joint.get("name") for joint in tree.findall("joint") if joint.get("type") != "fixed"}
    assert {*config["arm"]["joint_names"], *config["hand"]["joint_names"]} <= movable
    chain = pk.build_chain_from_urdf(urdf.encode())  # a kinematic tree a URDF parser accepts
    assert {*config["arm"]["joint_names"], *config["hand"]["joint_names"]} <= set(chain.get_joint_parameter_names())

    meshes = [mesh.get("filename") for mesh in tree.iter("mesh")]
    assert meshes and all(name.startswith("file:///") and Path(name[len("file://"):]).is_file() for name in meshes)
    library = ET.fromstring(load_arm(robot).urdf_path.read_text())
    for mesh in tree.iter("mesh"):
        mesh.set("filename", mesh.get("filename").removeprefix("file://"))
    assert ET.tostring(tree) == ET.tostring(library)


def test_grasp_executor_simulates_joint_states_only_without_a_robot(launch_description):
    """sim_joint_states:=auto publishes the simulated robot's joint_states with camera:=sim only (a simulated
    world has no robot driver); true / false decide for any camera."""
    def publishes(**given) -> bool:
        _, started = launched(launch_description, **given)
        parameters = [p for p in started["grasp_executor"].kwargs["parameters"]
                      if isinstance(p, dict) and "publish_joint_states" in p]
        assert len(parameters) == 1
        arguments = arguments_for(launch_description, **given)
        return yaml.safe_load(value(parameters[0]["publish_joint_states"], arguments))  # as launch_ros reads it

    assert publishes() is True  # camera:=sim by default
    assert publishes(camera="realsense") is False and publishes(camera="replay") is False
    assert publishes(camera="sim", sim_joint_states="false") is False
    assert publishes(camera="realsense", sim_joint_states="true") is True


def test_rviz_config_has_the_robot_displays():
    """RobotModel reads robot_state_publisher's robot_description (transient local, so RViz started later still
    gets it); TF shows the frames; MoveIt's Trajectory display animates grasp_executor's plan preview, with
    the URDF of RViz's robot_description parameter (which the launch file gives rviz2)."""
    by_class = displays()
    model = by_class["rviz_default_plugins/RobotModel"]
    assert model["Enabled"] and model["Description Source"] == "Topic"
    assert model["Description Topic"]["Value"] == "/robot_description"
    assert model["Description Topic"]["Durability Policy"] == "Transient Local"
    assert by_class["rviz_default_plugins/TF"]["Enabled"]
    trajectory = by_class["moveit_rviz_plugin/Trajectory"]
    assert trajectory["Trajectory Topic"] == "/display_planned_path"
    assert trajectory["Robot Description"] == "robot_description"
    assert 'parameters=[robot_description]' in (ROOT / "launch" / "bringup.launch.py").read_text()
