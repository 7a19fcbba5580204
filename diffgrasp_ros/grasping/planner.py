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


def make_planner(method: str = "baseline", robot: str | Embodiment = "franka",
                 workspace: Workspace = STANDARD_WORKSPACE, **options) -> "GraspPlanner":
    """A planner by method name (``planner_names()``) for a robot by name (``robots.robot_names()``)."""
    if method not in _PLANNERS:
        raise ValueError(f"unknown grasp planning method {method!r}: choose one of {planner_names()}")
    embodiment = get_robot(robot) if isinstance(robot, str) else robot
    return _PLANNERS[method](embodiment, workspace, **options)


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
