"""Depth images meet the CameraInfo with their stamp, else the newest one of their frame and size."""
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from diffgrasp_ros.nodes.camera_info import CameraInfoCache  # noqa: E402


def message(kind, width: int, height: int, sec: int, frame: str = "cam", fx: float = 600.0):
    msg = kind(width=width, height=height)
    msg.header.frame_id, msg.header.stamp.sec = frame, sec
    if kind is CameraInfo:
        msg.k = [fx, 0.0, width / 2, 0.0, fx, height / 2, 0.0, 0.0, 1.0]
    return msg


def test_an_image_takes_the_info_of_its_stamp_else_of_its_size():
    cache = CameraInfoCache()
    small, big = message(CameraInfo, 640, 480, 1), message(CameraInfo, 4000, 3000, 2)
    cache.add(small)
    cache.add(big)
    assert cache.for_image(message(Image, 4000, 3000, 2)) is big
    # A 640x480 frame after the 4000x3000 one, its own info not here yet: not the big frame's calibration.
    assert cache.for_image(message(Image, 640, 480, 3)) is small
    recalibrated = message(CameraInfo, 640, 480, 3, fx=610.0)
    cache.add(recalibrated)
    assert cache.for_image(message(Image, 640, 480, 3)) is recalibrated  # the same stamp wins
    assert cache.for_image(message(Image, 640, 480, 1)) is small  # and an older frame keeps its own
    assert cache.for_image(message(Image, 320, 240, 4)) is None  # no info of that size
    assert cache.for_image(message(Image, 640, 480, 3, frame="other")) is None  # nor of that frame
    assert "cam" in cache and "other" not in cache


def test_only_recent_infos_are_kept():
    cache = CameraInfoCache(keep_per_frame=3)
    for sec in range(10):
        cache.add(message(CameraInfo, 640, 480, sec))
    assert cache.for_image(message(Image, 640, 480, 0)).header.stamp.sec == 9  # stamp 0 forgotten: the newest
    assert cache.for_image(message(Image, 640, 480, 8)).header.stamp.sec == 8
    cache.clear()
    assert "cam" not in cache and cache.for_image(message(Image, 640, 480, 9)) is None
