"""Scene building: TSDF fusion and surface point clouds of the workspace."""
from .scene import EmptySceneError, Scene, TargetBox
from .tsdf import SceneBuilder, TSDFVolume, scene_from_grid
from .workspace import STANDARD_WORKSPACE, Workspace

__all__ = ["EmptySceneError", "Scene", "SceneBuilder", "STANDARD_WORKSPACE", "TargetBox", "TSDFVolume",
           "Workspace", "scene_from_grid"]
