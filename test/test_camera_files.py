"""Depth images and calibration from files."""
import json
import os

import cv2
import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from diffgrasp_ros.camera.files import (
    FileDepthSource, load_calibration, load_depth_image, load_extrinsics,
)
from diffgrasp_ros.camera.frame import DepthError
from diffgrasp_ros.camera.intrinsics import CameraIntrinsics
from diffgrasp_ros.geometry import make_transform

INTRINSICS = CameraIntrinsics(64, 48, 60.0, 61.0, 31.5, 23.5)


def depth_mm(seed: int = 0) -> np.ndarray:
    """A 48x64 uint16 millimetre image: a tilted plane with a few holes."""
    v, u = np.mgrid[0:48, 0:64]
    depth = (700 + 3 * v + 2 * u).astype(np.uint16)
    depth[np.random.default_rng(seed).random(depth.shape) < 0.1] = 0
    return depth


# A camera 0.6 m above the table, looking straight down, rotated 90 degrees about its axis.
ROTATION = Rotation.from_euler("xz", [180.0, 90.0], degrees=True)
POSITION = [0.15, -0.05, 0.6]
T_EXPECTED = make_transform(ROTATION.as_matrix(), POSITION)


# ---------------------------------------------------------------- depth images

def test_npy_metres_round_trip(tmp_path):
    depth = depth_mm().astype(np.float32) / 1000.0
    np.save(tmp_path / "d.npy", depth)
    loaded = load_depth_image(tmp_path / "d.npy")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, depth)


def test_npy_float_invalid_values_become_zero(tmp_path):
    depth = np.full((4, 5), 0.8, np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, np.inf, -0.5
    np.save(tmp_path / "d.npy", depth)
    loaded = load_depth_image(tmp_path / "d.npy")
    assert loaded[0, 0] == loaded[1, 1] == loaded[2, 2] == 0.0
    assert np.count_nonzero(loaded) == depth.size - 3


def test_npy_uint16_defaults_to_millimetres_and_honours_depth_scale(tmp_path):
    raw = depth_mm()
    np.save(tmp_path / "d.npy", raw)
    np.testing.assert_allclose(load_depth_image(tmp_path / "d.npy"), raw * 0.001, rtol=1e-6)
    # e.g. a D435 set to 100 um depth units
    np.testing.assert_allclose(load_depth_image(tmp_path / "d.npy", depth_scale=1e-4), raw * 1e-4, rtol=1e-6)


def test_npy_int32_needs_depth_scale(tmp_path):
    np.save(tmp_path / "d.npy", depth_mm().astype(np.int32))
    with pytest.raises(DepthError, match="depth_scale"):
        load_depth_image(tmp_path / "d.npy")
    np.testing.assert_allclose(load_depth_image(tmp_path / "d.npy", depth_scale=0.001),
                               depth_mm() * 0.001, rtol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_uint16_image_millimetres_to_metres(tmp_path, suffix):
    raw = depth_mm()
    path = tmp_path / f"d{suffix}"
    assert cv2.imwrite(str(path), raw)
    loaded = load_depth_image(path)
    assert loaded.shape == raw.shape and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, raw.astype(np.float32) * np.float32(0.001))
    assert np.array_equal(loaded == 0, raw == 0)


def test_float_tiff_is_metres(tmp_path):
    depth = depth_mm().astype(np.float32) / 1000.0
    assert cv2.imwrite(str(tmp_path / "d.tiff"), depth)
    np.testing.assert_array_equal(load_depth_image(tmp_path / "d.tiff"), depth)


def test_8bit_png_is_rejected(tmp_path):
    assert cv2.imwrite(str(tmp_path / "gray.png"), (depth_mm() // 8).astype(np.uint8))
    with pytest.raises(DepthError, match="8-bit image is not depth"):
        load_depth_image(tmp_path / "gray.png")


def test_colour_png_is_rejected(tmp_path):
    colour = np.zeros((48, 64, 3), np.uint16)
    colour[..., 0] = depth_mm()
    assert cv2.imwrite(str(tmp_path / "colour.png"), colour)
    with pytest.raises(DepthError, match="colour image is not depth"):
        load_depth_image(tmp_path / "colour.png")


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "depth.png"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_depth_image(path)


def test_unknown_extension_lists_supported(tmp_path):
    (tmp_path / "d.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(DepthError, match=r"\.npy, \.png, \.tif, \.tiff"):
        load_depth_image(tmp_path / "d.jpg")


@pytest.mark.parametrize("name", ["broken.png", "broken.npy"])
def test_corrupt_file_is_a_depth_error(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not an image" * 10)
    with pytest.raises(DepthError, match="broken"):
        load_depth_image(tmp_path / name)


# ---------------------------------------------------------------- extrinsics

def write(path, data):
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_extrinsics_matrix_forms(tmp_path, suffix):
    matrix = T_EXPECTED.tolist()
    keyed = write(tmp_path / f"keyed{suffix}", {"T_workspace_camera": matrix})
    bare = write(tmp_path / f"bare{suffix}", matrix)
    np.testing.assert_allclose(load_extrinsics(keyed), T_EXPECTED)
    np.testing.assert_allclose(load_extrinsics(bare), T_EXPECTED)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_extrinsics_pose_form(tmp_path, suffix):
    xyzw = ROTATION.as_quat().tolist()
    path = write(tmp_path / f"pose{suffix}", {"position": POSITION, "orientation": xyzw})
    T = load_extrinsics(path)
    np.testing.assert_allclose(T, T_EXPECTED, atol=1e-12)
    # the camera looks down: its optical axis (z) is the workspace -z
    np.testing.assert_allclose(T[:3, 2], [0.0, 0.0, -1.0], atol=1e-12)


def test_extrinsics_pose_as_geometry_msgs_mappings(tmp_path):
    data = {"position": dict(zip("xyz", POSITION)),
            "orientation": dict(zip("xyzw", ROTATION.as_quat().tolist()))}
    np.testing.assert_allclose(load_extrinsics(write(tmp_path / "p.yaml", data)), T_EXPECTED, atol=1e-12)


def test_non_rigid_matrix_rejected(tmp_path):
    scaled = T_EXPECTED.copy()
    scaled[:3, :3] *= 1.1
    with pytest.raises(ValueError, match="not a rigid transform"):
        load_extrinsics(write(tmp_path / "t.json", {"T_workspace_camera": scaled.tolist()}))
    mirrored = T_EXPECTED @ np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="not a rigid transform"):
        load_extrinsics(write(tmp_path / "m.yaml", mirrored.tolist()))


def test_bad_extrinsics_rejected_clearly(tmp_path):
    with pytest.raises(ValueError, match="4x4"):
        load_extrinsics(write(tmp_path / "a.json", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="not a unit quaternion"):  # norm 2: not a rotation
        load_extrinsics(write(tmp_path / "b.json", {"position": [0, 0, 0], "orientation": [0, 0, 0, 2]}))
    with pytest.raises(ValueError, match="no camera pose found"):
        load_extrinsics(write(tmp_path / "c.yaml", {"T_camera_workspace": np.eye(4).tolist()}))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_extrinsics(tmp_path / "missing.yaml")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_extrinsics(tmp_path / "d.json")


# ---------------------------------------------------------------- calibration

ROS_CAMERA_YAML = """\
image_width: 640
image_height: 480
camera_name: d435_depth
camera_matrix:
  rows: 3
  cols: 3
  data: [615.2, 0.0, 322.1, 0.0, 615.9, 238.4, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0, 0.0, 0.0, 0.0, 0.0]
"""


def test_intrinsics_from_ros_camera_calibration_yaml(tmp_path):
    path = tmp_path / "depth.yaml"
    path.write_text(ROS_CAMERA_YAML)
    assert CameraIntrinsics.load(path) == CameraIntrinsics(640, 480, 615.2, 615.9, 322.1, 238.4)


def test_calibration_with_ros_intrinsics_and_pose(tmp_path):
    data = {
        "intrinsics": yaml.safe_load(ROS_CAMERA_YAML),
        "extrinsics": {"position": POSITION, "orientation": ROTATION.as_quat().tolist()},
    }
    intrinsics, T = load_calibration(write(tmp_path / "calib.yaml", data))
    assert intrinsics == CameraIntrinsics(640, 480, 615.2, 615.9, 322.1, 238.4)
    np.testing.assert_allclose(T, T_EXPECTED, atol=1e-12)
    # the same file serves load_extrinsics
    np.testing.assert_allclose(load_extrinsics(tmp_path / "calib.yaml"), T_EXPECTED, atol=1e-12)


def test_calibration_json_with_matrix(tmp_path):
    data = {"intrinsics": INTRINSICS.to_dict(), "T_workspace_camera": T_EXPECTED.tolist()}
    intrinsics, T = load_calibration(write(tmp_path / "calib.json", data))
    assert intrinsics == INTRINSICS
    np.testing.assert_allclose(T, T_EXPECTED)


def test_calibration_errors(tmp_path):
    with pytest.raises(ValueError, match="needs an 'intrinsics'"):
        load_calibration(write(tmp_path / "a.yaml", {"T_workspace_camera": T_EXPECTED.tolist()}))
    with pytest.raises(ValueError, match="bad intrinsics.*missing"):
        load_calibration(write(tmp_path / "b.yaml", {"intrinsics": {"width": 64},
                                                     "T_workspace_camera": T_EXPECTED.tolist()}))
    with pytest.raises(ValueError, match="no camera pose found"):
        load_calibration(write(tmp_path / "c.yaml", {"intrinsics": INTRINSICS.to_dict()}))


# ---------------------------------------------------------------- FileDepthSource

def test_file_depth_source_yields_frames_in_order(tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), depth_mm(seed=i))
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
        paths.append(path)
    source = FileDepthSource(paths, INTRINSICS, frame_id="rs_optical")
    assert len(source) == 3
    frames = list(source)
    assert [f.stamp for f in frames] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
    for i, frame in enumerate(frames):
        assert frame.frame_id == "rs_optical" and frame.intrinsics == INTRINSICS
        np.testing.assert_allclose(frame.depth_m, depth_mm(seed=i) * 0.001, rtol=1e-6)
    assert len(list(source)) == 3  # iterable more than once


def test_file_depth_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.png"):
        FileDepthSource([tmp_path / "gone.png"], INTRINSICS)
    with pytest.raises(ValueError, match="at least one"):
        FileDepthSource([], INTRINSICS)
    cv2.imwrite(str(tmp_path / "small.png"), depth_mm()[:40])
    with pytest.raises(DepthError, match="small.png.*intrinsics"):
        next(iter(FileDepthSource([tmp_path / "small.png"], INTRINSICS)))
