"""What ``grasps.json`` keeps for the viewer, and reading it back.

``diffgrasp plan`` writes one scene at the top level (``scene`` beside ``grasps``); ``diffgrasp demo`` one
per pick (``picks[i].scene`` beside ``picks[i].plan.grasps``, and ``picks[i].trajectory`` when the arm
planned the pick). ``version`` is the file format: files without it come from before the scene was kept.
Everything is in the workspace frame, in metres, seconds and radians.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..camera.intrinsics import CameraIntrinsics
from ..geometry import pose_from_quaternion, quaternion_xyzw
from ..grasping.grasp import Grasp
from ..robots.registry import get_robot
from ..scene.workspace import TableArea

FORMAT_VERSION = 2  # 1: the files before `version` (no scene)
MAX_SURFACE_POINTS = 20_000  # keeps a file of a dense multi-view scene near 1 MB


@dataclass(frozen=True)
class CameraView:
    intrinsics: CameraIntrinsics
    T_workspace_camera: np.ndarray  # the optical frame: x right, y down, z forward


@dataclass
class ArmTrajectory:
    """A planned pick (``PickPlan.trajectory``): the arm joints then the hand joints at every waypoint, and
    the TCP along it."""

    arm_joint_names: tuple[str, ...]
    hand_joint_names: tuple[str, ...]
    times_s: np.ndarray  # (n,) from 0
    positions: np.ndarray  # (n, arm + hand joints): radians, a parallel hand's finger travel in metres
    T_workspace_tcp: np.ndarray  # (n, 4, 4)
    T_workspace_base: np.ndarray  # the robot base
    rank: int  # of the grasp it picks with, 0 = best

    @property
    def hand_positions(self) -> np.ndarray:
        return self.positions[:, len(self.arm_joint_names):]


@dataclass
class ViewerScene:
    """One planned scene: the surface, where it was seen from, the ranked grasps and the pick."""

    robot: str
    area: TableArea
    surface_points_m: np.ndarray  # (n, 3)
    cameras: list[CameraView] = field(default_factory=list)
    grasps: list[Grasp] = field(default_factory=list)  # best first
    trajectory: ArmTrajectory | None = None
    title: str = ""


def downsample(points_m: np.ndarray, max_points: int = MAX_SURFACE_POINTS) -> np.ndarray:
    """At most ``max_points`` of the points, spread evenly over the array (the same ones on every run)."""
    points_m = np.asarray(points_m, dtype=float).reshape(-1, 3)
    if len(points_m) <= max_points:
        return points_m
    return points_m[np.linspace(0, len(points_m) - 1, max_points).astype(int)]


def scene_record(area: TableArea, surface_points_m: np.ndarray, cameras: list[CameraView]) -> dict:
    """The ``scene`` entry of grasps.json."""
    return {"workspace": area.to_dict(),
            "surface_points_m": np.round(downsample(surface_points_m), 4).tolist(),  # 0.1 mm
            "cameras": [{"intrinsics": c.intrinsics.to_dict(),
                         "T_workspace_camera": np.round(c.T_workspace_camera, 9).tolist()} for c in cameras]}


def trajectory_record(trajectory: ArmTrajectory) -> dict:
    """The ``trajectory`` entry of a demo pick in grasps.json."""
    T = trajectory.T_workspace_tcp
    return {"rank": trajectory.rank, "arm_joint_names": list(trajectory.arm_joint_names),
            "hand_joint_names": list(trajectory.hand_joint_names), "times_s": trajectory.times_s.tolist(),
            "positions": trajectory.positions.tolist(),
            "tcp_positions_m": T[:, :3, 3].tolist(),
            "tcp_orientations_xyzw": [quaternion_xyzw(t).tolist() for t in T],
            "T_workspace_base": trajectory.T_workspace_base.tolist()}


def load_viewer_scene(path: Path, pick: int | None = None) -> ViewerScene:
    """The scene of a grasps.json (of ``plan``, or pick ``pick`` of a ``demo``, 1 = the first). A file that
    cannot be shown is a ValueError that says why."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grasps file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a grasps.json file (not JSON: {error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a grasps.json file (a JSON {type(data).__name__}, not an object)")
    version = data.get("version")
    if version is None:
        raise ValueError(f"{path} was written by an older diffgrasp, without a format version and without the "
                         f"scene the viewer shows: write it again with `diffgrasp plan` or `diffgrasp demo`")
    if not isinstance(version, int) or not 2 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version!r}; this diffgrasp reads version {FORMAT_VERSION}")
    try:
        return _scene(data, path, pick)
    except (KeyError, TypeError, IndexError) as error:
        raise ValueError(f"{path}: malformed grasps file ({type(error).__name__}: {error})") from None


def _scene(data: dict, path: Path, pick: int | None) -> ViewerScene:
    robot = data["robot"]
    get_robot(robot)  # an unknown robot is named here
    if "picks" in data:
        picks = data["picks"]
        number = 1 if pick is None else pick
        if not 1 <= number <= len(picks):
            raise ValueError(f"{path} has {len(picks)} pick(s): choose --pick 1 to {len(picks)}, not {number}")
        entry, grasps, title = picks[number - 1], picks[number - 1]["plan"]["grasps"], f"pick {number} of {len(picks)}"
    elif pick is not None:
        raise ValueError(f"{path} is one plan (of `diffgrasp plan`), it has no picks: leave out --pick")
    else:
        entry, grasps, title = data, data["grasps"], ", ".join(data.get("sources", []))
    if "scene" not in entry:
        raise ValueError(f"{path} carries no scene ({title or 'the plan'}): nothing to show")
    scene = entry["scene"]
    points = np.asarray(scene["surface_points_m"], dtype=float).reshape(-1, 3)
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: the surface points must be finite numbers")
    cameras = [CameraView(CameraIntrinsics.from_dict(c["intrinsics"]), _matrix(c["T_workspace_camera"], path))
               for c in scene["cameras"]]
    return ViewerScene(robot, TableArea.from_dict(scene["workspace"]), points, cameras,
                       [Grasp.from_dict(g) for g in grasps],
                       _trajectory(entry["trajectory"], path) if entry.get("trajectory") else None, title)


def _trajectory(data: dict, path: Path) -> ArmTrajectory:
    times = np.asarray(data["times_s"], dtype=float)
    positions = np.asarray(data["positions"], dtype=float)
    arm, hand = tuple(data["arm_joint_names"]), tuple(data["hand_joint_names"])
    T = np.stack([pose_from_quaternion(p, q) for p, q in zip(data["tcp_positions_m"], data["tcp_orientations_xyzw"])])
    if positions.shape != (len(times), len(arm) + len(hand)) or len(T) != len(times):
        raise ValueError(f"{path}: the trajectory's {len(times)} times, {positions.shape} positions and {len(T)} "
                         f"TCP poses do not match its {len(arm)} arm and {len(hand)} hand joints")
    return ArmTrajectory(arm, hand, times, positions, T, _matrix(data["T_workspace_base"], path), int(data["rank"]))


def _matrix(values, path: Path) -> np.ndarray:
    T = np.asarray(values, dtype=float)
    if T.shape != (4, 4):
        raise ValueError(f"{path}: a pose must be a 4x4 matrix, got shape {T.shape}")
    return T
