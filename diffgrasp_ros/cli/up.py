"""``diffgrasp up``: the ROS 2 node graph in one process, without a ROS installation (rclpy wheels)."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..nodes.graph import LAUNCH_ARGUMENTS

    parser = subparsers.add_parser(
        "up", help="bring up the ROS 2 node graph (same config as launch/bringup.launch.py)",
        description="Start the five diffgrasp lifecycle nodes in one process on a multi-threaded executor, "
                    "configure and activate them, and spin until interrupted. Reads the same config/ files "
                    "and launch arguments as `ros2 launch diffgrasp bringup.launch.py`. ROS arguments after "
                    "--ros-args reach every node (e.g. `--ros-args -r __ns:=/robot1 -p use_sim_time:=true`). "
                    "Stops on SIGINT or SIGTERM. Needs rclpy (the ROS 2 wheels: `bash scripts/setup.sh --ros`).")
    for name, argument in LAUNCH_ARGUMENTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=argument.default,
                            choices=argument.choices, help=f"{argument.description} (default: {argument.default})")
    parser.add_argument("--config-dir", type=Path, default=None, help="folder of node YAML files (default: config/)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.set_defaults(run=run)


def bring_up(config_dir: Path | None = None, ros_args: list[str] | tuple[str, ...] = (), **launch_values: str):
    """Create, configure and activate every node of the graph; returns (executor, nodes). ``ros_args``
    (``--ros-args ...``: remapping such as ``-r __ns:=/robot1``, ``-p use_sim_time:=true``) reach every
    node after its config files, so they override them.

    Raises RuntimeError naming the node whose transition failed (after destroying what was created).
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn

    from ..nodes.base import EXECUTOR_THREADS, init_rclpy
    from ..nodes.graph import GRAPH, default_config_dir, overrides, parameter_files

    config_dir = config_dir or default_config_dir()
    robot = launch_values.get("robot", "franka")
    per_node = overrides(**launch_values)
    if not rclpy.ok():
        init_rclpy()
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    nodes = []
    try:
        for spec in GRAPH:
            args = ["--ros-args"]
            for path in parameter_files(spec, config_dir, robot):
                if not path.is_file():
                    raise FileNotFoundError(f"parameter file for {spec.name} not found: {path}")
                args += ["--params-file", str(path)]
            for parameter, value in per_node[spec.name].items():
                args += ["-p", f"{parameter}:={value}"]
            args += list(ros_args)
            node_class = getattr(importlib.import_module(f"diffgrasp_ros.nodes.{spec.module}"), spec.class_name)
            node = node_class(cli_args=args)
            nodes.append(node)
            executor.add_node(node)
        for node in nodes:
            for transition in ("configure", "activate"):
                if getattr(node, f"trigger_{transition}")() != TransitionCallbackReturn.SUCCESS:
                    raise RuntimeError(f"{node.get_name()}: {transition} failed: {node.last_error}")
    except Exception:
        tear_down(executor, nodes)
        raise
    return executor, nodes


def tear_down(executor, nodes) -> None:
    executor.shutdown()
    for node in nodes:
        node.destroy_node()


def run(args: argparse.Namespace) -> int:
    from ..nodes.base import spin_until_stopped

    values = {name: getattr(args, name) for name in ("robot", "camera", "depth_mode")}
    executor, nodes = bring_up(args.config_dir, args.ros_args, **values)
    service = next(n for n in nodes if n.get_name() == "grasp_executor").resolve_service_name("plan_grasp")
    print(f"diffgrasp up: {', '.join(n.get_name() for n in nodes)} active "
          f"(robot {args.robot}, camera {args.camera}, depth {args.depth_mode}); {service} is served", flush=True)
    spin_until_stopped(executor, nodes, args.duration)
    print("diffgrasp up: stopped", flush=True)
    return 0
