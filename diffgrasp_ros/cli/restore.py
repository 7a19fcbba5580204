"""``diffgrasp restore``: clean one depth image file with the learned restoration model."""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import add_device_argument

OUT_SUFFIXES = (".png", ".npy")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
MOVED_M = 0.001  # a valid pixel counts as changed when the restoration moved it by more than this
UINT16_MAX = 65535


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "restore", help="clean a depth image file (fill holes, fix wrong depth) with the learned restoration model",
        description="Restore one depth image of any size with the learned model (models/depth_restore unless "
                    "--weights): holes filled, wrong depth fixed, the sensor's depth kept where it is right. "
                    "Writes the restored depth (.png: uint16 millimetres, .npy: float32 metres) and, with "
                    "--compare, a picture raw | restored | change. Every input is checked before anything is "
                    "written, and the files appear whole or not at all. Exit status: 0 written, 1 bad input.",
    )
    parser.add_argument("--depth", type=Path, required=True,
                        help="depth image: .npy (float metres or integer sensor units), 16-bit .png/.tif "
                             "(millimetres unless --depth-scale), float .tif/.exr (metres); NaN, inf and "
                             "negative depth count as invalid")
    parser.add_argument("--intrinsics", type=Path, required=True,
                        help="the depth camera's intrinsics YAML/JSON (fx, fy, cx, cy, width, height, or a ROS "
                             "camera_info file); its size must be the depth image's")
    parser.add_argument("--color", type=Path, default=None,
                        help="colour image (.png/.jpg) registered to the depth, same size; used when the model "
                             "was trained with colour (without it such a model runs on depth alone)")
    parser.add_argument("--out", type=Path, required=True,
                        help="restored depth: .png (uint16 millimetres) or .npy (float32 metres), 0 = invalid")
    parser.add_argument("--compare", type=Path, default=None,
                        help="also write a picture (.png/.jpg): raw | restored depth on one colour scale | "
                             "change in mm (filled holes green)")
    parser.add_argument("--depth-scale", type=float, default=None,
                        help="metres per unit for integer depth images (default: 0.001, i.e. millimetres)")
    parser.add_argument("--min-depth", type=float, default=0.1, help="nearest valid depth in metres (default: 0.1)")
    parser.add_argument("--max-depth", type=float, default=2.0, help="farthest valid depth in metres (default: 2.0)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="restoration model folder (config.json + weights.pt; default: models/depth_restore)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_device_argument(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class RestoreSummary:
    """What the restoration did to one frame (pixel counts are of the whole image)."""

    width: int
    height: int
    valid_before: int
    valid_after: int
    filled: int  # invalid before, valid after
    moved: int  # valid before and after, moved by more than MOVED_M
    removed: int  # valid before, invalid after (restored outside the depth range)
    median_move_mm: float  # of the moved pixels; 0 when none moved

    @classmethod
    def of(cls, raw_m: np.ndarray, restored_m: np.ndarray) -> "RestoreSummary":
        before, after = raw_m > 0, restored_m > 0
        change = np.abs(restored_m - raw_m)[before & after]
        moved = change[change > MOVED_M]
        return cls(raw_m.shape[1], raw_m.shape[0], int(before.sum()), int(after.sum()),
                   int((after & ~before).sum()), int(moved.size), int((before & ~after).sum()),
                   1000.0 * float(np.median(moved)) if moved.size else 0.0)

    def line(self) -> str:
        pixels = self.width * self.height
        return (f"{self.width}x{self.height}, valid {100 * self.valid_before / pixels:.1f} % -> "
                f"{100 * self.valid_after / pixels:.1f} %: {self.filled} holes filled, {self.moved} valid pixels "
                f"moved by > {1000 * MOVED_M:g} mm (median {self.median_move_mm:.1f} mm), {self.removed} removed")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..camera.files import load_depth_image
    from ..camera.frame import DepthError, DepthFrame
    from ..camera.intrinsics import CameraIntrinsics
    from ..depth import DepthProcessor
    from ..depth.restoration import DEFAULT_WEIGHTS, DepthRestorer

    _check_arguments(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    intrinsics = CameraIntrinsics.load(args.intrinsics)
    depth_m = load_depth_image(args.depth, args.depth_scale)  # its errors name the file
    try:
        frame = DepthFrame(depth_m, intrinsics, frame_id=args.depth.stem)
        # The range clip, and the errors for a frame with nothing valid (in it, or inside the range).
        raw = DepthProcessor("passthrough", args.min_depth, args.max_depth).process(frame)
    except DepthError as error:
        raise DepthError(f"{args.depth}: {error}") from error
    color = _load_color(args.color, intrinsics) if args.color is not None else None

    # The library's warnings (e.g. a colour model run without colour) become one line each, not a source line.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model = DepthRestorer.from_pretrained(args.weights or DEFAULT_WEIGHTS, args.device)
        load_s = time.perf_counter() - start
        if color is not None and not model.uses_color:
            _warn("the model was trained without colour: --color is ignored")
            color = None
        start = time.perf_counter()
        try:
            restored = model.restore(raw.depth_m, color=color)
        except ValueError as error:
            raise DepthError(f"{args.depth}: cannot restore: {error}") from error
        restore_s = time.perf_counter() - start
    for warning in caught:
        _warn(str(warning.message))
    restored = DepthFrame(restored, intrinsics, raw.frame_id, raw.stamp).clipped(args.min_depth, args.max_depth).depth_m

    files = {args.out: _encode_depth(restored, args.out.suffix.lower())}
    if args.compare is not None:
        files[args.compare] = _encode_picture(compare_picture(raw.depth_m, restored), args.compare)
    write_all_or_none(files)
    dropped = int(frame.valid_mask.sum() - raw.valid_mask.sum())
    clip_note = f" ({dropped} px outside [{args.min_depth:g}, {args.max_depth:g}] m dropped first)" if dropped else ""
    print(f"diffgrasp restore: {RestoreSummary.of(raw.depth_m, restored).line()}{clip_note}; "
          f"model load {1000 * load_s:.0f} ms, restore {1000 * restore_s:.0f} ms")
    for path in files:
        print(f"wrote {path}")
    return 0


def _warn(message: str) -> None:
    print(f"diffgrasp restore: warning: {message}", file=sys.stderr)


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse what would fail only after the model has run."""
    if args.out.suffix.lower() not in OUT_SUFFIXES:
        raise ValueError(f"--out must end in {' or '.join(OUT_SUFFIXES)} (uint16 mm PNG or float32 metres), "
                         f"got {args.out.name!r}")
    if args.compare is not None:
        if args.compare.suffix.lower() not in PICTURE_SUFFIXES:
            raise ValueError(f"--compare must end in {', '.join(PICTURE_SUFFIXES)}, got {args.compare.name!r}")
        if args.compare.resolve() == args.out.resolve():
            raise ValueError("--compare and --out name the same file")
    for path in (args.out, args.compare):
        if path is not None and path.is_dir():
            raise ValueError(f"{path} is a folder: name the file to write")
    if not 0.0 <= args.min_depth < args.max_depth:
        raise ValueError(f"depth range must satisfy 0 <= --min-depth < --max-depth, got "
                         f"[{args.min_depth}, {args.max_depth}]")
    if args.out.suffix.lower() == ".png" and args.max_depth * 1000.0 > UINT16_MAX:
        raise ValueError(f"--max-depth {args.max_depth} m does not fit a uint16 millimetre PNG: "
                         "write .npy or lower --max-depth")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.depth_scale is not None and not args.depth_scale > 0:
        raise ValueError(f"--depth-scale must be positive, got {args.depth_scale}")


def _load_color(path: Path, intrinsics) -> np.ndarray:
    from ..grasping.draw import load_color_image

    return load_color_image(path, (intrinsics.width, intrinsics.height))


def _encode_depth(depth_m: np.ndarray, suffix: str) -> bytes:
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, depth_m.astype(np.float32), allow_pickle=False)
        return buffer.getvalue()
    import cv2

    ok, data = cv2.imencode(".png", np.round(depth_m * 1000.0).astype(np.uint16))
    if not ok:
        raise RuntimeError("cannot encode the restored depth as PNG")
    return data.tobytes()


def _encode_picture(rgb: np.ndarray, path: Path) -> bytes:
    import cv2

    ok, data = cv2.imencode(path.suffix.lower(), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"cannot encode the picture {path}")
    return data.tobytes()


def write_all_or_none(files: dict[Path, bytes]) -> None:
    """Write every file whole, or none: each goes to a temporary file in its own folder first (same file
    system, so the rename is atomic), and only when all are on disk are they renamed into place."""
    temporary: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            temporary.append((tmp, path))
            tmp.write_bytes(data)
        for tmp, path in temporary:
            os.replace(tmp, path)
    except OSError as error:
        raise RuntimeError(f"cannot write {error.filename or 'the output'}: {error.strerror or error}") from error
    finally:
        for tmp, _ in temporary:
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- the comparison picture

INVALID_RGB = (0, 0, 0)
FILLED_RGB = (0, 200, 0)
UNCHANGED_RGB = (128, 128, 128)
NEARER_RGB, FARTHER_RGB = (40, 90, 255), (255, 40, 40)
BACKGROUND_RGB, TEXT_RGB = (24, 24, 24), (235, 235, 235)
MIN_PANEL_WIDTH_PX = 320  # smaller frames are enlarged so the labels fit
GAP_PX = 16


def compare_picture(raw_m: np.ndarray, restored_m: np.ndarray) -> np.ndarray:
    """RGB picture: raw | restored (one turbo colour scale, near warm, invalid black) | change (restored −
    raw: grey none, blue nearer, red farther, green a filled hole), titled, with colour bars and labels."""
    import cv2

    from ..grasping.draw import depth_picture

    valid = np.concatenate([raw_m[raw_m > 0], restored_m[restored_m > 0]])
    near_m, far_m = np.percentile(valid, [1, 99]) if valid.size else (0.0, 1.0)
    change_mm = 1000.0 * (restored_m - raw_m)
    # The colour scale spans the pixels that moved: the model keeps most valid depth exactly.
    moved = np.abs(change_mm[(raw_m > 0) & (restored_m > 0)])
    moved = moved[moved > 1000 * MOVED_M]
    span_mm = _nice_ceiling(float(np.percentile(moved, 95)) if moved.size else 1.0)
    panels = [depth_picture(raw_m, (near_m, far_m)), depth_picture(restored_m, (near_m, far_m)),
              _change_rgb(change_mm, raw_m > 0, restored_m > 0, span_mm)]
    scale = math.ceil(MIN_PANEL_WIDTH_PX / raw_m.shape[1])
    if scale > 1:
        panels = [cv2.resize(p, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for p in panels]
    height, width = panels[0].shape[:2]
    font = max(0.4, min(1.0, width / 800))
    row = int(round(30 * font)) + 6  # a line of text
    bar = row - 10  # colour bar and swatch height
    # Rows: titles | panels | colour bars | their labels | the filled-hole swatch.
    bars_top = row + height + 6
    labels_y = bars_top + bar + row - 8  # text baseline
    swatch_top = bars_top + bar + row
    picture = np.full((swatch_top + bar + 6, 3 * width + 2 * GAP_PX, 3), BACKGROUND_RGB, np.uint8)
    raw_share, restored_share = (100 * float((d > 0).mean()) for d in (raw_m, restored_m))
    titles = [f"raw: {raw_share:.1f} % valid", f"restored: {restored_share:.1f} % valid", "change (restored - raw)"]
    for i, (panel, title) in enumerate(zip(panels, titles)):
        left = i * (width + GAP_PX)
        picture[row:row + height, left:left + width] = panel
        _text(picture, title, left + 4, row - 8, font)
    # One depth colour bar under raw and restored.
    depth_width = 2 * width + GAP_PX
    ramp_m = np.linspace(near_m, far_m, depth_width)[None].repeat(bar, 0)
    picture[bars_top:bars_top + bar, :depth_width] = depth_picture(ramp_m, (near_m, far_m))
    near_label, far_label = f"{1000 * near_m:.0f} mm", f"{1000 * far_m:.0f} mm"
    _text(picture, near_label, 4, labels_y, font)
    _text(picture, "depth (invalid: black)", (depth_width - _text_width("depth (invalid: black)", font)) // 2,
          labels_y, font)
    _text(picture, far_label, depth_width - _text_width(far_label, font) - 4, labels_y, font)
    # The change bar and the filled-hole key under the change.
    left = 2 * (width + GAP_PX)
    ramp_mm = np.linspace(-span_mm, span_mm, width)[None].repeat(bar, 0)
    everywhere = np.ones(ramp_mm.shape, bool)
    picture[bars_top:bars_top + bar, left:left + width] = _change_rgb(ramp_mm, everywhere, everywhere, span_mm)
    low, high = f"-{span_mm:g} mm nearer", f"+{span_mm:g} mm farther"
    _text(picture, low, left + 4, labels_y, font)
    _text(picture, high, left + width - _text_width(high, font) - 4, labels_y, font)
    picture[swatch_top:swatch_top + bar, left + 4:left + 4 + bar] = FILLED_RGB
    _text(picture, "filled hole", left + bar + 10, swatch_top + bar - 2, font)
    return picture


def _change_rgb(change_mm: np.ndarray, before: np.ndarray, after: np.ndarray, span_mm: float) -> np.ndarray:
    t = np.clip(change_mm / span_mm, -1.0, 1.0)[..., None]
    grey, nearer, farther = (np.array(c, np.float32) for c in (UNCHANGED_RGB, NEARER_RGB, FARTHER_RGB))
    rgb = np.where(t < 0, grey + (nearer - grey) * -t, grey + (farther - grey) * t)
    rgb[~after] = INVALID_RGB
    rgb[after & ~before] = FILLED_RGB
    return rgb.astype(np.uint8)


def _nice_ceiling(value_mm: float) -> float:
    """The next of 1, 2, 5, 10, 20, 50, ... mm at or above ``value_mm`` (the change bar's end)."""
    step = 10.0 ** math.floor(math.log10(max(value_mm, 1.0)))
    return next(m * step for m in (1, 2, 5, 10) if m * step >= value_mm)


def _text(picture: np.ndarray, text: str, x: int, y: int, font: float) -> None:
    import cv2

    cv2.putText(picture, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, font, TEXT_RGB, 1, cv2.LINE_AA)


def _text_width(text: str, font: float) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][0]
