import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffgrasp_ros.camera import CameraIntrinsics
from diffgrasp_ros.evaluation.plausibility import (GraspJudgement, JudgeConfig, judge_grasp, judge_grasps,
                                                   observed_points, plausibility_summary)
from diffgrasp_ros.grasping.grasp import Grasp

TABLE_Z = 0.05
BOX_CENTRE = np.array([0.15, 0.15])
BOX_SIDE = 0.06   # x and y
BOX_TOP = TABLE_Z + 0.06
STEP = 0.002


def top_down(x: float, y: float, z: float) -> np.ndarray:
    """T_workspace_grasp approaching straight down (grasp +z = workspace -z), closing along workspace x."""
    closing, approach = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.column_stack([np.cross(closing, approach), closing, approach])
    T[:3, 3] = (x, y, z)
    return T


@pytest.fixture(scope="module")
def box_on_table() -> np.ndarray:
    """A 6 cm cube standing on a table plane at z = 0.05, both sampled every 2 mm (~37k points)."""
    s = np.arange(0.0, 0.30 + 1e-9, STEP)
    tx, ty = np.meshgrid(s, s)
    table = np.c_[tx.ravel(), ty.ravel(), np.full(tx.size, TABLE_Z)]
    half = BOX_SIDE / 2
    table = table[(np.abs(table[:, :2] - BOX_CENTRE) > half).any(axis=1)]  # hidden under the box
    a = np.linspace(-half, half, round(BOX_SIDE / STEP) + 1)
    h = np.linspace(TABLE_Z, BOX_TOP, round((BOX_TOP - TABLE_Z) / STEP) + 1)
    u, w = np.meshgrid(a, h)
    u, w = u.ravel(), w.ravel()
    sides = [np.c_[np.full_like(u, sx), u, w] for sx in (-half, half)]
    sides += [np.c_[u, np.full_like(u, sy), w] for sy in (-half, half)]
    p, q = np.meshgrid(a, a)
    top = np.c_[p.ravel(), q.ravel(), np.full(p.size, BOX_TOP)]
    box = np.vstack(sides + [top]) + np.r_[BOX_CENTRE, 0.0]
    return np.vstack([table, box])


def test_centred_top_down_grasp_on_the_box_is_plausible(box_on_table):
    # Roots 1 cm above the top face: fingertips 4 cm down the sides, 2 cm above the table.
    j = judge_grasp(top_down(*BOX_CENTRE, BOX_TOP + 0.01), 0.08, box_on_table, TABLE_Z)
    assert j.plausible, j.reason
    assert j.reason == ""
    assert j.points_between >= 40 and j.points_in_hand == 0
    assert j.span_y_m == pytest.approx(BOX_SIDE)


def test_grasp_in_empty_air_fails_criterion_1(box_on_table):
    T = top_down(BOX_CENTRE[0] + 0.10, BOX_CENTRE[1], BOX_TOP + 0.01)  # 10 cm beside the box
    j = judge_grasp(T, 0.08, box_on_table, TABLE_Z)
    assert not j.plausible
    assert (j.points_between, j.points_in_hand, j.span_y_m) == (0, 0, 0.0)
    assert j.reason.startswith("too little between the fingers") and "0 points" in j.reason


def test_opening_narrower_than_the_box_puts_points_in_the_fingers(box_on_table):
    j = judge_grasp(top_down(*BOX_CENTRE, BOX_TOP + 0.01), 0.04, box_on_table, TABLE_Z)
    assert not j.plausible
    assert j.points_between >= 40  # the top face is still between: criterion 2 is what fails
    assert j.points_in_hand > 15
    assert j.reason.startswith("hand collides") and str(j.points_in_hand) in j.reason


def test_fingertips_pushed_into_the_table_fail_criterion_2(box_on_table):
    # Centred on the box but 3 cm lower than the plausible grasp: the fingertips go 1 cm into the table.
    j = judge_grasp(top_down(*BOX_CENTRE, BOX_TOP - 0.02), 0.08, box_on_table, TABLE_Z)
    assert j.points_between >= 40
    assert j.points_in_hand > 15
    assert not j.plausible and j.reason.startswith("hand collides")


def side_grasp(roots_z: float) -> np.ndarray:
    """Approaching the box's -y face horizontally (+y), closing along x, roots 1 cm in front of the face."""
    T = np.eye(4)
    T[:3, :3] = np.column_stack([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # x = y × z = up
    T[:3, 3] = (BOX_CENTRE[0], BOX_CENTRE[1] - BOX_SIDE / 2 - 0.01, roots_z)
    return T


def test_low_side_grasp_puts_the_palm_into_the_table(box_on_table):
    # The palm box reaches 3 cm either side of the roots along x (up): 2 cm above the table it takes
    # in the table, while the fingers (1 cm) stay clear of it.
    j = judge_grasp(side_grasp(TABLE_Z + 0.02), 0.08, box_on_table, TABLE_Z)
    assert j.points_between >= 40
    assert j.points_in_hand > 15
    assert not j.plausible and j.reason.startswith("hand collides")
    raised = judge_grasp(side_grasp(TABLE_Z + 0.035), 0.08, box_on_table, TABLE_Z)
    assert raised.plausible, raised.reason


def test_between_points_spanning_the_opening_fail_criterion_3():
    # Identity grasp pose and powers of two, so points sit exactly on the fingers' inner faces.
    w = 0.0625
    z = np.linspace(0.0078125, 0.046875, 20)  # within [0.5 cm, 5 cm]
    points = np.vstack([np.c_[np.zeros(20), np.full(20, s * w / 2), z] for s in (-1.0, 0.0, 1.0)])
    j = judge_grasp(np.eye(4), w, points, table_height_m=-1.0)
    assert (j.points_between, j.points_in_hand, j.span_y_m) == (60, 0, w)
    assert not j.plausible and j.reason.startswith("object too wide")
    # The same points with a 1 mm wider opening: the span is then below it.
    assert judge_grasp(np.eye(4), w + 0.001, points, table_height_m=-1.0).plausible


@pytest.mark.parametrize("x, y, z, between, in_hand", [
    (0.0, 0.0, 0.0, 0, 0),        # at the roots, between the fingers: too shallow to count, not the palm
    (0.0, 0.0, 0.004, 0, 0),      # shallower than 0.5 cm
    (0.0, 0.0, 0.005, 1, 0),
    (0.0, 0.04, 0.05, 1, 0),      # a finger's inner face, at the tip
    (0.0, 0.0, 0.051, 0, 0),      # beyond the fingertips
    (0.0, 0.041, 0.0, 0, 1),      # in a finger
    (0.0, -0.06, 0.05, 0, 1),     # a finger's outer face
    (0.0, 0.061, 0.02, 0, 0),     # beside the finger
    (0.011, 0.05, 0.02, 0, 0),    # in front of the finger (|x| > 1 cm)
    (0.03, 0.06, -0.07, 0, 1),    # the palm's far corner
    (0.0, 0.0, -0.0701, 0, 0),    # behind the palm
    (0.031, 0.0, -0.01, 0, 0),    # beside the palm
])
def test_region_boundaries(x, y, z, between, in_hand):
    j = judge_grasp(np.eye(4), 0.08, np.array([[x, y, z]]), table_height_m=-1.0)
    assert (j.points_between, j.points_in_hand) == (between, in_hand)


def test_points_not_more_than_1_cm_above_the_table_do_not_count():
    T = top_down(0.15, 0.15, TABLE_Z + 0.04)  # the 1 cm level is 3 cm down the fingers
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.005, 0.005, (100, 2)) + 0.15

    def count(z: float) -> int:
        return judge_grasp(T, 0.08, np.c_[xy, np.full(100, z)], TABLE_Z).points_between

    assert count(TABLE_Z + 0.01 - 1e-4) == 0
    assert count(TABLE_Z + 0.01) == 0  # exactly 1 cm: not *more* than 1 cm
    assert count(TABLE_Z + 0.01 + 1e-4) == 100


def test_observed_points_back_projects_valid_pixels_into_the_workspace():
    K = CameraIntrinsics(width=640, height=480, fx=540.0, fy=540.0, cx=320.0, cy=240.0)
    # Camera 0.8 m above (0.15, 0.15) looking straight down: optical x = +x, y = -y, z = -z of the workspace.
    T_ws_cam = np.eye(4)
    T_ws_cam[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T_ws_cam[:3, 3] = (0.15, 0.15, 0.8)
    depth = np.zeros((480, 640), dtype=np.float32)
    depth[240, 320] = 0.75            # on the optical axis -> (0.15, 0.15, 0.05)
    depth[240 + 108, 320 + 54] = 0.5  # optical (0.05, 0.10, 0.5) -> (0.20, 0.05, 0.30)
    depth[0, 0], depth[0, 1], depth[1, 0] = np.nan, np.inf, -0.3  # invalid
    points = observed_points(depth, K, T_ws_cam)
    assert points.dtype == np.float64 and points.shape == (2, 3)
    np.testing.assert_allclose(points, [[0.15, 0.15, 0.05], [0.20, 0.05, 0.30]], atol=1e-7)
    with pytest.raises(ValueError):
        observed_points(depth.T, K, T_ws_cam)


def test_judge_grasps_matches_judge_grasp_for_arbitrary_poses():
    """The k-d tree preselection must not lose any point of the boxes, whatever the pose and opening."""
    rng = np.random.default_rng(1)
    points = rng.uniform(0.0, 0.3, (200_000, 3))
    grasps = []
    for i in range(10):
        T = np.eye(4)
        T[:3, :3] = Rotation.random(random_state=i).as_matrix()
        T[:3, 3] = rng.uniform(0.1, 0.2, 3)
        grasps.append(Grasp(T, float(rng.uniform(0.0, 0.1)), 1.0, "test"))
    batch = judge_grasps(grasps, points, table_height_m=0.05)
    single = [judge_grasp(g.T_frame_grasp, g.width_m, points, 0.05) for g in grasps]
    assert batch == single
    assert all(j.points_in_hand > 0 for j in batch)  # the comparison saw hand points at all
    assert judge_grasps([], points, 0.05) == []


def test_config_thresholds_are_used():
    w = 0.08
    points = np.c_[np.zeros(30), np.linspace(-0.03, 0.03, 30), np.full(30, 0.02)]
    assert not judge_grasp(np.eye(4), w, points, -1.0).plausible  # 30 < 40
    assert judge_grasp(np.eye(4), w, points, -1.0, JudgeConfig(min_points_between=30)).plausible


def _j(plausible: bool) -> GraspJudgement:
    return GraspJudgement(plausible, 0, 0, 0.0, "" if plausible else "x")


def test_plausibility_summary_counts_missing_grasps_as_implausible():
    P, F = _j(True), _j(False)
    frames = [[], [P], [F, P, P, F, P]]
    summary = plausibility_summary(frames, k=5)
    assert summary == {"top1": pytest.approx(1 / 3), "top1_frames": 1, "topk": pytest.approx(4 / 15),
                       "frames": 3}
    # k = 2 keeps only the first two of the 5-grasp frame: (0 + 1 + 1) / (2 * 3).
    assert plausibility_summary(frames, k=2)["topk"] == pytest.approx(2 / 6)
    assert plausibility_summary([], k=5) == {"top1": 0.0, "top1_frames": 0, "topk": 0.0, "frames": 0}
