"""``depth_capture``: a depth camera (RealSense, simulated or replayed) as depth Image + CameraInfo."""
from __future__ import annotations

import threading
from pathlib import Path

from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from ..camera.ros_image import DEPTH_ENCODINGS
from .base import DiffgraspNode, guarded, run
from .conversions import depth_frame_to_msgs

SOURCES = ("sim", "realsense", "replay")


class DepthCaptureNode(DiffgraspNode):
    def __init__(self, **kwargs):
        super().__init__("depth_capture", **kwargs)
        self.declare("source", "sim", f"camera source: one of {', '.join(SOURCES)}")
        self.declare("rate_hz", 2.0, "frames published per second (each becomes a scene and a plan downstream)")
        self.declare("encoding", "32FC1", "depth Image encoding: 32FC1 (metres) or 16UC1 (millimetres)")
        self.declare("restamp", True, "stamp each frame with the node's clock when it is captured (sim time "
                     "under use_sim_time); false keeps the source's stamps, e.g. a recording's capture times")
        self.declare("frame_id", "camera_depth_optical_frame", "optical frame of the published images "
                     "(the simulated camera's calibration in config/ uses the same name)")
        self.declare("min_depth_m", 0.1, "nearest valid depth; nearer pixels are published as invalid (0)")
        self.declare("max_depth_m", 2.0, "farthest valid depth")
        self.declare("sim.scene", "pile", "simulated scene kind: pile or packed")
        self.declare("sim.seed", 0, "simulated scene seed")
        self.declare("sim.objects", "", "folder of object URDF/OBJ/STL files ('' = the project's own set)")
        self.declare("realsense.serial", "", "camera serial number ('' = the first connected camera)")
        self.declare("realsense.width", 640, "depth stream width")
        self.declare("realsense.height", 480, "depth stream height")
        self.declare("realsense.fps", 30, "depth stream frame rate")
        self.declare("realsense.decimation", 1, "decimation filter magnitude (1 = off)")
        self.declare("realsense.spatial", True, "spatial edge-preserving filter")
        self.declare("realsense.temporal", False, "temporal filter (blends frames: off for changing scenes)")
        self.declare("realsense.hole_filling", False, "hole filling filter (invents surfaces never seen)")
        self.declare("replay.path", "", "recording to replay: a rosbag2 folder/.mcap/.db3, or a RealSense .bag")
        self.declare("replay.depth_topic", "", "depth Image topic in a rosbag2 recording ('' = the first one)")
        self.declare("replay.info_topic", "", "CameraInfo topic in a rosbag2 recording ('' = the first one)")
        self.declare("replay.loop", True, "start the recording over at its end")
        self.source = None
        self._source_lock = threading.Lock()
        self._timer = None

    # -- library objects ------------------------------------------------------------------------------
    def _open_source(self):
        kind = self.param("source")
        if kind == "sim":
            from ..sim.object_set import default_objects, find_objects
            from ..sim.source import SimDepthSource

            folder = self.param("sim.objects")
            objects = find_objects(folder) if folder else default_objects("all")
            return SimDepthSource(objects, self.param("sim.scene"), self.param("sim.seed"),
                                  frame_id=self.param("frame_id"))
        if kind == "realsense":
            from ..camera.realsense import RealSenseConfig, RealSenseSource

            return RealSenseSource(self._realsense_config(RealSenseConfig))
        if kind == "replay":
            path = Path(self.param("replay.path"))
            if path.suffix == ".bag":  # RealSense SDK recording
                from ..camera.realsense import RealSenseConfig, RealSenseSource

                return RealSenseSource(self._realsense_config(RealSenseConfig, playback_path=path))
            from ..camera.rosbag import Rosbag2DepthSource

            return Rosbag2DepthSource(path, self.param("replay.depth_topic") or None,
                                      self.param("replay.info_topic") or None, self.param("replay.loop"))
        raise ValueError(f"unknown source {kind!r}: choose one of {SOURCES}")

    def _realsense_config(self, config_class, **extra):
        return config_class(
            serial=self.param("realsense.serial") or None, width=self.param("realsense.width"),
            height=self.param("realsense.height"), fps=self.param("realsense.fps"),
            decimation=self.param("realsense.decimation"), spatial=self.param("realsense.spatial"),
            temporal=self.param("realsense.temporal"), hole_filling=self.param("realsense.hole_filling"),
            min_depth_m=self.param("min_depth_m"), max_depth_m=self.param("max_depth_m"),
            frame_id=self.param("frame_id"), **extra)

    # -- transitions ------------------------------------------------------------------------------------
    def configure(self) -> None:
        if self.param("encoding") not in DEPTH_ENCODINGS:
            raise ValueError(f"encoding must be one of {sorted(DEPTH_ENCODINGS)}")
        if self.param("rate_hz") <= 0:
            raise ValueError("rate_hz must be positive")
        self.source = self._open_source().start()
        self.image_pub = self.publisher(Image, "depth/image_raw")
        self.info_pub = self.publisher(CameraInfo, "depth/camera_info")
        self.service(Trigger, "~/new_scene", self._on_new_scene)

    def cleanup(self) -> None:
        if self.source is not None:
            self.source.stop()
            self.source = None

    def activate_work(self) -> None:
        self._timer = self.create_timer(1.0 / self.param("rate_hz"), self._capture, self.callback_group)

    def deactivate_work(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    # -- work -------------------------------------------------------------------------------------------
    @guarded
    def _capture(self) -> None:
        try:
            with self._source_lock:  # PyBullet and the SDK are not thread-safe; services share the source
                frame = self.source.read()
        except EOFError as end:
            self.report(f"{end}: no more frames", level="warning")
            return
        frame = frame.clipped(self.param("min_depth_m"), self.param("max_depth_m"))
        if self.param("restamp"):
            frame.stamp = self.now_s()
        image, info = depth_frame_to_msgs(frame, self.param("encoding"))
        self.image_pub.publish(image)
        self.info_pub.publish(info)

    def _on_new_scene(self, request, response):
        response.success = False
        if self.source is None or not hasattr(self.source, "new_scene"):
            response.message = self.report("new_scene: only the simulated source has scenes")
        else:
            with self._source_lock:
                count = self.source.new_scene()
            response.success, response.message = True, f"new {self.param('sim.scene')} scene with {count} objects"
        return response


def main(args=None) -> None:
    run(DepthCaptureNode, args)
