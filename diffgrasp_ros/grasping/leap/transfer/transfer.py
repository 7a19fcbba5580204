"""A template's grasp transferred onto an observed object: the steps the ``leap:template=FILE`` method plans with.

``TemplateTransfer.transfer`` runs, on the target's observed points:
1. ``observe``: the points in the observed frame (``observed_frame``: the workspace's axes, origin on the table
   under the points' horizontal centroid; training views are put in the same frame, the object turned about z
   at random), resampled to the model's count;
2. ``predict``: ``samples`` draws of the contact, part and direction maps (``TransferModel.sample``, one batch);
3. ``select``: on each draw, the links that touch and where (``optimise.select_contacts``: the contact points,
   matched through the mapping to the template's contacts and the links that made them);
4. ``fit``: from the template's grasp turned about z and moved so that its links' contacts land on the selected
   ones (``align_about_z``, least squares; objects stand upright, so only the turn about z and the shift are
   free), ``optimise.fit_hands`` (the palm pose and 16 joints through the LEAP kinematics, all draws at once).
The grasps come back in the workspace frame, each with how well it realises the maps, together with the maps'
verdict on every observed point: how many draws put it on the template's main contact part.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ....devices import float_tensor, module_device
from ....model_files import shipped_model_folder
from ....robots import leap
from ...planner import NoGrasp
from ..templates import GraspTemplate, check_transfer_target, load_template
from .model import TransferredMaps, template_channels
from .optimise import ContactTargets, fit_hands, select_contacts
from .pretrained import from_pretrained

DEFAULT_TRANSFER_WEIGHTS = shipped_model_folder("leap_transfer")
# The shipped template library: ``template=mug_handle`` names models/leap_transfer/templates/mug_handle.npz.
SHIPPED_TEMPLATES = DEFAULT_TRANSFER_WEIGHTS / "templates"
MIN_FINGERS = 2  # a grasp needs a finger (or the palm) against another: one fixes no hold
# A sampled map whose contacts look like no part of the template: the mapping's mean consistency over the
# object's points stays below this (the object is of another shape than the template's category).
MIN_MEAN_CONSISTENCY = 0.05


def observed_frame(points_workspace_m: np.ndarray, table_height_m: float) -> np.ndarray:
    """T_workspace_observed: the workspace's axes, the origin on the table under the points' xy centroid."""
    T = np.eye(4)
    T[:2, 3] = np.asarray(points_workspace_m, float)[:, :2].mean(axis=0)
    T[2, 3] = table_height_m
    return T


@dataclass(frozen=True)
class TransferredGrasp:
    T_workspace_palm: np.ndarray  # (4, 4) leap_palm
    joints: np.ndarray  # (16,) rad: the links on their contacts
    links: tuple[str, ...]  # the links that touch
    contacts_workspace_m: np.ndarray  # (F, 3) where each touches
    contact_error_m: float  # mean link-to-contact distance after the fit
    penetration_m: float  # deepest observed point inside a link box


@dataclass(frozen=True)
class Transfer:
    """What one transfer found on a target: the fitted grasps and the maps' verdict on the target's points."""

    grasps: list[TransferredGrasp]  # best contact error first; empty when no draw gave a fit (``reasons``)
    points_workspace_m: np.ndarray  # (N, 3) the target's points the maps were sampled on
    on_part: np.ndarray  # (N,) share of the draws that put a point on the template's main part
    reasons: list[str]  # why draws gave no grasp


class TemplateTransfer:
    """A template and the transfer model, ready to transfer onto observed objects of the template's category."""

    def __init__(self, template: GraspTemplate, weights: str | Path | None = None, device: str = "auto",
                 samples: int = 8, fit_steps: int = 150, seed: int = 0):
        from ...igd.scheduler import DDIMScheduler

        self.template = template
        self.model = from_pretrained(Path(weights) if weights else DEFAULT_TRANSFER_WEIGHTS, device)
        self.device = module_device(self.model)
        self.config = self.model.config
        self.config.task_index(template.task)  # a task the model was not trained for is refused here
        if len(template.part_names) > self.config.max_parts:
            raise ValueError(f"the template has {len(template.part_names)} parts; this transfer model handles "
                             f"at most {self.config.max_parts}")
        if samples < 1 or fit_steps < 1:
            raise ValueError("samples and fit_steps must be at least 1")
        self.samples, self.fit_steps, self.seed = samples, fit_steps, seed
        self.scheduler = DDIMScheduler(self.config.train_steps, device=self.device)

    @classmethod
    def from_files(cls, template: str | Path, weights: str | Path | None = None, **options) -> "TemplateTransfer":
        """``template``: a template file, or the name of a shipped one (``mug_handle``)."""
        return cls(load_template(template_path(template)), weights, **options)

    def transfer(self, points_workspace_m: np.ndarray, table_height_m: float, category: str | None = None) -> Transfer:
        """Grasps realising the template's contacts on the target's observed points (workspace frame), and the
        maps' verdict on those points. ``category``: the target's, when known (a mismatch is refused)."""
        T_workspace_observed, picked = self.observe(points_workspace_m, table_height_m, category)
        maps = self.predict(picked)
        selected, reasons = self.select(picked, maps)
        grasps = []
        fits = self.fit(selected, picked) if selected else []
        for targets, fit in zip(selected, fits):
            if isinstance(fit, ValueError):  # the fit ended outside the joint limits
                reasons.append(str(fit))
                continue
            grasps.append(TransferredGrasp(
                T_workspace_observed @ fit.T_object_hand, fit.joints, targets.links,
                targets.points_object_m + T_workspace_observed[:3, 3], float(fit.contact_errors_m.mean()),
                fit.penetration_m))
        on_part = np.mean([m.parts == self.template.main_contact_part for m in maps], axis=0)
        return Transfer(sorted(grasps, key=lambda g: g.contact_error_m), picked + T_workspace_observed[:3, 3],
                        on_part, reasons)

    def observe(self, points_workspace_m: np.ndarray, table_height_m: float,
                category: str | None) -> tuple[np.ndarray, np.ndarray]:
        """T_workspace_observed and the target's points in the observed frame, resampled to the model's count."""
        points = check_transfer_target(self.template, category or self.template.category, points_workspace_m)
        T_workspace_observed = observed_frame(points, table_height_m)
        observed = points - T_workspace_observed[:3, 3]
        rng = np.random.default_rng(self.seed)
        count = self.config.object_points
        return T_workspace_observed, observed[rng.choice(len(observed), count, replace=len(observed) < count)]

    def select(self, observed_m: np.ndarray, maps: list[TransferredMaps]) -> tuple[list[ContactTargets], list[str]]:
        """Per draw of the maps its contacts (``select_contacts``), when they touch with two fingers or more; and
        why the other draws place none. Maps whose mapping finds nothing of the template on the object are refused."""
        consistency = float(np.mean([m.consistency.mean() for m in maps]))
        if consistency < MIN_MEAN_CONSISTENCY:
            raise NoGrasp(f"the observed object does not look like the template's {self.template.category}: "
                          f"mean mapping consistency {consistency:.3f} < {MIN_MEAN_CONSISTENCY}")
        selected, reasons = [], []
        for drawn in maps:
            try:
                targets = select_contacts(observed_m, drawn, self.template)
                if len(targets.fingers) < MIN_FINGERS:
                    raise ValueError(f"the maps put only the {', '.join(sorted(targets.fingers))} on the object")
                selected.append(targets)
            except ValueError as error:
                reasons.append(str(error))
        return selected, reasons

    def predict(self, observed_m: np.ndarray) -> list[TransferredMaps]:
        """``samples`` draws of the maps on ``observed_m`` (N, 3), observed frame."""
        import torch

        cfg, template, n = self.config, self.template, self.samples
        # Each draw sees its own resampling of the template, as training does: together they cover its contacts.
        rng = np.random.default_rng(self.seed + 1)
        index = np.stack([rng.choice(len(template.points_object), cfg.template_points,
                                     replace=len(template.points_object) < cfg.template_points) for _ in range(n)])
        channels = template_channels(template, cfg.max_parts)[index]
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        with torch.inference_mode():
            maps = self.model.sample(float_tensor(observed_m, self.device)[None].expand(n, -1, -1),
                                     float_tensor(template.points_object[index], self.device),
                                     float_tensor(channels, self.device),
                                     torch.full((n,), cfg.task_index(template.task), device=self.device),
                                     self.scheduler, generator)
        return [dataclasses.replace(m, template_match=rows[m.template_match])  # the template's own indices
                for m, rows in zip(maps, index)]

    def template_spots(self, targets: ContactTargets) -> np.ndarray:
        """(F, 3) where the targets' link spots are at the template's grasp, in the template's object frame."""
        T_palm = leap.link_poses_in_palm(self.template.joints[None], targets.links)
        return np.array([(self.template.T_object_hand @ T_palm[link][0] @ np.append(spot, 1.0))[:3]
                         for link, spot in zip(targets.links, targets.spots_link_m)])

    def fit(self, targets: list[ContactTargets], observed_m: np.ndarray) -> list:
        """Hand fits (``optimise.fit_hands``, one batch) for the selected contacts, each started from the template's
        grasp aligned on them (``align_about_z``): a ``HandFit``, or the ValueError of a fit outside the limits."""
        starts = [align_about_z(self.template_spots(t), t.points_object_m) @ self.template.T_object_hand
                  for t in targets]
        # The observed frame's origin is on the table.
        return fit_hands(targets, observed_m, starts, [self.template.joints] * len(targets), steps=self.fit_steps,
                         table_z_m=0.0)


def template_path(template: str | Path) -> Path:
    """A template file as given, or a shipped template's file by its name (no folder, no suffix)."""
    path = Path(template)
    if path.suffix or path.parent != Path("."):
        return path
    shipped = SHIPPED_TEMPLATES / f"{path.name}.npz"
    if not shipped.is_file():
        names = sorted(p.stem for p in SHIPPED_TEMPLATES.glob("*.npz"))
        raise FileNotFoundError(f"no shipped template {path.name!r}: the shipped ones are "
                                f"{', '.join(names) or 'none'}; or give a template file (diffgrasp template make)")
    return shipped


def align_about_z(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The turn about z and shift (4x4) taking ``source`` (F, 3) points onto ``target`` in the least-squares sense
    (2-D Procrustes on x, y; the mean offset in z)."""
    s, t = np.asarray(source, float), np.asarray(target, float)
    cs, ct = s.mean(axis=0), t.mean(axis=0)
    a, b = s[:, :2] - cs[:2], t[:, :2] - ct[:2]
    angle = np.arctan2(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]), np.sum(a * b)) if len(s) > 1 else 0.0
    c, si = np.cos(angle), np.sin(angle)
    T = np.eye(4)
    T[:3, :3] = [[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]]
    T[:3, 3] = ct - T[:3, :3] @ cs
    return T

