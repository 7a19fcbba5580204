"""Classical baseline: antipodal candidate sampling on the observed surface, geometric scoring and
collision checks against the scene (in the spirit of GPD / the VGN data generator).

Candidates come from surface points with outward normals in two families:
- *normal approach*: approach against the normal at several yaws (reaches over tops and edges);
- *normal closing*: close along the normal, approaching from directions perpendicular to it.
Each candidate is rejected if the hand (palm + open fingers) hits an observed point, the table or the
inside of the TSDF, or if too little surface lies between the fingers; it is then centred on what it
holds, its width set from the held extent, and scored by antipodality, how deep the object sits
between the fingers, and how close to top-down it approaches.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..robots.gripper import Box
from ..scene.scene import Scene
from .filters import penetrates_tsdf, suppress_duplicates
from .grasp import Grasp
from .planner import CandidatePlanner, Candidates, NoGrasp, PlanRecord, register_planner


@dataclass
class BaselineConfig:
    num_seeds: int = 256
    yaws: int = 6  # normal-approach family: closing-axis angles in [0, pi)
    standoffs_m: tuple[float, ...] = (0.015, 0.03)  # TCP distance back from the seed, along the normal
    side_angles_deg: tuple[float, ...] = (0.0, -45.0, 45.0, -90.0, 90.0)  # normal-closing approaches
    cloud_voxel_m: float = 0.004
    min_points: int = 8  # surface points that must lie between the fingers
    width_margin_m: float = 0.01
    contact_band_m: float = 0.004
    nms_distance_m: float = 0.01
    nms_angle_deg: float = 30.0
    max_grasps: int = 20
    min_score: float = 0.2
    seed: int = 0


def _voxel_downsample(points: np.ndarray, normals: np.ndarray, voxel: float):
    keys = np.floor(points / voxel).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    first.sort()
    return points[first], normals[first]


def _frames_from_axes(approach: np.ndarray, closing: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) with columns x = y × z, y = closing, z = approach."""
    z = approach / np.linalg.norm(approach, axis=-1, keepdims=True)
    y = closing - np.sum(closing * z, axis=-1, keepdims=True) * z
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([np.cross(y, z), y, z], axis=-1)


def _perpendicular_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(n, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(n, e1)


def _inside(box: Box, x: np.ndarray, y: np.ndarray, z: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """Which points, at (x, y, z) in each candidate's grasp frame, lie in ``box`` shrunk by ``shrink``."""
    (cx, cy, cz), (hx, hy, hz) = box.centre_m, box.half_extents_m
    return (np.abs(x - cx) < hx - shrink) & (np.abs(y - cy) < hy - shrink) & (np.abs(z - cz) < hz - shrink)


@register_planner("baseline")
class AntipodalPlanner(CandidatePlanner):
    def __init__(self, robot, workspace, config: BaselineConfig | None = None, **overrides):
        super().__init__(robot, workspace)
        self.config = config or BaselineConfig(**overrides)
        self.gripper = robot.gripper

    @property
    def max_grasps(self) -> int:
        return self.config.max_grasps

    # -- predict ------------------------------------------------------------------------------------
    def _predict(self, scene: Scene, record: PlanRecord) -> Candidates:
        """``_candidates`` at ``num_seeds`` random points of the observed surface (of the target, if any)."""
        cfg = self.config
        cloud, normals = self._surface(scene)
        seedable = np.linalg.norm(normals, axis=1) > 0.5
        if scene.target is not None:  # seeds on the target only; the whole cloud still collides
            seedable &= scene.target.contains(cloud)
        seedable = np.flatnonzero(seedable)
        if len(seedable) == 0:
            raise NoGrasp("the observed surface has no normals")
        seeds = np.random.default_rng(cfg.seed).choice(seedable, size=min(cfg.num_seeds, len(seedable)),
                                                       replace=False)
        R, t, site = self._candidates(cloud[seeds], normals[seeds])
        record.lap("candidates")
        return Candidates(R, t, site, cloud[seeds][site], {})

    def _surface(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """The observed surface above the table and its normals, one point per ``cloud_voxel_m`` voxel."""
        above = scene.object_points_mask(clearance_m=0.003)
        return _voxel_downsample(scene.points_m[above], scene.normals[above], self.config.cloud_voxel_m)

    def _candidates(self, seeds: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rotations, TCP positions and the seed (index) of the candidates at ``seeds`` with these normals."""
        cfg = self.config
        e1, e2 = _perpendicular_basis(normals)
        every = np.arange(len(seeds))
        rotations, positions, sites = [], [], []
        # Normal approach: z = -n, closing axis swept around n.
        for k in range(cfg.yaws):
            angle = np.pi * k / cfg.yaws
            closing = np.cos(angle) * e1 + np.sin(angle) * e2
            R = _frames_from_axes(-normals, closing)
            for standoff in cfg.standoffs_m:
                rotations.append(R)
                positions.append(seeds + standoff * normals)
                sites.append(every)
        # Normal closing: y = n, approach perpendicular to n, starting from the most downward one.
        down = np.array([0.0, 0.0, -1.0])
        a0 = down - (normals @ down)[:, None] * normals
        ok = np.linalg.norm(a0, axis=1) > 0.3  # near-horizontal surfaces are covered above
        a0[~ok] = e1[~ok]
        a0 /= np.linalg.norm(a0, axis=1, keepdims=True)
        a1 = np.cross(normals, a0)
        half_open = 0.5 * self.gripper.max_opening_m
        for angle in np.deg2rad(self.config.side_angles_deg):
            approach = np.cos(angle) * a0 + np.sin(angle) * a1
            R = _frames_from_axes(approach, normals)
            depth = 0.6 * self.gripper.finger_depth_m
            # The seed sits near the +y finger; the object is assumed to extend along -n.
            rotations.append(R[ok])
            positions.append((seeds - (half_open - cfg.width_margin_m) * normals - depth * approach)[ok])
            sites.append(every[ok])
        return np.concatenate(rotations), np.concatenate(positions), np.concatenate(sites)

    # -- filter -------------------------------------------------------------------------------------
    def _filter(self, scene: Scene, sampled: Candidates, record: PlanRecord) -> Candidates:
        """The placed candidates (``_placed``) whose open hand clears the observed points and the TSDF and
        holds surface that fits the opening; centred on what they hold, opened to its extent (plus the
        margin), their measured geometry as their scores."""
        cfg, g = self.config, self.gripper
        placed = self._placed(sampled, record)
        if len(placed) == 0:
            raise NoGrasp("no candidate fits the workspace")
        geo = self._evaluate(placed.R, placed.t, *self._surface(scene))
        width = geo["y_max"] - geo["y_min"] + 2.0 * cfg.width_margin_m
        ok = np.ones(len(placed), bool)
        record.narrow("clear_of_points", ok, ~geo["collides"])
        record.narrow("holds_object", ok, (geo["count"] >= cfg.min_points)[ok])
        record.narrow("fits_opening", ok, (width <= g.max_opening_m)[ok])
        if not ok.any():
            raise NoGrasp("every candidate collides or holds nothing")
        record.narrow("clear_of_tsdf", ok, ~penetrates_tsdf(scene, placed.R[ok], placed.t[ok], g))
        if not ok.any():
            raise NoGrasp("every candidate penetrates the scene")
        feasible = placed.take(ok)
        # Centre the fingers on what they hold, so closing does not push the object sideways.
        centre_y = 0.5 * (geo["y_min"][ok] + geo["y_max"][ok])
        feasible.t = feasible.t + feasible.R[:, :, 1] * centre_y[:, None]
        feasible.widths_m = width[ok]
        feasible.scores = {key: geo[key][ok] for key in ("antipodal", "z_mean", "contact_z", "top_down")}
        return feasible

    def _placed(self, sampled: Candidates, record: PlanRecord) -> Candidates:
        """The candidates pulled back along their approach until the hand clears the table (flat objects),
        then the cheap rejections: workspace bounds, approach from below, open hand into the table."""
        g, ws = self.gripper, self.workspace
        R, t = sampled.R, sampled.t
        corners = np.einsum("cij,sj->csi", R, g.corner_points(g.max_opening_m)) + t[:, None, :]
        deficit = ws.table_height_m + 0.003 - corners[..., 2].min(axis=1)
        descending = R[:, 2, 2] < -0.3
        lift = np.where((deficit > 0) & descending, deficit / np.maximum(-R[:, 2, 2], 1e-6), 0.0)
        t = t - R[:, :, 2] * lift[:, None]
        corners -= (R[:, :, 2] * lift[:, None])[:, None, :]
        ok = np.ones(len(t), bool)
        record.narrow("in_workspace", ok, ws.contains_grasp(t))
        record.narrow("not_from_below", ok, (R[:, 2, 2] < 0.2)[ok])
        record.narrow("above_table", ok, (corners[..., 2].min(axis=1) > ws.table_height_m + 0.002)[ok])
        return replace(sampled, t=t).take(ok)

    def _evaluate(self, R: np.ndarray, t: np.ndarray, cloud: np.ndarray,
                  cloud_normals: np.ndarray) -> dict[str, np.ndarray]:
        """Geometry of every candidate against the cloud, in chunks to bound memory."""
        g, cfg = self.gripper, self.config
        boxes = g.collision_boxes(g.max_opening_m)
        region = g.closing_region(g.max_opening_m)
        cloud = cloud.astype(np.float32)
        out = {k: [] for k in ("collides", "count", "y_min", "y_max", "z_mean", "antipodal", "contact_z")}
        for s in range(0, len(R), 512):
            Rc, tc = R[s:s + 512].astype(np.float32), t[s:s + 512].astype(np.float32)
            # Cloud in every candidate's grasp frame, one (C, N) array per axis: R^T (p - t).
            x, y, z = (cloud @ Rc[:, :, i].T - np.sum(tc * Rc[:, :, i], axis=1) for i in range(3))
            n_y = cloud_normals.astype(np.float32) @ Rc[:, :, 1].T
            collides = np.zeros(len(Rc), dtype=bool)
            for box in boxes:
                collides |= _inside(box, x, y, z, shrink=0.001).any(axis=0)
            held = _inside(region, x, y, z)
            count = held.sum(axis=0)
            y_min = np.where(held, y, np.inf).min(axis=0)
            y_max = np.where(held, y, -np.inf).max(axis=0)
            z_mean = np.where(held, z, 0.0).sum(axis=0) / np.maximum(count, 1)
            # Antipodality: outward normals at the two extremes should face the two fingers.
            band = cfg.contact_band_m
            near_lo = held & (y < y_min + band)
            near_hi = held & (y > y_max - band)
            lo = (near_lo * np.clip(-n_y, 0, 1)).sum(axis=0) / np.maximum(near_lo.sum(axis=0), 1)
            hi = (near_hi * np.clip(n_y, 0, 1)).sum(axis=0) / np.maximum(near_hi.sum(axis=0), 1)
            antipodal = 0.5 * (lo + hi)
            # Where along the fingers the contacts are: at the tips, the object widens beyond them.
            near = near_lo | near_hi
            contact_z = np.where(near, z, 0.0).sum(axis=0) / np.maximum(near.sum(axis=0), 1)
            for key, value in zip(out, (collides, count, y_min, y_max, z_mean, antipodal, contact_z)):
                out[key].append(value)
        geo = {k: np.concatenate(v).astype(np.float64) if k != "collides" else np.concatenate(v)
               for k, v in out.items()}
        geo["top_down"] = np.clip(-R[:, 2, 2], 0.0, 1.0)
        return geo

    # -- rank ---------------------------------------------------------------------------------------
    def _quality(self, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Quality in [0, 1] from the geometry ``_evaluate`` measures: antipodal contacts clear of the finger
        tips, deep in the hand, approaching from above; both the key and the score."""
        g = self.gripper
        depth = np.clip(scores["z_mean"] / g.finger_depth_m, 0.0, 1.0)
        # Contacts within the last fifth of the fingers mean the widest part is out of reach.
        tip_margin = 0.2 * g.finger_depth_m
        clear_of_tips = np.clip((g.finger_depth_m - scores["contact_z"]) / tip_margin, 0.0, 1.0)
        quality = 0.5 * scores["antipodal"] * clear_of_tips + 0.25 * depth + 0.25 * scores["top_down"]
        return quality, quality

    def _rank(self, scene: Scene, feasible: Candidates, record: PlanRecord) -> list[Grasp]:
        """The ranked grasps scoring ``min_score`` or more."""
        grasps = [grasp for grasp in super()._rank(scene, feasible, record) if grasp.score >= self.config.min_score]
        if not grasps:
            raise NoGrasp(f"no candidate scored above {self.config.min_score}")
        return grasps

    def _distinct(self, ranked: Candidates, limit: int) -> list[int]:
        return suppress_duplicates(ranked.R, ranked.t, limit, self.config.nms_distance_m, self.config.nms_angle_deg)

    def _grasps(self, ranked: Candidates, scores: np.ndarray) -> list[Grasp]:
        return [Grasp(ranked.pose(i), float(ranked.widths_m[i]), float(scores[i]), self.name, self.workspace.frame_id)
                for i in range(len(ranked))]

    def _summary(self, sampled: Candidates, feasible: Candidates, grasps: list[Grasp]) -> str:
        return f"{len(grasps)} grasps from {len(feasible)} feasible candidates"

    def _check_and_score(self, scene: Scene, grasps, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg, g, ws = self.config, self.gripper, self.workspace
        geo = self._evaluate(R, t, *self._surface(scene))
        corners = np.einsum("cij,sj->csi", R, g.corner_points(g.max_opening_m)) + t[:, None, :]
        ok = (ws.contains_grasp(t) & (corners[..., 2].min(axis=1) > ws.table_height_m + 0.002)
              & ~geo["collides"] & (geo["count"] >= cfg.min_points)
              & (geo["y_max"] - geo["y_min"] + 2.0 * cfg.width_margin_m <= g.max_opening_m))
        if ok.any():
            ok[ok] &= ~penetrates_tsdf(scene, R[ok], t[ok], g)
        return ok, self._quality(geo)[1]
