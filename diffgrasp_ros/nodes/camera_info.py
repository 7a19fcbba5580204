"""Which CameraInfo describes a depth Image: the one with its stamp, else the newest of its frame and size."""
from __future__ import annotations

import threading
from collections import OrderedDict

from sensor_msgs.msg import CameraInfo, Image


class CameraInfoCache:
    """The recent CameraInfo messages of each camera frame, for pairing with Image messages.

    ``for_image`` answers the info that shares the image's frame id and stamp (a driver publishes the
    two together: realsense-ros, ``depth_capture``); when that one has not arrived (the two topics are
    not ordered) or never comes (a camera_info published once, latched), the newest info of the same
    frame id **and image size**, so a frame of another resolution never takes the wrong calibration.
    message_filters' synchronizers do the first half on a ROS machine; they are not on PyPI.
    """

    def __init__(self, keep_per_frame: int = 30, keep_frames: int = 16):
        self.keep_per_frame = keep_per_frame
        # Bounded in cameras too: infos under ever new frame ids (a bad or hostile publisher) would otherwise
        # grow the cache without end. The camera heard from least recently is forgotten first.
        self.keep_frames = keep_frames
        self._infos: OrderedDict[str, OrderedDict] = OrderedDict()  # frame id -> (sec, nanosec) -> info, oldest first
        self._lock = threading.Lock()  # callbacks run concurrently (reentrant callback group)

    def add(self, info: CameraInfo) -> None:
        stamp = (info.header.stamp.sec, info.header.stamp.nanosec)
        with self._lock:
            recent = self._infos.setdefault(info.header.frame_id, OrderedDict())
            self._infos.move_to_end(info.header.frame_id)
            recent.pop(stamp, None)
            recent[stamp] = info
            while len(recent) > self.keep_per_frame:
                recent.popitem(last=False)
            while len(self._infos) > self.keep_frames:
                self._infos.popitem(last=False)

    def for_image(self, image: Image) -> CameraInfo | None:
        with self._lock:
            recent = self._infos.get(image.header.frame_id)
            if not recent:
                return None
            exact = recent.get((image.header.stamp.sec, image.header.stamp.nanosec))
            if exact is not None:
                return exact
            return next((info for info in reversed(recent.values())
                         if (info.width, info.height) == (image.width, image.height)), None)

    def __contains__(self, frame_id: str) -> bool:
        with self._lock:
            return bool(self._infos.get(frame_id))

    def clear(self) -> None:
        with self._lock:
            self._infos.clear()
