import numpy as np
import pytest

from diffgrasp_ros.camera import SIM_CAMERA, CameraIntrinsics, DepthError, DepthFrame
from diffgrasp_ros.geometry import camera_on_sphere, invert, is_rigid_transform, look_at, transform_points
from diffgrasp_ros.sim.camera import multi_views, side_view


def test_look_at_is_an_optical_frame_facing_the_target():
    T = look_at((1.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert is_rigid_transform(T)
    np.testing.assert_allclose(T[:3, 2], [-1, 0, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1], atol=1e-12)  # y down
    target_in_camera = transform_points(invert(T), np.array([[0.0, 0.0, 0.0]]))[0]
    np.testing.assert_allclose(target_in_camera, [0, 0, 1.0], atol=1e-12)


def test_protocol_side_view_pose():
    T = side_view()
    # 0.6 m from (0.15, 0.15, 0.10), 60 deg off vertical, azimuth -90 deg.
    np.testing.assert_allclose(T[:3, 3], [0.15, 0.15 - 0.6 * np.sin(np.pi / 3), 0.10 + 0.3], atol=1e-9)
    ray = np.array([0.15, 0.15, 0.10]) - T[:3, 3]
    np.testing.assert_allclose(T[:3, 2], ray / np.linalg.norm(ray), atol=1e-9)


def test_multi_views_are_evenly_spaced_at_thirty_degrees():
    poses = multi_views(6)
    assert len(poses) == 6
    for T in poses:
        offset = T[:3, 3] - np.array([0.15, 0.15, 0.0])
        assert np.linalg.norm(offset) == pytest.approx(0.6)
        assert np.degrees(np.arccos(offset[2] / 0.6)) == pytest.approx(30.0)
    azimuths = sorted(np.degrees(np.arctan2(T[1, 3] - 0.15, T[0, 3] - 0.15)) % 360 for T in poses)
    np.testing.assert_allclose(np.diff(azimuths), 60.0, atol=1e-6)


def test_camera_on_sphere_straight_down_is_still_valid():
    assert is_rigid_transform(camera_on_sphere((0, 0, 0), 1.0, 0.0, 0.0))


def test_intrinsics_from_ros_camera_info_dict():
    K = CameraIntrinsics.from_dict({"image_width": 640, "image_height": 480,
                                    "camera_matrix": {"rows": 3, "cols": 3,
                                                      "data": [540, 0, 320, 0, 541, 240, 0, 0, 1]}})
    assert (K.fx, K.fy, K.cx, K.cy, K.width) == (540, 541, 320, 240, 640)


@pytest.mark.parametrize("data", [{"width": 640, "height": 480, "fx": 500}, {}])
def test_intrinsics_missing_fields_are_named(data):
    with pytest.raises(ValueError, match="missing"):
        CameraIntrinsics.from_dict(data)


def test_intrinsics_reject_nonsense():
    with pytest.raises(ValueError):
        CameraIntrinsics(640, 480, -1.0, 540.0, 320.0, 240.0)


def test_depth_frame_validation():
    good = np.full((480, 640), 0.5, dtype=np.float32)
    frame = DepthFrame(good, SIM_CAMERA)
    assert frame.valid_fraction == 1.0
    with pytest.raises(DepthError, match="floating point"):
        DepthFrame(good.astype(np.uint16), SIM_CAMERA)
    with pytest.raises(DepthError, match="single-channel"):
        DepthFrame(np.zeros((480, 640, 3), np.float32), SIM_CAMERA)
    with pytest.raises(DepthError, match="intrinsics are 640x480"):
        DepthFrame(np.zeros((240, 320), np.float32), SIM_CAMERA)
    with pytest.raises(DepthError, match="numpy array"):
        DepthFrame([[0.5]], SIM_CAMERA)


def test_depth_frame_marks_nan_negative_and_out_of_range_invalid():
    depth = np.full((480, 640), 0.5, dtype=np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, -1.0, 5.0
    frame = DepthFrame(depth, SIM_CAMERA).clipped(0.1, 2.0)
    assert not frame.valid_mask[0, :3].any()
    assert frame.valid_mask.sum() == 480 * 640 - 3


def test_depth_from_raw_sensor_units():
    raw = np.full((480, 640), 750, dtype=np.uint16)
    frame = DepthFrame.from_raw(raw, SIM_CAMERA, depth_scale=0.001)
    assert frame.depth_m[10, 10] == pytest.approx(0.75)


def test_back_projection_of_the_principal_point():
    depth = np.zeros((480, 640), np.float32)
    depth[240, 320] = 1.25
    depth[240, 320 + 54] = 1.0
    points = DepthFrame(depth, SIM_CAMERA).to_points()
    np.testing.assert_allclose(sorted(points.tolist()), [[0.0, 0.0, 1.25], [0.1, 0.0, 1.0]], atol=1e-6)
