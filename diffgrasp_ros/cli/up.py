"""``diffgrasp up``: the ROS 2 node graph without a ROS installation (rclpy wheels): in one process, or with
``--processes`` one process per node plus the lifecycle manager, a dead process started again."""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

# depth_processor's inputs, as depth_capture publishes them; the launch file's depth_topic and
# depth_info_topic (and --depth-topic, --depth-info-topic here) remap them to another driver's topics.
DEPTH_TOPIC = "depth/image_raw"
DEPTH_INFO_TOPIC = "depth/camera_info"


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
    parser.add_argument("--capture", default="true", choices=("true", "false"),
                        help="start depth_capture (false: depth comes from another driver, e.g. realsense-ros; "
                             "as the launch argument capture:=false) (default: true)")
    parser.add_argument("--depth-topic", default=DEPTH_TOPIC,
                        help=f"the depth image depth_processor reads, e.g. /camera/camera/depth/image_rect_raw "
                             f"(default: {DEPTH_TOPIC})")
    parser.add_argument("--depth-info-topic", default=DEPTH_INFO_TOPIC,
                        help=f"the camera_info depth_processor reads, e.g. /camera/camera/depth/camera_info "
                             f"(default: {DEPTH_INFO_TOPIC})")
    parser.add_argument("--config-dir", type=Path, default=None, help="folder of node YAML files (default: config/)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--network", action="store_true",
                        help="discover and be discovered beyond this machine, as the environment's "
                             "ROS_AUTOMATIC_DISCOVERY_RANGE and ROS_STATIC_PEERS say (default: this machine only, "
                             "so no other host can call the graph's services or publish to it)")
    parser.add_argument("--processes", action="store_true",
                        help="one process per node plus the lifecycle manager (which brings them up and back up); "
                             "a process that dies is started again, as the launch file's respawn does")
    parser.set_defaults(run=run)


def node_arguments(spec, config_dir: Path, robot: str, parameters: dict[str, str],
                   ros_args: list[str] | tuple[str, ...] = (),
                   remappings: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()) -> list[str]:
    """A node's ROS arguments: its config files, the launch arguments' parameters, its ``remappings``
    (``(from, to)`` pairs, this node's only), then ``ros_args``."""
    from ..nodes.graph import parameter_files

    args = ["--ros-args"]
    for path in parameter_files(spec, config_dir, robot):
        if not path.is_file():
            raise FileNotFoundError(f"parameter file for {spec.name} not found: {path}")
        args += ["--params-file", str(path)]
    for parameter, value in parameters.items():
        args += ["-p", f"{parameter}:={value}"]
    for source, target in remappings:
        args += ["-r", f"{source}:={target}"]
    return args + list(ros_args)


def graph_specs(capture: bool = True):
    """The graph's nodes; without depth_capture when another driver supplies the depth (capture:=false)."""
    from ..nodes.graph import GRAPH

    return tuple(spec for spec in GRAPH if capture or spec.name != "depth_capture")


def node_remappings(depth_topic: str = DEPTH_TOPIC, depth_info_topic: str = DEPTH_INFO_TOPIC) -> dict:
    """Node name -> its remappings, as the launch file's depth_topic / depth_info_topic give them: only
    depth_processor's inputs move (remapping depth/image_raw for every node would move depth_capture's
    output too)."""
    rules = [(DEPTH_TOPIC, depth_topic), (DEPTH_INFO_TOPIC, depth_info_topic)]
    return {"depth_processor": [(source, target) for source, target in rules if source != target]}


def as_bool(value) -> bool:
    """A launch-style boolean: True/False, or 'true'/'false' (any case)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return str(value).lower() == "true"


def bring_up(config_dir: Path | None = None, ros_args: list[str] | tuple[str, ...] = (), *,
             capture: bool | str = True, depth_topic: str = DEPTH_TOPIC, depth_info_topic: str = DEPTH_INFO_TOPIC,
             **launch_values: str):
    """Create, configure and activate every node of the graph; returns (executor, nodes). ``ros_args``
    (``--ros-args ...``: remapping such as ``-r __ns:=/robot1``, ``-p use_sim_time:=true``) reach every
    node after its config files, so they override them.

    ``capture``, ``depth_topic`` and ``depth_info_topic`` are the launch file's arguments of the same
    names: ``capture=False`` leaves depth_capture out, and depth_processor reads ``depth_topic`` and
    ``depth_info_topic`` (e.g. realsense-ros's /camera/camera/depth/image_rect_raw and camera_info).

    Raises RuntimeError naming the node whose transition failed (after destroying what was created).
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn

    from ..nodes.base import EXECUTOR_THREADS, init_rclpy
    from ..nodes.graph import default_config_dir, overrides

    config_dir = config_dir or default_config_dir()
    robot = launch_values.get("robot", "franka")
    per_node = overrides(**launch_values)
    remappings = node_remappings(depth_topic, depth_info_topic)
    specs = graph_specs(as_bool(capture))
    if not rclpy.ok():
        init_rclpy()
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    nodes = []
    try:
        for spec in specs:
            args = node_arguments(spec, config_dir, robot, per_node[spec.name], ros_args,
                                  remappings.get(spec.name, ()))
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


def restrict_discovery(network: bool, environ=os.environ) -> str:
    """Limit DDS discovery to this machine unless ``network``: set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and
    drop ROS_STATIC_PEERS in ``environ`` (before rclpy starts; the node processes inherit it). Says what applies."""
    if network:
        return (f"discovery as the environment says (ROS_AUTOMATIC_DISCOVERY_RANGE="
                f"{environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET, the default')})")
    environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    environ.pop("ROS_STATIC_PEERS", None)
    return "discovery on this machine only (--network to reach other hosts)"


def run(args: argparse.Namespace) -> int:
    from ..nodes.base import spin_until_stopped

    print(f"diffgrasp up: {restrict_discovery(args.network)}", flush=True)
    if args.processes:
        return run_processes(args)
    values = {name: getattr(args, name) for name in ("robot", "camera", "depth_mode")}
    executor, nodes = bring_up(args.config_dir, args.ros_args, capture=args.capture, depth_topic=args.depth_topic,
                               depth_info_topic=args.depth_info_topic, **values)
    service = next(n for n in nodes if n.get_name() == "grasp_executor").resolve_service_name("plan_grasp")
    processor = next(n for n in nodes if n.get_name() == "depth_processor")
    camera = (f"camera {args.camera}" if as_bool(args.capture)
              else f"depth from {processor.resolve_topic_name(DEPTH_TOPIC)}")
    print(f"diffgrasp up: {', '.join(n.get_name() for n in nodes)} active "
          f"(robot {args.robot}, {camera}, depth {args.depth_mode}); {service} is served", flush=True)
    spin_until_stopped(executor, nodes, args.duration)
    print("diffgrasp up: stopped", flush=True)
    return 0


# A process that dies within STABLE_S of its start again and again is in a crash loop (an import error, a
# bad install): it is started again after 0.5 s, 1 s, 2 s ... up to MAX_RESTART_DELAY_S, not every 0.5 s.
STABLE_S = 30.0
MAX_RESTART_DELAY_S = 30.0


def restart_delay(quick_deaths: int) -> float:
    """Seconds before starting a process again that has died ``quick_deaths`` times in a row within STABLE_S
    of its start: none the first time (a crash or a kill is restarted at once), then doubling."""
    return 0.0 if quick_deaths <= 1 else min(0.5 * 2 ** (quick_deaths - 2), MAX_RESTART_DELAY_S)


def run_processes(args: argparse.Namespace) -> int:
    """One process per node and one for the lifecycle manager; every 0.5 s, a process that has exited is
    started again (the manager then configures and activates it; one that keeps dying right after its start
    with a growing delay, ``restart_delay``). SIGINT or SIGTERM stops them all."""
    import signal
    import subprocess
    import sys
    import time

    from ..nodes.base import stop_on_signals
    from ..nodes.graph import default_config_dir, overrides

    config_dir = args.config_dir or default_config_dir()
    per_node = overrides(robot=args.robot, camera=args.camera, depth_mode=args.depth_mode)
    remappings = node_remappings(args.depth_topic, args.depth_info_topic)
    specs = graph_specs(as_bool(args.capture))
    commands = {spec.name: [sys.executable, "-c", f"from diffgrasp_ros.nodes.{spec.module} import main; main()",
                            *node_arguments(spec, config_dir, args.robot, per_node[spec.name], args.ros_args,
                                            remappings.get(spec.name, ()))]
                for spec in specs}
    managed = ", ".join(spec.name for spec in specs)
    commands["lifecycle_manager"] = [sys.executable, "-c", "from diffgrasp_ros.nodes.lifecycle_manager import main; "
                                     "main()", "--ros-args", "-p", f"node_names:=[{managed}]", *args.ros_args]

    started_at: dict[str, float] = {}
    quick_deaths = {name: 0 for name in commands}
    start_at: dict[str, float] = {}  # a dead process's restart time

    def start(name: str) -> subprocess.Popen:
        process = subprocess.Popen(commands[name])
        started_at[name] = time.monotonic()
        print(f"diffgrasp up: started {name} (pid {process.pid})", flush=True)
        return process

    with stop_on_signals() as stop:
        processes = {name: start(name) for name in commands}
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while not stop.wait(0.5) and (deadline is None or time.monotonic() < deadline):
                for name, process in processes.items():
                    if process.poll() is None:
                        continue
                    now = time.monotonic()
                    if name not in start_at:
                        lived = now - started_at[name]
                        quick_deaths[name] = quick_deaths[name] + 1 if lived < STABLE_S else 1
                        delay = restart_delay(quick_deaths[name])
                        start_at[name] = now + delay
                        print(f"diffgrasp up: {name} exited with code {process.returncode}; starting it again"
                              + (f" in {delay:.1f} s (it died {quick_deaths[name]} times in a row within "
                                 f"{STABLE_S:.0f} s of its start)" if delay else f" (it ran {lived:.1f} s)"),
                              flush=True)
                    if now >= start_at[name]:
                        del start_at[name]
                        processes[name] = start(name)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            end = time.monotonic() + 5.0
            for name, process in processes.items():
                try:
                    process.wait(timeout=max(end - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    print(f"diffgrasp up: {name} did not stop within 5 s: killed", flush=True)
    print("diffgrasp up: stopped", flush=True)
    return 0
