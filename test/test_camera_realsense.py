"""The RealSense source, run for real through the SDK on a software-defined depth sensor.

An ``rs.software_device`` with a z16 sensor stands in for a D435: the frames it emits are real
``rs.depth_frame`` objects, so the SDK filters, units, intrinsics, recorder and playback are
exercised exactly as with a camera; only the pixels come from here.
"""
import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from diffgrasp_ros.camera.frame import DepthError  # noqa: E402
from diffgrasp_ros.camera.intrinsics import CameraIntrinsics  # noqa: E402
from diffgrasp_ros.camera.realsense import (  # noqa: E402
    CameraNotFoundError, RealSenseConfig, RealSenseFilterChain, RealSenseSource,
    decimated_intrinsics, depth_frame_to_frame, intrinsics_from_rs,
)

W, H = 640, 480
INTRINSICS = CameraIntrinsics(W, H, fx=615.0, fy=616.0, cx=321.5, cy=239.5)
DEPTH_UNITS = 0.001
HOLE = (slice(60, 120), slice(440, 520))  # a block of missing depth, as on a shiny surface
BOX = (slice(180, 300), slice(250, 390))
FAR = (slice(400, 480), slice(0, 120))  # beyond max_depth_m
NEAR = (slice(0, 40), slice(600, 640))  # closer than min_depth_m


def plane_mm() -> np.ndarray:
    """A table tilted away from the camera, 0.75 to 0.92 m."""
    v, u = np.mgrid[0:H, 0:W]
    return 800.0 + 0.25 * (v - 240) + 0.08 * (u - 320)


def scene_mm(seed: int = 0, noise_mm: float = 0.0) -> np.ndarray:
    """The tilted table with a 12 cm tall box on it, holes, dropouts and out-of-range regions."""
    rng = np.random.default_rng(seed)
    depth = plane_mm() + rng.normal(0.0, noise_mm, (H, W))
    depth[BOX] -= 120.0
    depth[FAR] = 2600.0
    depth[NEAR] = 50.0
    depth[HOLE] = 0.0
    depth[rng.random((H, W)) < 0.03] = 0.0  # speckle dropouts
    return np.round(depth).astype(np.uint16)


class SoftwareDepthCamera:
    """A z16 depth sensor made in software; ``push`` returns the rs.depth_frame the SDK delivers."""

    def __init__(self, record_to: Path | None = None, intrinsics: CameraIntrinsics = INTRINSICS,
                 depth_units: float = DEPTH_UNITS):
        self.device = rs.software_device()
        self.sensor = self.device.add_sensor("Stereo Module")
        self.sensor.add_read_only_option(rs.option.depth_units, depth_units)
        # A stereo baseline makes the disparity transform work as on a D435 (without one it is a no-op).
        self.sensor.add_read_only_option(rs.option.stereo_baseline, 50.0)
        rs_intrinsics = rs.intrinsics()
        rs_intrinsics.width, rs_intrinsics.height = intrinsics.width, intrinsics.height
        rs_intrinsics.fx, rs_intrinsics.fy = intrinsics.fx, intrinsics.fy
        rs_intrinsics.ppx, rs_intrinsics.ppy = intrinsics.cx, intrinsics.cy
        rs_intrinsics.model = rs.distortion.brown_conrady
        rs_intrinsics.coeffs = [0.0] * 5
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = rs.stream.depth, 0, 0
        stream.width, stream.height, stream.fps = intrinsics.width, intrinsics.height, 30
        stream.bpp, stream.fmt, stream.intrinsics = 2, rs.format.z16, rs_intrinsics
        self.profile = rs.video_stream_profile(self.sensor.add_video_stream(stream))
        self.width, self.depth_units = intrinsics.width, depth_units
        self.recorder = rs.recorder(str(record_to), self.device) if record_to else None
        # Frames pushed into the software sensor pass through the recorder's wrapper sensor.
        self.streaming = self.recorder.query_sensors()[0] if self.recorder else self.sensor
        self.queue = rs.frame_queue(8, keep_frames=True)
        self.streaming.open(self.profile)
        self.streaming.start(self.queue)
        self.frame_number = 0

    def push(self, depth: np.ndarray, timestamp_ms: float | None = None):
        self.frame_number += 1
        frame = rs.software_video_frame()
        frame.pixels = np.ascontiguousarray(depth, dtype=np.uint16)
        frame.bpp, frame.stride = 2, 2 * self.width
        frame.timestamp = 1000.0 + 33.3 * self.frame_number if timestamp_ms is None else timestamp_ms
        frame.domain = rs.timestamp_domain.hardware_clock
        frame.frame_number = self.frame_number
        frame.profile = self.profile
        frame.depth_units = self.depth_units
        self.sensor.on_video_frame(frame)
        return self.queue.wait_for_frame(1000).as_depth_frame()

    def close(self) -> None:
        self.streaming.stop()
        self.streaming.close()
        # The recorder finishes the file only once nothing refers to it any more.
        del self.streaming, self.recorder, self.queue
        gc.collect()


@pytest.fixture()
def camera():
    cam = SoftwareDepthCamera()
    yield cam
    cam.close()


def metres(raw_mm: np.ndarray) -> np.ndarray:
    return raw_mm.astype(np.float32) * np.float32(DEPTH_UNITS)


# ---------------------------------------------------------------- conversion

def test_depth_frame_to_frame_is_exact(camera):
    raw = scene_mm()
    rs_frame = camera.push(raw, timestamp_ms=1_700_000_000_123.0)
    frame = depth_frame_to_frame(rs_frame, "d435_depth_optical_frame", 0.1, 2.0)
    assert frame.depth_m.shape == (H, W)
    assert frame.intrinsics == INTRINSICS
    assert frame.frame_id == "d435_depth_optical_frame"
    assert frame.stamp == pytest.approx(1_700_000_000.123)
    expected = metres(raw)
    expected[(expected < 0.1) | (expected > 2.0)] = 0.0
    np.testing.assert_allclose(frame.depth_m, expected, rtol=1e-6)
    # clipping removed exactly the far and near blocks, on top of the holes
    assert not frame.depth_m[FAR].any() and not frame.depth_m[NEAR].any() and not frame.depth_m[HOLE].any()
    assert np.count_nonzero(frame.depth_m) == np.count_nonzero(raw) - np.count_nonzero(raw[FAR]) \
        - np.count_nonzero(raw[NEAR])


def test_depth_frame_to_frame_uses_the_frames_own_units():
    cam = SoftwareDepthCamera(depth_units=0.0001)  # 100 um, as a D435 set up for short range
    try:
        raw = scene_mm()
        frame = depth_frame_to_frame(cam.push(raw))
    finally:
        cam.close()
    np.testing.assert_allclose(frame.depth_m, raw.astype(np.float32) * np.float32(0.0001), rtol=1e-6)


def test_disparity_frame_is_refused(camera):
    disparity = rs.disparity_transform(True).process(camera.push(scene_mm()))
    with pytest.raises(DepthError, match="z16"):
        depth_frame_to_frame(disparity)


# ---------------------------------------------------------------- filters

def test_filter_chain_order():
    assert RealSenseFilterChain().names == []
    assert RealSenseFilterChain(decimation=2, spatial=True, temporal=True, hole_filling=True).names == [
        "decimation", "depth_to_disparity", "spatial", "temporal", "disparity_to_depth", "hole_filling"]
    assert RealSenseFilterChain(temporal=True).names == ["depth_to_disparity", "temporal", "disparity_to_depth"]
    assert RealSenseFilterChain.from_config(RealSenseConfig(decimation=3, spatial=False)).names == ["decimation"]


def test_decimation_halves_size_and_intrinsics_keeping_metres(camera):
    raw = scene_mm()
    out = depth_frame_to_frame(RealSenseFilterChain(decimation=2).process(camera.push(raw)))
    assert out.depth_m.shape == (240, 320)
    assert out.intrinsics == CameraIntrinsics(320, 240, 307.5, 308.0, 160.75, 119.75)
    # every output pixel of a fully valid 2x2 block lies within that block's depths
    blocks = metres(raw).reshape(240, 2, 320, 2).transpose(0, 2, 1, 3).reshape(240, 320, 4)
    full = (blocks > 0).all(axis=2)
    inside = (out.depth_m >= blocks.min(axis=2)) & (out.depth_m <= blocks.max(axis=2))
    assert full.sum() > 60_000 and inside[full].all()


@pytest.mark.parametrize("size, magnitude", [((640, 480), 2), ((848, 480), 3), ((1280, 720), 8), ((424, 240), 5)])
def test_decimated_intrinsics_match_the_sdk(size, magnitude):
    intrinsics = CameraIntrinsics(size[0], size[1], 600.0, 601.0, size[0] / 2 - 0.3, size[1] / 2 + 0.7)
    cam = SoftwareDepthCamera(intrinsics=intrinsics)
    try:
        decimate = rs.decimation_filter()
        decimate.set_option(rs.option.filter_magnitude, magnitude)
        out = decimate.process(cam.push(np.full((size[1], size[0]), 800, np.uint16)))
        sdk = intrinsics_from_rs(out.get_profile().as_video_stream_profile().get_intrinsics())
    finally:
        cam.close()
    ours = decimated_intrinsics(intrinsics, magnitude)
    assert (ours.width, ours.height) == (sdk.width, sdk.height)
    np.testing.assert_allclose([ours.fx, ours.fy, ours.cx, ours.cy], [sdk.fx, sdk.fy, sdk.cx, sdk.cy], rtol=1e-5)


def test_full_chain_fills_holes_smooths_and_clips(camera):
    plain = RealSenseFilterChain(decimation=2)
    full = RealSenseFilterChain(decimation=2, spatial=True, temporal=True, hole_filling=True)
    for seed in range(3):  # a few frames, so the temporal filter has history
        raw = scene_mm(seed, noise_mm=2.0)
        rs_frame = camera.push(raw)
        before = depth_frame_to_frame(plain.process(rs_frame), min_depth_m=0.1, max_depth_m=2.0)
        after = depth_frame_to_frame(full.process(rs_frame), min_depth_m=0.1, max_depth_m=2.0)
    assert after.depth_m.shape == (240, 320)
    assert after.intrinsics == before.intrinsics == decimated_intrinsics(INTRINSICS, 2)

    hole = (slice(30, 60), slice(220, 260))  # HOLE at half resolution
    in_range = np.ones((240, 320), bool)
    in_range[200:240, 0:60] = in_range[0:20, 300:320] = False  # FAR and NEAR at half resolution
    assert not before.depth_m[hole].any()
    assert after.depth_m[hole].all()
    assert (after.depth_m[in_range] == 0).mean() < (before.depth_m[in_range] == 0).mean()
    assert after.depth_m[in_range].all()

    # clipping still applies after hole filling; everything valid is within range
    assert not after.depth_m[~in_range].any()
    valid = after.depth_m[after.depth_m > 0]
    assert valid.min() >= 0.1 and valid.max() <= 2.0

    # the spatial and temporal filters take out most of the 2 mm noise on the open table
    table = (slice(120, 160), slice(40, 100))
    truth = metres(plane_mm())[::2, ::2][table]
    noise_before = np.std(before.depth_m[table] - truth)
    noise_after = np.std(after.depth_m[table] - truth)
    assert noise_after < 0.5 * noise_before
    # the box's top stays 12 cm above the table: smoothing preserves the edge
    box_top = after.depth_m[100:140, 135:185]
    np.testing.assert_allclose(box_top, metres(plane_mm() - 120.0)[::2, ::2][100:140, 135:185], atol=0.003)


# ---------------------------------------------------------------- recording and playback

def record(path: Path, frames: list[np.ndarray]) -> None:
    cam = SoftwareDepthCamera(record_to=path)
    for raw in frames:
        cam.push(raw)
    cam.close()


def test_recording_plays_back_through_the_source(tmp_path):
    path = tmp_path / "scene.db3"  # SDK 2.57+ records rosbag2 (sqlite) files
    frames = [scene_mm(seed) for seed in range(3)]
    record(path, frames)
    config = RealSenseConfig(playback_path=path, spatial=False, min_depth_m=0.0, max_depth_m=10.0,
                             frame_id="recorded", timeout_ms=300)
    with RealSenseSource(config) as source:
        assert source.intrinsics == INTRINSICS
        assert source.depth_scale == pytest.approx(DEPTH_UNITS)
        read = [source.read() for _ in frames]
        with pytest.raises(EOFError, match="scene.db3"):
            source.read()
    for raw, frame in zip(frames, read):
        assert frame.intrinsics == INTRINSICS and frame.frame_id == "recorded"
        np.testing.assert_array_equal(frame.depth_m, metres(raw))  # the recorder's compression is lossless
    assert [f.stamp for f in read] == pytest.approx([1.0333, 1.0666, 1.0999])


def test_playback_with_filters_reports_the_decimated_intrinsics(tmp_path):
    path = tmp_path / "scene.db3"
    record(path, [scene_mm(0)])
    with RealSenseSource(RealSenseConfig(playback_path=path, decimation=2, hole_filling=True)) as source:
        frame = source.read()
        assert frame.intrinsics == source.intrinsics == decimated_intrinsics(INTRINSICS, 2)
        assert frame.depth_m.shape == (240, 320)
        assert frame.depth_m[30:60, 220:260].all()  # hole filled
        assert not frame.depth_m[200:240, 0:60].any()  # beyond the default 2 m clip


def test_playback_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.bag"):
        RealSenseSource(RealSenseConfig(playback_path=tmp_path / "absent.bag")).start()
    (tmp_path / "junk.bag").write_text("not a recording")
    with pytest.raises(RuntimeError, match="cannot play back .*junk.bag"):
        RealSenseSource(RealSenseConfig(playback_path=tmp_path / "junk.bag")).start()


# ---------------------------------------------------------------- live camera

def test_no_device_raises_camera_not_found():
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense device is connected")
    with pytest.raises(CameraNotFoundError, match="no RealSense device is connected"):
        RealSenseSource().start()
    with pytest.raises(CameraNotFoundError, match="no RealSense device is connected"):
        RealSenseSource(RealSenseConfig(serial="123456789012")).start()


def test_missing_serial_lists_the_connected_ones(monkeypatch):
    # The SDK cannot fake a connected camera (software_device.add_to does not list it in 2.59),
    # so the device list is stubbed: this checks only how the source reads it.
    class Device:
        def __init__(self, serial):
            self.serial = serial

        def supports(self, info):
            return info == rs.camera_info.serial_number

        def get_info(self, info):
            assert info == rs.camera_info.serial_number
            return self.serial

    class Context:
        def query_devices(self):
            return [Device("111122223333"), Device("444455556666")]

    monkeypatch.setattr(rs, "context", Context)
    with pytest.raises(CameraNotFoundError,
                       match="123456789012 is not connected; connected: 111122223333, 444455556666"):
        RealSenseSource(RealSenseConfig(serial="123456789012")).start()


def test_source_must_be_started():
    source = RealSenseSource()
    for action in (source.read, lambda: source.intrinsics, lambda: source.depth_scale):
        with pytest.raises(RuntimeError, match="not started"):
            action()


@pytest.mark.parametrize("kwargs, message", [
    ({"decimation": 0}, "decimation"), ({"decimation": 9}, "decimation"),
    ({"min_depth_m": 2.0, "max_depth_m": 1.0}, "min_depth_m"), ({"width": 0}, "positive"),
    ({"timeout_ms": 0}, "timeout_ms"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RealSenseConfig(**kwargs)


def test_module_imports_without_pyrealsense2():
    code = (
        "import sys; sys.modules['pyrealsense2'] = None\n"
        "from diffgrasp_ros.camera.realsense import RealSenseSource, RealSenseConfig\n"
        "try:\n"
        "    RealSenseSource(RealSenseConfig()).start()\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
    assert "ImportError: RealSense support needs" in result.stdout and "pip install pyrealsense2" in result.stdout
