"""Any camera: the depth modes on any frame size and focal length (Intel RealSense D4xx streams), depth
from OpenEXR files, depth in the wrong unit, intrinsics of another resolution, NaN / inf depth."""
import os
import struct

import numpy as np
import pytest
import torch

from diffgrasp_ros.camera import CameraIntrinsics, DepthError, DepthFrame, load_depth_image
from diffgrasp_ros.depth import DepthProcessor
from diffgrasp_ros.depth.restoration import DepthRestorer

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # for cv2.imwrite; set before OpenCV's first .exr
cv2 = pytest.importorskip("cv2")

# D435 depth streams (focal lengths and principal points like a unit's factory calibration); the
# model was trained on 640x480 at fx = 540.
STREAMS = {
    "640x360": CameraIntrinsics(640, 360, 322.0, 322.0, 320.4, 179.6),
    "848x480": CameraIntrinsics(848, 480, 427.0, 427.0, 424.6, 239.3),
    "1280x720": CameraIntrinsics(1280, 720, 645.0, 645.0, 641.0, 358.9),
    "640x480": CameraIntrinsics(640, 480, 383.0, 383.0, 320.5, 239.5),
}


def table_with_box(K: CameraIntrinsics) -> np.ndarray:
    """Clean float32 depth: a table tilted 20 degrees, 0.6 m away along the axis, with a 12 cm box on it."""
    v, u = np.mgrid[0:K.height, 0:K.width].astype(np.float64)
    tilt = np.deg2rad(20.0)
    normal = np.array([0.0, -np.sin(tilt), -np.cos(tilt)])  # n . X = offset on the table
    along = normal[1] * (v - K.cy) / K.fy + normal[2]  # n . ray, for the ray (x, y, 1)
    table, top = -0.6 / along, -0.52 / along  # the box top is 8 cm above the table
    ray = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], -1)
    in_plane = ray * top[..., None] + normal * 0.52  # box-top point relative to its centre
    side = np.cross(normal, [1.0, 0.0, 0.0])
    inside = (np.abs(in_plane[..., 0]) < 0.06) & (np.abs(in_plane @ side) < 0.06)
    return np.where(inside, top, table).astype(np.float32)


def with_holes(clean: np.ndarray) -> np.ndarray:
    """Sensor-like holes: scattered pixels, a blob on the table and the left band without stereo match."""
    raw = clean.copy()
    h, w = raw.shape
    raw[np.random.default_rng(0).random(raw.shape) < 0.03] = 0.0
    raw[h // 5:h // 5 + h // 12, w // 6:w // 6 + w // 10] = 0.0
    raw[:, :w // 30] = 0.0
    return raw


@pytest.fixture(scope="module")
def restorer():
    return DepthProcessor("restore")


@pytest.fixture(scope="module")
def grafter():
    return DepthProcessor("graft", seed=0)


# ---------------------------------------------------------------- depth modes on any stream

@pytest.mark.parametrize("stream", STREAMS)
def test_restore_keeps_size_and_intrinsics_and_fills_holes(restorer, stream):
    K = STREAMS[stream]
    clean = table_with_box(K)
    raw = with_holes(clean)
    color = np.full((*raw.shape, 3), 50, np.uint8) if stream == "848x480" else None  # padded as well
    frame = DepthFrame(raw, K, "camera_depth_optical_frame", 12.5)
    out = restorer.process(frame, color)
    assert out.depth_m.shape == raw.shape and out.depth_m.dtype == np.float32
    assert out.intrinsics == K and out.frame_id == frame.frame_id and out.stamp == 12.5
    assert out.valid_fraction > 0.99
    error = np.abs(out.depth_m - clean)
    h, w = raw.shape
    assert np.median(error[raw > 0]) < 0.002  # the sensor's depth is kept
    assert np.mean(out.depth_m[raw > 0] == raw[raw > 0]) > 0.95  # mostly bit for bit
    # The hole is filled with depth within the scene (the shipped model fills a hole in a bare table a
    # few centimetres too close, at any size: in its training data holes mostly come with objects).
    hole = out.depth_m[h // 5:h // 5 + h // 12, w // 6:w // 6 + w // 10]
    assert hole.min() > clean.min() - 0.05 and hole.max() < clean.max() + 0.05
    # The rows and columns next to the internal padding (bottom, right) are restored like any image
    # border (within the few millimetres the model is off at a border of an unpadded 640x480 frame).
    assert np.median(error[-8:]) < 0.005 and np.median(error[:, -8:]) < 0.005


def test_restore_is_unchanged_on_multiples_of_32_and_padding_is_seamless(restorer):
    model = restorer._model or DepthRestorer.from_pretrained(restorer.weights)
    K = STREAMS["640x480"]
    raw = with_holes(table_with_box(K))
    color = np.random.default_rng(1).integers(0, 255, (*raw.shape, 3), dtype=np.uint8)
    with torch.no_grad():  # 640x480 is a multiple of 32: no padding, the network on the frame as it is
        direct = model(torch.from_numpy(raw)[None, None],
                       torch.from_numpy(color).permute(2, 0, 1)[None].float() / 255.0)
    np.testing.assert_array_equal(model.restore(raw, color), direct[0, 0].numpy())
    # A crop that needs padding restores like the same pixels of the whole frame.
    crop = model.restore(np.ascontiguousarray(raw[:470, :630]), np.ascontiguousarray(color[:470, :630]))
    assert crop.shape == (470, 630)
    assert np.abs(crop - model.restore(raw, color)[:470, :630]).mean() < 0.0005


@pytest.mark.parametrize("stream", STREAMS)
def test_graft_keeps_size_intrinsics_and_geometry(grafter, stream):
    K = STREAMS[stream]
    clean = table_with_box(K)
    out = grafter.process(DepthFrame(clean, K))
    assert out.depth_m.shape == clean.shape and out.intrinsics == K
    assert 0.8 < out.valid_fraction < 1.0  # holes grafted, most depth kept
    valid = out.valid_mask
    bound = clean[valid] ** 2 / grafter._model.config.focal_baseline_px_m * grafter._model.config.max_error_px
    assert np.all(np.abs(out.depth_m[valid] - clean[valid]) <= bound * 1.05 + 0.001)


# ---------------------------------------------------------------- OpenEXR depth

def write_raw_exr(path, channels: dict) -> None:
    """A minimal uncompressed scanline OpenEXR file of FLOAT channels {name: (H, W) array}, written by
    hand so that channels OpenCV cannot write (Z) can be tested without the OpenEXR package."""
    names = sorted(channels)
    height, width = channels[names[0]].shape

    def attribute(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = (b"\x76\x2f\x31\x01" + struct.pack("<i", 2) + attribute("channels", "chlist", chlist)
              + attribute("compression", "compression", b"\0") + attribute("dataWindow", "box2i", window)
              + attribute("displayWindow", "box2i", window) + attribute("lineOrder", "lineOrder", b"\0")
              + attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + attribute("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0))
              + attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")
    row_bytes = 4 * width * len(names)
    first_row = len(header) + 8 * height
    offsets = struct.pack(f"<{height}Q", *(first_row + y * (8 + row_bytes) for y in range(height)))
    rows = b"".join(struct.pack("<ii", y, row_bytes)
                    + b"".join(np.asarray(channels[n][y], "<f4").tobytes() for n in names) for y in range(height))
    path.write_bytes(header + offsets + rows)


def small_depth() -> np.ndarray:
    depth = table_with_box(CameraIntrinsics(64, 48, 40.0, 40.0, 32.0, 24.0))
    depth[5, 7], depth[6, 8], depth[7, 9], depth[8, 10] = np.nan, np.inf, -0.5, 0.0
    return depth


def expected(depth: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def test_exr_round_trip(tmp_path):
    depth = small_depth()
    assert cv2.imwrite(str(tmp_path / "d.exr"), depth)  # a single channel: OpenCV writes 'Y'
    loaded = load_depth_image(tmp_path / "d.exr")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, expected(depth))  # metres, NaN / inf / negative invalid
    assert DepthFrame(loaded, CameraIntrinsics(64, 48, 40.0, 40.0, 32.0, 24.0)).valid_fraction > 0.9
    # Half floats, and a colour EXR whose R channel holds the depth.
    assert cv2.imwrite(str(tmp_path / "h.exr"), depth, [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_HALF])
    np.testing.assert_allclose(load_depth_image(tmp_path / "h.exr"), expected(depth), rtol=1e-3)
    assert cv2.imwrite(str(tmp_path / "rgb.exr"), np.dstack([np.ones_like(depth), 2 * np.ones_like(depth), depth]))
    np.testing.assert_array_equal(load_depth_image(tmp_path / "rgb.exr"), expected(depth))


def test_exr_z_channel_is_read_or_refused_clearly_never_zeros(tmp_path):
    depth = np.nan_to_num(small_depth(), nan=0.0, posinf=0.0)
    write_raw_exr(tmp_path / "y.exr", {"Y": depth})  # the hand-written file is valid EXR
    np.testing.assert_array_equal(load_depth_image(tmp_path / "y.exr"), expected(depth))
    write_raw_exr(tmp_path / "z.exr", {"Z": depth, "R": np.ones_like(depth), "G": depth, "B": depth})
    try:
        import OpenEXR  # noqa: F401
    except ImportError:  # OpenCV returns zeros for a Z channel: refused instead
        with pytest.raises(DepthError, match="OpenEXR channel 'Z'.*pip install OpenEXR"):
            load_depth_image(tmp_path / "z.exr")
    else:
        np.testing.assert_array_equal(load_depth_image(tmp_path / "z.exr"), expected(depth))
    write_raw_exr(tmp_path / "ab.exr", {"A": depth, "U": depth})
    with pytest.raises(DepthError, match=r"which OpenEXR channel is depth among \['A', 'U'\]"):
        load_depth_image(tmp_path / "ab.exr")
    (tmp_path / "bad.exr").write_bytes(b"not an exr file")
    with pytest.raises(DepthError, match="not an OpenEXR file"):
        load_depth_image(tmp_path / "bad.exr")


# ---------------------------------------------------------------- wrong units, NaN / inf

def test_metres_in_a_uint16_png_are_refused_in_one_line(tmp_path):
    metres = np.random.default_rng(0).integers(0, 4, (48, 64)).astype(np.uint16)  # 0..3: "metres"
    assert cv2.imwrite(str(tmp_path / "depth.png"), metres)
    with pytest.raises(DepthError, match=r"depth.png: integer depth values are at most 3 units \(3 mm at 0.001 "
                                         r"m/unit\): this looks like metres stored as integers") as error:
        load_depth_image(tmp_path / "depth.png")
    assert "\n" not in str(error.value) and "--depth-scale" in str(error.value)
    np.testing.assert_array_equal(load_depth_image(tmp_path / "depth.png", depth_scale=1.0), metres)
    # Real millimetres pass, holes and a few spurious near pixels included.
    millimetres = np.full((48, 64), 650, np.uint16)
    millimetres[:10] = 0
    millimetres[20, :5] = 3
    assert cv2.imwrite(str(tmp_path / "mm.png"), millimetres)
    np.testing.assert_allclose(load_depth_image(tmp_path / "mm.png"), millimetres * 0.001, rtol=1e-6)


@pytest.mark.parametrize("suffix", [".npy", ".tiff", ".exr"])
def test_millimetres_in_float_metres_are_refused(tmp_path, suffix):
    millimetres = table_with_box(CameraIntrinsics(64, 48, 40.0, 40.0, 32.0, 24.0)) * 1000.0
    path = tmp_path / f"depth{suffix}"
    if suffix == ".npy":
        np.save(path, millimetres)
    else:
        assert cv2.imwrite(str(path), millimetres)
    with pytest.raises(DepthError, match="median depth is 6.*m: this looks like millimetres stored as float metres"):
        load_depth_image(path)
    np.testing.assert_allclose(load_depth_image(path, depth_scale=0.001), millimetres / 1000.0, rtol=1e-6)


def test_nan_and_inf_depth_are_invalid_everywhere(tmp_path, restorer):
    K = STREAMS["640x360"]
    raw = with_holes(table_with_box(K))
    raw[100:110, 200:300], raw[200:210, 300:400], raw[50, 50] = np.nan, np.inf, -np.inf
    frame = DepthFrame(raw, K)
    assert not frame.valid_mask[100:110, 200:300].any() and not frame.valid_mask[200:210, 300:400].any()
    assert np.isfinite(frame.depth_m).all() and np.isfinite(frame.to_points()).all()
    restored = restorer.process(frame)
    assert np.isfinite(restored.depth_m).all() and restored.valid_mask[100:110, 200:300].all()
    np.save(tmp_path / "d.npy", raw)
    assert np.array_equal(load_depth_image(tmp_path / "d.npy"), frame.depth_m)
    with pytest.raises(ValueError, match="NaN/inf"):  # the model itself refuses them, saying why
        restorer._model.restore(raw)


# ---------------------------------------------------------------- intrinsics of another resolution

def test_intrinsics_of_another_stream_are_refused_in_one_line():
    with pytest.raises(DepthError, match="intrinsics are 1280x720 but the depth is 640x480: use the intrinsics "
                                         "of this stream") as error:
        DepthFrame(np.full((480, 640), 0.6, np.float32), STREAMS["1280x720"])
    assert "\n" not in str(error.value)
    with pytest.raises(DepthError, match=r"scaled\(0.5\)"):  # the same mode at half the size
        DepthFrame(np.full((360, 640), 0.6, np.float32), STREAMS["1280x720"])
    assert DepthFrame(np.full((360, 640), 0.6, np.float32), STREAMS["1280x720"].scaled(0.5)).valid_fraction == 1.0


@pytest.mark.parametrize("cx, cy", [(640.0, 360.0), (-3.0, 120.0), (160.0, 241.0), (float("nan"), 120.0)])
def test_principal_point_outside_the_image_is_refused(cx, cy):
    with pytest.raises(ValueError, match="principal point .* lies outside the 320x240 image") as error:
        CameraIntrinsics(320, 240, 300.0, 300.0, cx, cy)
    assert "\n" not in str(error.value)
    CameraIntrinsics(320, 240, 300.0, 300.0, 0.0, 240.0)  # on the edge is allowed
