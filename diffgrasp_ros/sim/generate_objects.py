"""Generate the project's default object set: procedural tabletop shapes as small URDF / OBJ text files.

    python -m diffgrasp_ros.sim.generate_objects [--out DIR] [--seed N] [--extra-families]

The output is a deterministic function of the seed. Shapes are boxes, cylinders and spheres, compound
shapes built from them in one link (L and T shapes, mallets, dumbbells, stacked blocks, bottles) and
convex OBJ meshes (prisms, wedges, truncated cones). Sizes follow the VGN tabletop benchmark objects:
every object has an extent a 0.08 m parallel gripper can close on, none is longer than 0.20 m. Each
link's origin is its centre of mass, so PyBullet's base pose and the link pose coincide. Every fourth
generated object goes to ``val/`` (held out for validation), the rest to ``train/``.

``--extra-families`` writes, instead, the shapes the default set lacks, for training data at scale: thin
plates and sticks, concave open boxes (cups, trays), mugs with a handle, small (< 3 cm) and large
(15-20 cm) objects. Write them to a folder of their own; the default set's files stay as they are.
"""
from __future__ import annotations

import argparse
import colorsys
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .object_set import DEFAULT_OBJECTS_DIR, mesh_mass_properties

DEFAULT_SEED = 0
GRASP_EXTENT_M = (0.02, 0.07)  # some extent must lie in here to fit the 0.08 m gripper
MAX_EXTENT_M = 0.20
MASS_KG = (0.05, 0.5)
DENSITY_KG_M3 = (500.0, 1000.0)  # hardwood and plastics; masses are then clipped to MASS_KG
VAL_EVERY = 4


@dataclass(frozen=True)
class Part:
    """A primitive in the link frame: box size (x, y, z), cylinder (radius, length) or sphere (radius,)."""

    kind: str
    size: tuple[float, ...]
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axis: int = 2  # of a cylinder: 0, 1, 2 = x, y, z

    @property
    def volume(self) -> float:
        if self.kind == "box":
            return math.prod(self.size)
        if self.kind == "cylinder":
            return math.pi * self.size[0] ** 2 * self.size[1]
        return 4.0 / 3.0 * math.pi * self.size[0] ** 3

    @property
    def half_extents(self) -> np.ndarray:
        if self.kind == "box":
            return np.array(self.size) / 2.0
        if self.kind == "cylinder":
            half = np.full(3, self.size[0])
            half[self.axis] = self.size[1] / 2.0
            return half
        return np.full(3, self.size[0])

    def inertia(self) -> np.ndarray:
        """Inertia tensor about the part's centre at unit density."""
        m = self.volume
        if self.kind == "box":
            x, y, z = self.size
            return m / 12.0 * np.diag([y * y + z * z, x * x + z * z, x * x + y * y])
        if self.kind == "cylinder":
            r, length = self.size
            diag = np.full(3, m * (3.0 * r * r + length * length) / 12.0)
            diag[self.axis] = m * r * r / 2.0
            return np.diag(diag)
        return np.eye(3) * 0.4 * m * self.size[0] ** 2

    def geometry_xml(self) -> str:
        if self.kind == "box":
            return f'<box size="{" ".join(_len(s) for s in self.size)}"/>'
        if self.kind == "cylinder":
            return f'<cylinder radius="{_len(self.size[0])}" length="{_len(self.size[1])}"/>'
        return f'<sphere radius="{_len(self.size[0])}"/>'

    @property
    def rpy(self) -> str:
        # URDF cylinders lie along z; turn them onto x (about y) or y (about x).
        return {0: "0 1.5707963 0", 1: "1.5707963 0 0"}.get(self.axis, "0 0 0") \
            if self.kind == "cylinder" else "0 0 0"


@dataclass
class Shape:
    """A generated object: primitives, or one closed mesh (vertices, outward-wound triangles)."""

    name: str
    rgba: tuple[float, float, float, float]
    density: float
    parts: list[Part] = field(default_factory=list)
    vertices: np.ndarray | None = None
    triangles: np.ndarray | None = None

    def mass_properties(self) -> tuple[float, np.ndarray, np.ndarray]:
        """Unit-density volume, centroid and inertia about the centroid."""
        if self.vertices is not None:
            return mesh_mass_properties(self.vertices, self.triangles)
        volumes = np.array([p.volume for p in self.parts])
        centres = np.array([p.xyz for p in self.parts])
        centroid = volumes @ centres / volumes.sum()
        inertia = np.zeros((3, 3))
        for part, v, centre in zip(self.parts, volumes, centres):
            d = centre - centroid  # parallel-axis theorem
            inertia += part.inertia() + v * (d @ d * np.eye(3) - np.outer(d, d))
        return float(volumes.sum()), centroid, inertia

    def centred(self) -> Shape:
        """The same shape with its centroid moved to the origin."""
        _, centroid, _ = self.mass_properties()
        if self.vertices is not None:
            return replace(self, vertices=np.round(self.vertices - centroid, 6))
        parts = [replace(p, xyz=tuple(np.array(p.xyz) - centroid)) for p in self.parts]
        return replace(self, parts=parts)

    def extents(self) -> np.ndarray:
        if self.vertices is not None:
            return self.vertices.max(axis=0) - self.vertices.min(axis=0)
        lower = np.min([np.array(p.xyz) - p.half_extents for p in self.parts], axis=0)
        upper = np.max([np.array(p.xyz) + p.half_extents for p in self.parts], axis=0)
        return upper - lower

    @property
    def mass(self) -> float:
        return round(float(np.clip(self.density * self.mass_properties()[0], *MASS_KG)), 3)


# -- formatting -----------------------------------------------------------------------------------
def _len(x: float) -> str:
    """A length rounded to the micrometre (``+ 0.0`` turns -0 into 0)."""
    return f"{round(float(x), 6) + 0.0:g}"


def _sig(x: float) -> str:
    return f"{float(x) + 0.0:.6g}"


def _urdf(shape: Shape, seed: int) -> str:
    volume, _, unit_inertia = shape.mass_properties()
    inertia = unit_inertia * shape.mass / volume
    inertia[np.abs(inertia) < 1e-9 * np.abs(inertia).max()] = 0.0  # round-off in symmetric shapes
    rgba = " ".join(f"{c:.3f}" for c in shape.rgba)
    if shape.vertices is not None:
        elements = [("0 0 0", "0 0 0", f'<mesh filename="{shape.name}.obj"/>')]
    else:
        elements = [(" ".join(_len(c) for c in p.xyz), p.rpy, p.geometry_xml()) for p in shape.parts]
    body = []
    for xyz, rpy, geometry in elements:
        origin = f'<origin xyz="{xyz}" rpy="{rpy}"/>'
        body += ["    <visual>", f"      {origin}", f"      <geometry>{geometry}</geometry>",
                 f'      <material name="{shape.name}_color"><color rgba="{rgba}"/></material>',
                 "    </visual>",
                 "    <collision>", f"      {origin}", f"      <geometry>{geometry}</geometry>",
                 "    </collision>"]
    (ixx, ixy, ixz), (_, iyy, iyz), (_, _, izz) = inertia
    return "\n".join([
        '<?xml version="1.0"?>',
        # ("--" may not appear inside an XML comment.)
        f"<!-- Generated by diffgrasp_ros.sim.generate_objects with seed {seed}; do not edit. -->",
        f'<robot name="{shape.name}">',
        '  <link name="base_link">',
        "    <contact>",
        '      <lateral_friction value="1.0"/>',
        '      <rolling_friction value="0.0"/>',
        "    </contact>",
        "    <inertial>",
        '      <origin xyz="0 0 0" rpy="0 0 0"/>',
        f'      <mass value="{shape.mass:g}"/>',
        f'      <inertia ixx="{_sig(ixx)}" ixy="{_sig(ixy)}" ixz="{_sig(ixz)}" '
        f'iyy="{_sig(iyy)}" iyz="{_sig(iyz)}" izz="{_sig(izz)}"/>',
        "    </inertial>",
        *body,
        "  </link>",
        "</robot>",
        "",
    ])


def _obj(shape: Shape, seed: int) -> str:
    lines = [f"# {shape.name}: generated by python -m diffgrasp_ros.sim.generate_objects --seed {seed}"]
    lines += [f"v {' '.join(_len(c) for c in v)}" for v in shape.vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in shape.triangles]
    return "\n".join(lines) + "\n"


# -- meshes ---------------------------------------------------------------------------------------
def _loft(bottom: np.ndarray, top: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed mesh between two convex (n, 2) polygons at z = 0 and z = height, wound outwards."""
    n = len(bottom)
    vertices = np.vstack([np.column_stack([bottom, np.zeros(n)]),
                          np.column_stack([top, np.full(n, height)])])
    triangles = [[0, k + 1, k] for k in range(1, n - 1)]  # bottom cap
    triangles += [[n, n + k, n + k + 1] for k in range(1, n - 1)]  # top cap
    for k in range(n):
        j = (k + 1) % n
        triangles += [[k, j, n + j], [k, n + j, n + k]]
    triangles = np.array(triangles)
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:  # the polygons were clockwise
        triangles = triangles[:, ::-1]
    return vertices, triangles


def _polygon(n: int, radius: float) -> np.ndarray:
    angles = 2.0 * np.pi * np.arange(n) / n
    return radius * np.column_stack([np.cos(angles), np.sin(angles)])


def _permuted(mesh: tuple[np.ndarray, np.ndarray], axes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Reorder the coordinate axes (an odd permutation mirrors the mesh, so flip the winding)."""
    vertices, triangles = mesh
    odd = round(np.linalg.det(np.eye(3)[axes])) < 0
    return vertices[:, axes], triangles[:, ::-1] if odd else triangles


# -- shape families -------------------------------------------------------------------------------
Uniform = Callable[[float, float], float]


def _box(u: Uniform) -> list[Part]:
    # One side in the gripper's range; lying on its largest face.
    x, y, z = sorted([u(0.025, 0.065), u(0.03, 0.10), u(0.04, 0.15)], reverse=True)
    return [Part("box", (x, y, z))]


def _cylinder(u: Uniform) -> list[Part]:
    return [Part("cylinder", (u(0.015, 0.035), u(0.04, 0.15)))]


def _sphere(u: Uniform) -> list[Part]:
    return [Part("sphere", (u(0.02, 0.035),))]


def _lshape(u: Uniform) -> list[Part]:
    width, thickness = u(0.02, 0.035), u(0.025, 0.045)
    long_arm, short_arm = u(0.08, 0.15), u(0.05, 0.10)
    return [Part("box", (long_arm, width, thickness), (long_arm / 2, width / 2, 0.0)),
            Part("box", (width, short_arm, thickness), (width / 2, width + short_arm / 2, 0.0))]


def _tshape(u: Uniform) -> list[Part]:
    bar, bar_width, stem, stem_width, thickness = (u(0.08, 0.15), u(0.02, 0.035), u(0.04, 0.10),
                                                   u(0.02, 0.035), u(0.025, 0.045))
    return [Part("box", (bar, bar_width, thickness)),
            Part("box", (stem_width, stem, thickness), (0.0, -(bar_width + stem) / 2, 0.0))]


def _mallet(u: Uniform) -> list[Part]:
    radius, handle = u(0.010, 0.014), u(0.08, 0.13)
    head = (u(0.03, 0.045), u(0.06, 0.10), u(0.03, 0.045))
    return [Part("cylinder", (radius, handle), (handle / 2, 0.0, 0.0), axis=0),
            Part("box", head, (handle + head[0] / 2, 0.0, 0.0))]


def _dumbbell(u: Uniform) -> list[Part]:
    bar_radius, bar = u(0.009, 0.013), u(0.06, 0.10)
    weight_radius, weight = u(0.022, 0.032), u(0.02, 0.035)
    end = (bar + weight) / 2
    return [Part("cylinder", (bar_radius, bar), axis=0),
            Part("cylinder", (weight_radius, weight), (-end, 0.0, 0.0), axis=0),
            Part("cylinder", (weight_radius, weight), (end, 0.0, 0.0), axis=0)]


def _stacked(u: Uniform) -> list[Part]:
    x, y, z = u(0.05, 0.09), u(0.04, 0.065), u(0.025, 0.04)
    tx, ty, tz = u(0.03, x - 0.01), u(0.025, y - 0.01), u(0.025, 0.05)
    dx, dy = u(-(x - tx) / 2, (x - tx) / 2), u(-(y - ty) / 2, (y - ty) / 2)
    return [Part("box", (x, y, z), (0.0, 0.0, z / 2)), Part("box", (tx, ty, tz), (dx, dy, z + tz / 2))]


def _bottle(u: Uniform) -> list[Part]:
    radius, height, neck_radius, neck = u(0.025, 0.034), u(0.07, 0.12), u(0.010, 0.015), u(0.025, 0.045)
    return [Part("cylinder", (radius, height), (0.0, 0.0, height / 2)),
            Part("cylinder", (neck_radius, neck), (0.0, 0.0, height + neck / 2))]


def _hexprism(u: Uniform) -> tuple[np.ndarray, np.ndarray]:
    hexagon = _polygon(6, u(0.02, 0.03))
    return _loft(hexagon, hexagon, u(0.04, 0.12))


def _triprism(u: Uniform) -> tuple[np.ndarray, np.ndarray]:
    side, length = u(0.035, 0.06), u(0.07, 0.15)
    h = side * math.sqrt(3.0) / 2.0
    triangle = np.array([[-side / 2, -h / 3], [side / 2, -h / 3], [0.0, 2 * h / 3]])
    # Triangle in the y-z plane, extruded along x: it lies on a rectangular face.
    return _permuted(_loft(triangle, triangle, length), [2, 0, 1])


def _wedge(u: Uniform) -> tuple[np.ndarray, np.ndarray]:
    run, width, rise = u(0.06, 0.12), u(0.03, 0.065), u(0.03, 0.06)
    ramp = np.array([[0.0, 0.0], [run, 0.0], [0.0, rise]])
    # Ramp profile in the x-z plane, extruded along y.
    return _permuted(_loft(ramp, ramp, width), [0, 2, 1])


def _frustum(u: Uniform) -> tuple[np.ndarray, np.ndarray]:
    bottom = u(0.025, 0.034)
    return _loft(_polygon(24, bottom), _polygon(24, u(0.012, bottom - 0.008)), u(0.04, 0.10))


# (family, count, builder): the generation order, which fixes both the random stream and the splits.
FAMILIES: list[tuple[str, int, Callable]] = [
    ("box", 8, _box), ("cylinder", 5, _cylinder), ("sphere", 3, _sphere), ("lshape", 3, _lshape),
    ("tshape", 3, _tshape), ("mallet", 3, _mallet), ("dumbbell", 2, _dumbbell),
    ("stacked_block", 2, _stacked), ("bottle", 3, _bottle), ("hexprism", 2, _hexprism),
    ("triprism", 2, _triprism), ("wedge", 2, _wedge), ("frustum", 2, _frustum),
]


# -- extra families (``--extra-families``): what the default set lacks -------------------------------------
STICK_GRASP_EXTENT_M = (0.01, 0.07)  # a stick's 1-2 cm diameter: still above the hand's 8 mm "closed on nothing"


def _plate(u: Uniform) -> list[Part]:
    return [Part("box", (u(0.07, 0.12), u(0.05, 0.07), u(0.004, 0.008)))]


def _stick(u: Uniform) -> list[Part]:
    return [Part("cylinder", (u(0.005, 0.009), u(0.10, 0.18)), axis=0)]


def _open_box(inner: float, wall: float, height: float, floor: float) -> list[Part]:
    """A square container open at the top (concave): a floor and four axis-aligned walls."""
    outer, z = inner + 2 * wall, floor + height / 2
    offset = (inner + wall) / 2
    return [Part("box", (outer, outer, floor), (0.0, 0.0, floor / 2)),
            Part("box", (wall, outer, height), (offset, 0.0, z)), Part("box", (wall, outer, height), (-offset, 0.0, z)),
            Part("box", (inner, wall, height), (0.0, offset, z)), Part("box", (inner, wall, height), (0.0, -offset, z))]


def _cup(u: Uniform) -> list[Part]:
    # Walls at least 9 mm thick: a grasp on the rim must end wider than the hand's 8 mm "closed on nothing".
    return _open_box(u(0.045, 0.055), u(0.009, 0.012), u(0.045, 0.06), u(0.005, 0.008))


def _tray(u: Uniform) -> list[Part]:
    return _open_box(u(0.08, 0.11), u(0.009, 0.012), u(0.025, 0.04), u(0.005, 0.008))


def _mug(u: Uniform) -> list[Part]:
    """A cup with a C-shaped handle on its +x side: two arms out from the wall and a grip joining them."""
    inner, wall, height, floor = u(0.045, 0.055), u(0.009, 0.012), u(0.045, 0.06), u(0.006, 0.008)
    body = _open_box(inner, wall, height, floor)
    reach, bar, span = u(0.02, 0.03), u(0.008, 0.011), u(0.03, height - 0.01)
    side = inner / 2 + wall
    centre_z = floor + height / 2
    arm_x = side + reach / 2
    return body + [Part("box", (reach, bar, bar), (arm_x, 0.0, centre_z + (span - bar) / 2)),
                   Part("box", (reach, bar, bar), (arm_x, 0.0, centre_z - (span - bar) / 2)),
                   Part("box", (bar, bar, span), (side + reach + bar / 2, 0.0, centre_z))]


def _small_box(u: Uniform) -> list[Part]:
    return [Part("box", (u(0.02, 0.028), u(0.02, 0.028), u(0.02, 0.028)))]


def _small_cylinder(u: Uniform) -> list[Part]:
    return [Part("cylinder", (u(0.01, 0.014), u(0.02, 0.028)))]


def _large_box(u: Uniform) -> list[Part]:
    return [Part("box", (u(0.15, 0.20), u(0.04, 0.065), u(0.03, 0.05)))]


def _large_cylinder(u: Uniform) -> list[Part]:
    return [Part("cylinder", (u(0.025, 0.034), u(0.15, 0.20)), axis=0)]


EXTRA_FAMILIES: list[tuple[str, int, Callable]] = [
    ("plate", 4, _plate), ("stick", 4, _stick), ("cup", 4, _cup), ("tray", 4, _tray), ("mug", 4, _mug),
    ("small_box", 4, _small_box), ("small_cylinder", 4, _small_cylinder), ("large_box", 4, _large_box),
    ("large_cylinder", 4, _large_cylinder),
]


def build_shapes(seed: int = DEFAULT_SEED, families: list[tuple[str, int, Callable]] | None = None) -> list[Shape]:
    """All shapes of ``families`` (default: ``FAMILIES``), centred on their centroids, in generation order."""
    # random.Random, not numpy: its stream is stable across library versions, so files stay identical.
    rng = random.Random(seed)

    def u(low: float, high: float) -> float:
        return round(rng.uniform(low, high), 3)  # millimetre sizes keep the files readable

    shapes = []
    for family, count, builder in FAMILIES if families is None else families:
        for k in range(1, count + 1):
            geometry = builder(u)
            rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.95))
            rgba = (*(round(c, 3) for c in rgb), 1.0)
            shape = Shape(f"{family}_{k:02d}", rgba, rng.uniform(*DENSITY_KG_M3))
            if isinstance(geometry, list):
                shape.parts = geometry
            else:
                shape.vertices, shape.triangles = geometry
            grasp_extent = STICK_GRASP_EXTENT_M if builder is _stick else GRASP_EXTENT_M
            shapes.append(_checked(shape.centred(), grasp_extent))
    return shapes


def _checked(shape: Shape, grasp_extent_m: tuple[float, float] = GRASP_EXTENT_M) -> Shape:
    extents = shape.extents()
    low, high = grasp_extent_m
    if extents.max() > MAX_EXTENT_M + 1e-9 or not np.any((extents >= low) & (extents <= high)):
        raise RuntimeError(f"generated {shape.name} with extents {np.round(extents, 3)} m: it must be at "
                           f"most {MAX_EXTENT_M} m long and have an extent in {grasp_extent_m} m")
    return shape


def split_of(index: int) -> str:
    return "val" if index % VAL_EVERY == VAL_EVERY - 1 else "train"


def _readme(shapes: list[Shape], seed: int, extra_families: bool = False) -> str:
    splits = [split_of(i) for i in range(len(shapes))]
    rows = [f"| {s.name} | {split} | {' × '.join(f'{e:.3f}' for e in s.extents())} | {s.mass:.3f} |"
            for s, split in zip(shapes, splits)]
    option = " --extra-families --out DIR" if extra_families else ""
    return "\n".join([
        "# Extra object families (thin, concave, handled, small, large)" if extra_families else "# Default object set",
        "",
        f"Generated by `python -m diffgrasp_ros.sim.generate_objects --seed {seed}{option}` (deterministic; "
        "regenerate rather than edit by hand).",
        f"{len(shapes)} procedural shapes {'beyond' if extra_families else 'in'} the size range of the VGN tabletop "
        "benchmark objects: "
        f"`train/` ({splits.count('train')}) for training and tuning, `val/` ({splits.count('val')}, "
        f"every {VAL_EVERY}th generated object) held out for validation.",
        "Each URDF link's origin is the object's centre of mass; mesh shapes are convex OBJ files next "
        "to their URDF.",
        "",
        "| object | split | extents x × y × z (m) | mass (kg) |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def generate(out: Path = DEFAULT_OBJECTS_DIR, seed: int = DEFAULT_SEED, extra_families: bool = False) -> list[Path]:
    """Write the object set (``EXTRA_FAMILIES`` with ``extra_families``, else ``FAMILIES``) to ``out/train`` and
    ``out/val``; returns the URDF paths."""
    out = Path(out)
    shapes = build_shapes(seed, EXTRA_FAMILIES if extra_families else None)
    written: list[Path] = []
    for index, shape in enumerate(shapes):
        folder = out / split_of(index)
        folder.mkdir(parents=True, exist_ok=True)
        written.append(folder / f"{shape.name}.urdf")
        written[-1].write_text(_urdf(shape, seed), encoding="utf-8")
        if shape.vertices is not None:
            written.append(folder / f"{shape.name}.obj")
            written[-1].write_text(_obj(shape, seed), encoding="utf-8")
    # Objects that moved split or were dropped from the families would otherwise linger.
    for split in ("train", "val"):
        for stale in (out / split).glob("*"):
            if stale.suffix in (".urdf", ".obj") and stale not in written:
                stale.unlink()
    (out / "README.md").write_text(_readme(shapes, seed, extra_families), encoding="utf-8")
    return [p for p in written if p.suffix == ".urdf"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OBJECTS_DIR, help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--extra-families", action="store_true",
                        help="write the shapes the default set lacks (thin, concave, handled, small, large) "
                             "instead of the default set: give --out a folder of their own")
    args = parser.parse_args(argv)
    if args.extra_families and args.out.resolve() == Path(DEFAULT_OBJECTS_DIR).resolve():
        raise SystemExit(f"--extra-families would replace the default object set in {args.out}: give --out "
                         "another folder")
    urdfs = generate(args.out, args.seed, args.extra_families)
    print(f"wrote {len(urdfs)} objects to {args.out}")


if __name__ == "__main__":
    main()
