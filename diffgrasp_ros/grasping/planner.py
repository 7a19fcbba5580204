"""The planner API: build a planner by name, plan from depth frames, a TSDF grid or a ``Scene``."""
from __future__ import annotations

import dataclasses
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from ..camera.frame import DepthError, DepthFrame
from ..geometry import invert, make_transform, transform_points
from ..robots.registry import Embodiment, get_robot
from ..scene.scene import Scene, TargetBox
from ..scene.tiling import cut_off_share, object_points_mask, tile_origins
from ..scene.tsdf import SceneBuilder, scene_from_grid
from ..scene.workspace import STANDARD_WORKSPACE, TableArea, Workspace
from .filters import fingers_hit, hits_cloud, suppress_duplicates
from .grasp import Grasp, PlanResult

_PLANNERS: dict[str, type["GraspPlanner"]] = {}
HAND_REACH_M = 0.15  # how far a hand whose TCP is in a workspace cube can reach out of it


def register_planner(name: str):
    def decorate(cls):
        cls.name = name
        _PLANNERS[name] = cls
        return cls

    return decorate


def planner_names() -> list[str]:
    return sorted(_PLANNERS)


def _option_value(text: str) -> bool | int | float | str:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_method(spec: str) -> tuple[str, dict]:
    """``"igd:rounds=11,denoising_steps=4"`` -> ``("igd", {"rounds": 11, "denoising_steps": 4})``.

    The one string form a method and its options take on the command line, in benchmarks (where it
    labels the column) and in ROS parameters.
    """
    name, _, rest = spec.partition(":")
    options: dict = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"bad planner option {item!r} in {spec!r}: write method:key=value,key=value")
        if key.strip() in options:
            raise ValueError(f"planner option {key.strip()!r} is given twice in {spec!r}")
        options[key.strip()] = _option_value(value.strip())
    return name.strip(), options


def make_planner(method: str = "baseline", robot: str | Embodiment = "franka",
                 workspace: Workspace = STANDARD_WORKSPACE, **options) -> "GraspPlanner":
    """A planner by method (``planner_names()``, optionally with options: ``"igd:rounds=11"``, see
    ``parse_method``) for a robot by name (``robots.robot_names()``); keyword options override the spec's."""
    name, spec_options = parse_method(method)
    if name not in _PLANNERS:
        raise ValueError(f"unknown grasp planning method {name!r}: choose one of {planner_names()}")
    embodiment = get_robot(robot) if isinstance(robot, str) else robot
    try:
        return _PLANNERS[name](embodiment, workspace, **{**spec_options, **options})
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise ValueError(f"planner {name!r} does not take an option given in {method!r}: {error}") from error


def device_option(method: str, device: str) -> dict[str, str]:
    """``{"device": device}`` for a method whose planner runs a model (takes ``device``) and whose spec names
    no device of its own, else ``{}``: one device setting for every method, the baseline (no model) included."""
    name, spec_options = parse_method(method)
    planner = _PLANNERS.get(name)
    if planner is None or "device" in spec_options or "device" not in inspect.signature(planner).parameters:
        return {}
    return {"device": device}


TARGET_REACH_M = 0.02  # a grasp's TCP this far outside a target box still closes on the object


class GraspPlanner(ABC):
    """Produces ranked grasps (workspace frame, best first) for one embodiment."""

    name = "abstract"

    def __init__(self, robot: Embodiment, workspace: Workspace = STANDARD_WORKSPACE):
        self.robot = robot
        self.workspace = workspace

    @abstractmethod
    def _plan(self, scene: Scene) -> PlanResult:
        """Grasps for a non-empty scene."""

    def plan(self, scene: Scene) -> PlanResult:
        """Ranked grasps for ``scene``; with a ``scene.target``, only grasps whose TCP lies within
        ``TARGET_REACH_M`` of the target box (the fingers then close on it)."""
        start = time.perf_counter()
        if not scene.object_points_mask().any():
            result = PlanResult([], self.name, message=(
                "no grasp found: nothing was observed above the table in the workspace"))
        elif not scene.target_points_mask().any():
            result = PlanResult([], self.name, message=(
                "no grasp found: nothing was observed inside the target "
                f"({scene.target.lo_m.round(3).tolist()} to {scene.target.hi_m.round(3).tolist()} m)"))
        else:
            result = self._plan(scene)
            if scene.target is not None:
                planned = len(result.grasps)
                result.grasps = [g for g in result.grasps if self._at_target(g, scene.target)]
                result.filtered["at_target"] = planned - len(result.grasps)
                if planned and not result.grasps:
                    result.message = f"no grasp found: none of the {planned} planned grasps touches the target"
        result.timings_s["plan"] = time.perf_counter() - start
        result.scene = scene
        return result

    def _at_target(self, grasp: Grasp, target: TargetBox) -> bool:
        """Whether ``grasp`` closes on the ``target``: its TCP within ``TARGET_REACH_M`` of the box."""
        return bool(target.contains(grasp.position_m, TARGET_REACH_M)[0])

    def rank(self, scene: Scene, grasps: Sequence[Grasp]) -> PlanResult:
        """The given ``grasps`` (in the workspace frame) checked in ``scene`` and ranked best first by this
        planner's quality, which replaces their scores. Grasps that collide with the observed scene or the
        table, leave the workspace or hold nothing are dropped, and with a ``scene.target`` those whose
        TCP is not at it. ``info["given_index"]`` is a ranked grasp's place in ``grasps``."""
        start = time.perf_counter()
        if len(grasps) == 0:
            raise ValueError("no grasps to rank")
        frames = sorted({g.frame_id for g in grasps} - {self.workspace.frame_id})
        if frames:
            raise ValueError(f"grasps in frame(s) {frames}: give them in the workspace frame "
                             f"{self.workspace.frame_id!r}")
        R = np.stack([g.T_frame_grasp[:3, :3] for g in grasps]).astype(np.float64)
        t = np.stack([g.position_m for g in grasps]).astype(np.float64)
        ok, score = self._check_and_score(scene, grasps, R, t)
        checked = int(ok.sum())
        if scene.target is not None:
            ok &= scene.target.contains(t, TARGET_REACH_M)
        ranked = [dataclasses.replace(grasps[i], score=float(score[i]), method=self.name,
                                      info={**grasps[i].info, "given_index": int(i)})
                  for i in np.argsort(-score, kind="stable") if ok[i]]
        if ranked:
            message = f"{len(ranked)} of {len(grasps)} given grasps pass the checks, ranked by {self.name}"
        elif checked:
            message = f"no grasp found: none of the {checked} given grasps that pass the checks touches the target"
        else:
            message = (f"no grasp found: all {len(grasps)} given grasps collide with the scene or the table, leave "
                       "the workspace or hold nothing")
        result = PlanResult(ranked, self.name, {"rank": time.perf_counter() - start}, message)
        result.scene = scene
        return result

    def _check_and_score(self, scene: Scene, grasps: Sequence[Grasp], R: np.ndarray,
                         t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ``rank``: which grasps (TCP rotations R (n, 3, 3), positions t (n, 3)) pass this planner's
        checks, and every grasp's quality in [0, 1]."""
        raise NotImplementedError(f"the {self.name} planner cannot rank given grasps")

    def plan_from_tsdf(self, tsdf_grid: np.ndarray) -> PlanResult:
        """Plan from a TSDF grid in the standard convention (see ``scene.Scene``)."""
        start = time.perf_counter()
        scene = scene_from_grid(tsdf_grid, self.workspace)
        surface_s = time.perf_counter() - start
        result = self.plan(scene)
        result.timings_s["surface"] = surface_s
        return result

    def plan_from_depth(self, frames: Sequence[DepthFrame] | DepthFrame,
                        T_workspace_cameras: Sequence[np.ndarray] | np.ndarray,
                        area: TableArea | None = None, target: TargetBox | None = None) -> PlanResult:
        """Fuse posed depth frames (camera optical-frame poses in the workspace frame) and plan.

        ``area`` is the table area to plan over (default: the planner's workspace cube). One larger than
        the cube is planned over standard cubes placed on the objects (``scene.tiling``), whose ranked
        grasps are merged; the result then carries no single ``scene``. ``target`` (workspace frame): the
        object to grasp (``Scene.target``), None: any.
        """
        if isinstance(frames, DepthFrame):
            frames, T_workspace_cameras = [frames], [T_workspace_cameras]
        if len(frames) == 0:
            raise DepthError("no depth frames given")
        if len(frames) != len(T_workspace_cameras):
            raise ValueError(f"{len(frames)} depth frames but {len(T_workspace_cameras)} camera poses")
        area = area or TableArea.of(self.workspace)
        points = np.concatenate([transform_points(T, f.to_points(stride=2))
                                 for f, T in zip(frames, T_workspace_cameras)])
        warnings = []
        dropped = cut_off_share(points, area)
        if dropped > 0.01:
            warnings.append(f"{dropped:.0%} of the points above the table near the {area.size_x_m:.2f} x "
                            f"{area.size_y_m:.2f} m workspace lie outside it: objects there are cut off")
        origins = self.workspace_tiles(area, points)
        if self._fits_one_workspace(area):
            result = self._plan_workspace(frames, T_workspace_cameras, origins[0], points, target)
        else:
            result = self._plan_tiled(frames, T_workspace_cameras, area, origins, points, target)
        result.warnings = warnings + result.warnings
        return result

    def workspace_tiles(self, area: TableArea, points: np.ndarray) -> np.ndarray:
        """(n, 2) corners of the workspace cubes planned over for ``area`` with these workspace-frame
        ``points``: the area's own corner when it fits one cube, else cubes over the objects on it."""
        ws = self.workspace
        if abs(area.table_height_m - ws.table_height_m) > 1e-9:
            raise ValueError(f"the table area's table height {area.table_height_m} m differs from the "
                             f"planner's workspace ({ws.table_height_m} m)")
        if self._fits_one_workspace(area):
            return np.zeros((1, 2))
        return tile_origins(points[object_points_mask(points, area)][:, :2], ws)

    def _fits_one_workspace(self, area: TableArea) -> bool:
        return max(area.size_x_m, area.size_y_m, area.height_m) <= self.workspace.size_m + 1e-9

    def _plan_workspace(self, frames, T_workspace_cameras, origin_xy_m: np.ndarray,
                        points: np.ndarray, target: TargetBox | None = None) -> PlanResult:
        """Plan in the workspace cube whose corner is at ``origin_xy_m``; grasps in the workspace frame,
        clear of the observed ``points`` (workspace frame) outside the cube."""
        start = time.perf_counter()
        T_workspace_cube = make_transform(translation=(origin_xy_m[0], origin_xy_m[1], 0.0))
        builder = SceneBuilder(self.workspace)
        for frame, T in zip(frames, T_workspace_cameras):
            builder.integrate(frame, invert(T_workspace_cube) @ T)
        scene = builder.scene()
        if target is not None:
            shift = T_workspace_cube[:3, 3]
            scene = dataclasses.replace(scene, target=dataclasses.replace(target, lo_m=target.lo_m - shift,
                                                                          hi_m=target.hi_m - shift))
        fusion_s = time.perf_counter() - start
        result = self.plan(scene)
        for grasp in result.grasps:
            grasp.T_frame_grasp = T_workspace_cube @ grasp.T_frame_grasp
            _shift_info_positions(grasp.info, T_workspace_cube[:3, 3])
        result.grasps = self._clear_of_surface_outside(result.grasps, points, origin_xy_m)
        result.timings_s["fusion"] = fusion_s
        return result

    def _plan_tiled(self, frames, T_workspace_cameras, area: TableArea, origins: np.ndarray,
                    points: np.ndarray, target: TargetBox | None = None) -> PlanResult:
        if len(origins) == 0:
            return PlanResult([], self.name, message="no grasp found: nothing was observed above the table "
                                                     "in the workspace")
        timings = {"fusion": 0.0, "plan": 0.0}
        filtered: dict[str, int] = {}
        grasps = []
        for origin in origins:
            tile = self._plan_workspace(frames, T_workspace_cameras, origin, points, target)
            for key in timings:
                timings[key] += tile.timings_s.get(key, 0.0)
            for name, count in tile.filtered.items():
                filtered[name] = filtered.get(name, 0) + count
            for grasp in tile.grasps:
                grasp.frame_id = area.frame_id
                grasp.info["tile_origin_m"] = [float(origin[0]), float(origin[1])]
                if area.inside(grasp.position_m)[0]:
                    grasps.append(grasp)
        grasps.sort(key=lambda g: -g.score)
        R = np.array([g.T_frame_grasp[:3, :3] for g in grasps]).reshape(-1, 3, 3)
        t = np.array([g.T_frame_grasp[:3, 3] for g in grasps]).reshape(-1, 3)
        grasps = [grasps[i] for i in suppress_duplicates(R, t, self._max_grasps())]
        message = (f"{len(grasps)} grasps from {len(origins)} workspace tiles" if grasps else
                   f"no grasp found in any of the {len(origins)} workspace tiles over the objects")
        return PlanResult(grasps, self.name, timings_s=timings, message=message, filtered=filtered)

    def _clear_of_surface_outside(self, grasps: list, points: np.ndarray, origin_xy_m: np.ndarray) -> list:
        """A cube's planner sees only its cube: drop parallel-jaw grasps whose hand, at the grasp's opening,
        reaches into surface observed outside it (a neighbouring tile, or an object taller than the cube)."""
        parallel = [g for g in grasps if not g.dexterous]
        if not parallel:
            return grasps
        ws = self.workspace
        local = points - np.array([origin_xy_m[0], origin_xy_m[1], 0.0])
        outside = ~np.all((local >= 0.0) & (local <= ws.size_m), axis=1)
        # Only what a hand inside the cube can reach: the cost per cube stays the same on any table.
        reachable = np.all((local >= -HAND_REACH_M) & (local <= ws.size_m + HAND_REACH_M), axis=1)
        cloud = points[outside & reachable & (points[:, 2] > ws.table_height_m + 0.005)]
        if len(cloud) == 0:
            return grasps
        from scipy.spatial import cKDTree

        cloud = np.unique(np.floor(cloud / 0.004), axis=0) * 0.004 + 0.002  # 4 mm voxels, as planners see it
        gripper, tree = self.robot.gripper, cKDTree(cloud)
        R = np.array([g.T_frame_grasp[:3, :3] for g in parallel])
        t = np.array([g.T_frame_grasp[:3, 3] for g in parallel])
        hit = hits_cloud(cloud, R, t, [gripper.palm], tree=tree) | fingers_hit(
            cloud, R, t, gripper, np.array([g.width_m for g in parallel]), tree=tree)
        blocked = {id(g) for g, g_hit in zip(parallel, hit) if g_hit}
        return [g for g in grasps if id(g) not in blocked]

    def _max_grasps(self) -> int:
        """How many grasps a plan returns at most: ``max_grasps``, 20 for a planner without one."""
        return int(getattr(self, "max_grasps", None) or 20)


class NoGrasp(Exception):
    """A step of a ``CandidatePlanner`` left no candidate; the message says why."""


@dataclasses.dataclass
class Candidates:
    """Grasp candidates on their way through the steps of a ``CandidatePlanner``, one row each.

    Poses are TCP rotations ``R`` (n, 3, 3) and positions ``t`` (n, 3) in the workspace frame; a
    parallel-jaw hand pre-shapes to ``widths_m`` (n,), a dexterous one to ``pregrasp_joints`` (n, J)
    and closes to ``grasp_joints``. ``scores`` per candidate are what the method's quality is made of
    (the model's outputs; the baseline's measured geometry). Provenance: ``site`` (n,) numbers the
    sampling site a candidate came from (an IGD centre, a LEAP or baseline seed), ``site_m`` (n, 3) is
    where that site is. ``info`` holds other figures a grasp reports (approach angle, table retreat).
    """

    R: np.ndarray
    t: np.ndarray
    site: np.ndarray
    site_m: np.ndarray
    scores: dict[str, np.ndarray]
    widths_m: np.ndarray | None = None
    pregrasp_joints: np.ndarray | None = None
    grasp_joints: np.ndarray | None = None
    info: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    @property
    def site_count(self) -> int:
        return len(np.unique(self.site))

    def take(self, index: np.ndarray) -> "Candidates":
        """The candidates at ``index`` (indices, in that order, or a boolean mask)."""
        return Candidates(**{f.name: _rows(getattr(self, f.name), index) for f in dataclasses.fields(self)})

    @classmethod
    def concatenate(cls, parts: Sequence["Candidates"]) -> "Candidates":
        """The rows of ``parts`` (which carry the same scores and info), in order."""
        def joined(values: list):
            if isinstance(values[0], dict):
                return {key: np.concatenate([v[key] for v in values]) for key in values[0]}
            return None if values[0] is None else np.concatenate(values)

        return cls(**{f.name: joined([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)})

    def pose(self, i: int) -> np.ndarray:
        """The 4x4 TCP pose of candidate ``i``."""
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self.R[i], self.t[i]
        return T


def _rows(value: np.ndarray | dict | None, index: np.ndarray):
    """The rows ``index`` of an array, of every array in a dict, or None."""
    if isinstance(value, dict):
        return {key: array[index] for key, array in value.items()}
    return None if value is None else value[index]


# Grasp info entries that are workspace positions (a LEAP grasp's seed, a transferred grasp's contacts per link).
POSITION_INFO = ("seed_m", "contacts_m")


def _shift_info_positions(info: dict, shift: np.ndarray) -> None:
    """Move a grasp's ``POSITION_INFO`` entries from a workspace cube's frame into the frame it sits in."""
    for key in POSITION_INFO:
        if isinstance(info.get(key), dict):
            info[key] = {name: (np.asarray(p) + shift).tolist() for name, p in info[key].items()}
        elif key in info:
            info[key] = (np.asarray(info[key]) + shift).tolist()


@dataclasses.dataclass
class PlanRecord:
    """What the steps of a plan record as they go: seconds per stage, and per named filter how many
    candidates it removed (``PlanResult.timings_s`` and ``PlanResult.filtered``)."""

    timings_s: dict[str, float] = dataclasses.field(default_factory=dict)
    filtered: dict[str, int] = dataclasses.field(default_factory=dict)
    _since: float = dataclasses.field(default_factory=time.perf_counter, repr=False)

    def lap(self, stage: str) -> None:
        """Record the time since the previous lap (or the start) as ``stage``."""
        now = time.perf_counter()
        self.timings_s[stage] = now - self._since
        self._since = now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a step as ``name``, also when it finds nothing."""
        try:
            yield
        finally:
            self.lap(name)

    def narrow(self, name: str, ok: np.ndarray, passes: np.ndarray) -> None:
        """Apply the filter ``name``: of the candidates the mask ``ok`` still holds, keep those that ``passes``
        (one entry each, in order), changing ``ok`` in place, and count the others as removed by ``name``."""
        self.filtered[name] = self.filtered.get(name, 0) + int(np.count_nonzero(~passes))
        ok[ok] = passes

    def result(self, grasps: list[Grasp], method: str, message: str) -> PlanResult:
        return PlanResult(grasps, method, self.timings_s, message, filtered=self.filtered)


class CandidatePlanner(GraspPlanner):
    """A planner in three named steps, the shape of VGN's detection (predict, process, select):

    1. ``_predict``: candidates sampled with the model (the baseline: from the surface geometry), with
       its scores; it times its own stages;
    2. ``_filter``: those the hand can execute in the observed scene, each check a named filter;
    3. ``_rank``: best first by ``_quality``, near-duplicates of better ones dropped (``_distinct``), at
       most ``max_grasps``, as grasps (``_grasps``).

    ``_quality`` is the method's one quality formula: ``rank`` orders given grasps by it too. A step that
    leaves no candidate raises ``NoGrasp``.
    """

    max_grasps: int

    def _plan(self, scene: Scene) -> PlanResult:
        record = PlanRecord()
        try:
            sampled = self._predict(scene, record)
            with record.stage("filters"):
                feasible = self._filter(scene, sampled, record)
            with record.stage("ranking"):
                grasps = self._rank(scene, feasible, record)
        except NoGrasp as nothing:
            return record.result([], self.name, f"no grasp found: {nothing}")
        return record.result(grasps, self.name, self._summary(sampled, feasible, grasps))

    @abstractmethod
    def _predict(self, scene: Scene, record: PlanRecord) -> Candidates:
        """Candidates sampled for a non-empty scene (at least one, else ``NoGrasp``)."""

    @abstractmethod
    def _filter(self, scene: Scene, sampled: Candidates, record: PlanRecord) -> Candidates:
        """The ``sampled`` candidates the hand can execute in ``scene`` (at least one, else ``NoGrasp``),
        each check counted with ``record.narrow``."""

    def _rank(self, scene: Scene, feasible: Candidates, record: PlanRecord) -> list[Grasp]:
        """The ``feasible`` candidates as grasps, best first."""
        key, score = self._quality(feasible.scores)
        order = np.argsort(-key, kind="stable")
        ranked, score = feasible.take(order), score[order]
        kept = np.array(self._distinct(ranked, self.max_grasps), int)
        return self._grasps(ranked.take(kept), score[kept])

    @abstractmethod
    def _quality(self, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """From candidates' ``scores``: the key they rank by (higher is better) and the score in [0, 1]
        their grasps report."""

    @abstractmethod
    def _distinct(self, ranked: Candidates, limit: int) -> list[int]:
        """Indices of the ``ranked`` candidates (best first) left after dropping near-duplicates of better
        ones, at most ``limit``."""

    @abstractmethod
    def _grasps(self, ranked: Candidates, scores: np.ndarray) -> list[Grasp]:
        """The ``ranked`` candidates as grasps with these ``scores``, in order."""

    @abstractmethod
    def _summary(self, sampled: Candidates, feasible: Candidates, grasps: list[Grasp]) -> str:
        """The message of a plan that found ``grasps``."""
