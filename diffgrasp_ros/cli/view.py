"""``diffgrasp view``: a browser 3D viewer of a grasps.json, or of the running graph's latest answers."""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_PORT = 8080


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "view", help="show a grasps.json (or the running graph) in a browser 3D viewer",
        description="Serve a 3D view of a grasps.json written by `diffgrasp plan` or `diffgrasp demo`: the fused "
                    "surface, the workspace box, the cameras, the ranked grasps as hand meshes coloured by score "
                    "(a slider over rank) and, for a demo pick, the planned arm path. With --live, the latest "
                    "scene/surface and grasps/markers of the running ROS graph instead (never asks it to plan). "
                    "Open the printed address in a browser; Ctrl-C stops.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("grasps", type=Path, nargs="?", help="a grasps.json of `diffgrasp plan` or `diffgrasp demo`")
    source.add_argument("--live", action="store_true",
                        help="subscribe to the running graph (needs rclpy) instead of reading a file")
    parser.add_argument("--pick", type=int, default=None, help="which pick of a demo's grasps.json (default: 1)")
    parser.add_argument("--robot", default="franka",
                        help="--live: the embodiment whose hand is drawn (a file names its own; default: franka)")
    parser.add_argument("--network", action="store_true",
                        help="--live: DDS discovery as the environment says (default: this machine only, as "
                             "`diffgrasp up`)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default: 127.0.0.1, this machine only); 0.0.0.0 lets every "
                             "host that reaches this one see the scene and the grasps")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to serve on, the next free one when it is taken; 0: any free port "
                             f"(default: {DEFAULT_PORT})")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..robots.registry import get_robot
    from ..visualisation.record import load_viewer_scene

    if not 0 <= args.port < 65536:
        raise ValueError(f"--port must be 0 (any free port) to 65535, got {args.port}")
    # Read and check the input before serving anything: a bad file ends here with one line.
    scene = None if args.live else load_viewer_scene(args.grasps, args.pick)
    if args.live:
        get_robot(args.robot)
        from .up import restrict_discovery

        discovery = restrict_discovery(args.network)
        try:  # the node module imports rclpy
            from ..nodes import viewer_feed
        except ImportError as error:
            raise RuntimeError(f"--live needs rclpy (the ROS 2 wheels: `bash scripts/setup.sh --ros`): "
                               f"{error}") from None
    from ..visualisation.viewer import GraspViewer

    viewer = GraspViewer(args.host, args.port)
    if args.port and viewer.port != args.port:
        print(f"diffgrasp view: port {args.port} is in use: serving on {viewer.port}")
    what = "the running graph" if args.live else f"{args.grasps} ({len(scene.grasps)} grasps)"
    print(f"diffgrasp view: {what} at {viewer.url} (Ctrl-C stops)" + (f"; {discovery}" if args.live else ""),
          flush=True)
    try:
        if args.live:
            viewer_feed.serve(viewer, args.robot, args.duration)
        else:
            viewer.show(scene)
            _wait_for_stop(args.duration)
    finally:
        viewer.stop()
    return 0


def _wait_for_stop(duration_s: float | None) -> None:
    """Until SIGINT (Ctrl-C) or SIGTERM, or ``duration_s``; not ``nodes.base.stop_on_signals``, which needs rclpy."""
    import signal
    import threading

    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    stop.wait(duration_s)
