"""Scene building: TSDF fusion and surface point clouds of the workspace."""
from .scene import EmptySceneError, Scene
from .tsdf import SceneBuilder, TSDFVolume, scene_from_grid
from .workspace import STANDARD_WORKSPACE, Workspace

__all__ = ["EmptySceneError", "Scene", "SceneBuilder", "STANDARD_WORKSPACE", "TSDFVolume",
           "Workspace", "scene_from_grid"]
