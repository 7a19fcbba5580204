"""The node graph, defined once for ``launch/bringup.launch.py`` and ``diffgrasp up``.

Both read the same per-node YAML files from ``config/`` and apply the same launch-argument overrides,
so a graph brought up with or without a ROS installation is the same graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..share import config_dir

ROBOTS = ("franka", "xarm_leap", "ur5_leap")
CAMERA_SOURCES = ("sim", "realsense", "replay")
DEPTH_MODES = ("passthrough", "restore", "graft")


@dataclass(frozen=True)
class NodeSpec:
    name: str  # node name = executable name = config/<name>.yaml
    module: str  # diffgrasp_ros.nodes.<module>
    class_name: str
    uses_embodiment: bool = False  # also gets config/<robot>.yaml


GRAPH = (
    NodeSpec("depth_capture", "depth_capture", "DepthCaptureNode"),
    NodeSpec("depth_processor", "depth_processor", "DepthProcessorNode"),
    NodeSpec("scene_builder", "scene_builder", "SceneBuilderNode"),
    NodeSpec("grasp_server", "grasp_server", "GraspServerNode", uses_embodiment=True),
    NodeSpec("grasp_executor", "grasp_executor", "GraspExecutorNode", uses_embodiment=True),
)


@dataclass(frozen=True)
class LaunchArgument:
    default: str
    choices: tuple[str, ...]
    description: str
    targets: tuple[tuple[str, str], ...]  # (node, parameter) pairs it sets


LAUNCH_ARGUMENTS = {
    "robot": LaunchArgument("franka", ROBOTS, "embodiment to plan for",
                            (("grasp_server", "robot"), ("grasp_executor", "robot"))),
    "camera": LaunchArgument("sim", CAMERA_SOURCES, "depth camera source", (("depth_capture", "source"),)),
    "depth_mode": LaunchArgument("passthrough", DEPTH_MODES, "depth processing mode",
                                 (("depth_processor", "mode"),)),
}


def overrides(**values: str) -> dict[str, dict[str, str]]:
    """Launch-argument values -> the node parameters they set (unknown or invalid values raise)."""
    per_node: dict[str, dict[str, str]] = {spec.name: {} for spec in GRAPH}
    for name, argument in LAUNCH_ARGUMENTS.items():
        value = values.pop(name, argument.default)
        if value not in argument.choices:
            raise ValueError(f"{name} must be one of {argument.choices}, got {value!r}")
        for node, parameter in argument.targets:
            per_node[node][parameter] = value
    if values:
        raise ValueError(f"unknown launch arguments {sorted(values)}; known: {sorted(LAUNCH_ARGUMENTS)}")
    return per_node


def parameter_files(spec: NodeSpec, config_dir: Path, robot: str) -> list[Path]:
    files = [config_dir / f"{spec.name}.yaml"]
    if spec.uses_embodiment:
        files.append(config_dir / f"{robot}.yaml")
    return files


def default_config_dir() -> Path:
    """The checkout's config/ or the installed share/diffgrasp/config (``share.py``)."""
    return config_dir()
