"""The planner API: build a planner by name, plan from depth frames, a TSDF grid or a ``Scene``."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ..camera.frame import DepthError, DepthFrame
from ..robots.registry import Embodiment, get_robot
from ..scene.scene import Scene
from ..scene.tsdf import SceneBuilder, scene_from_grid
from ..scene.workspace import STANDARD_WORKSPACE, Workspace
from .grasp import PlanResult

_PLANNERS: dict[str, type["GraspPlanner"]] = {}


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
        start = time.perf_counter()
        if not scene.object_points_mask().any():
            result = PlanResult([], self.name, message=(
                "no grasp found: nothing was observed above the table in the workspace"))
        else:
            result = self._plan(scene)
        result.timings_s["plan"] = time.perf_counter() - start
        result.scene = scene
        return result

    def plan_from_tsdf(self, tsdf_grid: np.ndarray) -> PlanResult:
        """Plan from a TSDF grid in the standard convention (see ``scene.Scene``)."""
        start = time.perf_counter()
        scene = scene_from_grid(tsdf_grid, self.workspace)
        surface_s = time.perf_counter() - start
        result = self.plan(scene)
        result.timings_s["surface"] = surface_s
        return result

    def plan_from_depth(self, frames: Sequence[DepthFrame] | DepthFrame,
                        T_workspace_cameras: Sequence[np.ndarray] | np.ndarray) -> PlanResult:
        """Fuse posed depth frames (camera optical-frame poses in the workspace frame) and plan."""
        if isinstance(frames, DepthFrame):
            frames, T_workspace_cameras = [frames], [T_workspace_cameras]
        if len(frames) == 0:
            raise DepthError("no depth frames given")
        if len(frames) != len(T_workspace_cameras):
            raise ValueError(f"{len(frames)} depth frames but {len(T_workspace_cameras)} camera poses")
        start = time.perf_counter()
        builder = SceneBuilder(self.workspace)
        for frame, T in zip(frames, T_workspace_cameras):
            builder.integrate(frame, T)
        scene = builder.scene()
        fusion_s = time.perf_counter() - start
        result = self.plan(scene)
        result.timings_s["fusion"] = fusion_s
        return result
