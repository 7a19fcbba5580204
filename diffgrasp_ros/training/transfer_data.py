"""Training pairs for contact-map transfer (``grasping.leap.transfer``) from the procedural categories.

A pair is a template and a target: the template a ``GraspTemplate`` (a template file, or ``make_template``'s
contacts of a hand pose) on a training instance of a category, the target another training instance of that
category (``sim.categories``; held-out instances are never targets here), seen from one side.

Targets, exactly. The target's full surface is sampled (``sample_surface``: points, outward normals, part labels).
Its parts correspond to the template's by name, and the generator scales each part as a whole, so part-normalised
coordinates are a correspondence: with lo_k, hi_k the bounding box of the template's points of part k and
lo'_k, hi'_k that of the target's sampled points of part k, a target point p of part k maps into the template as
phi(p) = lo_k + (p - lo'_k) / (hi'_k - lo'_k) * (hi_k - lo_k) (per axis), and its correspondent is the template
point of part k nearest phi(p). Then, per target point:
- contact = 1 when its correspondent is one of the template's contacts (within ``CONTACT_DISTANCE_M`` of a LEAP
  link box, ``templates.hand_contacts``), else 0: the template's contact map pulled back onto the target;
- part = the target's own part label (the generator's);
- direction = the inward surface normal -n: the force a (frictionless) pad exerts on the object there.
The observed target keeps the points visible from a random camera direction on the upper hemisphere (objects
stand on a table): facing the camera (n . d > 0) and within ``DEPTH_TOLERANCE_M`` of the nearest point along d in
their cell of an orthographic z-buffer of ``CELL_M`` cells. The template is in its canonical object frame; the
target's view is put in the frame planning sees it in (``transfer.observed_frame``): turned about z by a random
angle (a planner does not know how the object stands) and shifted so that the origin is on the table under the
visible points' horizontal centroid. All in metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..grasping.leap.templates import GraspTemplate, check_transfer_target
from ..grasping.leap.transfer.config import TransferConfig
from ..grasping.leap.transfer.model import template_channels
from ..grasping.leap.transfer.transfer import observed_frame
from ..sim.categories import CategoryInstance, instance_count, make_instance

# Target surface samples before the view: one side of an instance keeps a third to a half of them, more than
# the model's 1,024 object points.
SURFACE_POINTS = 4096
CELL_M = 0.004  # z-buffer cells: about the samples' spacing (3-4 mm at 2,048 points, finer at more)
DEPTH_TOLERANCE_M = 0.003  # behind the front-most point of a cell by less than this is still seen (thinner than a wall)
MIN_ELEVATION = 0.1  # sine of the lowest camera elevation (a camera below the table sees nothing)


@dataclass(frozen=True)
class TransferPair:
    category: str
    task: str
    target_name: str
    template_points_m: np.ndarray  # (M, 3) template object frame
    template_channels: np.ndarray  # (M, C) transfer.model.template_channels
    target_points_m: np.ndarray  # (N, 3) the visible target points, target object frame
    target_contact: np.ndarray  # (N,) 0/1
    target_parts: np.ndarray  # (N,) index into the template's part names
    target_directions: np.ndarray  # (N, 3) unit, inward normals
    view_direction: np.ndarray  # (3,) unit, from the object towards the camera
    T_observed_target: np.ndarray  # (4, 4) the target's canonical frame in the observed frame of its points


def part_boxes(points_m: np.ndarray, parts: np.ndarray, count: int, what: str) -> np.ndarray:
    """(count, 2, 3) per part the lower and upper corner of its points' bounding box."""
    boxes = np.zeros((count, 2, 3))
    for k in range(count):
        own = points_m[parts == k]
        if not len(own):
            raise ValueError(f"{what} has no points of part {k}: parts cannot be put in correspondence")
        boxes[k] = own.min(axis=0), own.max(axis=0)
    return boxes


def correspondents(template: GraspTemplate, points_m: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """(N,) index of each target point's correspondent among the template's points (see the module docstring)."""
    count = len(template.part_names)
    source = part_boxes(template.points_object, template.point_parts, count, "the template")
    target = part_boxes(points_m, parts, count, "the target")
    found = np.zeros(len(points_m), np.int64)
    for k in range(count):
        own, theirs = np.flatnonzero(parts == k), np.flatnonzero(template.point_parts == k)
        extent = np.maximum(target[k, 1] - target[k, 0], 1e-9)  # a flat part maps onto its plane
        mapped = source[k, 0] + (points_m[own] - target[k, 0]) / extent * (source[k, 1] - source[k, 0])
        found[own] = theirs[cKDTree(template.points_object[theirs]).query(mapped)[1]]
    return found


def random_view_direction(rng: np.random.Generator) -> np.ndarray:
    while True:
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        d[2] = abs(d[2])
        if d[2] >= MIN_ELEVATION:
            return d


def visible(points_m: np.ndarray, normals: np.ndarray, view_direction: np.ndarray) -> np.ndarray:
    """(N,) bool: the points a camera far along ``view_direction`` sees (see the module docstring)."""
    d = view_direction / np.linalg.norm(view_direction)
    u = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    cells = np.floor(np.column_stack([points_m @ u, points_m @ np.cross(d, u)]) / CELL_M).astype(np.int64)
    _, cell = np.unique(cells, axis=0, return_inverse=True)
    depth = points_m @ d  # larger is nearer the camera
    front = np.full(cell.max() + 1, -np.inf)
    np.maximum.at(front, cell.ravel(), depth)
    return (normals @ d > 0.0) & (depth >= front[cell.ravel()] - DEPTH_TOLERANCE_M)


def make_pair(template: GraspTemplate, target: CategoryInstance, config: TransferConfig, rng: np.random.Generator,
              surface_points: int = SURFACE_POINTS) -> TransferPair:
    """The pair of ``template`` and a view of ``target`` (see the module docstring)."""
    if target.category != template.category:
        raise ValueError(f"the template is a {template.category} grasp: it cannot be transferred onto a "
                         f"{target.category} ({target.name})")
    if target.part_names != template.part_names:
        raise ValueError(f"the template's parts {list(template.part_names)} are not {target.name}'s "
                         f"{list(target.part_names)}")
    config.task_index(template.task)
    sample = target.sample_surface(surface_points, seed=int(rng.integers(2**31)))
    contact = template.contact_map[correspondents(template, sample.points_m, sample.parts)]
    view = random_view_direction(rng)
    seen = visible(sample.points_m, sample.normals, view)
    check_transfer_target(template, target.category, sample.points_m[seen])
    yaw = rng.uniform(-np.pi, np.pi)
    turn = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    T_observed_target = np.eye(4)
    T_observed_target[:3, :3] = turn
    T_observed_target[:3, 3] = -observed_frame(sample.points_m[seen] @ turn.T, 0.0)[:3, 3]
    points = sample.points_m[seen] @ turn.T + T_observed_target[:3, 3]
    return TransferPair(template.category, template.task, target.name, template.points_object,
                        template_channels(template, config.max_parts), points, contact[seen].astype(np.float32),
                        sample.parts[seen], -sample.normals[seen] @ turn.T, turn @ view, T_observed_target)


def training_pairs(template: GraspTemplate, count: int, config: TransferConfig, seed: int = 0,
                   surface_points: int = SURFACE_POINTS, split: str = "train") -> list[TransferPair]:
    """``count`` pairs of ``template`` with random instances of its category from ``split`` (held-out ones for
    validation only), random views."""
    rng = np.random.default_rng(seed)
    return [make_pair(template, make_instance(template.category, split, int(rng.integers(instance_count(split)))),
                      config, rng, surface_points) for _ in range(count)]


def collate(pairs: list[TransferPair], config: TransferConfig, rng: np.random.Generator, device="cpu") -> dict:
    """A batch of ``TransferModel.losses``: every cloud resampled to the config's point counts (with repeats only
    when it has fewer points), each target view turned about z by a fresh random angle (about the observed
    frame's origin, so it stays in that frame): a pair is seen standing every way."""
    import torch

    def pick(n: int, size: int) -> np.ndarray:
        return rng.choice(n, size, replace=n < size)

    rows = []
    for pair in pairs:
        o = pick(len(pair.target_points_m), config.object_points)
        t = pick(len(pair.template_points_m), config.template_points)
        yaw = rng.uniform(-np.pi, np.pi)
        turn = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
        rows.append({"object_m": pair.target_points_m[o] @ turn.T, "template_m": pair.template_points_m[t],
                     "template_channels": pair.template_channels[t], "contact": pair.target_contact[o],
                     "parts": pair.target_parts[o], "directions": pair.target_directions[o] @ turn.T})
    batch = {key: torch.as_tensor(np.stack([row[key] for row in rows])) for key in rows[0]}
    batch = {key: value.long() if key == "parts" else value.float() for key, value in batch.items()}
    batch["task"] = torch.tensor([config.task_index(pair.task) for pair in pairs])
    return {key: value.to(device) for key, value in batch.items()}
