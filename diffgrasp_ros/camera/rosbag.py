"""Replay depth frames from a rosbag2 recording (mcap or sqlite3) with the ``rosbags`` library."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .frame import DepthError, DepthFrame
from .intrinsics import CameraIntrinsics
from .ros_image import depth_from_image_fields, intrinsics_from_camera_info


class Rosbag2DepthSource:
    """Depth ``sensor_msgs/Image`` frames, each paired with the latest ``CameraInfo`` before it.

    Topics default to the first Image / CameraInfo topics in the bag. ``read()`` returns the frames in
    recording order and raises ``EOFError`` at the end (``loop=True`` starts over instead).
    """

    def __init__(self, path: str | Path, depth_topic: str | None = None, info_topic: str | None = None,
                 loop: bool = False):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"rosbag2 recording not found: {self.path}")
        self.depth_topic, self.info_topic, self.loop = depth_topic, info_topic, loop
        self._frames: Iterator[DepthFrame] | None = None
        self.intrinsics: CameraIntrinsics | None = None

    def _iterate(self) -> Iterator[DepthFrame]:
        from rosbags.rosbag2 import Reader
        from rosbags.typesys import Stores, get_typestore

        typestore = get_typestore(Stores.LATEST)
        try:
            reader = Reader(self.path)
            reader.open()
        except Exception as error:  # rosbags raises its own error types for every malformed bag
            raise DepthError(f"cannot read rosbag2 recording {self.path}: {error}") from error
        try:
            connections = self._connections(reader)
            info = None
            for connection, _, raw in reader.messages(connections=connections):
                message = typestore.deserialize_cdr(raw, connection.msgtype)
                if connection.msgtype == "sensor_msgs/msg/CameraInfo":
                    info = message
                    continue
                if info is None:
                    continue  # a depth image is unusable before its calibration is known
                intrinsics = intrinsics_from_camera_info(info.width, info.height, info.k)
                self.intrinsics = intrinsics
                stamp = message.header.stamp.sec + 1e-9 * message.header.stamp.nanosec
                yield depth_from_image_fields(message.encoding, message.height, message.width, message.step,
                                              message.is_bigendian, message.data, intrinsics,
                                              message.header.frame_id, stamp)
        finally:
            reader.close()

    def _connections(self, reader) -> list:
        def pick(msgtype: str, topic: str | None):
            matches = [c for c in reader.connections if c.msgtype == msgtype and topic in (None, c.topic)]
            if not matches:
                wanted = f"topic {topic!r} of " if topic else ""
                raise DepthError(f"{self.path}: no {wanted}type {msgtype} in the recording "
                                 f"(topics: {sorted({c.topic for c in reader.connections})})")
            return [m for m in matches if m.topic == matches[0].topic]

        return pick("sensor_msgs/msg/Image", self.depth_topic) + pick("sensor_msgs/msg/CameraInfo", self.info_topic)

    def start(self) -> "Rosbag2DepthSource":
        self._frames = self._iterate()
        return self

    def read(self) -> DepthFrame:
        if self._frames is None:
            self.start()
        try:
            return next(self._frames)
        except StopIteration:
            if not self.loop:
                raise EOFError(f"end of recording {self.path}") from None
            self._frames = self._iterate()
            try:
                return next(self._frames)
            except StopIteration:
                raise DepthError(f"{self.path}: no depth image follows a camera info") from None

    def stop(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None
