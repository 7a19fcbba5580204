"""``diffgrasp up``: the ROS 2 node graph without a ROS installation (rclpy wheels): in one process, or with
``--processes`` one process per node plus the lifecycle manager, a dead process started again."""
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
    parser.add_argument("--processes", action="store_true",
                        help="one process per node plus the lifecycle manager (which brings them up and back up); "
                             "a process that dies is started again, as the launch file's respawn does")
    parser.set_defaults(run=run)


def node_arguments(spec, config_dir: Path, robot: str, parameters: dict[str, str],
                   ros_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """A node's ROS arguments: its config files, the launch arguments' parameters, then ``ros_args``."""
    from ..nodes.graph import parameter_files

    args = ["--ros-args"]
    for path in parameter_files(spec, config_dir, robot):
        if not path.is_file():
            raise FileNotFoundError(f"parameter file for {spec.name} not found: {path}")
        args += ["--params-file", str(path)]
    for parameter, value in parameters.items():
        args += ["-p", f"{parameter}:={value}"]
    return args + list(ros_args)


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
    from ..nodes.graph import GRAPH, default_config_dir, overrides

    config_dir = config_dir or default_config_dir()
    robot = launch_values.get("robot", "franka")
    per_node = overrides(**launch_values)
    if not rclpy.ok():
        init_rclpy()
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    nodes = []
    try:
        for spec in GRAPH:
            args = node_arguments(spec, config_dir, robot, per_node[spec.name], ros_args)
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

    if args.processes:
        return run_processes(args)
    values = {name: getattr(args, name) for name in ("robot", "camera", "depth_mode")}
    executor, nodes = bring_up(args.config_dir, args.ros_args, **values)
    service = next(n for n in nodes if n.get_name() == "grasp_executor").resolve_service_name("plan_grasp")
    print(f"diffgrasp up: {', '.join(n.get_name() for n in nodes)} active "
          f"(robot {args.robot}, camera {args.camera}, depth {args.depth_mode}); {service} is served", flush=True)
    spin_until_stopped(executor, nodes, args.duration)
    print("diffgrasp up: stopped", flush=True)
    return 0


def run_processes(args: argparse.Namespace) -> int:
    """One process per node and one for the lifecycle manager; every 0.5 s, a process that has exited is
    started again (the manager then configures and activates it). SIGINT or SIGTERM stops them all."""
    import signal
    import subprocess
    import sys
    import time

    from ..nodes.base import stop_on_signals
    from ..nodes.graph import GRAPH, default_config_dir, overrides

    config_dir = args.config_dir or default_config_dir()
    per_node = overrides(robot=args.robot, camera=args.camera, depth_mode=args.depth_mode)
    commands = {spec.name: [sys.executable, "-c", f"from diffgrasp_ros.nodes.{spec.module} import main; main()",
                            *node_arguments(spec, config_dir, args.robot, per_node[spec.name], args.ros_args)]
                for spec in GRAPH}
    commands["lifecycle_manager"] = [sys.executable, "-c", "from diffgrasp_ros.nodes.lifecycle_manager import main; "
                                     "main()", *args.ros_args]

    def start(name: str) -> subprocess.Popen:
        process = subprocess.Popen(commands[name])
        print(f"diffgrasp up: started {name} (pid {process.pid})", flush=True)
        return process

    with stop_on_signals() as stop:
        processes = {name: start(name) for name in commands}
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while not stop.wait(0.5) and (deadline is None or time.monotonic() < deadline):
                for name, process in processes.items():
                    if process.poll() is not None:
                        print(f"diffgrasp up: {name} exited with code {process.returncode}; starting it again",
                              flush=True)
                        processes[name] = start(name)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            end = time.monotonic() + 5.0
            for process in processes.values():
                try:
                    process.wait(timeout=max(end - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    print("diffgrasp up: stopped", flush=True)
    return 0
