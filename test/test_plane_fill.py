"""The colour-guided plane fill: planes continue exactly, holes across edges follow colour, far holes stay sane."""
import numpy as np
import pytest

from diffgrasp_ros.depth.classical import joint_bilateral_fill
from diffgrasp_ros.depth.plane_fill import PlaneFillConfig, plane_fill

FY = 600.0


def slanted_table(height: int = 120, width: int = 160) -> np.ndarray:
    """A pinhole view of a plane tilted 40° away from the camera, 0.5-1 m deep."""
    v = np.mgrid[:height, :width][0].astype(np.float64)
    ray_y = (v - height / 2) / FY  # the plane z = 0.7 - 0.84 y (y down): 1/z is linear in (u, v)
    return (0.7 / (1.0 + 0.84 * ray_y)).astype(np.float32)


def test_a_hole_in_a_plane_is_filled_with_the_plane_and_valid_depth_is_kept():
    depth = slanted_table()
    holed = depth.copy()
    holed[40:80, 50:110] = 0.0  # 40 rows: the plane's depth changes by ~10 cm across the hole
    filled = plane_fill(holed, None)
    valid = holed > 0
    np.testing.assert_array_equal(filled[valid], depth[valid])
    error_mm = 1000 * np.abs(filled - depth)[~valid]
    assert error_mm.max() < 0.5
    # A zero-order fill (the joint bilateral pyramid) misses the slope.
    assert 1000 * np.abs(joint_bilateral_fill(holed, None) - depth)[~valid].mean() > 5 * error_mm.mean() + 1.0


def test_a_hole_across_an_object_edge_takes_depth_from_the_side_of_its_colour():
    depth = np.full((96, 128), 0.8, np.float32)
    depth[:, 64:] = 0.6  # a box on the right, nearer
    color = np.full((96, 128, 3), 90, np.uint8)
    color[:, 64:] = (200, 40, 40)  # and red
    holed = depth.copy()
    holed[30:60, 54:76] = 0.0  # a hole across the edge
    hole = holed == 0
    guided = plane_fill(holed, color)
    assert 1000 * np.abs(guided - depth)[hole].max() < 1.0
    blind = plane_fill(holed, None)  # without colour, pixels near the edge blend both sides
    assert 1000 * np.abs(blind - depth)[hole].max() > 20.0


def test_a_large_hole_is_filled_within_the_depth_around_it():
    depth = slanted_table(200, 200)
    holed = np.zeros_like(depth)
    holed[90:110, 90:110] = depth[90:110, 90:110]  # a small valid patch in a frame of holes
    filled = plane_fill(holed, None)
    assert np.isfinite(filled).all() and (filled > 0).all()
    # The fit may extrapolate only a couple of the patch's standard deviations, not the slope to the
    # frame's corners (which would reach 1/z ≤ 0 at the top of this view).
    assert depth[90:110, 90:110].min() * 0.9 < filled.min() and filled.max() < depth[90:110, 90:110].max() * 1.1


def test_any_frame_shape_and_the_edge_cases():
    with pytest.raises(ValueError, match="bad plane fill config"):
        PlaneFillConfig(sigma_color=0.0)
    depth = slanted_table()
    assert np.array_equal(plane_fill(depth, None), depth)  # nothing to fill
    with pytest.raises(ValueError, match="no valid pixels"):
        plane_fill(np.zeros((4, 4), np.float32))
    row = np.array([[0.0, 0.5, 0.0, 0.7, 0.0]], np.float32)  # one row, holes at both ends
    filled = plane_fill(row)
    assert filled.shape == (1, 5) and np.all(filled > 0.45) and np.all(filled < 0.75)
    np.testing.assert_array_equal(plane_fill(row.T.copy()), filled.T)
