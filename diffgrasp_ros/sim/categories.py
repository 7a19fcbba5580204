"""Object categories with named parts, for grasp-template transfer: procedural instances and a frozen split.

``../shared/objects`` has no category or part labels, so the categories here are generated. Each
category (``CATEGORIES``) is a builder from shape parameters to convex pieces, each piece labelled with
one of the category's parts:

| category | parts | held-out shape parameters (training range -> held-out range) |
| --- | --- | --- |
| mug | body, handle | handle_squareness 2-2.6 (round C) -> 4-6 (D); height_over_diameter 1-1.3 -> 0.7-0.85 |
| bottle | body, neck | neck_over_body 0.2-0.4 -> 0.55-0.7; shoulder_over_radius 0.5-1 -> 0.1-0.25 |
| bowl | body, rim | depth_over_radius 0.55-0.8 -> 0.3-0.4; foot_over_rim 0.45-0.6 -> 0.75-0.85 |
| hammer | handle, head | handle_flatness 1-1.3 -> 1.7-2.1; head_over_handle 0.45-0.6 -> 0.7-0.85 |
| box | body, lid | height_over_length 0.35-0.6 -> 0.8-1; lid_over_height 0.15-0.25 -> 0.35-0.45 |

The split is a rule, not a list: instance ``index`` of ``split`` ("train": ``TRAIN_COUNT``, "held_out":
``HELD_OUT_COUNT``) draws every parameter uniformly from its range with ``random.Random`` seeded by
"<category>/<split>/<index>" (stable across Python versions and platforms), rounded to 0.1 mm or 1e-4;
held-out instances draw their held-out parameters from ranges disjoint from the training ones, so they
differ in shape, not only in scale. Sizes are metric and within the LEAP hand's 0.13 m opening.

Geometry. An instance is a compound of convex pieces (a mug's wall is 24 slabs, its handle a chain of
tube segments): each piece is a closed, outward-wound triangle mesh (the convex hull of its corners), so
PyBullet's URDF loader, which makes one convex hull per ``o`` group of an OBJ file, keeps the concave
shape (the mug's opening, the gap under its handle). The object frame is canonical: origin at the
centre of the bottom of the bounding box, z up (standing as it stands on a table). ``write_instance``
puts the URDF + OBJ into a folder, so the instance loads into ``ClutterWorld`` as any object model.
"""
from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull

from .generate_objects import MASS_KG
from .object_set import ObjectModel, find_objects, mesh_mass_properties

TRAIN_COUNT = 24
HELD_OUT_COUNT = 6
SPLITS = ("train", "held_out")
DENSITY_KG_M3 = 600.0  # plastics and wood; masses are clipped to the object set's MASS_KG
SIDES = 24  # of round cross-sections
INSIDE_TOLERANCE_M = 1e-4  # a surface sample this close to (or inside) another piece is internal

Ranges = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class Piece:
    """A closed convex mesh of one part; ``planes`` (F, 4): outward unit normal n and offset d, n·x + d <= 0 inside."""

    part: int
    vertices: np.ndarray
    triangles: np.ndarray
    planes: np.ndarray


def convex_piece(part: int, corners: np.ndarray) -> Piece:
    hull = ConvexHull(corners)
    used = np.unique(hull.simplices)
    remap = np.zeros(len(corners), int)
    remap[used] = np.arange(len(used))
    triangles = remap[hull.simplices]
    vertices = corners[used]
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    # Qhull does not wind facets consistently: orient each along its outward plane normal.
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), hull.equations[:, :3]) < 0
    triangles[flip] = triangles[flip][:, ::-1]
    return Piece(part, vertices, triangles, hull.equations.copy())


# -- primitives (corner sets whose hull is the piece) ---------------------------------------------------
def _ring(radius: float, z: float, sides: int = SIDES) -> np.ndarray:
    angle = 2.0 * np.pi * np.arange(sides) / sides
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle), np.full(sides, z)])


def _frustum(r0: float, z0: float, r1: float, z1: float) -> np.ndarray:
    return np.vstack([_ring(r0, z0), _ring(r1, z1)])


def _box(centre, size) -> np.ndarray:
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return np.asarray(centre, float) + 0.5 * signs * np.asarray(size, float)


def _shell(profile: list[tuple[float, float]], wall: float) -> list[np.ndarray]:
    """Slabs of a wall of revolution: between consecutive (z, outer radius) levels and ``SIDES`` angles,
    ``wall`` thick inwards. Returned level by level (bottom first), ``SIDES`` slabs each."""
    angle = 2.0 * np.pi * np.arange(SIDES + 1) / SIDES
    slabs = []
    for (z0, r0), (z1, r1) in zip(profile, profile[1:]):
        for a0, a1 in zip(angle, angle[1:]):
            corners = [(r * math.cos(a), r * math.sin(a), z) for z, ro in ((z0, r0), (z1, r1))
                       for r in (ro, ro - wall) for a in (a0, a1)]
            slabs.append(np.array(corners))
    return slabs


def _tube(path: np.ndarray, side: np.ndarray, half_side: float, half_other: float, sides: int = 10) -> list[np.ndarray]:
    """Segments of a tube of elliptic cross-section along ``path``: ``half_side`` along ``side`` (a unit
    vector normal to the path), ``half_other`` along the path's normal in the other direction."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    other = np.cross(side, tangent)
    angle = 2.0 * np.pi * np.arange(sides) / sides
    rings = [p + half_side * np.cos(angle)[:, None] * side + half_other * np.sin(angle)[:, None] * o
             for p, o in zip(path, other)]
    return [np.vstack(pair) for pair in zip(rings, rings[1:])]


# -- categories ---------------------------------------------------------------------------------------
Built = list[tuple[str, np.ndarray]]  # (part name, corners of a convex piece)


def _mug(p: dict[str, float]) -> Built:
    radius, wall = p["radius_m"], p["wall_m"]
    height = 2.0 * radius * p["height_over_diameter"]
    floor = 1.5 * wall
    body = [("body", _frustum(radius - 0.5 * wall, 0.0, radius - 0.5 * wall, floor))]
    body += [("body", slab) for slab in _shell([(0.0, radius), (height, radius)], wall)]
    # A C-shaped handle on +x: a superellipse half from the wall's middle out and back (squareness 2 is
    # an ellipse, larger is squarer, a D), its ends sunk into the wall.
    t = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 15)
    n = p["handle_squareness"]
    reach, half_span = p["handle_reach_m"], 0.5 * p["handle_span"] * height
    x = radius - 0.5 * wall + reach * np.abs(np.cos(t)) ** (2.0 / n)
    z = 0.5 * height + floor / 2 + half_span * np.sign(t) * np.abs(np.sin(t)) ** (2.0 / n)
    path = np.column_stack([x, np.zeros_like(x), z])
    handle = _tube(path, np.array([0.0, 1.0, 0.0]), p["handle_width_m"] / 2, p["handle_thickness_m"] / 2)
    return body + [("handle", segment) for segment in handle]


def _bottle(p: dict[str, float]) -> Built:
    radius, body_h = p["radius_m"], p["body_height_m"]
    neck_r = p["neck_over_radius"] * radius
    shoulder_top = body_h + p["shoulder_over_radius"] * radius
    neck_top = shoulder_top + p["neck_over_body"] * body_h
    cap = 0.012
    return [("body", _frustum(radius, 0.0, radius, body_h)),
            ("body", _frustum(radius, body_h, neck_r, shoulder_top)),
            ("neck", _frustum(neck_r, shoulder_top - 0.002, neck_r, neck_top)),
            ("neck", _frustum(neck_r + 0.002, neck_top - cap, neck_r + 0.002, neck_top))]


def _bowl(p: dict[str, float]) -> Built:
    rim_r, wall = p["rim_radius_m"], p["wall_m"]
    depth, foot = p["depth_over_radius"] * rim_r, p["foot_over_rim"] * rim_r
    rim_band = min(0.015, 0.35 * depth)  # the top of the wall a hand pinches

    def radius(z: float) -> float:  # flares from the foot, steepest near the rim
        return foot + (rim_r - foot) * (z / depth) ** 0.6

    levels = list(np.linspace(0.0, depth - rim_band, 5)) + [depth]
    slabs = _shell([(z, radius(z)) for z in levels], wall)
    rim_start = (len(levels) - 2) * SIDES  # the top level's slabs
    return ([("body", _frustum(foot - 0.5 * wall, 0.0, foot - 0.5 * wall, wall))]
            + [("rim" if k >= rim_start else "body", slab) for k, slab in enumerate(slabs)])


def _hammer(p: dict[str, float]) -> Built:
    length, half = p["handle_length_m"], p["handle_radius_m"]
    head_len = p["head_over_handle"] * length
    head = p["head_side_m"]
    # The handle along +x, flattened in z (lying on its broad side), into the head across y at its end.
    path = np.column_stack([np.linspace(0.0, length, 2), np.zeros(2), np.zeros(2)])
    handle = _tube(path, np.array([0.0, 1.0, 0.0]), half * p["handle_flatness"], half, sides=16)
    return [("handle", segment) for segment in handle] + [("head", _box((length, 0.0, 0.0), (head, head_len, head)))]


def _box_lid(p: dict[str, float]) -> Built:
    length = p["length_m"]
    width, height = p["width_over_length"] * length, p["height_over_length"] * length
    lid, overhang = p["lid_over_height"] * height, p["lid_overhang_m"]
    return [("body", _box((0.0, 0.0, 0.5 * height - 0.001), (length, width, height - 0.002))),
            ("lid", _box((0.0, 0.0, height - 0.5 * lid), (length + 2 * overhang, width + 2 * overhang, lid)))]


@dataclass(frozen=True)
class Category:
    name: str
    parts: tuple[str, ...]
    ranges: Ranges  # training ranges of every shape parameter
    held_out: Ranges  # the parameters held out, with their held-out ranges (disjoint from ``ranges``)
    build: Callable[[dict[str, float]], Built]
    shared_patterns: tuple[str, ...] = ()  # file names of ../shared/objects of this category (no part labels)

    def parameter_ranges(self, split: str) -> Ranges:
        if split not in SPLITS:
            raise ValueError(f"unknown category split {split!r}: choose one of {SPLITS}")
        return {**self.ranges, **self.held_out} if split == "held_out" else dict(self.ranges)


CATEGORIES: dict[str, Category] = {c.name: c for c in (
    Category("mug", ("body", "handle"),
             {"radius_m": (0.036, 0.044), "wall_m": (0.004, 0.006), "height_over_diameter": (1.0, 1.3),
              "handle_reach_m": (0.026, 0.034), "handle_span": (0.5, 0.7), "handle_width_m": (0.010, 0.014),
              "handle_thickness_m": (0.007, 0.010), "handle_squareness": (2.0, 2.6)},
             {"height_over_diameter": (0.7, 0.85), "handle_squareness": (4.0, 6.0)},
             _mug, ("mug*", "*_mug*")),
    Category("bottle", ("body", "neck"),
             {"radius_m": (0.028, 0.036), "body_height_m": (0.08, 0.12), "shoulder_over_radius": (0.5, 1.0),
              "neck_over_radius": (0.35, 0.45), "neck_over_body": (0.2, 0.4)},
             {"neck_over_body": (0.55, 0.7), "shoulder_over_radius": (0.1, 0.25)},
             _bottle, ("*bottle*",)),
    Category("bowl", ("body", "rim"),
             {"rim_radius_m": (0.06, 0.075), "wall_m": (0.005, 0.007), "depth_over_radius": (0.55, 0.8),
              "foot_over_rim": (0.45, 0.6)},
             {"depth_over_radius": (0.3, 0.4), "foot_over_rim": (0.75, 0.85)},
             _bowl, ("bowl*",)),
    Category("hammer", ("handle", "head"),
             {"handle_length_m": (0.15, 0.2), "handle_radius_m": (0.011, 0.014), "handle_flatness": (1.0, 1.3),
              "head_over_handle": (0.45, 0.6), "head_side_m": (0.024, 0.03)},
             {"handle_flatness": (1.7, 2.1), "head_over_handle": (0.7, 0.85)},
             _hammer, ("hammer*",)),
    Category("box", ("body", "lid"),
             {"length_m": (0.06, 0.1), "width_over_length": (0.55, 0.8), "height_over_length": (0.35, 0.6),
              "lid_over_height": (0.15, 0.25), "lid_overhang_m": (0.002, 0.003)},
             {"height_over_length": (0.8, 1.0), "lid_over_height": (0.35, 0.45)},
             _box_lid, ("box_*", "*_box", "*box_*")),
)}


def category(name: str) -> Category:
    if name not in CATEGORIES:
        raise ValueError(f"unknown object category {name!r}: choose one of {sorted(CATEGORIES)}")
    return CATEGORIES[name]


def instance_count(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown category split {split!r}: choose one of {SPLITS}")
    return TRAIN_COUNT if split == "train" else HELD_OUT_COUNT


def shape_parameters(name: str, split: str, index: int) -> dict[str, float]:
    """The frozen rule: instance ``index`` of ``split`` -> its shape parameters (see the module docstring)."""
    ranges = category(name).parameter_ranges(split)
    if not 0 <= index < instance_count(split):
        raise ValueError(f"{name} has {instance_count(split)} {split} instances (0-{instance_count(split) - 1}), "
                         f"not {index}")
    rng = random.Random(f"{name}/{split}/{index}")
    return {key: round(rng.uniform(*ranges[key]), 4) for key in sorted(ranges)}


# -- instances ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SurfaceSample:
    """Points on an instance's outer surface (object frame, m), outward unit normals, part indices."""

    points_m: np.ndarray
    normals: np.ndarray
    parts: np.ndarray


@dataclass(frozen=True)
class CategoryInstance:
    category: str
    split: str
    index: int
    parameters: dict[str, float]
    part_names: tuple[str, ...]
    pieces: tuple[Piece, ...]  # in the canonical object frame

    @property
    def name(self) -> str:
        return f"{self.category}_{self.split}_{self.index:02d}"

    @cached_property
    def vertices(self) -> np.ndarray:
        return np.vstack([p.vertices for p in self.pieces])

    @cached_property
    def triangles(self) -> np.ndarray:
        offsets = np.cumsum([0] + [len(p.vertices) for p in self.pieces[:-1]])
        return np.vstack([p.triangles + o for p, o in zip(self.pieces, offsets)])

    @cached_property
    def vertex_parts(self) -> np.ndarray:
        """(V,) index into ``part_names`` of every vertex of ``vertices``."""
        return np.concatenate([np.full(len(p.vertices), p.part) for p in self.pieces])

    def extents_m(self) -> np.ndarray:
        return np.ptp(self.vertices, axis=0)

    def mass_kg(self) -> float:
        # Overlaps between pieces count twice: a few per cent on these shapes, within the density's guess.
        volume = mesh_mass_properties(self.vertices, self.triangles).volume
        return round(float(np.clip(DENSITY_KG_M3 * volume, *MASS_KG)), 3)

    def sample_surface(self, count: int, seed: int = 0) -> SurfaceSample:
        """``count`` points spread by area over the outer surface: faces inside or on another piece (the
        joins between pieces) are not surface."""
        rng = np.random.default_rng(seed)
        corners = self.vertices[self.triangles]
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        area = 0.5 * np.linalg.norm(cross, axis=1)
        piece_of = np.repeat(np.arange(len(self.pieces)), [len(p.triangles) for p in self.pieces])
        points, normals, pieces = [], [], []
        while sum(len(p) for p in points) < count:
            face = rng.choice(len(area), size=2 * count, p=area / area.sum())
            u, v = rng.random((2, 2 * count))
            flip = u + v > 1.0
            u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
            c = corners[face]
            sample = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
            outer = np.ones(len(sample), bool)
            for k, piece in enumerate(self.pieces):
                other = piece_of[face] != k
                inside = (sample[other] @ piece.planes[:, :3].T + piece.planes[:, 3]).max(axis=1) < INSIDE_TOLERANCE_M
                outer[np.flatnonzero(other)[inside]] = False
            points.append(sample[outer])
            normals.append(cross[face[outer]] / (2.0 * area[face[outer], None]))
            pieces.append(piece_of[face[outer]])
        parts = np.array([p.part for p in self.pieces])[np.concatenate(pieces)[:count]]
        return SurfaceSample(np.concatenate(points)[:count], np.concatenate(normals)[:count], parts)


def make_instance(name: str, split: str, index: int) -> CategoryInstance:
    spec = category(name)
    parameters = shape_parameters(name, split, index)
    built = spec.build(parameters)
    corners = np.vstack([c for _, c in built])
    lower, upper = corners.min(axis=0), corners.max(axis=0)
    origin = np.array([(lower[0] + upper[0]) / 2, (lower[1] + upper[1]) / 2, lower[2]])
    pieces = tuple(convex_piece(spec.parts.index(part), c - origin) for part, c in built)
    return CategoryInstance(name, split, index, parameters, spec.parts, pieces)


def instances(name: str, split: str) -> list[CategoryInstance]:
    return [make_instance(name, split, i) for i in range(instance_count(split))]


# -- files for the simulated world ---------------------------------------------------------------------
def _number(x: float) -> str:
    return f"{float(x) + 0.0:.6g}"


def write_instance(instance: CategoryInstance, folder: str | Path) -> ObjectModel:
    """``<folder>/<name>.urdf`` and ``.obj`` (one ``o`` group per convex piece); the URDF's frame is the
    instance's object frame."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {instance.name} {instance.parameters}: diffgrasp_ros.sim.categories; one convex piece per o"]
    first = 1
    for k, piece in enumerate(instance.pieces):
        lines += [f"o piece_{k:02d}_{instance.part_names[piece.part]}"]
        lines += [f"v {' '.join(_number(c) for c in v)}" for v in piece.vertices]
        lines += [f"f {a + first} {b + first} {c + first}" for a, b, c in piece.triangles]
        first += len(piece.vertices)
    (folder / f"{instance.name}.obj").write_text("\n".join(lines) + "\n", encoding="utf-8")
    mass = instance.mass_kg()
    props = mesh_mass_properties(instance.vertices, instance.triangles)
    inertia = props.inertia * mass / props.volume
    mesh = f'<geometry><mesh filename="{instance.name}.obj"/></geometry>'
    urdf = "\n".join([
        '<?xml version="1.0"?>',
        f'<robot name="{instance.name}">',
        '  <link name="base_link">',
        '    <contact><lateral_friction value="1.0"/><rolling_friction value="0.0"/></contact>',
        f'    <inertial><origin xyz="{" ".join(_number(c) for c in props.centroid)}"/><mass value="{mass:g}"/>',
        f'      <inertia ixx="{_number(inertia[0, 0])}" ixy="{_number(inertia[0, 1])}" ixz="{_number(inertia[0, 2])}" '
        f'iyy="{_number(inertia[1, 1])}" iyz="{_number(inertia[1, 2])}" izz="{_number(inertia[2, 2])}"/></inertial>',
        f'    <visual>{mesh}<material name="{instance.name}_color"><color rgba="0.8 0.5 0.3 1"/></material></visual>',
        f"    <collision>{mesh}</collision>",
        "  </link>",
        "</robot>",
        "",
    ])
    path = folder / f"{instance.name}.urdf"
    path.write_text(urdf, encoding="utf-8")
    return ObjectModel(instance.name, path)


def shared_examples(name: str, objects_root: Path | None) -> list[ObjectModel]:
    """Objects of ``../shared/objects`` (``pile/train``, ``packed/train``) whose file names say they are of
    the category: real-looking shapes for variety, without part labels. Empty without the shared set."""
    if objects_root is None:
        return []
    patterns = category(name).shared_patterns
    found = []
    for kind in ("pile", "packed"):
        folder = Path(objects_root) / kind / "train"
        if folder.is_dir():
            found += [m for m in find_objects(folder)
                      if any(fnmatch.fnmatch(m.name.lower(), pattern) for pattern in patterns)]
    return found
