"""Entry point of the ``diffgrasp`` command."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import bench, calibrate, datagen, demo, depth, leap_datagen, leap_quality_datagen, plan, record, render_grids
from . import restore, template, up, view
from . import train
from . import train_leap, train_leap_evaluator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffgrasp", description="Grasp perception from depth images: simulate, plan and pick.")
    parser.add_argument("--version", action="version", version=f"diffgrasp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.add_parser(subparsers)
    plan.add_parser(subparsers)
    calibrate.add_parser(subparsers)
    bench.add_parser(subparsers)
    datagen.add_parser(subparsers)
    render_grids.add_parser(subparsers)
    leap_datagen.add_parser(subparsers)
    leap_quality_datagen.add_parser(subparsers)
    up.add_parser(subparsers)
    train.add_parser(subparsers)
    train_leap.add_parser(subparsers)
    train_leap_evaluator.add_parser(subparsers)
    depth.add_parsers(subparsers)
    record.add_parser(subparsers)
    restore.add_parser(subparsers)
    view.add_parser(subparsers)
    template.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # ROS arguments (remapping, namespace, parameters) pass through to every node of `diffgrasp up`.
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    args = build_parser().parse_args(argv[:len(argv) - len(ros_args)])
    if ros_args and args.command != "up":
        print(f"diffgrasp {args.command}: error: only `diffgrasp up` takes --ros-args", file=sys.stderr)
        return 2
    args.ros_args = ros_args
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NotImplementedError, RuntimeError) as error:
        # Bad input or an unavailable feature: one clear line, not a traceback.
        print(f"diffgrasp {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
