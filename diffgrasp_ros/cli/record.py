"""``diffgrasp record``: a static-scene depth sequence from a RealSense (or a recording of one).

The folder it writes (16-bit PNGs + sequence.json, ``camera.sequence``) is what the depth-noise
training's temporal prior learns from without ground truth: keep the camera and the scene still.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..training.noise_train import MIN_SEQUENCE_FRAMES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "record", help="record a static-scene depth sequence from a RealSense (or replay a .bag) for noise learning",
        description="Capture --frames depth frames from a connected RealSense (--serial to pick one) or from a "
                    "recording (--bag), after --warmup frames for auto-exposure to settle, and write them as 16-bit "
                    "PNGs (depth units) plus sequence.json into --out. The SDK's post-processing filters are off: "
                    "the sequence must hold the sensor's own artifacts. Keep the camera and the scene still.",
    )
    parser.add_argument("--out", type=Path, required=True, help="sequence folder (created; must not hold a sequence)")
    parser.add_argument("--frames", type=int, default=30, help="frames to record (default: 30)")
    parser.add_argument("--bag", type=Path, default=None, help="replay this RealSense recording instead of a camera")
    parser.add_argument("--serial", default=None, help="serial number of the camera (default: the only one)")
    parser.add_argument("--width", type=int, default=640, help="depth stream width (default: 640)")
    parser.add_argument("--height", type=int, default=480, help="depth stream height (default: 480)")
    parser.add_argument("--fps", type=int, default=30, help="depth stream rate (default: 30)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="frames to drop first (default: 30 from a camera, 0 from a recording)")
    parser.add_argument("--max-depth", type=float, default=2.0, help="depth beyond this is invalid, m (default: 2.0)")
    parser.set_defaults(run=run)


def record_sequence(source, out: Path, frames: int, warmup: int = 0, source_name: str = "") -> Path:
    """Read ``warmup`` + ``frames`` frames from a started ``source`` (``read()`` → DepthFrame) into ``out``."""
    from ..camera.sequence import SEQUENCE_FILE, save_sequence

    if (Path(out) / SEQUENCE_FILE).exists():
        raise ValueError(f"{out} already holds a sequence: choose another --out")
    captured = []
    try:
        for _ in range(warmup):
            source.read()
        while len(captured) < frames:
            captured.append(source.read())
    except EOFError as exc:
        raise ValueError(f"the recording ended after {len(captured)} of {frames} frames (+{warmup} warm-up): "
                         f"ask for fewer --frames or --warmup") from exc
    scale = getattr(source, "depth_scale", None) or 0.001
    return save_sequence(out, captured, depth_unit_m=scale, source=source_name)


def run(args: argparse.Namespace) -> int:
    if args.frames < MIN_SEQUENCE_FRAMES:
        raise ValueError(f"--frames must be at least {MIN_SEQUENCE_FRAMES} (the temporal prior needs them), "
                         f"got {args.frames}")
    warmup = args.warmup if args.warmup is not None else (0 if args.bag else 30)
    if warmup < 0:
        raise ValueError(f"--warmup must not be negative, got {warmup}")
    from ..camera.realsense import RealSenseConfig, RealSenseSource

    config = RealSenseConfig(serial=args.serial, width=args.width, height=args.height, fps=args.fps,
                             spatial=False, min_depth_m=0.0, max_depth_m=args.max_depth, playback_path=args.bag)
    try:
        with RealSenseSource(config) as source:
            out = record_sequence(source, args.out, args.frames, warmup,
                                  str(args.bag) if args.bag else f"RealSense {args.serial or ''}".strip())
    except ImportError as exc:  # no SDK bindings: a missing feature, reported in one line
        raise RuntimeError(str(exc)) from exc
    print(f"diffgrasp record: {args.frames} frames from {args.bag or 'the RealSense'} in {out}")
    return 0
