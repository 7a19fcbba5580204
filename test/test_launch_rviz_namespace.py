"""The launch file under a namespace and on another driver's topics (checked without ROS installed):
RViz gets a namespaced copy of config/diffgrasp.rviz, and `diffgrasp up` takes the launch file's
capture / depth_topic / depth_info_topic arguments with the same defaults."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "bringup.launch.py"
RVIZ = ROOT / "config" / "diffgrasp.rviz"
LAUNCH_ONLY_NAMES = ("GLOBAL_TOPICS", "TOPIC_KEYS", "namespaced_rviz_config", "write_namespaced_rviz_config")
TOPIC_KEYS = ("Topic", "Description Topic", "Trajectory Topic")  # a mapping with a Value, or the name itself


@pytest.fixture(scope="module")
def launch_functions():
    """The launch file's plain-Python helpers, compiled without its launch / launch_ros imports (the
    pieces that need those are tested by running the installed launch file on a ROS machine)."""
    tree = ast.parse(LAUNCH.read_text())
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Import) and all(alias.name in ("os", "re", "tempfile") for alias in node.names):
            keep.append(node)
        elif isinstance(node, ast.FunctionDef) and node.name in LAUNCH_ONLY_NAMES:
            keep.append(node)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) in LAUNCH_ONLY_NAMES for t in node.targets):
            keep.append(node)
    namespace = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(LAUNCH), "exec"), namespace)
    assert set(LAUNCH_ONLY_NAMES) <= set(namespace)
    return namespace


def display_topics(text: str) -> dict[str, str]:
    displays = yaml.safe_load(text)["Visualization Manager"]["Displays"]
    return {d["Name"]: d[key]["Value"] if isinstance(d[key], dict) else d[key]
            for d in displays for key in TOPIC_KEYS if key in d}


@pytest.mark.parametrize("namespace", ["robot1", "/robot1", "/robot1/", "fleet/robot1"])
def test_rviz_config_displays_move_into_the_namespace(launch_functions, namespace):
    original = RVIZ.read_text()
    rewritten = launch_functions["namespaced_rviz_config"](original, namespace)
    prefix = "/" + namespace.strip("/")
    before, after = display_topics(original), display_topics(rewritten)
    assert before and set(before) == set(after)
    assert after == {name: prefix + topic for name, topic in before.items()}
    assert after["Scene surface"] == f"{prefix}/scene/surface"
    assert after["Robot"] == f"{prefix}/robot_description"  # RobotModel's Description Topic
    assert after["Planned pick (MoveIt)"] == f"{prefix}/display_planned_path"  # an inline Trajectory Topic
    # Nothing else changes: same lines, same YAML apart from the topics.
    assert len(rewritten.splitlines()) == len(original.splitlines())
    changed = [(a, b) for a, b in zip(original.splitlines(), rewritten.splitlines()) if a != b]
    assert len(changed) == len(before) and all("Value: /" in a or "Topic: /" in a for a, _ in changed)
    reloaded, plain = yaml.safe_load(rewritten), yaml.safe_load(original)
    for display in reloaded["Visualization Manager"]["Displays"] + plain["Visualization Manager"]["Displays"]:
        for key in TOPIC_KEYS:
            if isinstance(display.get(key), dict):
                display[key].pop("Value")
            else:
                display.pop(key, None)
    assert reloaded == plain
    # Idempotent: topics already in the namespace stay.
    assert launch_functions["namespaced_rviz_config"](rewritten, namespace) == rewritten


def test_rviz_config_without_a_namespace_is_used_as_it_is(launch_functions, tmp_path):
    text = RVIZ.read_text()
    for namespace in ("", "/", "  "):
        assert launch_functions["namespaced_rviz_config"](text, namespace) == text
        assert launch_functions["write_namespaced_rviz_config"](str(RVIZ), namespace) == str(RVIZ)


def test_global_topics_inline_topics_and_other_values(launch_functions):
    text = """Visualization Manager:
  Displays:
    - Class: rviz_default_plugins/TF
      Name: TF
      Value: true
    - Class: rviz_default_plugins/Marker
      Name: Old style
      Topic: /grasps/markers
      Value: true
    - Class: rviz_default_plugins/Path
      Name: Path
      Topic:
        Depth: 5
        Value: /grasp_executor/planned_tcp_path  # the pick
        Reliability Policy: Reliable
      Value: /not/a/topic
    - Class: rviz_default_plugins/Map
      Name: Static
      Topic:
        Value: /tf_static
      Update Topic:
        Value: /map_updates
"""
    out = yaml.safe_load(launch_functions["namespaced_rviz_config"](text, "robot1"))
    tf, old, path, static = out["Visualization Manager"]["Displays"]
    assert tf["Value"] is True
    assert old["Topic"] == "/robot1/grasps/markers"
    assert path["Topic"]["Value"] == "/robot1/grasp_executor/planned_tcp_path"
    assert path["Topic"]["Depth"] == 5 and path["Value"] == "/not/a/topic"  # only a Topic's Value is a topic
    assert static["Topic"]["Value"] == "/tf_static"  # transforms stay global
    assert static["Update Topic"]["Value"] == "/map_updates"  # not a Topic key: left alone


def test_namespaced_copy_is_written_next_to_nothing_it_replaces(launch_functions):
    path = launch_functions["write_namespaced_rviz_config"](str(RVIZ), "robot1")
    try:
        assert path != str(RVIZ) and path.endswith(".rviz")
        assert display_topics(Path(path).read_text())["Depth"] == "/robot1/depth/processed/image"
        assert display_topics(RVIZ.read_text())["Depth"] == "/depth/processed/image"  # the original is untouched
    finally:
        Path(path).unlink()


def test_launch_file_gives_rviz_the_namespaced_config():
    """rviz2 gets `-d NamespacedRvizConfig(<share>/config/diffgrasp.rviz, LaunchConfiguration("namespace"))`."""
    tree = ast.parse(LAUNCH.read_text())
    assigned = {target.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    rviz = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node"
            and any(k.arg == "executable" and getattr(k.value, "value", None) == "rviz2" for k in node.keywords)]
    assert len(rviz) == 1
    arguments = next(k.value for k in rviz[0].keywords if k.arg == "arguments")
    assert isinstance(arguments, ast.List) and ast.literal_eval(arguments.elts[0]) == "-d"
    config = assigned[arguments.elts[1].id]
    assert config.func.id == "NamespacedRvizConfig"
    path, namespace = config.args
    assert "diffgrasp.rviz" in ast.unparse(path)
    assert ast.unparse(namespace) == "LaunchConfiguration('namespace')"
    source = LAUNCH.read_text()
    assert "class NamespacedRvizConfig(Substitution)" in source and "def perform(self, context)" in source


def launch_argument_defaults() -> dict[str, str]:
    defaults = {}
    for node in ast.walk(ast.parse(LAUNCH.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            if node.args and isinstance(node.args[0], ast.Constant):
                default = next((k.value for k in node.keywords if k.arg == "default_value"), None)
                defaults[node.args[0].value] = default.value if isinstance(default, ast.Constant) else None
    return defaults


def test_diffgrasp_up_takes_the_launch_files_driver_arguments():
    """capture, depth_topic, depth_info_topic: the same names and defaults in both ways of bringing the
    graph up, and the remapping moves depth_processor's inputs only."""
    import argparse

    from diffgrasp_ros.cli import up

    defaults = launch_argument_defaults()
    assert defaults["capture"] == "true"
    assert defaults["depth_topic"] == up.DEPTH_TOPIC == "depth/image_raw"
    assert defaults["depth_info_topic"] == up.DEPTH_INFO_TOPIC == "depth/camera_info"
    assert f'("{up.DEPTH_TOPIC}", LaunchConfiguration("depth_topic"))' in LAUNCH.read_text()
    assert f'("{up.DEPTH_INFO_TOPIC}", LaunchConfiguration("depth_info_topic"))' in LAUNCH.read_text()

    parser = argparse.ArgumentParser()
    up.add_parser(parser.add_subparsers())
    args = parser.parse_args(["up", "--capture", "false", "--depth-topic", "/camera/camera/depth/image_rect_raw",
                              "--depth-info-topic", "/camera/camera/depth/camera_info"])
    assert (args.capture, args.depth_topic, args.depth_info_topic) == (
        "false", "/camera/camera/depth/image_rect_raw", "/camera/camera/depth/camera_info")
    defaults_args = parser.parse_args(["up"])
    assert (defaults_args.capture, defaults_args.depth_topic, defaults_args.depth_info_topic) == (
        defaults["capture"], defaults["depth_topic"], defaults["depth_info_topic"])

    assert [spec.name for spec in up.graph_specs(capture=False)] == [
        "depth_processor", "scene_builder", "grasp_server", "grasp_executor"]
    assert len(up.graph_specs(capture=True)) == 5
    assert up.node_remappings() == {"depth_processor": []}
    remaps = up.node_remappings("/camera/camera/depth/image_rect_raw", "/camera/camera/depth/camera_info")
    assert remaps == {"depth_processor": [("depth/image_raw", "/camera/camera/depth/image_rect_raw"),
                                          ("depth/camera_info", "/camera/camera/depth/camera_info")]}
    from diffgrasp_ros.nodes.graph import GRAPH, default_config_dir

    spec = next(s for s in GRAPH if s.name == "depth_processor")
    argv = up.node_arguments(spec, default_config_dir(), "franka", {"mode": "passthrough"},
                             ["--ros-args", "-r", "__ns:=/robot1"], remaps["depth_processor"])
    assert argv[-7:] == ["-r", "depth/image_raw:=/camera/camera/depth/image_rect_raw",
                         "-r", "depth/camera_info:=/camera/camera/depth/camera_info",
                         "--ros-args", "-r", "__ns:=/robot1"]  # the user's --ros-args come last and win
    assert up.as_bool("False") is False and up.as_bool(True) is True
    with pytest.raises(ValueError, match="true or false"):
        up.as_bool("yes")
