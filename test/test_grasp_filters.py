"""The vectorised hand checks against their definition, one grasp and one point at a time."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffgrasp_ros.grasping.filters import fingers_hit, held_extent, hits_cloud
from diffgrasp_ros.robots.gripper import FRANKA_HAND as HAND


def inside(point, R, t, box, margin_m=0.0, closed=False):
    local = np.abs((point - t) @ R - np.asarray(box.centre_m))
    half = np.asarray(box.half_extents_m) - margin_m
    return bool(np.all(local <= half) if closed else np.all(local < half))


def held_by_definition(cloud, R, t, region, max_gap_m):
    y = np.sort([((p - t) @ R)[1] for p in cloud if inside(p, R, t, region, closed=True)])
    if len(y) == 0:
        return 0, 0.0, 0.0
    runs = np.split(y, np.flatnonzero(np.diff(y) > max_gap_m) + 1) if max_gap_m is not None else [y]
    run = min(runs, key=lambda r: 0.0 if r[0] <= 0.0 <= r[-1] else min(abs(r[0]), abs(r[-1])))
    return len(y), run[0], run[-1]


@pytest.fixture(scope="module")
def clutter():
    """Points in three clusters a hand's width apart, and grasps among them (some on no point at all)."""
    rng = np.random.default_rng(3)
    cloud = np.concatenate([rng.normal(centre, 0.012, (150, 3)) for centre in
                            ([0.10, 0.10, 0.05], [0.14, 0.10, 0.05], [0.10, 0.16, 0.03])])
    R = Rotation.random(60, random_state=4).as_matrix()
    t = np.concatenate([rng.normal([0.11, 0.12, 0.04], 0.03, (55, 3)), rng.uniform(0.5, 0.6, (5, 3))])
    return cloud, R, t


@pytest.mark.parametrize("max_gap_m", [None, 0.01])
def test_held_extent_is_the_count_and_the_nearest_run_of_each_grasp(clutter, max_gap_m):
    cloud, R, t = clutter
    region = HAND.closing_region(HAND.max_opening_m)
    count, y_min, y_max = held_extent(cloud, R, t, region, max_gap_m=max_gap_m)
    expected = np.array([held_by_definition(cloud, R[i], t[i], region, max_gap_m) for i in range(len(R))])
    assert np.array_equal(count, expected[:, 0]) and count.max() > 20 and (count == 0).sum() >= 5
    np.testing.assert_allclose(np.c_[y_min, y_max], expected[:, 1:], atol=1e-12)
    if max_gap_m is not None:  # some grasps hold parts of two clusters, and only one of them is their object
        whole = held_extent(cloud, R, t, region)
        assert np.any((y_max - y_min) < (whole[2] - whole[1]) - max_gap_m)


def test_hits_cloud_and_fingers_hit_find_every_point_inside_a_box(clutter):
    cloud, R, t = clutter
    boxes = HAND.collision_boxes(HAND.max_opening_m)
    hit = hits_cloud(cloud, R, t, boxes)
    expected = [any(inside(p, R[i], t[i], box, 0.001) for box in boxes for p in cloud) for i in range(len(R))]
    assert hit.tolist() == expected and 0 < hit.sum() < len(R)
    openings = np.linspace(0.01, HAND.max_opening_m, len(R))
    fingers = fingers_hit(cloud, R, t, HAND, openings)
    expected = [any(inside(p, R[i], t[i], box, 0.001) for box in HAND.finger_boxes(openings[i]) for p in cloud)
                for i in range(len(R))]
    assert fingers.tolist() == expected and 0 < fingers.sum() < len(R)


def test_checks_of_no_grasps_or_no_points_find_nothing(clutter):
    cloud, R, t = clutter
    region = HAND.closing_region()
    assert [len(a) for a in held_extent(cloud, R[:0], t[:0], region)] == [0, 0, 0]
    assert held_extent(cloud[:0], R, t, region)[0].tolist() == [0] * len(R)
    assert not hits_cloud(cloud[:0], R, t, HAND.collision_boxes()).any()
    assert not fingers_hit(cloud[:0], R, t, HAND, np.full(len(R), 0.05)).any()
    assert len(hits_cloud(cloud, R[:0], t[:0], HAND.collision_boxes())) == 0
