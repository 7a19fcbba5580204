"""Grasp templates for contact-map transfer: an object's points with part labels, a LEAP grasp on it, its contacts.

A template is one ``.npz`` file (no pickles) holding the arrays of ``GraspTemplate`` and a JSON string
``meta`` (format version, hand, category, task, part names, contact links, provenance). ``load_template``
checks every field and raises ``ValueError`` naming what is wrong: another hand, a missing field, a
wrong shape, joints outside the LEAP hand's limits, an unknown format version. ``make_template`` computes
the contacts of a hand pose (refusing a hand inside the object or touching nothing);
``check_transfer_target`` and ``check_joint_limits`` are the checks a transfer makes of its target and
of the pose it optimises.

Frames. The object frame is the category instance's canonical frame (``sim.categories``: bottom centre,
z up); the hand frame is the LEAP hand's ``leap_palm`` link (``robots.leap``: +z out of the palm, +y
from thumb to fingers), so ``T_object_hand`` places the palm and ``joints`` (16, rad, URDF convention)
shape the digits. Contacts are the object points within ``CONTACT_DISTANCE_M`` of a link's collision
box in the URDF (the boxes PyBullet simulates the hand with), each with the nearest link's name.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...geometry import invert
from ...robots import leap

FORMAT_VERSION = 1
HAND = "leap"
# The contact band: 2,048 samples of an instance lie 3-4 mm apart, so a pad on the surface has samples within it.
CONTACT_DISTANCE_M = 0.005
# Deeper, the hand is inside the object: not a grasp (grasps closed in simulation press in under a millimetre;
# a point can be at most half a digit box's 21 mm thickness inside it).
MAX_PENETRATION_M = 0.005
JOINT_LIMIT_TOLERANCE_RAD = 1e-6
MIN_TARGET_POINTS = 256  # fewer observed points than this describe no part well enough to transfer onto
ARRAY_FIELDS = ("points_object", "normals_object", "point_parts", "T_object_hand", "joints", "contact_indices")
META_FIELDS = ("format_version", "hand", "category", "task", "part_names", "contact_links", "provenance")


def check_joint_limits(joints: np.ndarray, what: str = "joints") -> np.ndarray:
    """``joints`` as a (16,) array within the LEAP hand's URDF limits, else ``ValueError`` naming the joints."""
    q = np.asarray(joints, dtype=float)
    if q.shape != (len(leap.JOINT_NAMES),) or not np.all(np.isfinite(q)):
        raise ValueError(f"{what}: the LEAP hand has {len(leap.JOINT_NAMES)} finite joint angles, got shape {q.shape}")
    outside = np.flatnonzero((q < leap.LOWER_RAD - JOINT_LIMIT_TOLERANCE_RAD)
                             | (q > leap.UPPER_RAD + JOINT_LIMIT_TOLERANCE_RAD))
    if outside.size:
        listed = ", ".join(f"joint {leap.JOINT_NAMES[j]} = {q[j]:.3f} rad not in [{leap.LOWER_RAD[j]}, "
                           f"{leap.UPPER_RAD[j]}]" for j in outside)
        raise ValueError(f"{what} violate the LEAP hand's joint limits: {listed}")
    return q


def check_pose(T: np.ndarray, what: str) -> np.ndarray:
    T = np.asarray(T, dtype=float)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ValueError(f"{what} must be a finite 4x4 homogeneous transform, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        raise ValueError(f"{what}'s rotation is not a proper rotation matrix")
    return T


@dataclass(frozen=True)
class GraspTemplate:
    """A LEAP grasp on an object of a category, for a task, with the contacts it makes (see the module docstring).

    ``contact_indices`` (K,) index ``points_object``; ``contact_links`` (K,) name the LEAP link touching each.
    """

    category: str
    task: str
    part_names: tuple[str, ...]
    points_object: np.ndarray  # (N, 3) m, object frame
    normals_object: np.ndarray  # (N, 3) outward unit normals
    point_parts: np.ndarray  # (N,) index into part_names
    T_object_hand: np.ndarray  # (4, 4) the leap_palm pose
    joints: np.ndarray  # (16,) rad at contact
    contact_indices: np.ndarray
    contact_links: tuple[str, ...]
    provenance: dict = field(default_factory=dict)  # where the grasp came from: source, instance, planner, ...
    hand: str = HAND

    def __post_init__(self):
        if self.hand != HAND:
            raise ValueError(f"template is for the {self.hand!r} hand: only {HAND!r} templates can be used here")
        for name in ("category", "task"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"template {name} must be a non-empty string")
        if not self.part_names:
            raise ValueError("template has no part names")
        points = np.asarray(self.points_object, dtype=float)
        n = len(points)
        if points.ndim != 2 or points.shape[1] != 3 or n == 0:
            raise ValueError(f"points_object must be (N, 3), got shape {points.shape}")
        normals = np.asarray(self.normals_object, dtype=float)
        if normals.shape != (n, 3):
            raise ValueError(f"normals_object must be ({n}, 3) like points_object, got shape {normals.shape}")
        if not (np.all(np.isfinite(points)) and np.all(np.isfinite(normals))):
            raise ValueError("points_object and normals_object must be finite")
        parts = np.asarray(self.point_parts)
        if parts.shape != (n,) or not np.issubdtype(parts.dtype, np.integer) \
                or parts.min() < 0 or parts.max() >= len(self.part_names):
            raise ValueError(f"point_parts must be ({n},) integers indexing the {len(self.part_names)} part names")
        contacts = np.asarray(self.contact_indices)
        if contacts.ndim != 1 or contacts.size == 0 or not np.issubdtype(contacts.dtype, np.integer):
            raise ValueError(f"contact_indices must be a non-empty integer vector, got shape {contacts.shape}")
        if contacts.min() < 0 or contacts.max() >= n or len(np.unique(contacts)) != len(contacts):
            raise ValueError(f"contact_indices must be distinct indices of the {n} points")
        if len(self.contact_links) != len(contacts):
            raise ValueError(f"{len(contacts)} contacts but {len(self.contact_links)} contact links")
        unknown = sorted(set(self.contact_links) - set(link_boxes()))
        if unknown:
            raise ValueError(f"contact links {unknown} are not links of the LEAP hand")
        object.__setattr__(self, "points_object", points)
        object.__setattr__(self, "normals_object", normals)
        object.__setattr__(self, "point_parts", parts.astype(np.int64))
        object.__setattr__(self, "contact_indices", contacts.astype(np.int64))
        object.__setattr__(self, "contact_links", tuple(self.contact_links))
        object.__setattr__(self, "part_names", tuple(self.part_names))
        object.__setattr__(self, "T_object_hand", check_pose(self.T_object_hand, "T_object_hand"))
        object.__setattr__(self, "joints", check_joint_limits(self.joints, "template joints"))

    @property
    def contact_points(self) -> np.ndarray:
        return self.points_object[self.contact_indices]

    @property
    def contact_normals(self) -> np.ndarray:
        return self.normals_object[self.contact_indices]

    @property
    def contact_parts(self) -> np.ndarray:
        return self.point_parts[self.contact_indices]

    @property
    def contact_map(self) -> np.ndarray:
        """(N,) bool: which object points the hand touches."""
        touched = np.zeros(len(self.points_object), bool)
        touched[self.contact_indices] = True
        return touched

    @property
    def main_contact_part(self) -> int:
        """Index into ``part_names`` of the part most of the contacts are on (what the template grasps)."""
        return int(np.bincount(self.contact_parts, minlength=len(self.part_names)).argmax())

    def part_share(self, part: str) -> float:
        """The share of the contacts on ``part``."""
        return float(np.mean(self.contact_parts == self.part_names.index(part))) if part in self.part_names else 0.0

    def summary(self) -> str:
        parts = Counter(self.part_names[p] for p in self.contact_parts)
        links = Counter(self.contact_links)
        t = self.T_object_hand[:3, 3]
        lines = [f"hand {self.hand}, category {self.category}, task {self.task}",
                 f"object: {len(self.points_object)} points, parts "
                 + ", ".join(f"{name} {np.sum(self.point_parts == k)}" for k, name in enumerate(self.part_names)),
                 f"contacts: {len(self.contact_indices)} points, "
                 + ", ".join(f"{name} {100 * n / len(self.contact_indices):.0f} %" for name, n in parts.most_common()),
                 "contact links: " + ", ".join(f"{name} {count}" for name, count in links.most_common()),
                 f"palm position in the object frame: {np.round(t, 4).tolist()} m, approach (palm +z) "
                 f"{np.round(self.T_object_hand[:3, 2], 3).tolist()}",
                 "joints (rad): " + " ".join(f"{q:.2f}" for q in self.joints),
                 "provenance: " + json.dumps(self.provenance, sort_keys=True)]
        return "\n".join(lines)


def save_template(template: GraspTemplate, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"templates are .npz files, not {path.name}")
    meta = {"format_version": FORMAT_VERSION, "hand": template.hand, "category": template.category,
            "task": template.task, "part_names": list(template.part_names),
            "contact_links": list(template.contact_links), "provenance": template.provenance}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)),
                        **{name: getattr(template, name) for name in ARRAY_FIELDS})
    return path


def load_template(path: str | Path) -> GraspTemplate:
    """The template in ``path``, checked (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"template file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError) as error:  # not an .npz, or an object array
        raise ValueError(f"{path} is not a grasp template (.npz without pickles): {error}") from None
    missing = [name for name in ("meta", *ARRAY_FIELDS) if name not in arrays]
    if missing:
        raise ValueError(f"{path}: template fields missing: {', '.join(missing)}")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the template's meta is not JSON ({error})") from None
    missing = [name for name in META_FIELDS if name not in meta]
    if missing:
        raise ValueError(f"{path}: template fields missing: {', '.join(missing)}")
    if meta["format_version"] != FORMAT_VERSION:
        raise ValueError(f"{path}: template format version {meta['format_version']!r} is not supported "
                         f"(this diffgrasp reads version {FORMAT_VERSION})")
    try:
        return GraspTemplate(meta["category"], meta["task"], tuple(meta["part_names"]),
                             contact_links=tuple(meta["contact_links"]), provenance=meta["provenance"],
                             hand=meta["hand"], **{name: arrays[name] for name in ARRAY_FIELDS})
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def check_transfer_target(template: GraspTemplate, category: str, target_points_m: np.ndarray) -> np.ndarray:
    """The target's observed points (M, 3), if ``template`` can be transferred onto them: same category,
    at least ``MIN_TARGET_POINTS`` finite points."""
    if category != template.category:
        raise ValueError(f"the template is a {template.category} grasp: it cannot be transferred onto a {category}")
    points = np.asarray(target_points_m, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"target points must be (M, 3), got shape {points.shape}")
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) < MIN_TARGET_POINTS:
        raise ValueError(f"the target has {len(points)} observed points: a transfer needs at least {MIN_TARGET_POINTS}")
    return points


# -- contacts ------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def link_boxes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{link: (centre, half size)}`` of every LEAP link's collision box, in the link frame (the palm too)."""
    boxes = {}
    for link in ET.parse(leap.URDF_PATH).getroot().iter("link"):
        box, origin = link.find("collision/geometry/box"), link.find("collision/origin")
        if box is not None:
            xyz = origin.get("xyz", "0 0 0") if origin is not None else "0 0 0"
            boxes[link.get("name")] = (np.array([float(v) for v in xyz.split()]),
                                       0.5 * np.array([float(v) for v in box.get("size").split()]))
    return boxes


def hand_distances(points_object: np.ndarray, T_object_hand: np.ndarray,
                   joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (m, negative inside) of every point to the nearest LEAP link box, and that link's index
    in ``link_boxes()``."""
    boxes = link_boxes()
    T_palm_link = leap.link_poses_in_palm(np.asarray(joints, float)[None], tuple(boxes))
    T_hand_object = invert(T_object_hand)
    points_hand = points_object @ T_hand_object[:3, :3].T + T_hand_object[:3, 3]
    distances = []
    for link, (centre, half) in boxes.items():
        T_link_palm = invert(T_palm_link[link][0])
        local = points_hand @ T_link_palm[:3, :3].T + T_link_palm[:3, 3]
        q = np.abs(local - centre) - half
        distances.append(np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0))
    distances = np.array(distances)
    nearest = np.argmin(distances, axis=0)
    return distances[nearest, np.arange(len(points_object))], nearest


def hand_contacts(points_object: np.ndarray, T_object_hand: np.ndarray, joints: np.ndarray,
                  max_distance_m: float = CONTACT_DISTANCE_M) -> tuple[np.ndarray, tuple[str, ...], float]:
    """Indices of the points the hand touches, the touching links, and the deepest penetration (m, >= 0)."""
    distance, nearest = hand_distances(points_object, T_object_hand, joints)
    touched = np.flatnonzero(distance <= max_distance_m)
    names = tuple(link_boxes())
    return touched, tuple(names[k] for k in nearest[touched]), float(max(0.0, -distance.min()))


def make_template(category: str, task: str, part_names: tuple[str, ...], points_object: np.ndarray,
                  normals_object: np.ndarray, point_parts: np.ndarray, T_object_hand: np.ndarray, joints: np.ndarray,
                  provenance: dict) -> GraspTemplate:
    """A template of the hand at ``T_object_hand`` with ``joints`` on the object's points, its contacts computed."""
    T_object_hand = check_pose(T_object_hand, "T_object_hand")
    joints = check_joint_limits(joints, "hand joints")
    touched, links, penetration = hand_contacts(np.asarray(points_object, float), T_object_hand, joints)
    if penetration > MAX_PENETRATION_M:
        raise ValueError(f"the hand is {1000 * penetration:.0f} mm inside the object (at most "
                         f"{1000 * MAX_PENETRATION_M:.0f} mm): not a grasp")
    if touched.size == 0:
        raise ValueError(f"the hand touches nothing: no object point within {1000 * CONTACT_DISTANCE_M:.0f} mm of it")
    return GraspTemplate(category, task, part_names, points_object, normals_object, point_parts, T_object_hand,
                         joints, touched, links, provenance)
