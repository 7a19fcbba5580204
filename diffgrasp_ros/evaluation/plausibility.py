"""A geometric judge of parallel-jaw grasps against the observed depth points of a frame.

It exists to evaluate planners on real frames, where no robot executed the grasps and so there is
no success outcome: a grasp is called plausible when enough observed surface sits between the
fingers and the hand does not overlap what was observed. It is an evaluation tool only — planners
keep their own physically motivated checks and never import this module.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

if TYPE_CHECKING:  # typing only: importing the grasping package at runtime would load the planners
    from ..camera.intrinsics import CameraIntrinsics
    from ..grasping.grasp import Grasp


@dataclass(frozen=True)
class JudgeConfig:
    """Hand boxes and thresholds, in the grasp (TCP) frame, metres.

    The grasp frame: +z the approach, +y the closing axis, +x = y × z, origin midway between the
    finger roots; ``w`` below is the grasp's opening ``width_m``.
    """

    finger_half_thickness_m: float = 0.01   # |x| bound of the fingers and of the region between them
    finger_width_m: float = 0.02            # each finger spans w/2 < |y| <= w/2 + this
    finger_length_m: float = 0.05           # fingers reach 0 <= z <= this (roots to tips)
    between_min_depth_m: float = 0.005      # points between count from this z on, not at the roots
    palm_half_thickness_m: float = 0.03     # |x| bound of the palm box
    palm_depth_m: float = 0.07              # the palm box spans -this <= z < 0
    min_height_above_table_m: float = 0.01  # points between count only strictly above table + this
    min_points_between: int = 40
    max_points_in_hand: int = 15            # fingers + palm together, table points included


@dataclass
class GraspJudgement:
    plausible: bool
    points_between: int   # observed points between the fingers, above the table margin
    points_in_hand: int   # observed points inside the finger and palm boxes
    span_y_m: float       # extent along the closing axis of the points between (0.0 when none)
    reason: str           # "" when plausible, else the first failed criterion with its counts


def observed_points(depth_m: np.ndarray, intrinsics: CameraIntrinsics,
                    T_workspace_camera: np.ndarray) -> np.ndarray:
    """Every valid pixel (finite, > 0) back-projected (pinhole) into the workspace frame, (N, 3) float64."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f"depth of shape {depth.shape} does not match the "
                         f"{intrinsics.width}x{intrinsics.height} intrinsics")
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0.0))
    z = depth[v, u]
    points_camera = np.column_stack([(u - intrinsics.cx) * z / intrinsics.fx,
                                     (v - intrinsics.cy) * z / intrinsics.fy, z])
    T = np.asarray(T_workspace_camera, dtype=np.float64)
    return points_camera @ T[:3, :3].T + T[:3, 3]


def _hand_radius_m(width_m: float, config: JudgeConfig) -> float:
    """Radius, about the grasp origin, of a sphere holding the fingers, the palm and the region between."""
    half_y = 0.5 * width_m + config.finger_width_m
    fingers = np.hypot(np.hypot(config.finger_half_thickness_m, half_y), config.finger_length_m)
    palm = np.hypot(np.hypot(config.palm_half_thickness_m, half_y), config.palm_depth_m)
    return float(max(fingers, palm))


def _judge_local(T_workspace_grasp: np.ndarray, width_m: float, points_workspace: np.ndarray,
                 table_height_m: float, config: JudgeConfig) -> GraspJudgement:
    T = np.asarray(T_workspace_grasp, dtype=np.float64)
    # Row vectors: p_grasp = R^T (p - t), written as (p - t) @ R.
    x, y, z = ((points_workspace - T[:3, 3]) @ T[:3, :3]).T
    half_w = 0.5 * width_m
    c = config

    in_x = np.abs(x) <= c.finger_half_thickness_m
    between = (in_x & (np.abs(y) <= half_w) & (z >= c.between_min_depth_m) & (z <= c.finger_length_m)
               & (points_workspace[:, 2] > table_height_m + c.min_height_above_table_m))
    fingers = (in_x & (np.abs(y) > half_w) & (np.abs(y) <= half_w + c.finger_width_m)
               & (z >= 0.0) & (z <= c.finger_length_m))
    palm = ((np.abs(x) <= c.palm_half_thickness_m) & (np.abs(y) <= half_w + c.finger_width_m)
            & (z >= -c.palm_depth_m) & (z < 0.0))

    n_between = int(np.count_nonzero(between))
    n_hand = int(np.count_nonzero(fingers) + np.count_nonzero(palm))  # z ranges are disjoint
    span = float(np.ptp(y[between])) if n_between else 0.0

    if n_between < c.min_points_between:
        reason = (f"too little between the fingers: {n_between} points more than "
                  f"{c.min_height_above_table_m * 100:g} cm above the table (need >= {c.min_points_between})")
    elif n_hand > c.max_points_in_hand:
        reason = f"hand collides: {n_hand} points in the fingers and palm (allowed <= {c.max_points_in_hand})"
    elif span >= width_m:
        reason = (f"object too wide: the points between span {span * 100:.1f} cm along the closing axis, "
                  f"not less than the {width_m * 100:.1f} cm opening")
    else:
        reason = ""
    return GraspJudgement(not reason, n_between, n_hand, span, reason)


def _finite(points_workspace: np.ndarray) -> np.ndarray:
    points = np.asarray(points_workspace, dtype=np.float64).reshape(-1, 3)
    return points[np.isfinite(points).all(axis=1)]


def judge_grasp(T_workspace_grasp: np.ndarray, width_m: float, points_workspace: np.ndarray,
                table_height_m: float, config: JudgeConfig = JudgeConfig()) -> GraspJudgement:
    """Judge one grasp against all observed points (workspace frame); see the module docstring."""
    return _judge_local(T_workspace_grasp, float(width_m), _finite(points_workspace), table_height_m, config)


def judge_grasps(grasps: Sequence[Grasp], points_workspace: np.ndarray, table_height_m: float,
                 config: JudgeConfig = JudgeConfig()) -> list[GraspJudgement]:
    """Judge each grasp (``T_frame_grasp`` in the workspace frame). Equal to ``judge_grasp`` per grasp,
    but fast on ~1M points: one k-d tree, then only the points within the hand's bounding sphere of
    each grasp origin are transformed."""
    if not grasps:
        return []
    points = _finite(points_workspace)
    tree = cKDTree(points, balanced_tree=False, compact_nodes=False)  # ~2x faster to build on 1M points
    judgements = []
    for g in grasps:
        # A small pad so points exactly on a box corner are not lost to rounding in the distance.
        radius = _hand_radius_m(g.width_m, config) + 1e-9
        idx = tree.query_ball_point(np.asarray(g.T_frame_grasp)[:3, 3], radius)
        judgements.append(_judge_local(g.T_frame_grasp, float(g.width_m), points[idx], table_height_m,
                                       config))
    return judgements


def plausibility_summary(judgements_per_frame: list[list[GraspJudgement]], k: int = 5) -> dict:
    """Top-1 and top-k plausibility over frames (each frame's judgements ranked best first).

    ``top1``: fraction of frames whose first grasp is plausible (no grasp = not plausible);
    ``topk``: plausible grasps among the first ``k`` of every frame over ``k * frames`` — a frame
    with fewer than ``k`` grasps counts its missing ones as not plausible. Fractions are 0.0 when
    there are no frames.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    frames = len(judgements_per_frame)
    top1_frames = sum(1 for js in judgements_per_frame if js and js[0].plausible)
    topk_plausible = sum(j.plausible for js in judgements_per_frame for j in js[:k])
    return {
        "top1": top1_frames / frames if frames else 0.0,
        "top1_frames": top1_frames,
        "topk": topk_plausible / (k * frames) if frames else 0.0,
        "frames": frames,
    }
