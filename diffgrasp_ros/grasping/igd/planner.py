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

from pathlib import Path

import numpy as np

from ...devices import float_tensor, module_device
from ...robots.registry import Embodiment, get_robot
from ...scene.scene import Scene
from ...scene.workspace import STANDARD_WORKSPACE, Workspace
from ..filters import (ObservedSurface, fingers_hit, held_extent, hits_cloud, penetrates_tsdf,
                       suppress_duplicates)
from ..grasp import Grasp
from ..planner import TARGET_REACH_M, CandidatePlanner, Candidates, NoGrasp, PlanRecord, register_planner
from .candidates import candidate_mask
from .pretrained import DEFAULT_WEIGHTS, load_pretrained


EVALUATORS = ("both", "affordance", "classifier")
FEASIBILITY_BATCH = 64
OBJECT_GAP_M = 0.01  # along the closing axis, a wider gap in the observed surface separates two objects
MIN_HELD_POINTS = 16  # TSDF surface points (3.75 mm voxels) between the open fingers: an object, not air or a sliver
CENTRES_PER_GRASP = 3  # feasible centres gathered per returned grasp (duplicate suppression drops some)


@register_planner("igd")
class IGDPlanner(CandidatePlanner):
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

    # -- predict ----------------------------------------------------------------------------------
    def _predict(self, scene: Scene, record: PlanRecord) -> Candidates:
        """``rounds`` orientations by DDIM at each of the ``top_k`` centres of highest affordance (near the
        objects; at the target when there is one), with the classifier's v(g) and the predicted opening."""
        import torch

        model, device = self.model, self.device
        with torch.inference_mode():
            planes = model.encode(float_tensor(scene.tsdf_grid, device)[None])
            record.lap("encoder")
            centres = self._centres(scene)
            if len(centres) == 0:
                raise NoGrasp("no free space within reach of the objects")
            features = model.centre_features(planes, float_tensor(centres, device)[None])[0]
            affordance = torch.sigmoid(model.affordance_logits(features)).cpu().numpy()
            generator = torch.Generator(device=device).manual_seed(self.seed)
            top = self._top_centres(affordance, generator)
            record.lap("affordance")
            if len(top) == 0:
                raise NoGrasp(f"no centre's affordance reaches {self.min_affordance} "
                              f"(best {affordance.max():.2f} of {len(centres)} centres)")
            R = model.sample_rotations(features[top], self.scheduler, self.rounds, generator).cpu().numpy()
            record.lap("diffusion")
            site = np.repeat(np.arange(len(top)), R.shape[1])  # (k, N, 3, 3): N orientations per centre
            R = R.reshape(-1, 3, 3).astype(np.float64)
            t = centres[top][site].astype(np.float64)
            logits, width = model.evaluate(planes, float_tensor(t, device)[None], float_tensor(R, device)[None])
            v, width = torch.sigmoid(logits[0]).cpu().numpy(), width[0].cpu().numpy()
            record.lap("classifier")
        return Candidates(R, t, site, t, {"affordance": affordance[top][site], "classifier": v},
                          widths_m=self._predicted_widths(width))

    def _centres(self, scene: Scene) -> np.ndarray:
        """(n, 3) float32 candidate TCP centres: free voxel centres within reach of the observed objects."""
        ws = self.workspace
        mask = candidate_mask(scene.tsdf_grid, ws, stride=self.centre_stride)
        if scene.target is not None:  # centres at the target only
            mask &= scene.target.contains(ws.voxel_centres(), TARGET_REACH_M).reshape(mask.shape)
        return ws.voxel_centres()[mask].astype(np.float32)

    def _top_centres(self, affordance: np.ndarray, generator) -> np.ndarray:
        """Indices of the centres to sample orientations at: the ``top_k`` of highest affordance reaching
        ``min_affordance``; for the "classifier" ablation ``top_k`` at random."""
        import torch

        if self.evaluator == "classifier":
            return torch.randperm(len(affordance), generator=generator,
                                  device=self.device).cpu().numpy()[: self.top_k]
        top = np.argsort(-affordance, kind="stable")[: self.top_k]
        return top[affordance[top] >= self.min_affordance]

    def _predicted_widths(self, predicted) -> np.ndarray:
        """The model's normalised width prediction as the opening to pre-shape to (margin included)."""
        cfg = self.model.config
        return np.minimum(np.clip(predicted, 0.0, 1.0) * cfg.max_opening_m + cfg.width_margin_m,
                          self.gripper.max_opening_m)

    # -- filter -------------------------------------------------------------------------------------
    def _filter(self, scene: Scene, sampled: Candidates, record: PlanRecord) -> Candidates:
        """Each centre's best candidate of quality ``min_quality`` or more that ``_feasible`` passes, its
        opening fitted to what it holds (``fit_opening``)."""
        _, quality = self._quality(sampled.scores)
        ok = np.ones(len(sampled), bool)
        record.narrow("min_quality", ok, quality >= self.min_quality)
        if not ok.any():
            raise NoGrasp(f"no grasp's quality reaches {self.min_quality} (best {quality.max():.2f} of "
                          f"{len(sampled)} sampled grasps at {sampled.site_count} centres)")
        ranked = np.argsort(-quality, kind="stable")
        ranked = ranked[ok[ranked]]
        surface = ObservedSurface.of(scene)
        feasible = sampled.take(self._best_per_centre(scene, surface, sampled, ranked, record))
        if len(feasible) == 0:
            raise NoGrasp(f"all {len(ranked)} sampled grasps of quality {self.min_quality} or more "
                          f"(at {sampled.site_count} centres) collide or leave the workspace")
        if self.fit_opening:
            feasible.widths_m = self._fit_opening(surface, feasible)
        return feasible

    def _best_per_centre(self, scene: Scene, surface: ObservedSurface, sampled: Candidates, ranked: np.ndarray,
                         record: PlanRecord) -> np.ndarray:
        """Indices of each centre's first candidate in ``ranked`` order that ``_feasible`` passes. The
        checks (most of a CPU plan) run a batch at a time and stop once enough centres have one."""
        best: dict[int, int] = {}  # centre -> its best feasible candidate
        visited = checked = passed = 0
        for start in range(0, len(ranked), FEASIBILITY_BATCH):
            batch = ranked[start:start + FEASIBILITY_BATCH]
            open_centres = np.array([i for i in batch if sampled.site[i] not in best], int)
            ok = self._feasible(scene, surface, sampled.R[open_centres], sampled.t[open_centres], record)
            for i in open_centres[ok]:
                best.setdefault(int(sampled.site[i]), int(i))
            visited, checked, passed = visited + len(batch), checked + len(open_centres), passed + int(ok.sum())
            if len(best) >= CENTRES_PER_GRASP * self.max_grasps:
                break
        record.filtered["best_of_centre"] = visited - checked + passed - len(best)
        record.filtered["enough_centres"] = len(ranked) - visited  # never checked
        return np.array(list(best.values()), int)

    def _feasible(self, scene: Scene, surface: ObservedSurface, R: np.ndarray, t: np.ndarray,
                  record: PlanRecord) -> np.ndarray:
        """Which grasps (R (n, 3, 3), t (n, 3)) hold observed surface between their open fingers and whose
        open hand stays in bounds, above the table and out of the scene (its TSDF and observed points)."""
        g, ws = self.gripper, self.workspace
        ok = np.ones(len(R), bool)
        if len(R) == 0:
            return ok
        # Cheapest first, each on what the others left.
        corners = np.einsum("nij,sj->nsi", R, g.corner_points(g.max_opening_m)) + t[:, None]
        record.narrow("in_workspace", ok, ws.contains_grasp(t) & (corners[..., 2].min(1) > ws.table_height_m + 0.002))
        record.narrow("clear_of_tsdf", ok, ~penetrates_tsdf(scene, R[ok], t[ok], g))
        count, _, _ = held_extent(surface.points, R[ok], t[ok], g.closing_region(g.max_opening_m), surface.tree)
        record.narrow("holds_object", ok, count >= self.min_held_points)
        record.narrow("clear_of_points", ok, ~hits_cloud(surface.points, R[ok], t[ok],
                                                          g.collision_boxes(g.max_opening_m), tree=surface.tree))
        return ok

    def _fit_opening(self, surface: ObservedSurface, feasible: Candidates) -> np.ndarray:
        """Openings wide enough for the object between the fingers (the run of observed surface nearest the
        TCP, plus the margin beyond its farther side), about the TCP: the model's width comes from
        simulated depth and can be narrower than what a real sensor shows, which puts the fingers on the
        object. A widened grasp whose fingers would hit observed surface keeps the predicted opening."""
        g, margin = self.gripper, self.model.config.width_margin_m
        R, t, predicted = feasible.R, feasible.t, feasible.widths_m
        _, y_min, y_max = held_extent(surface.points, R, t, g.closing_region(g.max_opening_m), surface.tree,
                                      max_gap_m=OBJECT_GAP_M)
        needed = 2.0 * np.maximum(np.abs(y_min), np.abs(y_max)) + 2.0 * margin
        widths = np.minimum(np.maximum(predicted, needed), g.max_opening_m)
        widened = np.flatnonzero(widths > predicted)
        blocked = widened[fingers_hit(surface.points, R[widened], t[widened], g, widths[widened], tree=surface.tree)]
        widths[blocked] = predicted[blocked]
        return widths

    # -- rank ---------------------------------------------------------------------------------------
    def _quality(self, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """q = a(p)·v(g), or one of them for the ablations (``evaluator``); both the key and the score."""
        a, v = scores["affordance"], scores["classifier"]
        quality = {"both": a * v, "affordance": a, "classifier": v}[self.evaluator]
        return quality, quality

    def _distinct(self, ranked: Candidates, limit: int) -> list[int]:
        return suppress_duplicates(ranked.R, ranked.t, limit)

    def _grasps(self, ranked: Candidates, scores: np.ndarray) -> list[Grasp]:
        return [Grasp(ranked.pose(i), float(ranked.widths_m[i]), float(scores[i]), self.name,
                      self.workspace.frame_id, {"affordance": float(ranked.scores["affordance"][i]),
                                                "classifier": float(ranked.scores["classifier"][i])})
                for i in range(len(ranked))]

    def _summary(self, sampled: Candidates, feasible: Candidates, grasps: list[Grasp]) -> str:
        return (f"{len(grasps)} grasps from {len(feasible)} centres ({sampled.site_count} after the affordance "
                f"filter, {self.rounds} rounds, {self.denoising_steps} denoising steps, evaluator {self.evaluator})")

    def _check_and_score(self, scene: Scene, grasps, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The feasibility checks of planning, and the quality of the evaluator setting (``_quality``) with
        a(p) at each TCP."""
        import torch

        ok = self._feasible(scene, ObservedSurface.of(scene), R, t, PlanRecord())
        model, device = self.model, self.device
        with torch.inference_mode():
            planes = model.encode(float_tensor(scene.tsdf_grid, device)[None])
            centres = float_tensor(t, device)[None]
            a = torch.sigmoid(model.affordance_logits(model.centre_features(planes, centres)[0])).cpu().numpy()
            logits, _ = model.evaluate(planes, centres, float_tensor(R, device)[None])
            v = torch.sigmoid(logits[0]).cpu().numpy()
        return ok, self._quality({"affordance": a, "classifier": v})[1].astype(np.float64)
