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

``template`` = a grasp template file (``diffgrasp template make``) replaces the predict step by contact-map
transfer (``transfer.transfer``: the template's contacts carried onto the target's observed points;
``transfer_weights``, ``transfer_samples``). ``transfer_hands`` says which hands come of the maps: ``fit``, a
hand pose and joints fitted to the selected contacts (the template's posture); ``sampled``, this model's own
poses seeded on the points the maps put on the template's part; ``both`` (the default), all of them. Filters are
the same; the key is γ · log P(held) + log(part share) - contact error / ``CONTACT_ERROR_SCALE_M`` (part share:
the closing fingertips' share on points the maps put on the template's part; a sampled hand has no contact
error). The target is the request's, or the scene's one object: a scene of several separate objects without a
target is refused.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...devices import float_tensor, module_device
from ...robots import leap
from ...robots.registry import Embodiment, get_robot
from ...scene.scene import Scene
from ...scene.workspace import STANDARD_WORKSPACE, Workspace
from ..filters import ObservedSurface, hits_cloud, in_observed_solid, suppress_duplicate_poses
from ..grasp import Grasp
from ..planner import TARGET_REACH_M, CandidatePlanner, Candidates, NoGrasp, PlanRecord, register_planner
from .evaluator import DEFAULT_EVALUATOR_WEIGHTS, load_evaluator
from .pretrained import DEFAULT_WEIGHTS, load_pretrained
from .templates import link_boxes

if TYPE_CHECKING:
    import torch

TABLE_CLEARANCE_M = 0.003  # the digits' boxes stay this far above the table
# Transferred grasps: a pad 1 cm off its contact costs as much as P(held) falling by a factor e.
CONTACT_ERROR_SCALE_M = 0.01
# A transferred grasp is planned as the executor's approach needs it: the palm backed off its contact pose along
# the approach by a standoff no longer than the guarded approach (which goes on until the hand touches), the
# digits opened from their contact joints q_c on the line to the closed hand q_x the executor closes towards,
# pre-grasp q_c + open (q_c - q_x); grasp q_c + SQUEEZE (q_x - q_c). Two (standoff m, open) variants per fit, both
# candidates: the filters drop those that collide (the wider one clears handles and rims more often), the
# evaluator ranks the rest.
TRANSFER_APPROACHES = ((0.02, 0.3), (0.03, 0.4))
TRANSFER_SQUEEZE = 0.15
OBJECT_GAP_M = 0.01  # observed points this far apart belong to separate objects (transfer without a target)
# Ranking given grasps: the closing posture's fingertips (targets past contact) reach this near observed
# surface (the shipped model's own grasps on a box: 2.5 cm at most; one 10 cm off an object: 15 cm).
MAX_TIP_GAP_M = 0.04
TRANSFER_HANDS = ("fit", "sampled", "both")
# A point is on the template's part when at least half of the maps' draws put it there. Sampled transferred
# hands are seeded on such points, thinned to at most TRANSFER_SEEDS; a closing fingertip counts on the part when
# the observed point nearest it, no farther than PART_TIP_REACH_M, is such a point.
PART_VOTE = 0.5
TRANSFER_SEEDS = 16
PART_TIP_REACH_M = 0.02
MIN_PART_SHARE = 0.05  # the part share's floor in the key: a hand off the part is ranked down, not out
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


def _or_default(value, default):
    return default if value is None else value


def _evaluator_option(evaluator: str | Path | None, device, workspace: Workspace):
    """The grasp evaluator an ``evaluator`` option names: a folder, the shipped one when not given, or
    None for "none"."""
    if isinstance(evaluator, str) and evaluator.strip().lower() == "none":
        return None
    loaded = load_evaluator(Path(evaluator) if evaluator else DEFAULT_EVALUATOR_WEIGHTS, device)
    _check_trained_grid("LEAP evaluator", loaded.config, workspace)
    return loaded


@register_planner("leap")
class LeapPlanner(CandidatePlanner):
    def __init__(self, robot: Embodiment, workspace: Workspace = STANDARD_WORKSPACE, weights: str | Path | None = None,
                 rounds: int | None = None, denoising_steps: int | None = None, seeds: int | None = None,
                 eta: float | None = None, approach=None, closing=None, region=None, guidance: float | None = None,
                 max_angle: float | None = None, min_objectness: float | None = None,
                 min_graspness: float | None = None, max_grasps: int | None = None,
                 retreat: float | None = None, evaluator: str | Path | None = None,
                 evaluator_weight: float | None = None, template: str | Path | None = None,
                 transfer_weights: str | Path | None = None, transfer_samples: int = 8, transfer_hands: str = "both",
                 seed: int = 0, device: str = "auto"):
        if getattr(robot, "hand", None) != "leap":
            raise ValueError(f"the leap planner plans for LEAP-hand embodiments (xarm_leap, ur5_leap), not "
                             f"{robot.name!r} (hand {robot.hand!r}); use igd or baseline for a parallel gripper")
        super().__init__(robot, workspace)
        from ..igd.scheduler import DDIMScheduler

        self.model = load_pretrained(Path(weights) if weights else DEFAULT_WEIGHTS, device)
        self.device = module_device(self.model)
        cfg = self.model.config
        _check_trained_grid("LEAP model", cfg, workspace)
        self.rounds = int(_or_default(rounds, cfg.rounds))
        self.denoising_steps = int(_or_default(denoising_steps, cfg.sampling_steps))
        self.seeds = int(_or_default(seeds, cfg.seeds))
        self.max_grasps = int(_or_default(max_grasps, cfg.max_grasps))
        for name in ("rounds", "denoising_steps", "seeds", "max_grasps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        self.eta = float(_or_default(eta, cfg.eta))
        self.evaluator_weight = float(_or_default(evaluator_weight, cfg.evaluator_weight))
        if self.evaluator_weight < 0:
            raise ValueError(f"evaluator_weight must be non-negative, got {self.evaluator_weight}")
        self.evaluator = _evaluator_option(evaluator, self.device, workspace)
        self.min_objectness = float(_or_default(min_objectness, cfg.min_objectness))
        self.min_graspness = float(_or_default(min_graspness, cfg.min_graspness))
        self.max_angle_deg = float(_or_default(max_angle, cfg.max_approach_angle_deg))
        self.max_retreat_m = float(_or_default(retreat, cfg.max_table_retreat_m))
        if self.max_retreat_m < 0:
            raise ValueError(f"retreat must be non-negative metres, got {self.max_retreat_m}")
        self._set_request(approach, closing, region, float(_or_default(guidance, cfg.guidance_scale)))
        self.scheduler = DDIMScheduler(cfg.train_steps, device=self.device)
        self.scheduler.set_timesteps(self.denoising_steps)
        self.seed = seed
        self.gripper = robot.gripper  # leap.PARALLEL_PROXY: palm and knuckles box + finger boxes
        self.transfer = None
        if template not in (None, ""):
            from .transfer.transfer import TemplateTransfer

            self.transfer = TemplateTransfer.from_files(template, transfer_weights, device=device,
                                                        samples=int(transfer_samples), seed=seed)
        if transfer_hands not in TRANSFER_HANDS:
            raise ValueError(f"transfer_hands must be one of {', '.join(TRANSFER_HANDS)}, got {transfer_hands!r}")
        self.transfer_hands = transfer_hands
        self.transfer_seeds = TRANSFER_SEEDS if seeds is None else self.seeds

    def _set_request(self, approach, closing, region, scale: float) -> None:
        """The asked-for ``approach``, ``closing`` axis and ``region`` (options as given), and the guidance of
        the sampling towards them at ``scale``."""
        from .sampler import Guidance

        self.approach = parse_direction(approach, "approach")
        self.closing = parse_direction(closing, "closing")
        self.region = None if region in (None, "") else parse_vector(region, 4, "region (x:y:z:radius)")
        if self.region is not None and self.region[3] <= 0:
            raise ValueError(f"the region radius must be positive, got {self.region[3]}")
        if scale < 0:
            raise ValueError(f"guidance must be non-negative, got {scale}")
        self.guidance = Guidance(self.approach, self.closing,
                                 None if self.region is None else self.region[:3],
                                 0.0 if self.region is None else float(self.region[3]), scale)

    def _in_region(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) workspace points -> (n,) whether each is in the asked-for ``region`` sphere."""
        return np.linalg.norm(points - self.region[:3], axis=1) <= self.region[3]

    @classmethod
    def from_pretrained(cls, path: str | Path, robot: str | Embodiment = "xarm_leap",
                        workspace: Workspace = STANDARD_WORKSPACE, **options) -> "LeapPlanner":
        return cls(get_robot(robot) if isinstance(robot, str) else robot, workspace, weights=path, **options)

    # -- predict ----------------------------------------------------------------------------------
    def _predict(self, scene: Scene, record: PlanRecord) -> Candidates:
        """``rounds`` wrist poses by DDIM at each seed (the most graspable observed points, spread out), with
        the predicted grasp and pre-grasp postures and the pose's log-likelihood under the model."""
        import torch

        if self.transfer is not None:
            return self._transferred(scene, record)
        points = self._observed_points(scene)
        with torch.inference_mode():
            planes = self.model.encode(float_tensor(scene.tsdf_grid, self.device)[None])
            record.lap("encoder")
            seeds, features, objectness, graspness = self._seeds(planes, points)
            record.lap("seeds")
        if len(seeds) == 0:
            raise NoGrasp(f"no surface point reaches objectness {self.min_objectness} and graspness "
                          f"{self.min_graspness} (best {objectness.max():.2f} / {graspness.max():.2f} "
                          f"of {len(points)} points)")
        return self._sampled(points, seeds, features, objectness, graspness, record)

    def _sampled(self, points: np.ndarray, seeds: np.ndarray, features, objectness: np.ndarray,
                 graspness: np.ndarray, record: PlanRecord) -> Candidates:
        """``rounds`` poses at each of the ``seeds`` (indices of ``points``, whose features, objectness and
        graspness are given) with their postures and log-likelihood."""
        import torch

        from .sampler import log_likelihood, sample_poses, to_pose, to_x

        model, cfg, device = self.model, self.model.config, self.device
        with torch.inference_mode():
            seed_p, condition = float_tensor(points[seeds], device), features[seeds]
            generator = torch.Generator(device=device).manual_seed(self.seed)
            x = sample_poses(model, condition, seed_p, self.scheduler, self.rounds, generator, self.guidance)
            at = seed_p.repeat_interleave(self.rounds, 0)
            cond = condition.repeat_interleave(self.rounds, 0)
            R, t = to_pose(x, at, cfg.translation_scale_m)
            record.lap("diffusion")
            x_proj = to_x(R, t, at, cfg.translation_scale_m)
            ll = log_likelihood(model, x_proj, cond, self.scheduler, cfg.likelihood_timesteps, self.seed).cpu().numpy()
            q_grasp, q_pre = (q.cpu().numpy().astype(np.float64) for q in model.joints(cond, x_proj))
            record.lap("likelihood_joints")
        site = np.repeat(np.arange(len(seeds)), self.rounds)
        scores = {"log_likelihood": ll, "graspness": graspness[seeds][site], "objectness": objectness[seeds][site]}
        return Candidates(R.cpu().numpy().astype(np.float64), t.cpu().numpy().astype(np.float64), site,
                          points[seeds][site], scores, pregrasp_joints=q_pre, grasp_joints=q_grasp)

    def _transferred(self, scene: Scene, record: PlanRecord) -> Candidates:
        """The template's grasp transferred onto the target (``transfer.transfer``): the fitted hands, this
        model's hands sampled on the template's part, or both (``transfer_hands``), each with its part share."""
        points = self._transfer_target(scene)
        try:
            transfer = self.transfer.transfer(points, self.workspace.table_height_m,
                                              None if scene.target is None else scene.target.category)
        except ValueError as error:  # a target of another category, or too few observed points of it
            raise NoGrasp(str(error)) from None
        record.lap("transfer")
        hands = []
        if self.transfer_hands != "sampled" and transfer.grasps:
            hands.append(self._fitted(transfer))
        if self.transfer_hands != "fit":
            hands.append(self._sampled_on_part(scene, transfer, record))
        hands = [h for h in hands if h is not None]
        if not hands:
            raise NoGrasp("no transferred grasp: " + " and ".join(self._no_hands(transfer)))
        candidates = Candidates.concatenate(hands)
        candidates.scores["part_share"] = self._part_share(candidates, transfer)
        return candidates

    def _no_hands(self, transfer) -> list[str]:
        """Why each kind of hand asked for (``transfer_hands``) gave none."""
        template, why = self.transfer.template, []
        if self.transfer_hands != "sampled":
            why.append(f"none of the {self.transfer.samples} draws of the maps gave a fit ("
                       + "; ".join(sorted(set(transfer.reasons))) + ")")
        if self.transfer_hands != "fit":
            why.append(f"no point the maps put on the {template.part_names[template.main_contact_part]}"
                       + (" in the region" if self.region is not None else "") + f" reaches objectness "
                       f"{self.min_objectness} and graspness {self.min_graspness}")
        return why

    def _fitted(self, transfer) -> Candidates:
        """The fitted hands, planned as the executor approaches: backed off their contacts and opened
        (``TRANSFER_APPROACHES``), closing past them (``TRANSFER_SQUEEZE``)."""
        grasps = transfer.grasps
        T_contact = np.stack([g.T_workspace_palm for g in grasps]) @ leap.T_PALM_TCP
        q_contact = np.stack([g.joints for g in grasps])
        q_closed = leap.DEXTEROUS_CLOSED_Q
        q_grasp = np.clip(q_contact + TRANSFER_SQUEEZE * (q_closed - q_contact), leap.LOWER_RAD, leap.UPPER_RAD)
        scores = {"contact_error_m": np.array([g.contact_error_m for g in grasps])}
        links = tuple(link_boxes())
        contacts = np.full((len(grasps), len(links), 3), np.nan)  # per link, NaN: it does not touch
        for i, g in enumerate(grasps):
            contacts[i, [links.index(link) for link in g.links]] = g.contacts_workspace_m
        centres = np.stack([g.contacts_workspace_m.mean(axis=0) for g in grasps])
        variants = []
        for standoff_m, opening in TRANSFER_APPROACHES:
            q_pre = np.clip(q_contact + opening * (q_contact - q_closed), leap.LOWER_RAD, leap.UPPER_RAD)
            variants.append(Candidates(T_contact[:, :3, :3], T_contact[:, :3, 3] - standoff_m * T_contact[:, :3, 2],
                                       np.arange(len(grasps)), centres, scores, pregrasp_joints=q_pre,
                                       grasp_joints=q_grasp, info={"contacts_m": contacts}))
        return Candidates.concatenate(variants)

    def _sampled_on_part(self, scene: Scene, transfer, record: PlanRecord) -> Candidates | None:
        """This model's poses (``_sampled``) seeded as its own are (``_seeds``: the most graspable points, spread
        out), among the points the maps put on the template's part, ``seeds`` of them when given, else
        ``TRANSFER_SEEDS``; None when there are none. Sites are numbered after the fitted hands'."""
        import torch

        points = transfer.points_workspace_m[transfer.on_part >= PART_VOTE].astype(np.float32)
        if self.region is not None:
            points = points[self._in_region(points)]
        if len(points) == 0:
            return None
        with torch.inference_mode():
            planes = self.model.encode(float_tensor(scene.tsdf_grid, self.device)[None])
            seeds, features, objectness, graspness = self._seeds(planes, points, self.transfer_seeds)
        if len(seeds) == 0:
            return None
        sampled = self._sampled(points, seeds, features, objectness, graspness, record)
        n = len(sampled)
        return Candidates(sampled.R, sampled.t, sampled.site + len(transfer.grasps), sampled.site_m,
                          {"contact_error_m": np.full(n, np.nan)}, pregrasp_joints=sampled.pregrasp_joints,
                          grasp_joints=sampled.grasp_joints,
                          info={"contacts_m": np.full((n, len(link_boxes()), 3), np.nan)})

    def _part_share(self, candidates: Candidates, transfer) -> np.ndarray:
        """Per candidate, the share of its closing fingertips (``grasp_joints``) on the template's part: the
        observed point nearest the tip within ``PART_TIP_REACH_M`` is on the part (``PART_VOTE``)."""
        from scipy.spatial import cKDTree

        tips = self._world_digit_points(candidates.R, candidates.t, leap.tip_positions(candidates.grasp_joints))
        distance, nearest = cKDTree(transfer.points_workspace_m).query(tips.reshape(-1, 3))
        on_part = (distance <= PART_TIP_REACH_M) & (transfer.on_part[nearest] >= PART_VOTE)
        return on_part.reshape(tips.shape[:2]).mean(axis=1)

    def _transfer_target(self, scene: Scene) -> np.ndarray:
        """The observed points of the object to transfer onto: the target's, or the scene's only object."""
        points = scene.points_m[scene.target_points_mask() & self.workspace.inside(scene.points_m)]
        if scene.target is None and len(points):
            import open3d as o3d

            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
            labels = np.asarray(cloud.cluster_dbscan(eps=OBJECT_GAP_M, min_points=5))
            sizes = np.bincount(labels[labels >= 0])
            objects = int(np.sum(sizes >= 0.05 * len(points)))
            if objects > 1:
                raise NoGrasp(f"the scene holds {objects} separate objects: a template transfer needs the target "
                              "(the GraspPlanning request's target) to choose one")
        return points

    def _at_target(self, grasp: Grasp, target) -> bool:
        """A fitted transferred grasp, planned backed off its contacts, is at the target when its contacts are."""
        if grasp.info.get("contacts_m"):
            return bool(target.contains(np.array(list(grasp.info["contacts_m"].values())), TARGET_REACH_M).all())
        return super()._at_target(grasp, target)

    def _observed_points(self, scene: Scene) -> np.ndarray:
        """(n, 3) float32 observed object points to seed at: in the workspace (at the target, in the
        ``region``), a random subset of at most ``max_points``."""
        ws, max_points = self.workspace, self.model.config.max_points
        index = np.flatnonzero(scene.target_points_mask() & ws.inside(scene.points_m))
        if self.region is not None:
            index = index[self._in_region(scene.points_m[index])]
            if len(index) == 0:
                raise NoGrasp(f"no observed object point within {self.region[3]:.3f} m of {self.region[:3].tolist()}")
        if len(index) > max_points:
            index = np.sort(np.random.default_rng(self.seed).choice(index, max_points, replace=False))
        return scene.points_m[index].astype(np.float32)

    def _seeds(self, planes, points: np.ndarray, count: int | None = None
               ) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]:
        """The seeds (indices of ``points``): of the points reaching ``min_objectness`` and ``min_graspness``,
        the ``seed_candidates`` most graspable thinned to ``count`` (default ``seeds``) by farthest-point
        sampling; with every point's features, objectness and graspness."""
        import torch

        from .sampler import farthest_point_sampling

        model = self.model
        features = model.point_features(planes, float_tensor(points, self.device)[None])[0]
        objectness = torch.sigmoid(model.objectness_logits(features)).cpu().numpy()
        graspness = torch.sigmoid(model.graspness_logits(features)).cpu().numpy()
        usable = np.flatnonzero((objectness >= self.min_objectness) & (graspness >= self.min_graspness))
        if len(usable) == 0:
            return usable, features, objectness, graspness
        top = usable[np.argsort(-graspness[usable], kind="stable")[:model.config.seed_candidates]]
        seeds = top[farthest_point_sampling(points[top].astype(np.float64), count or self.seeds)]
        return seeds, features, objectness, graspness

    # -- filter -------------------------------------------------------------------------------------
    def _filter(self, scene: Scene, sampled: Candidates, record: PlanRecord) -> Candidates:
        """The poses near the asked-for approach whose palm and digits (in the predicted postures) clear the
        table and the scene; when there are none, the same backed off the table (``_backed_off``)."""
        aimed = np.ones(len(sampled), bool)
        if self.approach is not None:
            angle = np.degrees(np.arccos(np.clip(sampled.R[:, :, 2] @ self.approach, -1.0, 1.0)))
            sampled = dataclasses.replace(sampled, info={**sampled.info, "approach_angle_deg": angle})
            record.narrow("approach_cone", aimed, angle <= self.max_angle_deg)
        if self.transfer is not None and self.region is not None:  # the seed, or the fitted contacts' centre
            record.narrow("in_region", aimed, self._in_region(sampled.site_m[aimed]))
        surface = ObservedSurface.of(scene)
        digits = leap.digit_points(sampled.pregrasp_joints), leap.digit_points(sampled.grasp_joints)
        ok = aimed.copy()
        self._narrow_to_clear_hands(scene, surface, sampled.R, sampled.t, *digits, ok, record)
        if ok.any():
            return sampled.take(ok)
        if self.max_retreat_m > 0 and self.transfer is None:  # backed off, a transferred pad leaves its contact
            # Backed-off poses hold less often than ones feasible where they were sampled (tuning piles),
            # so they are the fallback when there are none.
            backed_off = self._backed_off(scene, surface, sampled, aimed, *digits, record)
            if len(backed_off):
                return backed_off
        off_approach = (f" or point more than {self.max_angle_deg:.0f} deg off the approach"
                        if self.approach is not None else "")
        if self.transfer is not None:
            raise NoGrasp(f"all {len(sampled)} transferred grasps collide, leave the workspace{off_approach}"
                          + (" or leave the region" if self.region is not None else "")
                          + " (removed by " + ", ".join(f"{name} {n}" for name, n in record.filtered.items() if n) + ")")
        raise NoGrasp(f"all {len(sampled)} sampled grasps ({sampled.site_count} seeds x {self.rounds}) collide, "
                      f"leave the workspace{off_approach}" + (f", also backed off up to {self.max_retreat_m:.3f} m "
                                                               "from the table" if self.max_retreat_m > 0 else ""))

    def _backed_off(self, scene: Scene, surface: ObservedSurface, sampled: Candidates, aimed: np.ndarray,
                    pre_palm: np.ndarray, grasp_palm: np.ndarray, record: PlanRecord) -> Candidates:
        """The ``aimed`` poses (mask) whose digits reach under the table, moved back along their approach
        (``_retreat_from_table``), that then clear the table and the scene and stay in the ``region``."""
        t = self._retreat_from_table(sampled.R, sampled.t, pre_palm, grasp_palm)
        retreat_m = np.linalg.norm(t - sampled.t, axis=1)
        ok = aimed.copy()
        record.narrow("table_retreat", ok, retreat_m[ok] > 0)
        if self.region is not None:  # backing off must not take the grasp out of the asked-for region
            record.narrow("in_region", ok, self._in_region(t[ok]))
        self._narrow_to_clear_hands(scene, surface, sampled.R, t, pre_palm, grasp_palm, ok, record)
        moved = dataclasses.replace(sampled, t=t, info={**sampled.info, "table_retreat_m": retreat_m})
        return moved.take(ok)

    def _narrow_to_clear_hands(self, scene: Scene, surface: ObservedSurface, R: np.ndarray, t: np.ndarray,
                               pre_palm: np.ndarray, grasp_palm: np.ndarray, ok: np.ndarray,
                               record: PlanRecord) -> None:
        """Narrow the mask ``ok`` of poses (R, t) to those passing ``_palm_ok`` and then ``_digits_ok``."""
        record.narrow("palm_clear", ok, self._palm_ok(scene, surface, R[ok], t[ok]))
        record.narrow("digits_clear", ok, self._digits_ok(scene, R[ok], t[ok], pre_palm[ok], grasp_palm[ok]))

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

    def _palm_ok(self, scene: Scene, surface: ObservedSurface, R: np.ndarray, t: np.ndarray) -> np.ndarray:
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
        if len(surface.points) and ok.any():
            ok[ok] &= ~hits_cloud(surface.points, R[ok], t[ok], [palm], tree=surface.tree)
        return ok

    # -- rank ---------------------------------------------------------------------------------------
    def _rank(self, scene: Scene, feasible: Candidates, record: PlanRecord) -> list[Grasp]:
        """Ranked with the evaluator's log P(held) among the scores, when there is an evaluator."""
        if self.evaluator is not None:  # a model pass per grasp: for the feasible ones only
            log_p_held = self.evaluator.log_p_held(scene.tsdf_grid, feasible.R, feasible.t, feasible.grasp_joints,
                                                   feasible.pregrasp_joints)
            feasible = dataclasses.replace(feasible, scores={**feasible.scores, "log_p_held": log_p_held})
            record.lap("evaluator")
        return super()._rank(scene, feasible, record)

    def _quality(self, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Key: log-likelihood + η · graspness + γ · log P(held) (the evaluator's; γ = 0 without it). Score:
        exp((key - η) / (1 + γ)), a geometric mean over the terms in [0, 1] (ll, log P <= 0 and graspness
        <= 1). A given grasp has no likelihood or graspness: its key is log P(held), its score P(held)."""
        if "part_share" in scores:  # transferred: P(held), on the template's part, how well pads meet contacts
            gamma = self.evaluator_weight if "log_p_held" in scores else 0.0
            key = (gamma * scores.get("log_p_held", 0.0) + np.log(np.maximum(scores["part_share"], MIN_PART_SHARE))
                   - np.nan_to_num(scores["contact_error_m"]) / CONTACT_ERROR_SCALE_M)
            return key, np.clip(np.exp(key / (2.0 + gamma)), 0.0, 1.0)
        if "log_likelihood" not in scores:
            return scores["log_p_held"], np.exp(scores["log_p_held"])
        key = scores["log_likelihood"] + self.eta * scores["graspness"]
        gamma = 0.0
        if "log_p_held" in scores:
            gamma = self.evaluator_weight
            key = key + gamma * scores["log_p_held"]
        # Scores in float64: without the evaluator's term the key is float32.
        return key, np.clip(np.exp((key.astype(np.float64) - self.eta) / (1.0 + gamma)), 0.0, 1.0)

    def _distinct(self, ranked: Candidates, limit: int) -> list[int]:
        return suppress_duplicate_poses(ranked.R, ranked.t, limit)

    def _grasps(self, ranked: Candidates, scores: np.ndarray) -> list[Grasp]:
        tips = leap.tip_positions(ranked.pregrasp_joints)
        apertures = np.maximum(tips[:, 1, 1] - tips[:, 3, 1], 0.0)  # leap.aperture_m, batched
        return [Grasp(ranked.pose(i), float(apertures[i]), float(scores[i]), self.name, self.workspace.frame_id,
                      self._grasp_info(ranked, i), pregrasp_joints=ranked.pregrasp_joints[i],
                      grasp_joints=ranked.grasp_joints[i]) for i in range(len(ranked))]

    @staticmethod
    def _grasp_info(ranked: Candidates, i: int) -> dict:
        scores = ranked.scores
        names = ("contact_error_m", "part_share") if "part_share" in scores \
            else ("graspness", "objectness", "log_likelihood")
        info = {name: float(scores[name][i]) for name in names if np.isfinite(scores[name][i])}
        info["seed_m"] = ranked.site_m[i].tolist()
        if "log_p_held" in scores:
            info["p_held"] = float(np.exp(scores["log_p_held"][i]))
        for name in ("table_retreat_m", "approach_angle_deg"):
            if name in ranked.info:
                info[name] = float(ranked.info[name][i])
        if "contacts_m" in ranked.info:  # a transferred grasp: {link: where it touches}
            info["contacts_m"] = {link: c.tolist() for link, c in zip(link_boxes(), ranked.info["contacts_m"][i])
                                  if np.isfinite(c).all()}
        return info

    def _summary(self, sampled: Candidates, feasible: Candidates, grasps: list[Grasp]) -> str:
        asked = [f"approach {self.approach.round(3).tolist()}" if self.approach is not None else "",
                 f"closing {self.closing.round(3).tolist()}" if self.closing is not None else "",
                 f"region {self.region.tolist()}" if self.region is not None else ""]
        asked = [a for a in asked if a]
        if self.transfer is not None:
            template = self.transfer.template
            fitted = int(np.isfinite(sampled.scores["contact_error_m"]).sum())
            return (f"{len(grasps)} LEAP grasps transferred from a {template.category} template ({template.task}) "
                    f"from {self.transfer.samples} sampled contact maps ({fitted} fitted and "
                    f"{len(sampled) - fitted} sampled on the {template.part_names[template.main_contact_part]} hands, "
                    f"{len(feasible)} feasible" + (", ranked by the grasp evaluator" if self.evaluator is not None
                                                   else "") + ")")
        return (f"{len(grasps)} LEAP grasps from {sampled.site_count} seeds x {self.rounds} poses ({len(feasible)} "
                f"feasible, {self.denoising_steps} denoising steps" + (f", guided by {', '.join(asked)} at scale "
                                                                       f"{self.guidance.scale}" if asked else "")
                + (", backed off the table: none was feasible where sampled" if "table_retreat_m" in feasible.info
                   else "")
                + (", ranked by the grasp evaluator" if self.evaluator is not None else "") + ")")

    def _check_and_score(self, scene: Scene, grasps, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A fingertip of the closing posture near observed surface (the hand closes on something, not on
        air), and the palm and digit checks of planning in each grasp's own postures (a plain grasp: the
        pre-shape for its width, then the closed hand); the quality (``_quality``) is the evaluator's P(held)."""
        if self.evaluator is None:
            raise ValueError("ranking given LEAP grasps needs the grasp evaluator (this planner has evaluator=none)")
        n_joints = len(self.robot.hand_joint_names)
        if any(g.dexterous and len(g.grasp_joints) != n_joints for g in grasps):
            raise ValueError(f"a given grasp has hand joints for another hand: the LEAP hand has {n_joints}")
        q_pre = np.stack([g.pregrasp_joints if g.dexterous else self.robot.hand_posture(g.width_m) for g in grasps])
        q_grasp = np.stack([g.grasp_joints if g.dexterous else self.robot.hand_posture(0.0) for g in grasps])
        surface = ObservedSurface.of(scene)
        if surface.tree is None:
            return np.zeros(len(R), bool), np.zeros(len(R))
        tips = self._world_digit_points(R, t, leap.tip_positions(q_grasp))
        ok = surface.tree.query(tips.reshape(-1, 3))[0].reshape(tips.shape[:2]).min(1) <= MAX_TIP_GAP_M
        ok &= self._palm_ok(scene, surface, R, t)
        if ok.any():
            ok[ok] &= self._digits_ok(scene, R[ok], t[ok], leap.digit_points(q_pre[ok]), leap.digit_points(q_grasp[ok]))
        log_p_held = self.evaluator.log_p_held(scene.tsdf_grid, R, t, q_grasp, q_pre)
        return ok, self._quality({"log_p_held": log_p_held})[1]
