"""Checks every grasp method applies to its candidates (poses as rotations R (n, 3, 3), TCPs t (n, 3))."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..robots.gripper import ParallelGripper
from ..scene.scene import Scene


@dataclass(frozen=True)
class ObservedSurface:
    """The observed surface a hand must not hit: the scene's points above the table (3 mm clear of it, so
    the table top does not count) and their k-d tree, None when there are none."""

    points: np.ndarray
    tree: cKDTree | None

    @classmethod
    def of(cls, scene: Scene) -> "ObservedSurface":
        points = scene.points_m[scene.object_points_mask(clearance_m=0.003)]
        return cls(points, cKDTree(points) if len(points) else None)


def in_observed_solid(scene: Scene, points: np.ndarray) -> np.ndarray:
    """(n, P, 3) workspace points -> (n,): whether any of a row's points lies inside observed solid (a TSDF
    value below the surface); points outside the grid are free."""
    ws = scene.workspace
    idx = np.floor(points / ws.voxel_size_m).astype(int)
    valid = np.all((idx >= 0) & (idx < ws.resolution), axis=-1)
    idx = np.clip(idx, 0, ws.resolution - 1)
    values = scene.tsdf_grid[idx[..., 0], idx[..., 1], idx[..., 2]]
    return np.any(valid & (values > 0.0) & (values < 0.4), axis=1)


def penetrates_tsdf(scene: Scene, R: np.ndarray, t: np.ndarray, gripper: ParallelGripper) -> np.ndarray:
    """Grasps whose open hand has sample points inside observed solid (TSDF value below the surface)."""
    samples = []
    for box in gripper.collision_boxes(gripper.max_opening_m):
        lin = [np.linspace(-h, h, 3) for h in box.half_extents_m]
        grid = np.stack(np.meshgrid(*lin, indexing="ij"), axis=-1).reshape(-1, 3)
        samples.append(grid + np.asarray(box.centre_m))
    return in_observed_solid(scene, np.einsum("cij,sj->csi", R, np.concatenate(samples)) + t[:, None, :])


def hits_cloud(cloud: np.ndarray, R: np.ndarray, t: np.ndarray, boxes, margin_m: float = 0.001,
               tree=None) -> np.ndarray:
    """Grasps with a point of ``cloud`` (P, 3) inside one of the hand's ``boxes`` (shrunk by ``margin_m``).

    Only the points within each box's bounding sphere (a k-d tree query) are transformed, not the whole
    cloud per grasp: that made this check most of a plan. ``tree`` is a ``cKDTree`` of ``cloud`` to reuse.
    """
    hit = np.zeros(len(R), bool)
    if len(R) == 0 or len(cloud) == 0:
        return hit
    tree = cKDTree(cloud) if tree is None else tree
    for box in boxes:
        centre, half = np.asarray(box.centre_m), np.asarray(box.half_extents_m) - margin_m
        near = tree.query_ball_point(np.einsum("nij,j->ni", R, centre) + t, float(np.linalg.norm(half)))
        counts = np.fromiter((len(n) for n in near), int, len(near))
        if counts.sum() == 0:
            continue
        grasp = np.repeat(np.arange(len(R)), counts)
        points = cloud[np.concatenate([n for n in near if n])]
        local = np.einsum("nji,nj->ni", R[grasp], points - t[grasp]) - centre
        inside = np.all(np.abs(local) < half, axis=1)
        hit[grasp[inside]] = True
    return hit


def held_extent(cloud: np.ndarray, R: np.ndarray, t: np.ndarray, region, tree=None,
                max_gap_m: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grasp, the points of ``cloud`` inside the closing ``region`` box (grasp frame): their count and
    their lowest and highest coordinate along the closing axis (0 where none). With ``max_gap_m``, the
    extent is that of the one object nearest the TCP: the run of points along the closing axis without a
    gap wider than that (neighbours in clutter lie beyond a gap)."""
    count, y_min, y_max = np.zeros(len(R), int), np.zeros(len(R)), np.zeros(len(R))
    if len(R) == 0 or len(cloud) == 0:
        return count, y_min, y_max
    tree = cKDTree(cloud) if tree is None else tree
    centre, half = np.asarray(region.centre_m), np.asarray(region.half_extents_m)
    near = tree.query_ball_point(np.einsum("nij,j->ni", R, centre) + t, float(np.linalg.norm(half)))
    for i, indices in enumerate(near):
        if not indices:
            continue
        local = (cloud[indices] - t[i]) @ R[i]
        y = np.sort(local[np.all(np.abs(local - centre) <= half, axis=1), 1])
        if len(y) == 0:
            continue
        count[i] = len(y)
        if max_gap_m is not None:
            runs = np.split(y, np.flatnonzero(np.diff(y) > max_gap_m) + 1)
            y = min(runs, key=lambda run: 0.0 if run[0] <= 0.0 <= run[-1] else min(abs(run[0]), abs(run[-1])))
        y_min[i], y_max[i] = y[0], y[-1]
    return count, y_min, y_max


def suppress_duplicates(R: np.ndarray, t: np.ndarray, limit: int, distance_m: float = 0.01,
                        angle_deg: float = 30.0) -> list[int]:
    """Indices of ranked grasps (best first) left after dropping each one within ``distance_m`` of a
    better one with the same approach and closing axis, at most ``limit``.

    Parallel-jaw symmetry: a grasp and its 180° flip about the approach axis are the same grasp.
    """
    kept: list[int] = []
    cos_limit = np.cos(np.deg2rad(angle_deg))
    for i in range(len(R)):
        if not any(np.linalg.norm(t[i] - t[j]) < distance_m and R[i][:, 2] @ R[j][:, 2] > cos_limit
                   and abs(R[i][:, 1] @ R[j][:, 1]) > cos_limit for j in kept):
            kept.append(i)
        if len(kept) >= limit:
            break
    return kept


def suppress_duplicate_poses(R: np.ndarray, t: np.ndarray, limit: int, distance_m: float = 0.01,
                             angle_deg: float = 30.0) -> list[int]:
    """``suppress_duplicates`` for a hand without the parallel jaw's symmetry (a dexterous hand flipped
    about its approach holds differently): a duplicate is within ``distance_m`` and ``angle_deg`` of
    rotation of a better grasp."""
    kept: list[int] = []
    for i in range(len(R)):
        if not kept or not np.any((np.linalg.norm(t[kept] - t[i], axis=1) < distance_m)
                                  & (_rotation_angles(R[i], R[kept]) < np.radians(angle_deg))):
            kept.append(i)
        if len(kept) >= limit:
            break
    return kept


def _rotation_angles(R: np.ndarray, Rs: np.ndarray) -> np.ndarray:
    """Angles (rad) of the rotations between R (3, 3) and each of Rs (n, 3, 3)."""
    cos = (np.einsum("ij,nij->n", R, Rs) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))
