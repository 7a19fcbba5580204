"""The launch file, `diffgrasp up` and config/ describe one graph (checked without ROS installed)."""
import ast
from pathlib import Path

import pytest
import yaml

from diffgrasp_ros.nodes.graph import GRAPH, LAUNCH_ARGUMENTS, ROBOTS, overrides, parameter_files

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "bringup.launch.py"
CONFIG = ROOT / "config"


def test_launch_file_builds_the_graph_from_the_shared_description():
    tree = ast.parse(LAUNCH.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "diffgrasp_ros.nodes.graph" for alias in node.names}
    assert {"GRAPH", "LAUNCH_ARGUMENTS"} <= imported
    source = LAUNCH.read_text()
    # RViz starts with rviz:=true unless security:=true (test_sros2_policy.py runs the launch file on stand-ins)
    for needle in ("LifecycleNode(", "diffgrasp.rviz", 'LaunchConfiguration("rviz"), "\' == \'true\' and \'"',
                   # SROS2: security:=true keystore:=PATH, each node in its enclave
                   'DeclareLaunchArgument("security"', 'DeclareLaunchArgument("keystore"', "SetEnvironmentVariable(",
                   'ros_arguments=["--enclave", enclave(spec.name)]',
                   # the lifecycle manager brings the nodes up and back up; launch respawns dead processes
                   'executable="lifecycle_manager"', "respawn=True",
                   # composable into a robot's system: namespace, sim time, another driver's depth topics
                   'namespace=LaunchConfiguration("namespace")', '"use_sim_time": LaunchConfiguration("use_sim_time")',
                   '("depth/image_raw", LaunchConfiguration("depth_topic"))',
                   'IfCondition(LaunchConfiguration("capture"))'):
        assert needle in source
    assert 'namespace=""' not in source
    compile(source, str(LAUNCH), "exec")


@pytest.mark.parametrize("robot", ROBOTS)
def test_every_node_and_robot_has_its_config_file(robot):
    for spec in GRAPH:
        for path in parameter_files(spec, CONFIG, robot):
            data = yaml.safe_load(path.read_text())
            key = "/**" if path.stem in ROBOTS else f"/**/{spec.name}"  # in any namespace
            assert "ros__parameters" in data[key], path


def test_launch_arguments_reach_the_right_nodes():
    per_node = overrides(robot="franka", camera="replay", depth_mode="passthrough")
    assert per_node["depth_capture"] == {"source": "replay"}
    assert per_node["grasp_server"]["robot"] == per_node["grasp_executor"]["robot"] == "franka"
    with pytest.raises(ValueError, match="camera must be one of"):
        overrides(camera="kinect")
    with pytest.raises(ValueError, match="unknown launch arguments"):
        overrides(rviz="true")
    assert set(LAUNCH_ARGUMENTS) == {"robot", "camera", "depth_mode"}


def test_rviz_config_shows_what_the_nodes_publish():
    rviz = yaml.safe_load((CONFIG / "diffgrasp.rviz").read_text())
    manager = rviz["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "workspace"
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert {"/scene/surface", "/grasps/markers", "/grasps/poses", "/depth/processed/image",
            "/grasp_executor/planned_tcp_path"} <= topics


def test_scene_builder_config_holds_the_simulated_side_view():
    import numpy as np

    from diffgrasp_ros.sim.camera import side_view

    params = yaml.safe_load((CONFIG / "scene_builder.yaml").read_text())["/**/scene_builder"]["ros__parameters"]
    np.testing.assert_allclose(np.reshape(params["T_workspace_camera"], (4, 4)), side_view(), atol=1e-8)
    assert params["camera_frame"] == yaml.safe_load((CONFIG / "depth_capture.yaml").read_text())[
        "/**/depth_capture"]["ros__parameters"]["frame_id"]
