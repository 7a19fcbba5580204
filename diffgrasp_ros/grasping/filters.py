"""Checks every grasp method applies to its candidates (poses as rotations R (n, 3, 3), TCPs t (n, 3))."""
from __future__ import annotations

import itertools
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

    Only the points near each box (k-d tree queries) are transformed, not the whole cloud per grasp.
    ``tree`` is a ``cKDTree`` of ``cloud`` to reuse.
    """
    hit = np.zeros(len(R), bool)
    if len(R) == 0 or len(cloud) == 0:
        return hit
    tree = cKDTree(cloud) if tree is None else tree
    for box in boxes:
        centre, half = np.asarray(box.centre_m), np.asarray(box.half_extents_m) - margin_m
        # A long box is queried as near-cubes along it: the sphere about a whole palm holds ten times its volume.
        for piece_centre, piece_radius in _pieces(centre, half):
            grasp, local = _points_near(cloud, tree, R, t, np.broadcast_to(piece_centre, t.shape), piece_radius)
            hit[grasp[_inside(local - centre, half)]] = True
    return hit


def fingers_hit(cloud: np.ndarray, R: np.ndarray, t: np.ndarray, gripper, openings_m: np.ndarray,
                margin_m: float = 0.001, tree=None) -> np.ndarray:
    """Grasps whose fingers, opened to each grasp's own ``openings_m``, have a point of ``cloud`` inside
    (``hits_cloud`` with each grasp's ``gripper.finger_boxes``, all grasps in one query per finger)."""
    hit = np.zeros(len(R), bool)
    if len(R) == 0 or len(cloud) == 0:
        return hit
    tree = cKDTree(cloud) if tree is None else tree
    closed_finger = gripper.finger_boxes(0.0)[0]  # at +y; opening by w moves it by w / 2
    _, y, z = closed_finger.centre_m
    half = np.asarray(closed_finger.half_extents_m) - margin_m
    for side in (1.0, -1.0):
        centres = np.stack([np.zeros(len(R)), side * (y + 0.5 * np.asarray(openings_m)), np.full(len(R), z)], -1)
        grasp, local = _points_near(cloud, tree, R, t, centres, float(np.linalg.norm(half)))
        hit[grasp[_inside(local - centres[grasp], half)]] = True
    return hit


def held_extent(cloud: np.ndarray, R: np.ndarray, t: np.ndarray, region, tree=None,
                max_gap_m: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grasp, the points of ``cloud`` inside the closing ``region`` box (grasp frame): their count and
    their lowest and highest coordinate along the closing axis (0 where none). With ``max_gap_m``, the
    extent is that of the one object nearest the TCP: the run of points along the closing axis without a
    gap wider than that (neighbours in clutter lie beyond a gap)."""
    n = len(R)
    count, y_min, y_max = np.zeros(n, int), np.zeros(n), np.zeros(n)
    if n == 0 or len(cloud) == 0:
        return count, y_min, y_max
    tree = cKDTree(cloud) if tree is None else tree
    centre, half = np.asarray(region.centre_m), np.asarray(region.half_extents_m)
    grasp, local = _points_near(cloud, tree, R, t, np.broadcast_to(centre, t.shape), float(np.linalg.norm(half)))
    inside = _inside(local - centre, half, closed=True)
    grasp, y = grasp[inside], local[inside, 1]
    if len(y) == 0:
        return count, y_min, y_max
    count[:] = np.bincount(grasp, minlength=n)
    order = np.lexsort((y, grasp))  # by grasp, then along the closing axis
    grasp, y = grasp[order], y[order]
    # Runs: a grasp's points, split where the gap along the closing axis is wider than max_gap_m.
    gaps = np.diff(y) > max_gap_m if max_gap_m is not None else np.zeros(len(y) - 1, bool)
    starts = np.flatnonzero(np.r_[True, (grasp[1:] != grasp[:-1]) | gaps])
    run_grasp, first, last = grasp[starts], y[starts], y[np.r_[starts[1:], len(y)] - 1]
    # Each grasp's run nearest the TCP (distance 0 for one that spans it), the first of equals.
    distance = np.where((first <= 0.0) & (0.0 <= last), 0.0, np.minimum(np.abs(first), np.abs(last)))
    chosen = np.lexsort((np.arange(len(starts)), distance, run_grasp))
    chosen = chosen[np.r_[True, run_grasp[chosen][1:] != run_grasp[chosen][:-1]]]
    y_min[run_grasp[chosen]], y_max[run_grasp[chosen]] = first[chosen], last[chosen]
    return count, y_min, y_max


def _points_near(cloud: np.ndarray, tree, R: np.ndarray, t: np.ndarray, centres: np.ndarray,
                 radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``cloud`` within ``radius_m`` of each grasp's point ``centres`` (n, 3) (grasp frame), as
    pairs: the grasp's index (m,) and the point in that grasp's frame (m, 3)."""
    near = tree.query_ball_point(np.einsum("nij,nj->ni", R, centres) + t, radius_m)
    counts = np.fromiter((len(n) for n in near), int, len(near))
    grasp = np.repeat(np.arange(len(R)), counts)
    if len(grasp) == 0:
        return grasp, np.zeros((0, 3))
    points = cloud[np.fromiter(itertools.chain.from_iterable(near), int, len(grasp))]
    return grasp, np.einsum("nji,nj->ni", R[grasp], points - t[grasp])


def _inside(offsets: np.ndarray, half: np.ndarray, closed: bool = False) -> np.ndarray:
    """Whether each offset (m, 3) from a box's centre lies inside it (on its faces too when ``closed``); axis
    by axis, which numpy does several times faster than a reduction over an axis of 3."""
    within = np.less_equal if closed else np.less
    offsets = np.abs(offsets)
    return within(offsets[:, 0], half[0]) & within(offsets[:, 1], half[1]) & within(offsets[:, 2], half[2])


PIECE_ASPECT = 1.5  # a piece is at most about this many times longer than it is thin (fewer, larger queries)


def _pieces(centre: np.ndarray, half: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """A box (grasp frame) as near-cubes along its axes: each piece's centre and bounding-sphere radius."""
    counts = np.maximum(np.round(half / (PIECE_ASPECT * half.min())).astype(int), 1)
    steps = [(np.arange(k) + 0.5) / k * 2.0 - 1.0 for k in counts]  # piece centres in [-1, 1] per axis
    radius = float(np.linalg.norm(half / counts))
    return [(centre + half * np.array(offset), radius) for offset in np.stack(np.meshgrid(*steps, indexing="ij"),
                                                                               -1).reshape(-1, 3)]


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
