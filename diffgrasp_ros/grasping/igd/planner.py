"""The ``igd`` method: Implicit Grasp Diffusion over the 40³ TSDF (see ``model``).

Inference: candidate centres near the observed objects -> affordance a(p), top-k -> ``rounds``
orientations per centre by DDIM (``denoising_steps``) -> classifier v(g) -> in order of q = a·v, the
first orientation per centre that holds observed surface between its open fingers and clears the table,
the workspace bounds and the scene -> its opening fitted to what it holds -> rank, suppress
near-duplicates, threshold.

``evaluator`` selects the ablations of the two-stage evaluator: "affordance" ranks by a(p) alone (the
first feasible orientation per centre), "classifier" draws the top-k centres at random from the
candidates and ranks by v(g) alone.

``device`` is where the model runs: auto (CUDA when available, else the CPU), cpu, cuda, cuda:N or mps.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ...devices import float_tensor, module_device
from ...robots.registry import Embodiment, get_robot
from ...scene.scene import Scene
from ...scene.workspace import STANDARD_WORKSPACE, Workspace
from ..filters import held_extent, hits_cloud, penetrates_tsdf, suppress_duplicates
from ..grasp import Grasp, PlanResult
from ..planner import TARGET_REACH_M, GraspPlanner, register_planner
from .candidates import candidate_mask
from .pretrained import DEFAULT_WEIGHTS, load_pretrained


EVALUATORS = ("both", "affordance", "classifier")
FEASIBILITY_BATCH = 64
OBJECT_GAP_M = 0.01  # along the closing axis, a wider gap in the observed surface separates two objects
MIN_HELD_POINTS = 16  # TSDF surface points (3.75 mm voxels) between the open fingers: an object, not air or a sliver
CENTRES_PER_GRASP = 3  # feasible centres gathered per returned grasp (duplicate suppression drops some)


@register_planner("igd")
class IGDPlanner(GraspPlanner):
    def __init__(self, robot: Embodiment, workspace: Workspace = STANDARD_WORKSPACE, weights: str | Path | None = None,
                 rounds: int | None = None, denoising_steps: int | None = None, top_k: int | None = None,
                 min_affordance: float | None = None, min_quality: float | None = None,
                 max_grasps: int | None = None, centre_stride: int | None = None, evaluator: str = "both",
                 min_held_points: int = MIN_HELD_POINTS, fit_opening: bool = True, seed: int = 0,
                 device: str = "auto"):
        super().__init__(robot, workspace)
        from .scheduler import DDIMScheduler

        self.model = load_pretrained(Path(weights) if weights else DEFAULT_WEIGHTS, device)
        self.device = module_device(self.model)
        cfg = self.model.config
        if (workspace.size_m, workspace.resolution) != (cfg.workspace_size_m, cfg.resolution):
            raise ValueError(f"this IGD model was trained for a {cfg.resolution}³ grid over {cfg.workspace_size_m} m, "
                             f"not {workspace.resolution}³ over {workspace.size_m} m")
        self.rounds = cfg.rounds if rounds is None else rounds
        self.denoising_steps = cfg.sampling_steps if denoising_steps is None else denoising_steps
        self.top_k = cfg.top_k if top_k is None else top_k
        self.min_affordance = cfg.min_affordance if min_affordance is None else min_affordance
        self.min_quality = cfg.min_quality if min_quality is None else min_quality
        self.max_grasps = cfg.max_grasps if max_grasps is None else max_grasps
        self.centre_stride = cfg.centre_stride if centre_stride is None else centre_stride
        for name in ("rounds", "denoising_steps", "top_k", "max_grasps", "centre_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if evaluator not in EVALUATORS:
            raise ValueError(f"evaluator must be one of {EVALUATORS}, got {evaluator!r}")
        self.evaluator = evaluator
        self.min_held_points = min_held_points
        self.fit_opening = fit_opening
        self.scheduler = DDIMScheduler(cfg.train_steps, device=self.device)
        self.scheduler.set_timesteps(self.denoising_steps)
        self.seed = seed
        self.gripper = robot.gripper

    @classmethod
    def from_pretrained(cls, path: str | Path, robot: str | Embodiment = "franka",
                        workspace: Workspace = STANDARD_WORKSPACE, **options) -> "IGDPlanner":
        """A planner with the weights saved in ``path`` (``pretrained.save_pretrained`` / ``diffgrasp train``)."""
        return cls(get_robot(robot) if isinstance(robot, str) else robot, workspace, weights=path, **options)

    # -- feasibility --------------------------------------------------------------------------------
    def _feasible(self, scene: Scene, cloud: np.ndarray, tree, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Grasps (R (n, 3, 3), t (n, 3)) with observed object points ``cloud`` (indexed by the k-d ``tree``)
        between their open fingers, whose open hand stays in bounds, above the table and out of the scene
        (its TSDF and ``cloud``)."""
        g, ws = self.gripper, self.workspace
        corners = np.einsum("nij,sj->nsi", R, g.corner_points(g.max_opening_m)) + t[:, None]
        count, _, _ = held_extent(cloud, R, t, g.closing_region(g.max_opening_m), tree)
        ok = count >= self.min_held_points
        ok &= ws.contains_grasp(t) & (corners[..., 2].min(1) > ws.table_height_m + 0.002)
        ok &= ~penetrates_tsdf(scene, R, t, g)
        ok[ok] &= ~hits_cloud(cloud, R[ok], t[ok], g.collision_boxes(g.max_opening_m), tree=tree)
        return ok

    def _predicted_widths(self, predicted) -> np.ndarray:
        """The model's normalised width prediction as the opening to pre-shape to (margin included)."""
        cfg = self.model.config
        return np.minimum(np.clip(predicted, 0.0, 1.0) * cfg.max_opening_m + cfg.width_margin_m,
                          self.gripper.max_opening_m)

    def _fit_opening(self, cloud, tree, R, t, predicted: np.ndarray) -> np.ndarray:
        """Openings wide enough for the object between the fingers (the run of observed surface nearest the
        TCP, plus the margin beyond its farther side), about the TCP: the model's width comes from
        simulated depth and can be narrower than what a real sensor shows, which puts the fingers on the
        object. A widened grasp whose fingers would hit observed surface keeps the ``predicted`` opening."""
        g, margin = self.gripper, self.model.config.width_margin_m
        _, y_min, y_max = held_extent(cloud, R, t, g.closing_region(g.max_opening_m), tree,
                                      max_gap_m=OBJECT_GAP_M)
        needed = 2.0 * np.maximum(np.abs(y_min), np.abs(y_max)) + 2.0 * margin
        widths = np.minimum(np.maximum(predicted, needed), g.max_opening_m)
        for i in np.flatnonzero(widths > predicted):
            if hits_cloud(cloud, R[i:i + 1], t[i:i + 1], g.finger_boxes(widths[i]), tree=tree)[0]:
                widths[i] = predicted[i]
        return widths

    def _check_and_score(self, scene: Scene, grasps, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The feasibility checks of planning, and the quality of the evaluator setting: a(p) at each TCP
        times v(g) of each grasp."""
        import torch

        cloud = scene.points_m[scene.object_points_mask(clearance_m=0.003)]
        ok = self._feasible(scene, cloud, cKDTree(cloud) if len(cloud) else None, R, t)
        model, device = self.model, self.device
        with torch.inference_mode():
            planes = model.encode(float_tensor(scene.tsdf_grid, device)[None])
            centres = float_tensor(t, device)[None]
            a = torch.sigmoid(model.affordance_logits(model.centre_features(planes, centres)[0])).cpu().numpy()
            logits, _ = model.evaluate(planes, centres, float_tensor(R, device)[None])
            v = torch.sigmoid(logits[0]).cpu().numpy()
        return ok, {"both": a * v, "affordance": a, "classifier": v}[self.evaluator].astype(np.float64)

    # -- planning -----------------------------------------------------------------------------------
    def _plan(self, scene: Scene) -> PlanResult:
        import torch

        timings: dict[str, float] = {}
        model, ws, device = self.model, self.workspace, self.device
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now

        with torch.inference_mode():
            planes = model.encode(float_tensor(scene.tsdf_grid, device)[None])
            lap("encoder")
            mask = candidate_mask(scene.tsdf_grid, ws, stride=self.centre_stride)
            if scene.target is not None:  # centres at the target only
                mask &= scene.target.contains(ws.voxel_centres(), TARGET_REACH_M).reshape(mask.shape)
            centres = ws.voxel_centres()[mask].astype(np.float32)
            if len(centres) == 0:
                return PlanResult([], self.name, timings, "no grasp found: no free space within reach of the objects")
            features = model.centre_features(planes, float_tensor(centres, device)[None])[0]
            affordance = torch.sigmoid(model.affordance_logits(features)).cpu().numpy()
            generator = torch.Generator(device=device).manual_seed(self.seed)
            if self.evaluator == "classifier":
                top = torch.randperm(len(centres), generator=generator, device=device).cpu().numpy()[: self.top_k]
            else:
                top = np.argsort(-affordance, kind="stable")[: self.top_k]
                top = top[affordance[top] >= self.min_affordance]
            lap("affordance")
            if len(top) == 0:
                return PlanResult([], self.name, timings, (
                    f"no grasp found: no centre's affordance reaches {self.min_affordance} "
                    f"(best {affordance.max():.2f} of {len(centres)} centres)"))
            rotations = model.sample_rotations(features[top], self.scheduler, self.rounds, generator)
            R = rotations.cpu().numpy()  # (k, N, 3, 3)
            lap("diffusion")
            k, n = R.shape[:2]
            R = R.reshape(-1, 3, 3).astype(np.float64)
            t = np.repeat(centres[top], n, axis=0).astype(np.float64)
            logits, width = model.evaluate(planes, float_tensor(t, device)[None], float_tensor(R, device)[None])
            v, width = torch.sigmoid(logits[0]).cpu().numpy(), width[0].cpu().numpy()
            a = np.repeat(affordance[top], n)
            quality = {"both": a * v, "affordance": a, "classifier": v}[self.evaluator]
            ranked = np.argsort(-quality, kind="stable")
            ranked = ranked[quality[ranked] >= self.min_quality]
            # Collision checks in rank order, a batch at a time: a centre's first feasible grasp is its best,
            # so the checks (most of a CPU plan) stop once enough centres have one.
            cloud = scene.points_m[scene.object_points_mask(clearance_m=0.003)]
            tree = cKDTree(cloud) if len(cloud) else None
            best: dict[int, int] = {}
            for start in range(0, len(ranked), FEASIBILITY_BATCH):
                batch = np.array([i for i in ranked[start:start + FEASIBILITY_BATCH] if i // n not in best], int)
                for i in batch[self._feasible(scene, cloud, tree, R[batch], t[batch])] if len(batch) else ():
                    best.setdefault(int(i) // n, int(i))
                if len(best) >= CENTRES_PER_GRASP * self.max_grasps:
                    break
            chosen = np.array(sorted(best.values(), key=lambda i: -quality[i]), int)
            lap("evaluation")
        if len(ranked) == 0:
            return PlanResult([], self.name, timings, (
                f"no grasp found: no grasp's quality reaches {self.min_quality} (best {quality.max():.2f} "
                f"of {k * n} sampled grasps at {k} centres)"))
        if len(chosen) == 0:
            return PlanResult([], self.name, timings, (
                f"no grasp found: all {len(ranked)} sampled grasps of quality {self.min_quality} or more "
                f"(at {k} centres) collide or leave the workspace"))
        Rc, tc, widths = R[chosen], t[chosen], self._predicted_widths(width[chosen])
        if self.fit_opening:
            widths = self._fit_opening(cloud, tree, Rc, tc, widths)
        grasps = []
        for i in suppress_duplicates(Rc, tc, self.max_grasps):
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = Rc[i], tc[i]
            j = chosen[i]
            grasps.append(Grasp(T, float(widths[i]), float(quality[j]), self.name, ws.frame_id,
                                {"affordance": float(a[j]), "classifier": float(v[j])}))
        return PlanResult(grasps, self.name, timings, (
            f"{len(grasps)} grasps from {len(chosen)} centres ({k} after the affordance filter, "
            f"{self.rounds} rounds, {self.denoising_steps} denoising steps, evaluator {self.evaluator})"))
