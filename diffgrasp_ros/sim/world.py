"""A PyBullet world that generates clutter scenes by the VGN / GIGA / IGD clutter-removal protocol."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..scene.workspace import STANDARD_WORKSPACE, Workspace
from .camera import SimCamera
from .object_set import ObjectModel, load_object
from .quiet import c_output_silenced

SCENE_KINDS = ("pile", "packed")


@dataclass(frozen=True)
class PileBox:
    """The open box piles are dropped into, then removed: VGN's ``setup/box.urdf`` (a 0.2 m square box of
    3 mm walls, 0.1 m tall, no floor) loaded at scale 1.3 with its corner at (0.02, 0.02) on the table."""

    margin_m: float = 0.02  # from the workspace's sides to the box's outer faces: 0.26 m outside
    height_m: float = 0.13
    wall_thickness_m: float = 0.0039


@dataclass(frozen=True)
class PlacedObject:
    """One object of a scene: which model, at what scale, and where, enough to rebuild it exactly."""

    model: str  # the object file, relative to the object set's root (POSIX separators)
    scale: float
    position_m: tuple[float, float, float]  # of the object's own frame (URDF base link / mesh origin)
    quaternion_xyzw: tuple[float, float, float, float]
    mass_kg: float | None = None  # set when physics was randomised; None: the model's own
    lateral_friction: float | None = None


@dataclass(frozen=True)
class PhysicsRandomisation:
    """Per-object physics drawn when a scene is generated, so a model trains on varied dynamics: the scene's
    scale times U[1 - scale_jitter, 1 + scale_jitter], mass times U[mass_factor], lateral friction U[friction]."""

    scale_jitter: float = 0.15
    mass_factor: tuple[float, float] = (0.5, 2.0)
    friction: tuple[float, float] = (0.4, 1.0)

    def __post_init__(self):
        if not 0.0 <= self.scale_jitter < 1.0:
            raise ValueError(f"scale_jitter must be in [0, 1), got {self.scale_jitter}")
        for name in ("mass_factor", "friction"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {getattr(self, name)}")


@dataclass(frozen=True)
class SceneDescription:
    """A generated scene as it came to rest: rebuild it with ``ClutterWorld.load_scene``."""

    kind: str
    seed: int
    objects: tuple[PlacedObject, ...]


class ClutterWorld:
    """Table, objects and physics; a new scene replaces the previous one.

    The world frame is the workspace frame: origin at a corner of the workspace cube, z up, the table
    top at z = ``workspace.table_height_m``.
    """

    dt = 1.0 / 240.0
    solver_iterations = 150  # VGN's btsim.BtWorld (PyBullet's default is 50)
    table_friction = 0.5  # VGN's setup/plane.urdf
    pile_box = PileBox()

    def __init__(self, objects: Sequence[ObjectModel], workspace: Workspace = STANDARD_WORKSPACE,
                 seed: int = 0, randomisation: PhysicsRandomisation | None = None):
        if not objects:
            raise ValueError("the simulated world needs at least one object model")
        with c_output_silenced():
            import pybullet
            from pybullet_utils.bullet_client import BulletClient

            self.p = BulletClient(connection_mode=pybullet.DIRECT)
        self.objects = list(objects)
        self.workspace = workspace
        self.rng = np.random.default_rng(seed)
        self.randomisation = randomisation  # applied to the objects ``generate`` adds
        self.p.setPhysicsEngineParameter(fixedTimeStep=self.dt, numSolverIterations=self.solver_iterations)
        self.p.setGravity(0.0, 0.0, -9.81)
        self.sim_time = 0.0
        self.object_ids: list[int] = []
        self._placed: dict[int, tuple[ObjectModel, float]] = {}  # body -> (model, scale)
        self._physics: dict[int, tuple[float, float]] = {}  # body -> (mass kg, lateral friction), when set
        self.table_id = self._add_table()
        self.camera = SimCamera(self.p)

    @property
    def client_id(self) -> int:
        return self.p._client

    def close(self) -> None:
        self.p.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- bodies -----------------------------------------------------------------------------------
    def _add_table(self) -> int:
        half = (1.0, 1.0, 0.025)
        c = self.workspace.size_m / 2.0
        shape = self.p.createCollisionShape(self.p.GEOM_BOX, halfExtents=half)
        visual = self.p.createVisualShape(self.p.GEOM_BOX, halfExtents=half,
                                          rgbaColor=(0.72, 0.62, 0.50, 1.0))
        table = self.p.createMultiBody(0.0, shape, visual,
                                       basePosition=(c, c, self.workspace.table_height_m - half[2]))
        self.p.changeDynamics(table, -1, lateralFriction=self.table_friction)
        return table

    def _add_pile_box(self) -> list[int]:
        """The walls of ``pile_box`` around the workspace centre."""
        box = self.pile_box
        c, outer = self.workspace.size_m / 2.0, self.workspace.size_m - 2.0 * box.margin_m
        z = self.workspace.table_height_m + box.height_m / 2.0
        walls = []
        for axis in (0, 1):
            for sign in (-1.0, 1.0):
                half = [outer / 2.0, outer / 2.0, box.height_m / 2.0]
                half[axis] = box.wall_thickness_m / 2.0
                pos = [c, c, z]
                pos[axis] = c + sign * (outer - box.wall_thickness_m) / 2.0
                shape = self.p.createCollisionShape(self.p.GEOM_BOX, halfExtents=half)
                walls.append(self.p.createMultiBody(0.0, shape, -1, basePosition=pos))
        return walls

    def add_object(self, model: ObjectModel, position, rotation: Rotation, scale: float,
                   mass_kg: float | None = None, lateral_friction: float | None = None) -> int:
        """Load ``model``; ``mass_kg`` and ``lateral_friction`` (both or neither) replace the model's own."""
        if (mass_kg is None) != (lateral_friction is None):
            raise ValueError(f"give both mass_kg and lateral_friction or neither, got {mass_kg}, {lateral_friction}")
        body = load_object(self.client_id, model, position, rotation.as_quat(), scale)
        self.object_ids.append(body)
        self._placed[body] = (model, scale)
        if mass_kg is not None:
            self._set_physics(body, mass_kg, lateral_friction)
        return body

    def _set_physics(self, body: int, mass_kg: float, lateral_friction: float) -> None:
        if not (mass_kg > 0 and lateral_friction >= 0):
            raise ValueError(f"object {self._placed[body][0].name!r}: mass {mass_kg} kg must be positive and "
                             f"friction {lateral_friction} not negative")
        # Inertia scales with the mass (the same shape, another density), or a heavier object would turn too easily.
        mass_now, _, inertia = self.p.getDynamicsInfo(body, -1)[:3]
        self.p.changeDynamics(body, -1, mass=float(mass_kg), lateralFriction=float(lateral_friction),
                              localInertiaDiagonal=[float(i) * mass_kg / mass_now for i in inertia])
        self._physics[body] = (float(mass_kg), float(lateral_friction))

    def _add_generated_object(self, model: ObjectModel, position, rotation: Rotation, scale: float) -> int:
        """``add_object`` for a new scene: with ``randomisation``, scale, mass and friction are drawn here."""
        r = self.randomisation
        if r is None:
            return self.add_object(model, position, rotation, scale)
        scale *= self.rng.uniform(1.0 - r.scale_jitter, 1.0 + r.scale_jitter)
        mass_factor, friction = self.rng.uniform(*r.mass_factor), self.rng.uniform(*r.friction)
        body = self.add_object(model, position, rotation, scale)
        # The base link's mass: the objects' URDFs have one link (a multi-link object keeps its other masses).
        self._set_physics(body, self.p.getDynamicsInfo(body, -1)[0] * mass_factor, friction)
        return body

    def object_physics(self, body: int) -> tuple[float, float]:
        """(mass kg, lateral friction) of an object as PyBullet simulates it."""
        info = self.p.getDynamicsInfo(body, -1)
        return float(info[0]), float(info[1])

    def remove_object(self, body: int) -> None:
        self.p.removeBody(body)
        self.object_ids.remove(body)
        del self._placed[body]
        self._physics.pop(body, None)

    def object_pose(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """Position and quaternion (xyzw) of the object's own frame, the frame it was loaded at.

        PyBullet reports the base's inertial frame; the object frame is that times the inverse of the
        inertial offset (zero for most URDFs, the mesh centroid for bare meshes).
        """
        com_position, com_orientation = self.p.getBasePositionAndOrientation(body)
        offset_position, offset_orientation = self.p.getDynamicsInfo(body, -1)[3:5]
        inverse = self.p.invertTransform(offset_position, offset_orientation)
        position, orientation = self.p.multiplyTransforms(com_position, com_orientation, *inverse)
        return np.asarray(position), np.asarray(orientation)

    def describe(self, kind: str, seed: int, root: Path) -> SceneDescription:
        """The current objects as a ``SceneDescription``, model paths relative to ``root``."""
        objects = []
        for body in self.object_ids:
            model, scale = self._placed[body]
            position, orientation = self.object_pose(body)
            mass_kg, friction = self._physics.get(body, (None, None))
            objects.append(PlacedObject(Path(model.path).resolve().relative_to(Path(root).resolve()).as_posix(),
                                        float(scale), tuple(position.tolist()), tuple(orientation.tolist()),
                                        mass_kg, friction))
        return SceneDescription(kind, int(seed), tuple(objects))

    def load_scene(self, description: SceneDescription, root: Path) -> None:
        """Replace the scene with ``description``'s objects at their recorded poses (no physics step)."""
        self.clear()
        for placed in description.objects:
            path = Path(root) / placed.model
            self.add_object(ObjectModel(path.stem, path), placed.position_m,
                            Rotation.from_quat(placed.quaternion_xyzw), placed.scale, placed.mass_kg,
                            placed.lateral_friction)

    def clear(self) -> None:
        for body in list(self.object_ids):
            self.remove_object(body)

    @property
    def num_objects(self) -> int:
        return len(self.object_ids)

    # -- physics ----------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.p.stepSimulation()
        self.sim_time += n * self.dt

    def wait_for_objects_to_rest(self, timeout_s: float = 2.0, tolerance: float = 0.01) -> None:
        """Step in quarter seconds until every object's velocity, linear (m/s) and angular (rad/s) taken
        together as VGN does (the norm of both vectors), is at most ``tolerance``, or ``timeout_s`` passed."""
        deadline = self.sim_time + timeout_s
        while self.sim_time < deadline:
            self.step(60)
            speeds = [np.linalg.norm(self.p.getBaseVelocity(b)) for b in self.object_ids]
            if not speeds or max(speeds) <= tolerance:
                return

    def remove_objects_outside_workspace(self) -> bool:
        removed = False
        for body in list(self.object_ids):
            position = np.asarray(self.p.getBasePositionAndOrientation(body)[0])
            if not self.workspace.inside(position)[0]:
                self.remove_object(body)
                removed = True
        return removed

    def remove_and_wait(self) -> None:
        """Let objects settle, removing any that left the workspace, until nothing more falls out."""
        while True:
            self.wait_for_objects_to_rest()
            if not self.remove_objects_outside_workspace():
                return

    # -- scenes -----------------------------------------------------------------------------------
    def generate(self, kind: str, object_count: int | None = None) -> int:
        """Replace the scene with a new ``pile`` or ``packed`` one; returns the objects that remain."""
        self.clear()
        if kind == "pile":
            self._generate_pile(object_count if object_count is not None else self.rng.poisson(4) + 1)
        elif kind == "packed":
            self._generate_packed(object_count if object_count is not None else 5)
        else:
            raise ValueError(f"unknown scene kind {kind!r}: choose one of {SCENE_KINDS}")
        return self.num_objects

    def _pick_models(self, count: int) -> list[ObjectModel]:
        return [self.objects[i] for i in self.rng.integers(0, len(self.objects), size=count)]

    def _generate_pile(self, count: int) -> None:
        walls = self._add_pile_box()
        size, table = self.workspace.size_m, self.workspace.table_height_m
        for model in self._pick_models(count):
            rotation = Rotation.random(random_state=self.rng.integers(2**31))
            xy = self.rng.uniform(size / 3.0, 2.0 * size / 3.0, 2)
            scale = self.rng.uniform(0.8, 1.0)
            self._add_generated_object(model, (xy[0], xy[1], table + 0.2), rotation, scale)
            self.wait_for_objects_to_rest(timeout_s=1.0)
        for wall in walls:
            self.p.removeBody(wall)
        self.remove_and_wait()

    def _generate_packed(self, count: int, max_attempts: int = 12) -> None:
        table = self.workspace.table_height_m
        for _ in range(max_attempts):
            if self.num_objects >= count:
                break
            state = self.p.saveState()
            model = self._pick_models(1)[0]
            x, y = self.rng.uniform(0.08, 0.22, 2)
            rotation = Rotation.from_euler("z", self.rng.uniform(0.0, 2.0 * np.pi))
            scale = self.rng.uniform(0.7, 0.9)
            body = self._add_generated_object(model, (x, y, 1.0), rotation, scale)
            lower, upper = self.p.getAABB(body)
            # As VGN: the base (PyBullet's inertial frame, not the bounding box's centre) goes half the
            # object's height + 2 mm above the table, so an object whose base sits above its box centre
            # starts in the table and one whose base sits below drops; after one step, an object touching
            # anything, the table included, is taken back and the others restored.
            z = table + 0.5 * (upper[2] - lower[2]) + 0.002
            self.p.resetBasePositionAndOrientation(body, (x, y, z), rotation.as_quat())
            self.step()
            if self.p.getContactPoints(bodyA=body):
                self.remove_object(body)
                self.p.restoreState(state)
            else:
                self.remove_and_wait()
            self.p.removeState(state)
