"""From transferred maps to a LEAP hand pose: contact selection, then a fit of T_object_hand and the 16 joints.

``select_contacts`` picks one contact per digit (index, middle, ring, thumb) that the template used: among the
object points the mapping assigns to that digit, with contact probability and cycle consistency above their
thresholds, the most probable one at least ``min_spacing_m`` from the digits already placed (else the candidate
farthest from them: a farthest-point spread, so two pads do not share a spot).

``fit_hand`` minimises, with torch autograd through the LEAP forward kinematics (``robots.leap``' chain):
- contact: |pad point - its contact|^2 for every selected digit (the pad points are ``leap.TIP_LINKS``);
- direction: 1 - cos(pad normal, force direction) (the pad normal is the face of the fingertip's collision box
  the pad point lies on, pointing out of the digit, i.e. the way it pushes);
- penetration: object points deeper than ``PENETRATION_TOLERANCE_M`` inside any link's collision box
  (``templates.link_boxes``, the boxes the contacts of a template are measured with);
- joint limits: squared excess over the URDF limits.
The pose is T_object_hand = [exp(w) R0, t0 + v] around the start pose; Adam on (v, w, q) with a cosine-decayed
step. The penetration weight ramps up over the first half: from the full weight at once, object points between
a digit and its contact hold the digit back on the wrong side of them. Joints within ``LIMIT_PROJECTION_RAD`` past
a limit are put on it; ``check_joint_limits`` then refuses a fit that still violates them. A contact out of reach
is not forced: the fit reports how far each pad stayed from its contact.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ....geometry import invert
from ....robots import leap
from ..templates import check_joint_limits, check_pose, hand_distances, link_boxes
from .model import TransferredMaps

# The pad points lie 0.5 mm inside their own fingertip boxes: shallower is contact, not penetration.
PENETRATION_TOLERANCE_M = 0.001
LIMIT_PROJECTION_RAD = 0.01  # what the penalty may leave past a limit, and the final projection removes
TIP_BOXES = {"index_tip": "fingertip", "middle_tip": "fingertip_2", "ring_tip": "fingertip_3",
             "thumb_tip": "thumb_fingertip"}
DIGITS = 4  # FINGERS[:4] have a pad (leap.TIP_LINKS, same order); the palm does not


@dataclass(frozen=True)
class ContactTargets:
    digits: tuple[int, ...]  # indices into FINGERS[:DIGITS]
    points_object_m: np.ndarray  # (F, 3) the contact of each digit
    directions_object: np.ndarray  # (F, 3) unit force direction on the object at it


@dataclass(frozen=True)
class FitWeights:
    contact_per_m2: float = 1e4
    direction: float = 10.0  # 1 - cos is quadratic in the angle: weaker, pads meet contacts rolled 0.1 rad off
    penetration_per_m2: float = 1e5
    limits_per_rad2: float = 1e4


@dataclass(frozen=True)
class HandFit:
    T_object_hand: np.ndarray  # (4, 4) leap_palm in the object frame
    joints: np.ndarray  # (16,) rad, within the LEAP limits
    contact_errors_m: np.ndarray  # (F,) pad point to its contact
    direction_errors_rad: np.ndarray  # (F,) pad normal to the force direction
    penetration_m: float  # deepest object point inside a link box (templates.hand_distances), >= 0


def select_contacts(points_object_m: np.ndarray, maps: TransferredMaps, min_contact: float = 0.5,
                    min_consistency: float = 0.5, candidates: int = 8, min_spacing_m: float = 0.015) -> ContactTargets:
    """One contact per digit the maps assign contacts to (see the module docstring)."""
    points = np.asarray(points_object_m, float)
    digit_of_point = maps.fingers.argmax(-1)
    usable = (maps.contact >= min_contact) & (maps.consistency >= min_consistency)
    digits, chosen = [], []
    for digit in range(DIGITS):
        found = np.flatnonzero(usable & (digit_of_point == digit))
        if not found.size:
            continue
        best = found[np.argsort(-maps.contact[found], kind="stable")[:candidates]]
        if chosen:
            spacing = np.linalg.norm(points[best, None] - points[chosen][None], axis=-1).min(axis=1)
            far = best[spacing >= min_spacing_m]
            pick = far[0] if far.size else best[np.argmax(spacing)]
        else:
            pick = best[0]
        digits.append(digit)
        chosen.append(pick)
    if not digits:
        raise ValueError(f"no object point has contact probability >= {min_contact} and consistency >= "
                         f"{min_consistency} for a digit of the hand: nothing to place the digits on")
    return ContactTargets(tuple(digits), points[chosen], maps.directions[chosen])


@lru_cache(maxsize=1)
def pad_normals_in_tip() -> dict[str, np.ndarray]:
    """Per tip link, the outward normal (tip-link frame) of the fingertip-box face its pad point lies on."""
    boxes = link_boxes()
    T_palm = leap.link_poses_in_palm(leap.OPEN_Q[None], tuple(TIP_BOXES) + tuple(TIP_BOXES.values()))
    normals = {}
    for tip, box in TIP_BOXES.items():
        T_box_tip = invert(T_palm[box][0]) @ T_palm[tip][0]
        centre, half = boxes[box]
        offset = (T_box_tip[:3, 3] - centre) / half
        axis = int(np.argmax(np.abs(offset)))
        normal_box = np.zeros(3)
        normal_box[axis] = np.sign(offset[axis])
        normals[tip] = T_box_tip[:3, :3].T @ normal_box
    return normals


def _rotation(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues: the rotation by |w| about w (exact at w = 0 through the Taylor terms)."""
    theta2 = (w * w).sum()
    K = torch.zeros(3, 3, dtype=w.dtype)
    K[0, 1], K[0, 2], K[1, 0], K[1, 2], K[2, 0], K[2, 1] = -w[2], w[1], w[2], -w[0], -w[1], w[0]
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
             joints_start: np.ndarray, steps: int = 300, lr: float = 0.01,
             weights: FitWeights = FitWeights()) -> HandFit:
    """The pose and joints that put each selected digit's pad on its contact (see the module docstring);
    ``points_object_m`` (P, 3) are the object's observed points, kept out of the hand."""
    # The fit's tensors are tiny: handing them between threads costs far more than it saves (25x on 2 busy cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(targets, np.asarray(points_object_m, float), T_object_hand_start, joints_start, steps, lr, weights)
    finally:
        torch.set_num_threads(threads)


def _fit(targets: ContactTargets, points_object_m: np.ndarray, T_object_hand_start: np.ndarray,
         joints_start: np.ndarray, steps: int, lr: float, weights: FitWeights) -> HandFit:
    T0 = torch.as_tensor(check_pose(T_object_hand_start, "T_object_hand_start"), dtype=torch.float64)
    q = torch.tensor(np.asarray(joints_start, float), dtype=torch.float64, requires_grad=True)
    if q.shape != (len(leap.JOINT_NAMES),):
        raise ValueError(f"joints_start: the LEAP hand has {len(leap.JOINT_NAMES)} joints, got shape {tuple(q.shape)}")
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    tips = tuple(leap.TIP_LINKS[d] for d in targets.digits)
    contacts = torch.as_tensor(targets.points_object_m, dtype=torch.float64)
    directions = torch.as_tensor(targets.directions_object, dtype=torch.float64)
    pad_normals = torch.as_tensor(np.stack([pad_normals_in_tip()[t] for t in tips]))
    points = torch.as_tensor(points_object_m)
    boxes = {link: tuple(torch.as_tensor(a) for a in box) for link, box in link_boxes().items()}
    lower, upper = torch.as_tensor(leap.LOWER_RAD), torch.as_tensor(leap.UPPER_RAD)
    optimiser = torch.optim.Adam([v, w, q], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)

    def hand(q: torch.Tensor, v: torch.Tensor, w: torch.Tensor):
        R = _rotation(w) @ T0[:3, :3]
        t = T0[:3, 3] + v
        poses = {link: T[0] for link, T in leap.link_poses_in_palm_torch(q[None], tips + tuple(boxes)).items()}
        pads = torch.stack([R @ poses[tip][:3, 3] + t for tip in tips])
        normals = torch.stack([R @ poses[tip][:3, :3] @ n for tip, n in zip(tips, pad_normals)])
        return R, t, poses, pads, normals

    for step in range(steps):
        R, t, poses, pads, normals = hand(q, v, w)
        contact = ((pads - contacts) ** 2).sum()
        direction = (1.0 - (normals * directions).sum(-1)).sum()
        points_palm = (points - t) @ R  # R^T (p - t), row-wise
        depth = torch.stack([_box_signed_distance((points_palm - poses[link][:3, 3]) @ poses[link][:3, :3], *box)
                             for link, box in boxes.items()])
        penetration = ((-depth - PENETRATION_TOLERANCE_M).clamp(min=0.0) ** 2).sum()
        limits = ((q - upper).clamp(min=0.0) ** 2 + (lower - q).clamp(min=0.0) ** 2).sum()
        ramp = min(1.0, 2.0 * step / steps)
        loss = (weights.contact_per_m2 * contact + weights.direction * direction
                + ramp * weights.penetration_per_m2 * penetration + weights.limits_per_rad2 * limits)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        q_final = torch.where((q > upper) & (q <= upper + LIMIT_PROJECTION_RAD), upper, q)
        q_final = torch.where((q_final < lower) & (q_final >= lower - LIMIT_PROJECTION_RAD), lower, q_final)
        R, t, _, pads, normals = hand(q_final, v, w)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R.numpy(), t.numpy()
    joints = check_joint_limits(q_final.numpy(), "the fitted joints")
    distance, _ = hand_distances(points_object_m, T, joints)
    cos = (normals * directions).sum(-1).clamp(-1.0, 1.0)
    return HandFit(T, joints, (pads - contacts).norm(dim=-1).numpy(), torch.arccos(cos).numpy(),
                   float(max(0.0, -distance.min())))
