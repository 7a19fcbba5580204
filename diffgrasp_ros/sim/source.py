"""The simulated world as a depth camera: the ``sim`` source of the depth capture stage."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ..camera.frame import DepthFrame
from ..camera.intrinsics import CameraIntrinsics
from .camera import side_view
from .object_set import ObjectModel
from .world import ClutterWorld


class SimDepthSource:
    """Renders a clutter scene from one camera pose; ``new_scene()`` replaces the scene."""

    def __init__(self, objects: Sequence[ObjectModel], scene: str = "pile", seed: int = 0,
                 T_workspace_camera: np.ndarray | None = None, frame_id: str = "sim_camera_optical_frame"):
        self.objects, self.scene, self.seed = list(objects), scene, seed
        self.T_workspace_camera = side_view() if T_workspace_camera is None else np.asarray(T_workspace_camera)
        self.frame_id = frame_id
        self.world: ClutterWorld | None = None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.world.camera.intrinsics

    def start(self) -> "SimDepthSource":
        if self.world is None:
            self.world = ClutterWorld(self.objects, seed=self.seed)
            self.world.camera.frame_id = self.frame_id
            self.new_scene()
        return self

    def new_scene(self) -> int:
        return self.world.generate(self.scene)

    def read(self, stamp: float | None = None) -> DepthFrame:
        return self.world.camera.render(self.T_workspace_camera, time.time() if stamp is None else stamp).depth

    def stop(self) -> None:
        if self.world is not None:
            self.world.close()
            self.world = None
