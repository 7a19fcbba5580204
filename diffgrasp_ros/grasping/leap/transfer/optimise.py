"""From transferred maps to a LEAP hand pose: contact selection, then a fit of T_object_hand and the 16 joints.

``select_contacts`` reads the maps link by link. The object points the maps call contacts (contact probability and
cycle consistency over their thresholds) are each matched, through the dual mapping's correspondence, to a
template point, and so to the template contact nearest it and the LEAP link that touched it there. Per link: the
centroid of its object points (moved onto the nearest of them) is where that link should touch, and the
centroid of its template contacts, in that link's frame at the template's grasp, is the spot of the link that
touched. A link with one stray point is dropped (``MIN_POINTS_PER_LINK``).

``fit_hands`` minimises, with torch autograd through the LEAP forward kinematics (``robots.leap``' chain):
- contact: |the link's spot - its object contact|^2 for every selected link;
- shape: squared joint change from the template's joints (the template's grasp is what is known to hold: the fit
  moves the joints only as far as the new object asks);
- penetration: object points deeper than ``PENETRATION_TOLERANCE_M`` inside any link's collision box
  (``templates.link_boxes``, the boxes the contacts of a template are measured with);
- table (when its height is given): the corners of the link boxes below the table top plus ``TABLE_CLEARANCE_M``;
- joint limits: squared excess over the URDF limits.
The pose is T_object_hand = [exp(w) R0, t0 + v] around the start pose; Adam on (v, w, q) with a cosine-decayed
step. The penetration weight ramps up over the first half: from the full weight at once, object points between
a link and its contact hold it back on the wrong side of them. Joints within ``LIMIT_PROJECTION_RAD`` past a
limit are put on it; ``check_joint_limits`` then refuses a fit that still violates them. A contact out of reach
is not forced: the fit reports how far each link stayed from its contact. Several contact sets on one object
are fitted as one batch (independent problems: the loss is their sum, Adam's steps are per parameter).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ....geometry import invert
from ....robots import leap
from ..templates import GraspTemplate, check_joint_limits, check_pose, link_boxes
from .model import FINGERS, TransferredMaps, finger_of_link

PENETRATION_TOLERANCE_M = 0.001  # contact, not penetration: the contacts are within 5 mm of a box
LIMIT_PROJECTION_RAD = 0.01  # what the penalty may leave past a limit, and the final projection removes
TABLE_CLEARANCE_M = 0.003  # the planners' digit filter's (grasping.leap.planner)
MIN_POINTS_PER_LINK = 2
# Contact probability that makes a point a contact. Under one half: a small part (a handle seen from the side)
# gets few points, and the sampled map's values on them stay low.
MIN_CONTACT = 0.3
MAX_MATCH_M = 0.015  # an object point whose template match is farther than this from every template contact: none


@dataclass(frozen=True)
class ContactTargets:
    links: tuple[str, ...]  # the LEAP links that touch
    points_object_m: np.ndarray  # (F, 3) where each touches the object
    spots_link_m: np.ndarray  # (F, 3) the spot of each link that touches, in its own frame

    @property
    def fingers(self) -> set[str]:
        return {FINGERS[finger_of_link(link)] for link in self.links}


@dataclass(frozen=True)
class FitWeights:
    contact_per_m2: float = 1e4
    shape_per_rad2: float = 1.0  # a 0.1 rad change costs what a 1 mm contact error does
    penetration_per_m2: float = 1e5
    limits_per_rad2: float = 1e4


@dataclass(frozen=True)
class HandFit:
    T_object_hand: np.ndarray  # (4, 4) leap_palm in the object frame
    joints: np.ndarray  # (16,) rad, within the LEAP limits
    contact_errors_m: np.ndarray  # (F,) each link's spot to its contact
    penetration_m: float  # deepest object point inside a link box, >= 0


def select_contacts(points_object_m: np.ndarray, maps: TransferredMaps, template: GraspTemplate,
                    min_contact: float = MIN_CONTACT, min_consistency: float = 0.5) -> ContactTargets:
    """The links that touch and where (see the module docstring); ``maps.template_match`` index
    ``template.points_object``."""
    points = np.asarray(points_object_m, float)
    usable = np.flatnonzero((maps.contact >= min_contact) & (maps.consistency >= min_consistency))
    if not usable.size:
        raise ValueError(f"no object point has contact probability >= {min_contact} and consistency >= "
                         f"{min_consistency}: nothing to place the hand on")
    contacts = template.contact_points
    matched = template.points_object[maps.template_match[usable]]
    distance = np.linalg.norm(matched[:, None] - contacts[None], axis=-1)
    nearest = distance.argmin(axis=1)
    keep = distance[np.arange(len(usable)), nearest] <= MAX_MATCH_M
    found = usable.size
    usable, nearest = usable[keep], nearest[keep]
    T_palm = leap.link_poses_in_palm(template.joints[None], tuple(set(template.contact_links)))
    links, on_object, spots = [], [], []
    for link in sorted(set(template.contact_links)):
        mine = np.flatnonzero(np.array(template.contact_links)[nearest] == link)
        if len(mine) < MIN_POINTS_PER_LINK:
            continue
        centre = points[usable[mine]].mean(axis=0)
        on_object.append(points[usable[mine]][np.argmin(np.linalg.norm(points[usable[mine]] - centre, axis=1))])
        T_object_link = template.T_object_hand @ T_palm[link][0]
        spots.append((invert(T_object_link) @ np.append(contacts[nearest[mine]].mean(axis=0), 1.0))[:3])
        links.append(link)
    if not links:
        raise ValueError(f"of the {found} contact points, fewer than {MIN_POINTS_PER_LINK} match the contacts of "
                         f"any one link of the template (within {1000 * MAX_MATCH_M:.0f} mm)")
    return ContactTargets(tuple(links), np.array(on_object), np.array(spots))


def _rotation(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues for (B, 3) w: (B, 3, 3) rotations by |w| about w (exact at w = 0 through the Taylor terms)."""
    theta2 = (w * w).sum(-1)[:, None, None]
    zero = torch.zeros_like(w[:, 0])
    K = torch.stack([torch.stack([zero, -w[:, 2], w[:, 1]], -1), torch.stack([w[:, 2], zero, -w[:, 0]], -1),
                     torch.stack([-w[:, 1], w[:, 0], zero], -1)], -2)
    small = theta2 < 1e-8
    theta = theta2.clamp(min=1e-8).sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp(min=1e-8))
    return torch.eye(3, dtype=w.dtype) + a * K + b * (K @ K)


def _box_signed_distance(points_link: torch.Tensor, centre: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    q = (points_link - centre).abs() - half
    outside = (q.clamp(min=0.0) ** 2).sum(-1).add(1e-18).sqrt()  # the epsilon keeps the gradient finite inside
    return outside + q.amax(-1).clamp(max=0.0)


def fit_hand(targets: ContactTargets, points_object_m: np.ndarray, T_object_hand_start: np.ndarray,
             joints_start: np.ndarray, steps: int = 300, lr: float = 0.01, weights: FitWeights = FitWeights(),
             table_z_m: float | None = None) -> HandFit:
    """The pose and joints that put each selected link's spot on its contact (see the module docstring), the
    joints kept near ``joints_start``; ``points_object_m`` (P, 3) are the object's observed points, kept out of
    the hand; ``table_z_m``: the table top's height in the object frame, kept under the hand (None: no table)."""
    fit = fit_hands([targets], points_object_m, [T_object_hand_start], [joints_start], steps, lr, weights,
                    table_z_m)[0]
    if isinstance(fit, ValueError):
        raise fit
    return fit


def fit_hands(targets: list[ContactTargets], points_object_m: np.ndarray, T_object_hand_start: list[np.ndarray],
              joints_start: list[np.ndarray], steps: int = 300, lr: float = 0.01, weights: FitWeights = FitWeights(),
              table_z_m: float | None = None) -> list[HandFit | ValueError]:
    """``fit_hand`` for several contact sets on the same object at once, one batched optimisation. A fit that still
    violates the joint limits is, in its place, the ValueError that says so."""
    if not targets or not len(targets) == len(T_object_hand_start) == len(joints_start):
        raise ValueError("fit_hands needs as many start poses and joints as contact sets, at least one")
    # The fit's tensors are small: handing them between threads costs far more than it saves (25x on 2 busy cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(targets, np.asarray(points_object_m, float), T_object_hand_start, joints_start, steps, lr,
                    weights, table_z_m)
    finally:
        torch.set_num_threads(threads)


def _fit(targets: list[ContactTargets], points_object_m: np.ndarray, T_object_hand_start: list[np.ndarray],
         joints_start: list[np.ndarray], steps: int, lr: float, weights: FitWeights,
         table_z_m: float | None) -> list[HandFit | ValueError]:
    T0 = torch.as_tensor(np.stack([check_pose(T, "T_object_hand_start") for T in T_object_hand_start]),
                         dtype=torch.float64)
    q0 = torch.tensor(np.stack([np.asarray(j, float) for j in joints_start]), dtype=torch.float64)
    if q0.shape[1:] != (len(leap.JOINT_NAMES),):
        raise ValueError(f"joints_start: the LEAP hand has {len(leap.JOINT_NAMES)} joints, got shape {tuple(q0.shape)}")
    q = q0.clone().requires_grad_(True)
    n = len(targets)
    v = torch.zeros(n, 3, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(n, 3, dtype=torch.float64, requires_grad=True)
    boxes = link_boxes()
    links = tuple(boxes)
    # Every problem's contacts as (problem, link index, spot, contact) rows.
    rows = [(b, links.index(link), spot, point) for b, t in enumerate(targets)
            for link, spot, point in zip(t.links, t.spots_link_m, t.points_object_m)]
    problem = torch.tensor([r[0] for r in rows])
    link_of = torch.tensor([r[1] for r in rows])
    spots = torch.as_tensor(np.array([r[2] for r in rows]), dtype=torch.float64)
    contacts = torch.as_tensor(np.array([r[3] for r in rows]), dtype=torch.float64)
    points = torch.as_tensor(points_object_m)
    centres = torch.as_tensor(np.stack([boxes[link][0] for link in links]))  # (L, 3)
    halves = torch.as_tensor(np.stack([boxes[link][1] for link in links]))
    signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float64)
    corners = centres[:, None] + signs[None] * halves[:, None]  # (L, 8, 3) in each link's frame
    lower, upper = torch.as_tensor(leap.LOWER_RAD), torch.as_tensor(leap.UPPER_RAD)
    optimiser = torch.optim.Adam([v, w, q], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)

    def hand(q: torch.Tensor, v: torch.Tensor, w: torch.Tensor):
        R = _rotation(w) @ T0[:, :3, :3]  # (B, 3, 3)
        t = T0[:, :3, 3] + v
        poses = leap.link_poses_in_palm_torch(q, links)
        link_T = torch.stack([poses[link] for link in links], 1)  # (B, L, 4, 4) in the palm frame
        T_row = link_T[problem, link_of]  # (rows, 4, 4)
        spots_palm = torch.einsum("rij,rj->ri", T_row[:, :3, :3], spots) + T_row[:, :3, 3]
        touching = torch.einsum("rij,rj->ri", R[problem], spots_palm) + t[problem]
        return R, t, link_T, touching

    def depths(R: torch.Tensor, t: torch.Tensor, link_T: torch.Tensor) -> torch.Tensor:
        """(B, L, P) signed distance of every point to every link box."""
        points_palm = torch.einsum("bpi,bij->bpj", points[None] - t[:, None], R)  # R^T (p - t), row-wise
        local = torch.einsum("blpi,blij->blpj", points_palm[:, None] - link_T[:, :, None, :3, 3], link_T[..., :3, :3])
        return _box_signed_distance(local, centres[None, :, None], halves[None, :, None])

    for step in range(steps):
        R, t, link_T, touching = hand(q, v, w)
        contact = ((touching - contacts) ** 2).sum()
        shape = ((q - q0) ** 2).sum()
        penetration = ((-depths(R, t, link_T) - PENETRATION_TOLERANCE_M).clamp(min=0.0) ** 2).sum()
        if table_z_m is not None:
            corners_palm = torch.einsum("blij,lcj->blci", link_T[..., :3, :3], corners) + link_T[:, :, None, :3, 3]
            corner_z = torch.einsum("bj,blcj->blc", R[:, 2], corners_palm) + t[:, 2, None, None]
            penetration = penetration + ((table_z_m + TABLE_CLEARANCE_M - corner_z).clamp(min=0.0) ** 2).sum()
        limits = ((q - upper).clamp(min=0.0) ** 2 + (lower - q).clamp(min=0.0) ** 2).sum()
        ramp = min(1.0, 2.0 * step / steps)
        loss = (weights.contact_per_m2 * contact + weights.shape_per_rad2 * shape
                + ramp * weights.penetration_per_m2 * penetration + weights.limits_per_rad2 * limits)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        q_final = torch.where((q > upper) & (q <= upper + LIMIT_PROJECTION_RAD), upper, q)
        q_final = torch.where((q_final < lower) & (q_final >= lower - LIMIT_PROJECTION_RAD), lower, q_final)
        R, t, link_T, touching = hand(q_final, v, w)
        deepest = (-depths(R, t, link_T)).amax(dim=(1, 2)).clamp(min=0.0)
        errors = (touching - contacts).norm(dim=-1)
    fits = []
    for b in range(n):
        try:
            joints = check_joint_limits(q_final[b].numpy(), "the fitted joints")
        except ValueError as error:
            fits.append(error)
            continue
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R[b].numpy(), t[b].numpy()
        fits.append(HandFit(T, joints, errors[problem == b].numpy(), float(deepest[b])))
    return fits
