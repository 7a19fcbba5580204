"""Real depth frames from a folder of sets (the layout of ``../shared/real``; see its README).

``<root>/<set>/<frame>/`` holds ``depth.png`` (uint16 mm, 0 = invalid), ``color.png`` (registered colour),
``camera.json`` (intrinsics) and, where ground truth exists, ``gt_depth.png`` (uint16 mm) and
``mask.png`` (the transparent objects' pixels). Of ``../shared/real``, frames of ``LEARNABLE_SETS`` may
be learned from and ``EVALUATION_SETS`` are for evaluation only: never train or tune on them. A user's
own folder of frames may hold sets of any name; they count as learnable.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import load_depth_image, read_structured
from .frame import DepthError
from .intrinsics import CameraIntrinsics

LEARNABLE_SETS = ("ucn_tabletop", "posecnn_tabletop")
EVALUATION_SETS = ("sixdof_graspnet", "cleargrasp_d435")
ALL_SETS = LEARNABLE_SETS + EVALUATION_SETS


def add_real_sets_argument(parser) -> None:
    """``--real-sets`` of a training command's argparse ``parser``: the sets of ``--real`` to learn from."""
    parser.add_argument("--real-sets", nargs="+", default=list(LEARNABLE_SETS),
                        help=f"the sets of --real to learn from (default: {' '.join(LEARNABLE_SETS)}; the "
                             "evaluation-only sets of ../shared/real are refused)")


@dataclass(frozen=True, eq=False)  # compared by identity: == on arrays has no single truth value
class RealFrame:
    """One real frame: depth in metres (0 = invalid), its registered colour (RGB) and intrinsics;
    ``gt_depth_m`` and ``transparent_mask`` where the set has ground truth (else None)."""

    set_name: str
    name: str
    depth_m: np.ndarray
    color_rgb: np.ndarray
    intrinsics: CameraIntrinsics
    gt_depth_m: np.ndarray | None = None
    transparent_mask: np.ndarray | None = None

    @property
    def key(self) -> str:
        return f"{self.set_name}/{self.name}"

    @property
    def learnable(self) -> bool:
        """May this frame be learned from (or thresholds tuned on)?"""
        return self.set_name not in EVALUATION_SETS


def within_range(frame: RealFrame, min_depth_m: float, max_depth_m: float) -> RealFrame:
    """The frame with raw depth outside [min, max] marked invalid, as the pipeline's ``DepthProcessor``
    feeds the restoration (far floors and walls of some frames lie beyond it; the ground truth is left
    as it is)."""
    depth = frame.depth_m
    return dataclasses.replace(frame, depth_m=np.where((depth >= min_depth_m) & (depth <= max_depth_m), depth,
                                                       np.float32(0.0)).astype(np.float32))


def load_real_frames(root: Path, sets: Sequence[str] | None = None) -> list[RealFrame]:
    """Every frame of ``sets`` (default: the four sets of ``../shared/real``) under ``root``, set by set in
    the given order and frames sorted by folder name. Each set folder must exist; its sub-folders are
    frames."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"real frames folder not found: {root} (expected ../shared/real beside the "
                                "repository, with one folder per set)")
    sets = ALL_SETS if sets is None else (sets,) if isinstance(sets, str) else tuple(sets)
    frames = []
    for set_name in sets:
        folder = root / set_name
        if not folder.is_dir():
            raise FileNotFoundError(f"real frame set {set_name!r} not found: {folder} is not a folder")
        frames += [load_real_frame(d) for d in sorted(folder.iterdir()) if d.is_dir()]
    return frames


def load_learnable_frames(root: Path, sets: Sequence[str] = LEARNABLE_SETS) -> list[RealFrame]:
    """The frames of ``sets`` under ``root`` for training; an evaluation-only set is refused by name."""
    sets = (sets,) if isinstance(sets, str) else tuple(sets)
    refused = [s for s in sets if s in EVALUATION_SETS]
    if refused:
        raise ValueError(f"{refused} are evaluation-only sets (../shared/real/README.md): never train on them")
    return load_real_frames(root, sets)


def load_real_frame(folder: Path) -> RealFrame:
    """The frame in ``folder`` (``<set>/<frame>``); errors name the file at fault."""
    import cv2

    folder = Path(folder)
    missing = [n for n in ("depth.png", "color.png", "camera.json") if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"real frame {folder} lacks {', '.join(missing)}")
    camera = read_structured(folder / "camera.json")
    if not isinstance(camera, dict):
        raise ValueError(f"{folder / 'camera.json'}: expected a mapping, got {type(camera).__name__}")
    try:
        intrinsics = CameraIntrinsics.from_dict(camera)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{folder / 'camera.json'}: bad intrinsics: {exc}") from exc
    scale = camera.get("depth_scale_m")
    shape = (intrinsics.height, intrinsics.width)

    def depth(name: str) -> np.ndarray:
        image = load_depth_image(folder / name, scale)
        _check_shape(image, shape, folder / name)
        return image

    color = cv2.imread(str(folder / "color.png"), cv2.IMREAD_COLOR)  # BGR; drops any alpha
    if color is None:
        raise DepthError(f"{folder / 'color.png'}: cannot decode the image")
    _check_shape(color, shape, folder / "color.png")
    gt_depth = depth("gt_depth.png") if (folder / "gt_depth.png").is_file() else None
    mask = None
    if (folder / "mask.png").is_file():
        mask_image = cv2.imread(str(folder / "mask.png"), cv2.IMREAD_GRAYSCALE)
        if mask_image is None:
            raise DepthError(f"{folder / 'mask.png'}: cannot decode the image")
        _check_shape(mask_image, shape, folder / "mask.png")
        mask = mask_image > 0
    return RealFrame(folder.parent.name, folder.name, depth("depth.png"), cv2.cvtColor(color, cv2.COLOR_BGR2RGB),
                     intrinsics, gt_depth, mask)


def _check_shape(image: np.ndarray, shape: tuple[int, int], path: Path) -> None:
    if image.shape[:2] != shape:
        raise DepthError(f"{path}: image is {image.shape[1]}x{image.shape[0]}, camera.json says "
                         f"{shape[1]}x{shape[0]}")
