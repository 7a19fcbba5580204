"""Draw ranked grasps onto a camera image: the demo's pictures and contact sheet, ``plan --draw``."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..camera.intrinsics import CameraIntrinsics
from ..geometry import invert, transform_points
from ..robots.gripper import ParallelGripper
from .grasp import Grasp


def _glyph(gripper: ParallelGripper, width_m: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Line segments of a gripper outline in the grasp frame: stem, palm bar, two fingers."""
    h, d = 0.5 * width_m, gripper.finger_depth_m
    p = lambda y, z: np.array([0.0, y, z])  # noqa: E731
    return [(p(0, -0.04), p(0, 0)), (p(-h, 0), p(h, 0)), (p(-h, 0), p(-h, d)), (p(h, 0), p(h, d))]


def score_colour_bgr(score: float) -> tuple[int, int, int]:
    """Red (0) through yellow to green (1)."""
    s = float(np.clip(score, 0.0, 1.0))
    return (0, int(255 * min(1.0, 2 * s)), int(255 * min(1.0, 2 * (1 - s))))


# The executed grasp's marker: cyan, which no score colour (blue 0) and no shaded scene colour is exactly.
EXECUTED_BGR = (255, 255, 0)
HELD_BGR, FAILED_BGR = (80, 220, 80), (80, 80, 255)
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _project(K: np.ndarray, points_camera: np.ndarray) -> np.ndarray:
    return (points_camera @ K.T)[:, :2] / points_camera[:, 2:]


def fit_text(text: str, width_px: int, scale: float) -> str:
    """``text``, cut short with "..." where it would be wider than ``width_px`` (the full text is in the
    terminal and grasps.json)."""
    import cv2

    if cv2.getTextSize(text, _FONT, scale, 1)[0][0] <= width_px:
        return text
    while text and cv2.getTextSize(text + "...", _FONT, scale, 1)[0][0] > width_px:
        text = text[:-1]
    return text.rstrip() + "..."


def _text_box(image: np.ndarray, text: str, origin: tuple[int, int], colour, scale: float = 0.45,
              background=(32, 32, 32)) -> None:
    """``text`` on a filled box, its top-left corner at ``origin``, kept inside the image."""
    import cv2

    text = fit_text(text, image.shape[1] - 6, scale)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    x = int(np.clip(origin[0], 0, max(0, image.shape[1] - w - 6)))
    y = int(np.clip(origin[1], 0, max(0, image.shape[0] - h - base - 6)))
    cv2.rectangle(image, (x, y), (x + w + 6, y + h + base + 6), background, cv2.FILLED)
    cv2.putText(image, text, (x + 3, y + h + 3), _FONT, scale, colour, 1, cv2.LINE_AA)


def draw_grasps(rgb: np.ndarray, grasps: Sequence[Grasp], intrinsics: CameraIntrinsics,
                T_workspace_camera: np.ndarray, gripper: ParallelGripper, max_drawn: int = 10,
                executed: int | None = None, outcome: str | None = None) -> np.ndarray:
    """A BGR image with up to ``max_drawn`` grasps, coloured by score, best drawn last and thickest, each
    labelled with its rank (1 = best, as in the CLI's grasp table).

    ``executed``: the index in ``grasps`` of the grasp that was executed (0 = best), drawn on top of the
    others (also when beyond ``max_drawn``) in its score colour inside a thick ``EXECUTED_BGR`` outline and
    labelled "executed", with ``outcome`` (e.g. "held", "failed: <reason>") after the label.
    ``max_drawn=0`` with ``executed`` draws the executed grasp alone."""
    import cv2

    image = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    T_camera_workspace = invert(T_workspace_camera)
    K = intrinsics.K
    if executed is not None and not 0 <= executed < len(grasps):
        raise ValueError(f"executed grasp {executed} is not one of the {len(grasps)} grasps")
    shown = [(rank, grasps[rank]) for rank in range(min(max_drawn, len(grasps))) if rank != executed]
    if executed is not None:
        shown.insert(0, (executed, grasps[executed]))  # drawn last: on top
    for rank, grasp in reversed(shown):
        colour = score_colour_bgr(grasp.score)
        thickness = 3 if rank == 0 else 1
        T_camera_grasp = T_camera_workspace @ grasp.T_frame_grasp
        segments = []
        for a, b in _glyph(gripper, max(grasp.width_m, 0.01)):
            ends = transform_points(T_camera_grasp, np.stack([a, b]))
            if np.all(ends[:, 2] > 0.0):
                uv = np.round(_project(K, ends)).astype(int)
                segments.append((tuple(uv[0]), tuple(uv[1])))
        if rank == executed:
            for a, b in segments:
                cv2.line(image, a, b, EXECUTED_BGR, 9, cv2.LINE_AA)
        for a, b in segments:
            cv2.line(image, a, b, colour, thickness, cv2.LINE_AA)
        label_at = transform_points(T_camera_grasp, np.array([[0.0, 0.0, -0.045]]))[0]
        if label_at[2] <= 0:
            continue
        u, v = _project(K, label_at[None])[0]
        if rank == executed:
            text = f"{rank + 1} executed" + (f": {outcome}" if outcome else "")
            _text_box(image, text, (int(u) + 6, int(v) - 22), EXECUTED_BGR)
        else:
            cv2.putText(image, str(rank + 1), (int(u) + 3, int(v)), _FONT, 0.45, colour, 1, cv2.LINE_AA)
    return image


def title_panel(image: np.ndarray, title: str, colour=(255, 255, 255)) -> np.ndarray:
    """``image`` (BGR) with ``title`` on a dark strip along its bottom edge."""
    panel = image.copy()
    _text_box(panel, title, (0, panel.shape[0]), colour, scale=0.55)
    return panel


def contact_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray]]], caption_height: int = 30,
                  gap: int = 4) -> np.ndarray:
    """One BGR image of ``rows`` of equally sized BGR panels side by side, each row under its caption
    (white on dark grey); rows with fewer panels are padded with grey."""
    import cv2

    if not rows or not all(panels for _, panels in rows):
        raise ValueError("a contact sheet needs at least one row, each with at least one panel")
    h, w = rows[0][1][0].shape[:2]
    columns = max(len(panels) for _, panels in rows)
    width = columns * w + (columns - 1) * gap
    sheet = np.full((len(rows) * (caption_height + h + gap) - gap, width, 3), 64, np.uint8)
    for i, (caption, panels) in enumerate(rows):
        top = i * (caption_height + h + gap)
        sheet[top:top + caption_height] = 32
        caption = fit_text(caption, width - 16, 0.6)
        cv2.putText(sheet, caption, (8, top + caption_height - 9), _FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        for j, panel in enumerate(panels):
            if panel.shape[:2] != (h, w):
                raise ValueError(f"panel {panel.shape[1]}x{panel.shape[0]} in a sheet of {w}x{h} panels")
            left = j * (w + gap)
            sheet[top + caption_height:top + caption_height + h, left:left + w] = panel
    return sheet


def depth_picture(depth_m: np.ndarray, range_m: tuple[float, float] | None = None) -> np.ndarray:
    """An RGB picture of a depth image to draw grasps on when there is no colour image: near is warm,
    far is cool (turbo colour map over ``range_m``, by default the valid depth's 1st to 99th percentile),
    invalid pixels are black."""
    import cv2

    valid = depth_m > 0
    if range_m is None:
        if not valid.any():
            return np.zeros((*depth_m.shape, 3), np.uint8)
        range_m = np.percentile(depth_m[valid], [1, 99])
    near, far = range_m
    scaled = np.clip((far - depth_m) / max(far - near, 1e-6), 0.0, 1.0)
    bgr = cv2.applyColorMap((255 * scaled).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[~valid] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_color_image(path, size: tuple[int, int]) -> np.ndarray:
    """An RGB image file as (H, W, 3) uint8, checked against the depth's (width, height)."""
    import cv2
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"colour image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot decode the colour image")
    if (bgr.shape[1], bgr.shape[0]) != tuple(size):
        raise ValueError(f"{path}: the colour image is {bgr.shape[1]}x{bgr.shape[0]} but the depth is "
                         f"{size[0]}x{size[1]}: give the colour image registered to the depth")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
