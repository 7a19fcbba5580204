"""Shape families of the shared object sets, and the families held out for validation.

    python -m diffgrasp_ros.sim.object_families            # the family table of the frozen file
    python -m diffgrasp_ros.sim.object_families --check    # recompute from ../shared/objects, compare
    python -m diffgrasp_ros.sim.object_families --write    # recompute and write object_families.json

``../shared/objects`` has no family labels, so families come from a stated rule (``RULE_VERSION``):

1. Every object (file name) of ``pile/train`` and ``packed/train`` is described by five numbers of its
   collision geometry (``ShapeDescriptors``): the proportions of its minimum-volume box, its solidity,
   and how much of that box its outline fills seen end-on and from above. All are ratios, so they do
   not change with scale or pose (the packed copies, stored at another scale and pose, differ from the
   pile copies by at most 0.03). An object in both sets is described from its pile copy, so it has one
   family. Descriptors are rounded to ``DESCRIPTOR_DECIMALS`` before clustering.
2. The descriptors are standardised (mean 0, standard deviation 1 over the objects) and clustered by
   k-means into ``FAMILY_COUNT`` families (k-means++ starts from ``KMEANS_SEED``, best of
   ``KMEANS_RESTARTS``). Each family is named from its centroid by ``family_name``.
3. Held out are the families whose objects make up ``HELD_OUT_SHARE`` of each scene type and lie,
   on average, farthest (standardised descriptor distance) from the nearest family kept for training.

The result is frozen in ``object_families.json`` (object file names, families, held-out flags, the
descriptors, centroids and the rule's parameters), so the split does not depend on library versions at
run time. An object the file does not list is assigned at run time to the family whose stored centroid
is nearest to its own standardised descriptors, and is held out when that family is.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import astuple, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.transform import Rotation

from .object_set import MESH_SUFFIXES, find_objects, read_mesh

RULE_VERSION = 1
SCENE_KINDS = ("pile", "packed")  # pile first: an object in both is described from its pile copy
DESCRIPTOR_DECIMALS = 4
FAMILY_COUNT = 8
KMEANS_SEED = 0
KMEANS_RESTARTS = 300
HELD_OUT_SHARE = (0.15, 0.25)  # of each scene type's objects
FROZEN_FILE = Path(__file__).with_name("object_families.json")
CYLINDER_SIDES = 32
SPHERE_POINTS = 64


@dataclass(frozen=True)
class ShapeDescriptors:
    """Scale- and pose-invariant numbers of an object's collision geometry, each in (0, 1]."""

    middle_over_long: float  # sides of the minimum-volume box, long >= middle >= short: low = long, thin
    short_over_middle: float  # low = flat
    solidity: float  # solid volume / convex-hull volume: low = hollow, handled, hooked
    end_fill: float  # convex outline seen along the long side / (middle x short): pi/4 round, 1 square
    top_fill: float  # convex outline seen along the short side / (long x middle)

    def vector(self) -> np.ndarray:
        return np.array(astuple(self))


DESCRIPTOR_NAMES = tuple(f.name for f in fields(ShapeDescriptors))


@dataclass(frozen=True)
class ObjectShape:
    descriptors: ShapeDescriptors
    longest_side_m: float  # not used by the rule: shows that families are not size classes


@dataclass(frozen=True)
class Family:
    name: str
    centroid: ShapeDescriptors  # mean descriptors of its objects
    held_out: bool


@dataclass(frozen=True)
class FamilyAssignment:
    """Families, held-out flags and every listed object's family: what ``object_families.json`` holds."""

    version: int  # of the rule that made it
    families: tuple[Family, ...]
    mean: np.ndarray  # standardisation of the descriptors
    scale: np.ndarray
    family_of_file: dict[str, str]  # object file name -> family name

    def family(self, name: str) -> Family:
        return next(f for f in self.families if f.name == name)

    def nearest_family(self, descriptors: ShapeDescriptors) -> Family:
        centroids = np.array([f.centroid.vector() for f in self.families])
        distances = np.linalg.norm((centroids - descriptors.vector()) / self.scale, axis=1)
        return self.families[int(np.argmin(distances))]

    def family_of(self, path: str | Path) -> Family:
        """The object's frozen family, or for an object the file does not list, the nearest family."""
        name = self.family_of_file.get(Path(path).name)
        return self.family(name) if name is not None else self.nearest_family(_descriptors_of(Path(path)))

    def is_held_out(self, path: str | Path) -> bool:
        return self.family_of(path).held_out

    @property
    def held_out_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.families if f.held_out)


# -- collision geometry as convex pieces ----------------------------------------------------------------
def _obj_pieces(path: Path) -> list[np.ndarray]:
    """Vertices of each object (``o``) of an OBJ file: the convex pieces PyBullet makes of it."""
    vertices: list[list[float]] = []
    pieces: list[set[int]] = [set()]
    for line in path.read_text(errors="replace").splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "o" and pieces[-1]:
            pieces.append(set())
        elif tokens[0] == "v":
            vertices.append([float(x) for x in tokens[1:4]])
        elif tokens[0] == "f":
            for corner in tokens[1:]:
                i = int(corner.split("/")[0])
                pieces[-1].add(i - 1 if i > 0 else len(vertices) + i)
    points = np.array(vertices, float).reshape(-1, 3)
    return [points[sorted(piece)] for piece in pieces if piece]


def _primitive_points(geometry: ET.Element) -> list[np.ndarray]:
    """Points whose convex hull is the URDF box, cylinder (a 32-gon prism) or sphere."""
    box, cylinder, sphere = (geometry.find(tag) for tag in ("box", "cylinder", "sphere"))
    if box is not None:
        half = np.array([float(s) for s in box.get("size").split()]) / 2.0
        return [np.array(list(itertools.product((-1.0, 1.0), repeat=3))) * half]
    if cylinder is not None:
        radius, length = float(cylinder.get("radius")), float(cylinder.get("length"))
        angle = np.linspace(0.0, 2.0 * np.pi, CYLINDER_SIDES, endpoint=False)
        ring = radius * np.column_stack([np.cos(angle), np.sin(angle)])
        return [np.vstack([np.column_stack([ring, np.full(CYLINDER_SIDES, z)]) for z in (-length / 2, length / 2)])]
    if sphere is not None:
        # Fibonacci points: an even covering with no preferred direction.
        k = np.arange(SPHERE_POINTS) + 0.5
        polar, azimuth = np.arccos(1.0 - 2.0 * k / SPHERE_POINTS), np.pi * (1.0 + 5.0**0.5) * k
        unit = np.column_stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)])
        return [float(sphere.get("radius")) * unit]
    return []


def collision_pieces(path: Path) -> list[np.ndarray]:
    """The object's collision geometry (URDF, OBJ or STL) as point sets whose hulls are its convex pieces (m)."""
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return _obj_pieces(path)
    if suffix in MESH_SUFFIXES:
        return [read_mesh(path)[0]]
    pieces = []
    for collision in ET.parse(path).getroot().iter("collision"):
        origin = collision.find("origin")
        origin = origin.attrib if origin is not None else {}
        xyz = np.array([float(x) for x in origin.get("xyz", "0 0 0").split()])
        rpy = [float(x) for x in origin.get("rpy", "0 0 0").split()]
        geometry = collision.find("geometry")
        mesh = geometry.find("mesh")
        if mesh is not None:
            scale = np.array([float(s) for s in mesh.get("scale", "1 1 1").split()])
            local = [p * scale for p in collision_pieces(path.parent / mesh.get("filename"))]
        else:
            local = _primitive_points(geometry)
        pieces += [Rotation.from_euler("xyz", rpy).apply(p) + xyz for p in local]  # URDF rpy: fixed axes
    if not pieces:
        raise ValueError(f"{path} has no collision geometry")
    return pieces


# -- descriptors ------------------------------------------------------------------------------------
def _hull_volume(points: np.ndarray) -> float:
    try:
        return ConvexHull(points).volume
    except QhullError:  # a flat or degenerate piece holds no volume
        return 0.0


def _min_area_rectangle(points_2d: np.ndarray) -> tuple[float, np.ndarray]:
    """Area and a side direction of the smallest rectangle around 2-D points (a side lies on their hull)."""
    hull = points_2d[ConvexHull(points_2d).vertices]
    edges = np.roll(hull, -1, axis=0) - hull
    sides = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    normals = sides @ np.array([[0.0, 1.0], [-1.0, 0.0]])
    areas = np.ptp(hull @ sides.T, axis=0) * np.ptp(hull @ normals.T, axis=0)
    best = int(np.argmin(areas))
    return float(areas[best]), sides[best]


def minimum_volume_box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axes (rows) and side lengths (m), longest first, of the smallest box around the points that has a
    face on their convex hull, found by trying every hull face. The smallest box of all can lie on hull
    edges instead (O'Rourke 1985) and be slightly smaller; for side ratios that hardly matters."""
    hull = ConvexHull(points)
    vertices = hull.points[hull.vertices]
    best_volume, best_axes = math.inf, np.eye(3)
    for normal in np.unique(np.round(hull.equations[:, :3], 9), axis=0):
        normal = normal / np.linalg.norm(normal)
        u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(normal, u)
        area, side = _min_area_rectangle(vertices @ np.column_stack([u, v]))
        volume = area * np.ptp(vertices @ normal)
        if volume < best_volume:
            first = side[0] * u + side[1] * v
            best_volume, best_axes = volume, np.array([first, np.cross(normal, first), normal])
    lengths = np.ptp(vertices @ best_axes.T, axis=0)
    order = np.argsort(-lengths)
    return best_axes[order], lengths[order]


def describe(path: str | Path) -> ObjectShape:
    """Descriptors (rounded to ``DESCRIPTOR_DECIMALS``) and size of the object's collision geometry."""
    pieces = collision_pieces(Path(path))
    points = np.vstack(pieces)
    hull_volume = ConvexHull(points).volume
    axes, (long, middle, short) = minimum_volume_box(points)
    # Pieces are convex; their volumes add up to the solid's (V-HACD pieces barely overlap).
    solid_volume = sum(_hull_volume(p) for p in pieces)

    def outline_area(plane_axes: np.ndarray) -> float:
        return ConvexHull(points @ plane_axes.T).volume  # a 2-D hull's volume is its area

    values = (middle / long, short / middle, min(1.0, solid_volume / hull_volume),
              outline_area(axes[1:]) / (middle * short), outline_area(axes[:2]) / (long * middle))
    return ObjectShape(ShapeDescriptors(*(round(float(x), DESCRIPTOR_DECIMALS) for x in values)), float(long))


@lru_cache(maxsize=None)
def _descriptors_of(path: Path) -> ShapeDescriptors:
    try:
        return describe(path).descriptors
    except (QhullError, ValueError, OSError, ET.ParseError) as e:
        raise ValueError(f"{path} is not listed in {FROZEN_FILE.name} and its shape family cannot be computed "
                         f"from its collision geometry ({e})") from e


# -- the rule ----------------------------------------------------------------------------------------
def family_name(centroid: ShapeDescriptors) -> str:
    """Words for a descriptor profile: proportions, then cross-section (or hollow / irregular)."""
    c = centroid
    if c.short_over_middle < 0.5:
        proportion = "flat"
    elif c.middle_over_long < 0.5:
        proportion = "long"
    elif c.middle_over_long < 0.8:
        proportion = "oblong"
    else:
        proportion = "compact"
    if c.solidity < 0.6:
        body = "hollow"
    elif c.solidity < 0.85:
        body = "irregular"
    elif c.end_fill >= 0.9 and c.top_fill >= 0.9:
        body = "box"
    elif c.top_fill >= 0.9:
        body = "cylinder"
    else:
        body = "rounded"
    return f"{proportion} {body}"


def _kmeans(z: np.ndarray, k: int) -> np.ndarray:
    """Labels of the best (least within-family sum of squares) of ``KMEANS_RESTARTS`` k-means++ runs."""
    rng = np.random.default_rng(KMEANS_SEED)
    best_labels, best_inertia = None, math.inf
    for _ in range(KMEANS_RESTARTS):
        centres = [z[rng.integers(len(z))]]
        for _ in range(k - 1):
            squared = np.min([((z - c) ** 2).sum(axis=1) for c in centres], axis=0)
            centres.append(z[rng.choice(len(z), p=squared / squared.sum())])
        centres, labels = np.array(centres), None
        while True:  # Lloyd's iterations until no object changes family
            previous, labels = labels, np.argmin(((z[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
            if np.array_equal(labels, previous):
                break
            centres = np.array([z[labels == j].mean(axis=0) if np.any(labels == j) else centres[j] for j in range(k)])
        inertia = float(((z - centres[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-9:
            best_labels, best_inertia = labels, inertia
    return best_labels


def _held_out_families(z: np.ndarray, labels: np.ndarray, in_kind: dict[str, np.ndarray]) -> tuple[int, ...]:
    """The set of families holding ``HELD_OUT_SHARE`` of every scene type's objects whose objects lie
    farthest, on average, from the nearest centroid of the families kept for training."""
    k = labels.max() + 1
    centroids = np.array([z[labels == j].mean(axis=0) for j in range(k)])
    distance = np.linalg.norm(z[:, None] - centroids[None], axis=2)  # object x family
    low, high = HELD_OUT_SHARE
    best, best_score = None, -math.inf
    for size in range(1, k):
        for chosen in itertools.combinations(range(k), size):
            held = np.isin(labels, chosen)
            if not all(low <= held[mask].mean() <= high for mask in in_kind.values()):
                continue
            kept = [j for j in range(k) if j not in chosen]
            score = distance[held][:, kept].min(axis=1).mean()
            if score > best_score:
                best, best_score = chosen, score
    if best is None:
        raise ValueError(f"no set of families holds {low:.0%}-{high:.0%} of every scene type's objects")
    return best


@dataclass(frozen=True)
class ListedObject:
    kind: str
    file: str
    shape: ObjectShape


def assign(listed: list[ListedObject]) -> FamilyAssignment:
    """Apply steps 2 and 3 of the rule to described objects (step 1)."""
    shapes = {}
    for item in listed:  # in SCENE_KINDS order: an object's first (pile) copy describes it
        shapes.setdefault(item.file, item.shape)
    files = sorted(shapes)
    raw = np.array([shapes[f].descriptors.vector() for f in files])
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    z = (raw - mean) / scale
    labels = _kmeans(z, FAMILY_COUNT)
    in_kind = {kind: np.isin(files, [i.file for i in listed if i.kind == kind]) for kind in SCENE_KINDS}
    held = _held_out_families(z, labels, in_kind)
    centroids = [ShapeDescriptors(*(float(x) for x in raw[labels == j].mean(axis=0))) for j in range(FAMILY_COUNT)]
    names = [family_name(c) for c in centroids]
    # Two families with the same profile words are told apart by number, in order of size.
    for name in set(names):
        same = sorted((j for j in range(FAMILY_COUNT) if names[j] == name), key=lambda j: -np.sum(labels == j))
        for rank, j in enumerate(same[1:], start=2):
            names[j] = f"{name} {rank}"
    families = tuple(sorted((Family(names[j], centroids[j], j in held) for j in range(FAMILY_COUNT)),
                            key=lambda f: f.name))
    return FamilyAssignment(RULE_VERSION, families, mean, scale, {f: names[label] for f, label in zip(files, labels)})


def describe_shared(objects_root: Path) -> list[ListedObject]:
    """Step 1 of the rule for every object of ``<objects_root>/{pile,packed}/train``."""
    return [ListedObject(kind, model.path.name, describe(model.path))
            for kind in SCENE_KINDS for model in find_objects(objects_root / kind / "train")]


# -- the frozen file ----------------------------------------------------------------------------------
def family_distances(assignment: FamilyAssignment) -> dict[str, tuple[str, float]]:
    """Each held-out family's nearest training family and the distance of their centroids (standardised)."""
    def z(f: Family) -> np.ndarray:
        return (f.centroid.vector() - assignment.mean) / assignment.scale

    kept = [f for f in assignment.families if not f.held_out]
    result = {}
    for family in assignment.families:
        if family.held_out:
            nearest = min(kept, key=lambda f: float(np.linalg.norm(z(f) - z(family))))
            result[family.name] = (nearest.name, float(np.linalg.norm(z(nearest) - z(family))))
    return result


def to_json(assignment: FamilyAssignment, listed: list[ListedObject]) -> str:
    """One line per object, so that a change of the split shows as a readable diff."""
    rule = {"version": assignment.version, "descriptors": list(DESCRIPTOR_NAMES),
            "descriptor_decimals": DESCRIPTOR_DECIMALS, "families": FAMILY_COUNT, "kmeans_seed": KMEANS_SEED,
            "kmeans_restarts": KMEANS_RESTARTS, "held_out_share": list(HELD_OUT_SHARE),
            "standardisation": {"mean": assignment.mean.round(6).tolist(),
                                "scale": assignment.scale.round(6).tolist()}}
    distances = family_distances(assignment)
    families = [{"name": f.name, "held_out": f.held_out,
                 "centroid": [round(x, 6) for x in astuple(f.centroid)],
                 **({"nearest_training_family": distances[f.name][0],
                     "centroid_distance": round(distances[f.name][1], 3)} if f.held_out else {})}
                for f in assignment.families]
    lines = ["{", f'"rule": {json.dumps(rule)},', '"families": [',
             ",\n".join(json.dumps(f) for f in families), "],", '"objects": {']
    for n, kind in enumerate(SCENE_KINDS):
        entries = [json.dumps({"file": i.file, "family": assignment.family_of_file[i.file],
                               "held_out": assignment.is_held_out(i.file),
                               "descriptors": list(astuple(i.shape.descriptors)),
                               "longest_side_m": round(i.shape.longest_side_m, 4)})
                   for i in sorted((i for i in listed if i.kind == kind), key=lambda i: i.file)]
        lines += [f'"{kind}": [', ",\n".join(entries), "]" + ("," if n < len(SCENE_KINDS) - 1 else "")]
    return "\n".join(lines + ["}", "}"]) + "\n"


def listed_objects(data: dict) -> list[ListedObject]:
    return [ListedObject(kind, o["file"], ObjectShape(ShapeDescriptors(*o["descriptors"]), o["longest_side_m"]))
            for kind in SCENE_KINDS for o in data["objects"][kind]]


def from_json(data: dict) -> FamilyAssignment:
    families = tuple(Family(f["name"], ShapeDescriptors(*f["centroid"]), f["held_out"]) for f in data["families"])
    standardisation = data["rule"]["standardisation"]
    family_of_file = {o["file"]: o["family"] for kind in SCENE_KINDS for o in data["objects"][kind]}
    return FamilyAssignment(data["rule"]["version"], families, np.array(standardisation["mean"]),
                            np.array(standardisation["scale"]), family_of_file)


@lru_cache(maxsize=1)
def frozen_data() -> dict:
    return json.loads(FROZEN_FILE.read_text())


@lru_cache(maxsize=1)
def frozen_assignment() -> FamilyAssignment:
    """The committed split; the rule is not rerun at run time."""
    return from_json(frozen_data())


def family_table(data: dict) -> str:
    """Markdown: family, centroid descriptors, objects per scene type, median longest side, held out."""
    listed = listed_objects(data)
    assignment = from_json(data)
    distances = family_distances(assignment)
    header = ("| family | " + " | ".join(DESCRIPTOR_NAMES) + " | pile | packed | median longest side in pile (m) "
              "| held out (nearest training family, distance) |")
    rows = [header, "|" + " --- |" * (len(DESCRIPTOR_NAMES) + 5)]
    for family in assignment.families:
        members = [i for i in listed if assignment.family_of_file[i.file] == family.name]
        counts = [sum(i.kind == kind for i in members) for kind in SCENE_KINDS]
        size = np.median([i.shape.longest_side_m for i in members if i.kind == "pile"] or [math.nan])
        held = f"yes ({distances[family.name][0]}, {distances[family.name][1]:.2f})" if family.held_out else "no"
        rows.append(f"| {family.name} | " + " | ".join(f"{x:.2f}" for x in astuple(family.centroid))
                    + f" | {counts[0]} | {counts[1]} | {size:.3f} | {held} |")
    counts = {kind: (sum(o["held_out"] for o in data["objects"][kind]), len(data["objects"][kind]))
              for kind in SCENE_KINDS}
    rows.append("\nHeld out: " + ", ".join(f"{kind} {h}/{n} ({h / n:.0%})" for kind, (h, n) in counts.items()))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from .object_splits import shared_objects_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true",
                        help=f"recompute from ../shared/objects and write {FROZEN_FILE.name}")
    action.add_argument("--check", action="store_true",
                        help="recompute from ../shared/objects and compare with the file")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(family_table(frozen_data()))
        return 0
    root = shared_objects_dir()
    if root is None:
        parser.error("there is no ../shared/objects beside the repository")
    listed = describe_shared(root)
    text = to_json(assign(listed), listed)
    if args.write:
        FROZEN_FILE.write_text(text)
        print(f"wrote {FROZEN_FILE}\n{family_table(json.loads(text))}")
        return 0
    same = json.loads(text) == frozen_data()
    print(f"{FROZEN_FILE.name} {'matches' if same else 'does NOT match'} the rule applied to {root}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
