"""The ``leap`` method: dexterous LEAP-hand grasps from the TSDF (DexGraspNet 2.0 style, see ``model``).

Inference: surface points above the table (a random subset of at most ``max_points``; inside the
``region`` sphere when one is asked for) -> per-point features, objectness and graspness -> seeds: the
``seed_candidates`` most graspable object points thinned to ``seeds`` by farthest-point sampling ->
``rounds`` wrist poses per seed by DDIM over (TCP offset from the seed, 9-D rotation), guided when
asked, rotations projected onto SO(3) by SVD -> joint head (grasp and pre-grasp postures) -> likelihood
(denoising ELBO) -> filters (workspace bounds; the palm and knuckles box of ``leap.PARALLEL_PROXY``
against the table, the TSDF and the observed points; the digits' collision boxes in both predicted
postures above the table, and in the pre-grasp posture out of observed solid; the approach cone when an
approach is asked for); when no pose passes, downward poses whose digits reach under the table are
backed off along their approach (at most ``retreat`` metres, staying in the ``region``) and filtered
again -> rank by log-likelihood + η · graspness + γ · log P(held) (the learned evaluator,
``evaluator``, on the feasible poses; ``evaluator=none`` ranks without it), suppress near-duplicates.

Options (``make_planner("leap:approach=top,guidance=2")``): ``approach`` = top | +x | -x | +y | -y |
x:y:z (where the TCP +z, out of the palm, should point; "top" = 0:0:-1, from above), ``closing`` = x:y:z
(the thumb -> fingers axis), ``region`` = x:y:z:r (workspace metres: seeds only there, TCP guided into
it), ``guidance`` (gradient scale, 0 = sample unguided and only filter), ``max_angle`` (degrees off the
approach a returned grasp may be), ``eta``, ``rounds``, ``denoising_steps``, ``seeds``, ``max_grasps``,
``min_objectness``, ``min_graspness``, ``retreat``, ``weights``, ``evaluator`` (a folder, or none),
``evaluator_weight`` (γ), ``seed``, ``device`` (where the model and the evaluator run: auto = CUDA when
available, else the CPU; cpu, cuda, cuda:N or mps).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ...devices import float_tensor, module_device
from ...robots import leap
from ...robots.registry import Embodiment, get_robot
from ...scene.scene import Scene
from ...scene.workspace import STANDARD_WORKSPACE, Workspace
from ..filters import hits_cloud, in_observed_solid
from ..grasp import Grasp, PlanResult
from ..planner import GraspPlanner, register_planner
from .evaluator import DEFAULT_EVALUATOR_WEIGHTS, load_evaluator
from .pretrained import DEFAULT_WEIGHTS, load_pretrained

TABLE_CLEARANCE_M = 0.003  # the digits' boxes stay this far above the table
# Ranking given grasps: the closing posture's fingertips (targets past contact) reach this near observed
# surface (the shipped model's own grasps on a box: 2.5 cm at most; one 10 cm off an object: 15 cm).
MAX_TIP_GAP_M = 0.04
NAMED_DIRECTIONS = {"top": (0.0, 0.0, -1.0), "+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0),
                    "+y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0)}


def parse_vector(text, count: int, name: str) -> np.ndarray:
    """``"0:0:-1"`` (colons: planner options are comma-separated) or a sequence -> float array of ``count``."""
    if isinstance(text, str):
        parts = text.split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
    else:
        values = [float(v) for v in np.atleast_1d(text)]
    if len(values) != count or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be {count} numbers separated by colons (e.g. "
                         f"{':'.join(['0'] * count)}), got {text!r}")
    return np.array(values, float)


def parse_direction(text, name: str) -> np.ndarray | None:
    if text is None or (isinstance(text, str) and text.strip() == ""):
        return None
    if isinstance(text, str) and text.strip().lower() in NAMED_DIRECTIONS:
        return np.array(NAMED_DIRECTIONS[text.strip().lower()])
    v = parse_vector(text, 3, name)
    if np.linalg.norm(v) < 1e-9:
        raise ValueError(f"{name} must be a non-zero direction, got {text!r}")
    return v / np.linalg.norm(v)


def _check_trained_grid(what: str, config, workspace: Workspace) -> None:
    """A model's TSDF grid (``config.resolution``, ``config.workspace_size_m``) must be the workspace's."""
    if (config.resolution, config.workspace_size_m) != (workspace.resolution, workspace.size_m):
        raise ValueError(f"this {what} was trained for a {config.resolution}³ grid over {config.workspace_size_m} m, "
                         f"not {workspace.resolution}³ over {workspace.size_m} m")


def _rotation_angles(R: np.ndarray, Rs: np.ndarray) -> np.ndarray:
    cos = (np.einsum("ij,nij->n", R, Rs) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


@register_planner("leap")
class LeapPlanner(GraspPlanner):
    def __init__(self, robot: Embodiment, workspace: Workspace = STANDARD_WORKSPACE, weights: str | Path | None = None,
                 rounds: int | None = None, denoising_steps: int | None = None, seeds: int | None = None,
                 eta: float | None = None, approach=None, closing=None, region=None, guidance: float | None = None,
                 max_angle: float | None = None, min_objectness: float | None = None,
                 min_graspness: float | None = None, max_grasps: int | None = None,
                 retreat: float | None = None, evaluator: str | Path | None = None,
                 evaluator_weight: float | None = None, seed: int = 0, device: str = "auto"):
        if getattr(robot, "hand", None) != "leap":
            raise ValueError(f"the leap planner plans for LEAP-hand embodiments (xarm_leap, ur5_leap), not "
                             f"{robot.name!r} (hand {robot.hand!r}); use igd or baseline for a parallel gripper")
        super().__init__(robot, workspace)
        from ..igd.scheduler import DDIMScheduler
        from .sampler import Guidance

        self.model = load_pretrained(Path(weights) if weights else DEFAULT_WEIGHTS, device)
        self.device = module_device(self.model)
        cfg = self.model.config
        _check_trained_grid("LEAP model", cfg, workspace)
        pick = lambda value, default: default if value is None else value  # noqa: E731
        self.rounds = int(pick(rounds, cfg.rounds))
        self.denoising_steps = int(pick(denoising_steps, cfg.sampling_steps))
        self.seeds = int(pick(seeds, cfg.seeds))
        self.max_grasps = int(pick(max_grasps, cfg.max_grasps))
        for name in ("rounds", "denoising_steps", "seeds", "max_grasps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        self.eta = float(pick(eta, cfg.eta))
        self.evaluator_weight = float(pick(evaluator_weight, cfg.evaluator_weight))
        if self.evaluator_weight < 0:
            raise ValueError(f"evaluator_weight must be non-negative, got {self.evaluator_weight}")
        no_evaluator = isinstance(evaluator, str) and evaluator.strip().lower() == "none"
        self.evaluator = None if no_evaluator else load_evaluator(
            Path(evaluator) if evaluator else DEFAULT_EVALUATOR_WEIGHTS, self.device)
        if self.evaluator is not None:
            _check_trained_grid("LEAP evaluator", self.evaluator.config, workspace)
        self.min_objectness = float(pick(min_objectness, cfg.min_objectness))
        self.min_graspness = float(pick(min_graspness, cfg.min_graspness))
        self.max_angle_deg = float(pick(max_angle, cfg.max_approach_angle_deg))
        self.max_retreat_m = float(pick(retreat, cfg.max_table_retreat_m))
        if self.max_retreat_m < 0:
            raise ValueError(f"retreat must be non-negative metres, got {self.max_retreat_m}")
        self.approach = parse_direction(approach, "approach")
        self.closing = parse_direction(closing, "closing")
        self.region = None if region in (None, "") else parse_vector(region, 4, "region (x:y:z:radius)")
        if self.region is not None and self.region[3] <= 0:
            raise ValueError(f"the region radius must be positive, got {self.region[3]}")
        scale = float(pick(guidance, cfg.guidance_scale))
        if scale < 0:
            raise ValueError(f"guidance must be non-negative, got {scale}")
        self.guidance = Guidance(self.approach, self.closing,
                                 None if self.region is None else self.region[:3],
                                 0.0 if self.region is None else float(self.region[3]), scale)
        self.scheduler = DDIMScheduler(cfg.train_steps, device=self.device)
        self.scheduler.set_timesteps(self.denoising_steps)
        self.seed = seed
        self.gripper = robot.gripper  # leap.PARALLEL_PROXY: palm and knuckles box + finger boxes

    @classmethod
    def from_pretrained(cls, path: str | Path, robot: str | Embodiment = "xarm_leap",
                        workspace: Workspace = STANDARD_WORKSPACE, **options) -> "LeapPlanner":
        return cls(get_robot(robot) if isinstance(robot, str) else robot, workspace, weights=path, **options)

    # -- feasibility --------------------------------------------------------------------------------
    @staticmethod
    def _world_digit_points(R: np.ndarray, t: np.ndarray, digits_palm: np.ndarray) -> np.ndarray:
        """(n, P, 3) workspace points of the digits at TCP poses (R, t), from their (n, P, 3) points in the
        ``leap_palm`` frame (``leap.digit_points`` of the postures: forward kinematics, done once a plan)."""
        t_palm = t - R @ leap.T_PALM_TCP[:3, 3]
        return digits_palm @ R.transpose(0, 2, 1) + t_palm[:, None]

    def _retreat_from_table(self, R: np.ndarray, t: np.ndarray, pre_palm: np.ndarray,
                            grasp_palm: np.ndarray) -> np.ndarray:
        """TCPs moved back along the approach until the digits of both postures (``leap_palm``-frame points)
        clear the table, for poses approaching downwards that need at most ``max_retreat_m``. The diffusion
        places a top grasp on a low object within a centimetre or two, often with the fingertips under the
        table, where the executor's approach would stop on the table anyway."""
        lowest = np.minimum(self._world_digit_points(R, t, pre_palm)[..., 2].min(1),
                            self._world_digit_points(R, t, grasp_palm)[..., 2].min(1))
        # 1 mm more than the digit filter's clearance, so a moved pose passes its strict comparison.
        below = self.workspace.table_height_m + TABLE_CLEARANCE_M + 0.001 - lowest
        downwards = -R[:, 2, 2]  # the approach's downward component
        retreat = below / np.maximum(downwards, 0.5)
        retreat = np.where((below > 0) & (downwards >= 0.5) & (retreat <= self.max_retreat_m), retreat, 0.0)
        return t - retreat[:, None] * R[:, :, 2]

    def _digits_ok(self, scene: Scene, R: np.ndarray, t: np.ndarray, pre_palm: np.ndarray,
                   grasp_palm: np.ndarray) -> np.ndarray:
        """The digits (``leap.digit_points``, the URDF's collision boxes, given in the ``leap_palm`` frame)
        of both postures above the table; those of the pre-grasp posture, the approach shape, also out of
        observed solid."""
        if len(R) == 0:
            return np.zeros(0, bool)
        pre, grasp = self._world_digit_points(R, t, pre_palm), self._world_digit_points(R, t, grasp_palm)
        table = self.workspace.table_height_m + TABLE_CLEARANCE_M
        return (pre[..., 2].min(1) > table) & (grasp[..., 2].min(1) > table) & ~in_observed_solid(scene, pre)

    def _palm_ok(self, scene: Scene, cloud: np.ndarray, R: np.ndarray, t: np.ndarray, tree=None) -> np.ndarray:
        """TCP in the workspace; the palm and knuckles (``leap.PARALLEL_PROXY.palm``) above the table, out of
        observed solid and free of observed points. The digits are checked in their predicted postures
        (``_digits_ok``), not as the proxy's parallel fingers, which reach deeper than a dexterous grasp."""
        ws, palm = self.workspace, self.gripper.palm
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        samples = np.asarray(palm.centre_m) + np.concatenate([signs, 0.5 * signs, np.zeros((1, 3))]) \
            * np.asarray(palm.half_extents_m)
        world = np.einsum("nij,sj->nsi", R, samples) + t[:, None]
        ok = ws.contains_grasp(t) & (world[..., 2].min(1) > ws.table_height_m + 0.002)
        ok[ok] &= ~in_observed_solid(scene, world[ok])
        if len(cloud) and ok.any():
            ok[ok] &= ~hits_cloud(cloud, R[ok], t[ok], [palm], tree=tree)
        return ok

    def _check_and_score(self, scene: Scene, grasps, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A fingertip of the closing posture near observed surface (the hand closes on something, not on
        air), and the palm and digit checks of planning in each grasp's own postures (a plain grasp: the
        pre-shape for its width, then the closed hand); the quality is the evaluator's P(held)."""
        if self.evaluator is None:
            raise ValueError("ranking given LEAP grasps needs the grasp evaluator (this planner has evaluator=none)")
        n_joints = len(self.robot.hand_joint_names)
        if any(g.dexterous and len(g.grasp_joints) != n_joints for g in grasps):
            raise ValueError(f"a given grasp has hand joints for another hand: the LEAP hand has {n_joints}")
        q_pre = np.stack([g.pregrasp_joints if g.dexterous else self.robot.hand_posture(g.width_m) for g in grasps])
        q_grasp = np.stack([g.grasp_joints if g.dexterous else self.robot.hand_posture(0.0) for g in grasps])
        cloud = scene.points_m[scene.object_points_mask(clearance_m=0.003)]
        if len(cloud) == 0:
            return np.zeros(len(R), bool), np.zeros(len(R))
        tree = cKDTree(cloud)
        tips = self._world_digit_points(R, t, leap.tip_positions(q_grasp))
        ok = tree.query(tips.reshape(-1, 3))[0].reshape(tips.shape[:2]).min(1) <= MAX_TIP_GAP_M
        ok &= self._palm_ok(scene, cloud, R, t, tree)
        if ok.any():
            ok[ok] &= self._digits_ok(scene, R[ok], t[ok], leap.digit_points(q_pre[ok]),
                                      leap.digit_points(q_grasp[ok]))
        return ok, np.exp(self.evaluator.log_p_held(scene.tsdf_grid, R, t, q_grasp, q_pre))

    # -- planning -----------------------------------------------------------------------------------
    def _plan(self, scene: Scene) -> PlanResult:
        import torch

        from .sampler import farthest_point_sampling, log_likelihood, sample_poses, to_pose, to_x

        timings: dict[str, float] = {}
        model, cfg, ws, device = self.model, self.model.config, self.workspace, self.device
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now

        def nothing(why: str) -> PlanResult:
            return PlanResult([], self.name, timings, f"no grasp found: {why}")

        rng = np.random.default_rng(self.seed)
        index = np.flatnonzero(scene.target_points_mask() & ws.inside(scene.points_m))
        if self.region is not None:
            index = index[np.linalg.norm(scene.points_m[index] - self.region[:3], axis=1) <= self.region[3]]
            if len(index) == 0:
                return nothing(f"no observed object point within {self.region[3]:.3f} m of {self.region[:3].tolist()}")
        if len(index) > cfg.max_points:
            index = np.sort(rng.choice(index, cfg.max_points, replace=False))
        points = scene.points_m[index].astype(np.float32)
        with torch.inference_mode():
            planes = model.encode(float_tensor(scene.tsdf_grid, device)[None])
            lap("encoder")
            features = model.point_features(planes, float_tensor(points, device)[None])[0]
            objectness = torch.sigmoid(model.objectness_logits(features)).cpu().numpy()
            graspness = torch.sigmoid(model.graspness_logits(features)).cpu().numpy()
            usable = np.flatnonzero((objectness >= self.min_objectness) & (graspness >= self.min_graspness))
            if len(usable) == 0:
                lap("seeds")
                return nothing(f"no surface point reaches objectness {self.min_objectness} and graspness "
                               f"{self.min_graspness} (best {objectness.max():.2f} / {graspness.max():.2f} "
                               f"of {len(points)} points)")
            top = usable[np.argsort(-graspness[usable], kind="stable")[:cfg.seed_candidates]]
            chosen = top[farthest_point_sampling(points[top].astype(np.float64), self.seeds)]
            seed_p = float_tensor(points[chosen], device)
            condition = features[chosen]
            lap("seeds")
            generator = torch.Generator(device=device).manual_seed(self.seed)
            x = sample_poses(model, condition, seed_p, self.scheduler, self.rounds, generator, self.guidance)
            at = seed_p.repeat_interleave(self.rounds, 0)
            cond = condition.repeat_interleave(self.rounds, 0)
            R_t, t_t = to_pose(x, at, cfg.translation_scale_m)
            lap("diffusion")
            x_proj = to_x(R_t, t_t, at, cfg.translation_scale_m)
            ll = log_likelihood(model, x_proj, cond, self.scheduler, cfg.likelihood_timesteps,
                                self.seed).cpu().numpy()
            q_grasp, q_pre = (q.cpu().numpy().astype(np.float64) for q in model.joints(cond, x_proj))
            lap("likelihood_joints")
        R, t = R_t.cpu().numpy().astype(np.float64), t_t.cpu().numpy().astype(np.float64)
        g = np.repeat(graspness[chosen], self.rounds)
        o = np.repeat(objectness[chosen], self.rounds)
        rank = ll + self.eta * g
        n = len(R)
        angle = None
        aimed = np.ones(n, bool)
        if self.approach is not None:
            angle = np.degrees(np.arccos(np.clip(R[:, :, 2] @ self.approach, -1.0, 1.0)))
            aimed = angle <= self.max_angle_deg
        cloud = scene.points_m[scene.object_points_mask(clearance_m=0.003)]
        tree = cKDTree(cloud) if len(cloud) else None
        pre_palm, grasp_palm = leap.digit_points(q_pre), leap.digit_points(q_grasp)

        def feasible(t: np.ndarray) -> np.ndarray:
            ok = aimed.copy()
            ok[ok] &= self._palm_ok(scene, cloud, R[ok], t[ok], tree)
            ok[ok] &= self._digits_ok(scene, R[ok], t[ok], pre_palm[ok], grasp_palm[ok])
            return ok

        ok = feasible(t)
        retreat_m = np.zeros(n)
        if not ok.any() and self.max_retreat_m > 0:
            # Backed-off poses hold less often than ones feasible where they were sampled (tuning piles),
            # so they are the fallback when there are none.
            t_back = self._retreat_from_table(R, t, pre_palm, grasp_palm)
            retreat_m = np.linalg.norm(t_back - t, axis=1)
            t, ok = t_back, feasible(t_back) & (retreat_m > 0)
            if self.region is not None:  # backing off must not take the grasp out of the asked-for region
                ok &= np.linalg.norm(t - self.region[:3], axis=1) <= self.region[3]
        lap("filters")
        if not ok.any():
            return nothing(f"all {n} sampled grasps ({len(chosen)} seeds x {self.rounds}) collide, leave the "
                           "workspace" + (f" or point more than {self.max_angle_deg:.0f} deg off the approach"
                                          if self.approach is not None else "")
                           + (f", also backed off up to {self.max_retreat_m:.3f} m from the table"
                              if self.max_retreat_m > 0 else ""))
        log_p_held, gamma = None, 0.0
        if self.evaluator is not None:
            gamma = self.evaluator_weight
            log_p_held = np.zeros(n)
            log_p_held[ok] = self.evaluator.log_p_held(scene.tsdf_grid, R[ok], t[ok], q_grasp[ok], q_pre[ok])
            rank = rank + self.evaluator_weight * log_p_held
            lap("evaluator")
        order = [int(i) for i in np.argsort(-rank, kind="stable") if ok[i]]
        kept: list[int] = []
        for i in order:
            if not kept or not np.any((np.linalg.norm(t[kept] - t[i], axis=1) < 0.01)
                                      & (_rotation_angles(R[i], R[kept]) < np.radians(30))):
                kept.append(i)
            if len(kept) >= self.max_grasps:
                break
        tips = leap.tip_positions(q_pre[kept])
        apertures = np.maximum(tips[:, 1, 1] - tips[:, 3, 1], 0.0)  # leap.aperture_m, batched
        grasps = []
        for i, width in zip(kept, apertures):
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R[i], t[i]
            info = {"graspness": float(g[i]), "objectness": float(o[i]), "log_likelihood": float(ll[i]),
                    "seed_m": at[i].tolist()}
            if log_p_held is not None:
                info["p_held"] = float(np.exp(log_p_held[i]))
            # ll, log P <= 0 and graspness <= 1: in [0, 1], a geometric mean over the terms, in rank order.
            score = float(np.clip(np.exp((rank[i] - self.eta) / (1.0 + gamma)), 0.0, 1.0))
            if retreat_m[i] > 0:
                info["table_retreat_m"] = float(retreat_m[i])
            if angle is not None:
                info["approach_angle_deg"] = float(angle[i])
            grasps.append(Grasp(T, float(width), score, self.name, ws.frame_id, info,
                                pregrasp_joints=q_pre[i], grasp_joints=q_grasp[i]))
        lap("output")
        asked = [f"approach {self.approach.round(3).tolist()}" if self.approach is not None else "",
                 f"closing {self.closing.round(3).tolist()}" if self.closing is not None else "",
                 f"region {self.region.tolist()}" if self.region is not None else ""]
        asked = [a for a in asked if a]
        return PlanResult(grasps, self.name, timings, (
            f"{len(grasps)} LEAP grasps from {len(chosen)} seeds x {self.rounds} poses ({int(ok.sum())} feasible, "
            f"{self.denoising_steps} denoising steps" + (f", guided by {', '.join(asked)} at scale "
                                                          f"{self.guidance.scale}" if asked else "")
            + (", backed off the table: none was feasible where sampled" if retreat_m.any() else "")
            + (", ranked by the grasp evaluator" if log_p_held is not None else "") + ")"))
