"""``depth_capture``: a depth camera (RealSense, simulated or replayed) as depth Image + CameraInfo.

A camera that stops delivering while the node is active (unplugged, a USB reset, frames that time out, an SDK
error) does not stop the node: it is reported (log and ``last_error``), closed, and opened again after
``reopen_initial_s``, then after twice as long at every failed attempt up to ``reopen_max_s``, until frames
come again. A recording that ends is reported once; with ``replay.loop`` it plays again from its start.
``~/get_status`` (std_srvs/Trigger) says which of these the camera is in: ``success`` while frames flow.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from ..camera.frame import DepthError
from ..camera.ros_image import DEPTH_ENCODINGS
from .base import DiffgraspNode, guarded, run, sanitise
from .conversions import check_limit, check_name, depth_frame_to_msgs

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
        self.declare("realsense.timeout_ms", 5000, "longest wait for a frame; none within it and the camera "
                     "counts as lost (closed and opened again)")
        self.declare("replay.path", "", "recording to replay: a rosbag2 folder/.mcap/.db3, or a RealSense .bag")
        self.declare("replay.depth_topic", "", "depth Image topic in a rosbag2 recording ('' = the first one)")
        self.declare("replay.info_topic", "", "CameraInfo topic in a rosbag2 recording ('' = the first one)")
        self.declare("replay.loop", True, "start the recording over at its end")
        self.declare("reopen_initial_s", 1.0, "a camera that stops delivering is closed and opened again this "
                     "long after (then twice as long after every failed attempt)")
        self.declare("reopen_max_s", 10.0, "longest wait between two attempts to open a lost camera again")
        self.declare_input_limits()  # a frame over max_image_pixels (a recording's) is reported, not published
        self.source = None
        self._source_lock = threading.Lock()
        self._timer = None
        self._reset_status()

    def _reset_status(self) -> None:
        self._frames = 0  # published since configure
        self._last_frame_s = None  # time.monotonic() of the last frame read
        self._lost_since = None  # time.monotonic() when the camera was lost; None while frames come
        self._lost_reason = ""
        self._reopen_delay_s = 0.0
        self._reopen_at = 0.0
        self._reopen_attempts = 0
        self._reopen_error = ""  # why the last reopen failed
        self._recoveries = 0  # times frames came again after the camera was lost
        self._ended = ""  # the end of a recording that does not loop
        self._loops = 0  # times a looping recording started over

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

            # Looping is this node's (``_on_end``), for both kinds of recording, so that it is logged.
            return Rosbag2DepthSource(path, self.param("replay.depth_topic") or None,
                                      self.param("replay.info_topic") or None, loop=False)
        raise ValueError(f"unknown source {kind!r}: choose one of {SOURCES}")

    def _realsense_config(self, config_class, **extra):
        return config_class(
            serial=self.param("realsense.serial") or None, width=self.param("realsense.width"),
            height=self.param("realsense.height"), fps=self.param("realsense.fps"),
            decimation=self.param("realsense.decimation"), spatial=self.param("realsense.spatial"),
            temporal=self.param("realsense.temporal"), hole_filling=self.param("realsense.hole_filling"),
            min_depth_m=self.param("min_depth_m"), max_depth_m=self.param("max_depth_m"),
            frame_id=self.param("frame_id"), timeout_ms=self.param("realsense.timeout_ms"), **extra)

    # -- transitions ------------------------------------------------------------------------------------
    def configure(self) -> None:
        if self.param("encoding") not in DEPTH_ENCODINGS:
            raise ValueError(f"encoding must be one of {sorted(DEPTH_ENCODINGS)}")
        if self.param("rate_hz") <= 0:
            raise ValueError("rate_hz must be positive")
        if not 0 < self.param("reopen_initial_s") <= self.param("reopen_max_s"):
            raise ValueError("need 0 < reopen_initial_s <= reopen_max_s")
        check_name("frame_id", self.param("frame_id"), self.param("max_name_length"))
        if self.param("source") == "realsense":
            check_limit(f"the RealSense stream {self.param('realsense.width')}x{self.param('realsense.height')}",
                        self.param("realsense.width") * self.param("realsense.height"),
                        self.param("max_image_pixels"), "max_image_pixels", " pixels")
        self._reset_status()
        self.source = self._open_source().start()  # a camera that is not there fails configure (retried by the
        # lifecycle manager); one lost later is reopened by this node
        self.image_pub = self.publisher(Image, "depth/image_raw")
        self.info_pub = self.publisher(CameraInfo, "depth/camera_info")
        self.service(Trigger, "~/new_scene", self._on_new_scene)
        self.service(Trigger, "~/get_status", self._on_get_status)

    def cleanup(self) -> None:
        # A read may still wait for the camera (up to its timeout): stop the source after it, not under it.
        locked = self._source_lock.acquire(timeout=self.param("realsense.timeout_ms") / 1000.0 + 1.0)
        try:
            self._close_source()
        finally:
            if locked:
                self._source_lock.release()

    def activate_work(self) -> None:
        self._timer = self.create_timer(1.0 / self.param("rate_hz"), self._capture, self.callback_group)

    def deactivate_work(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    # -- work -------------------------------------------------------------------------------------------
    @guarded
    def _capture(self) -> None:
        # PyBullet and the SDK are not thread-safe; services share the source. A read that still waits for
        # the camera (up to realsense.timeout_ms) makes the ticks meanwhile skip, not queue up on the lock:
        # queued ticks would hold every executor thread and leave the lifecycle services unanswered.
        if not self._source_lock.acquire(blocking=False):
            return
        try:
            frame = self._next_frame()
        finally:
            self._source_lock.release()
        if frame is None:
            return
        height, width = frame.depth_m.shape[:2]
        check_limit(f"depth frame {width}x{height}", width * height, self.param("max_image_pixels"),
                    "max_image_pixels", " pixels")  # reported by guarded; nothing is published
        frame = frame.clipped(self.param("min_depth_m"), self.param("max_depth_m"))
        if self.param("restamp"):
            frame.stamp = self.now_s()
        image, info = depth_frame_to_msgs(frame, self.param("encoding"))
        self.image_pub.publish(image)
        self.info_pub.publish(info)
        self._frames += 1

    def _next_frame(self):
        """The source's next frame, or None: the camera is lost (then reopened when due) or the recording ended.
        Bad frames (DepthError) raise, for ``guarded`` to report; the camera stays open."""
        if self._ended:
            return None
        if self.source is None:
            if self._lost_since is None or time.monotonic() < self._reopen_at:
                return None
            self._reopen()
            if self.source is None:
                return None
        try:
            frame = self.source.read()
        except EOFError as end:
            return self._on_end(end)
        except DepthError:
            raise
        except Exception as error:  # timeouts, SDK errors, a device gone: the camera, not the frame
            self._lose(error)
            return None
        if self._lost_since is not None:
            self._recoveries += 1
            self.get_logger().info(f"camera back: frames again {time.monotonic() - self._lost_since:.1f} s after "
                                   f"it was lost ({self._lost_reason}), after {self._reopen_attempts} reopen(s)")
            self._lost_since, self._lost_reason, self._reopen_attempts, self._reopen_error = None, "", 0, ""
        self._last_frame_s = time.monotonic()
        return frame

    def _close_source(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            try:
                source.stop()
            except Exception as error:  # a camera that is gone may fail to stop; it is closed all the same
                self.report(f"closing the camera: {error}", level="warning")

    def _lose(self, error: Exception) -> None:
        """Close the camera after ``error``; open it again after a delay that doubles (up to reopen_max_s)."""
        now = time.monotonic()
        first = self._lost_since is None
        if first:
            self._lost_since, self._reopen_delay_s = now, self.param("reopen_initial_s")
        else:  # reopened, but still no frame
            self._reopen_delay_s = min(2.0 * self._reopen_delay_s, self.param("reopen_max_s"))
        self._lost_reason = f"{type(error).__name__}: {error}"
        self._close_source()
        self._reopen_at = now + self._reopen_delay_s
        self.report(f"camera lost ({self._lost_reason}): closed; opening it again in {self._reopen_delay_s:.1f} s"
                    + ("" if first else f" (lost {now - self._lost_since:.0f} s ago, {self._reopen_attempts} "
                                         "reopen(s) so far)"))

    def _reopen(self) -> None:
        self._reopen_attempts += 1
        try:
            self.source = self._open_source().start()
        except Exception as error:
            self.source = None
            self._reopen_delay_s = min(2.0 * self._reopen_delay_s, self.param("reopen_max_s"))
            self._reopen_at = time.monotonic() + self._reopen_delay_s
            self._reopen_error = f"{type(error).__name__}: {error}"
            self.report(f"camera still lost: reopen {self._reopen_attempts} failed ({self._reopen_error}); next "
                        f"attempt in {self._reopen_delay_s:.1f} s")
            return
        self._reopen_error = ""
        self.get_logger().info(f"camera opened again (reopen {self._reopen_attempts}); waiting for frames")

    def _on_end(self, end: EOFError):
        """The end of a recording: with replay.loop it plays again from its start (the first frame of the new
        round is returned), else the node says so once and publishes nothing more."""
        if self.param("replay.loop"):
            self._loops += 1
            self.get_logger().info(f"{end} after {self._frames} frame(s) published: playing it again from the "
                                   f"start (replay.loop; round {self._loops + 1})")
            self._close_source()
            try:
                self.source = self._open_source().start()
                return self.source.read()
            except EOFError:
                pass  # nothing to play in the whole recording: stop as without loop
            except DepthError:
                raise
            except Exception as error:  # the recording cannot be opened again (moved, deleted)
                self._lose(error)
                return None
        self._ended = (f"{end}: no more frames after {self._frames} published (replay.loop is false); the node "
                       "stays active and publishes nothing; cleanup and configure play it again")
        self.report(self._ended, level="warning")
        return None

    def status(self) -> tuple[bool, str]:
        """(frames flowing, what the camera does), as ``~/get_status`` answers."""
        source = self.param("source")
        if self.source is None and self._lost_since is None and not self._ended:
            return False, f"{source}: not open (the node is unconfigured)"
        if self._ended:
            return False, f"{source}: {self._ended}"
        if self._lost_since is not None:
            wait = max(self._reopen_at - time.monotonic(), 0.0)
            return False, (f"{source}: camera lost {time.monotonic() - self._lost_since:.1f} s ago "
                           f"({self._lost_reason}); {self._reopen_attempts} reopen(s) so far"
                           + (f", the last failed ({self._reopen_error})" if self._reopen_error else "") + ", "
                           + ("waiting for frames" if self.source is not None else f"next in {wait:.1f} s"))
        age = None if self._last_frame_s is None else time.monotonic() - self._last_frame_s
        text = (f"{source}: streaming, {self._frames} frame(s) published, the last read "
                + ("never" if age is None else f"{age:.1f} s ago")
                + (f"; recovered {self._recoveries} time(s) from a lost camera" if self._recoveries else "")
                + (f"; recording played {self._loops + 1} time(s)" if self._loops else ""))
        return self.active and age is not None, text

    def _on_get_status(self, request, response):
        success, message = self.status()  # holds camera and recording errors: sanitised like every report
        response.success, response.message = success, sanitise(message)
        return response

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
