"""The demo's pictures (issue 23, part 1): every pick drawn on the scene as it was planned in, before and
after, in one contact sheet; ``plan --draw`` with the same drawing code."""
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from diffgrasp_ros.camera.intrinsics import CameraIntrinsics
from diffgrasp_ros.cli.demo import executed_rank, outcome_text
from diffgrasp_ros.cli.main import main
from diffgrasp_ros.geometry import invert, transform_points
from diffgrasp_ros.grasping.draw import EXECUTED_BGR, draw_grasps, score_colour_bgr
from diffgrasp_ros.grasping.grasp import Grasp
from diffgrasp_ros.robots.registry import get_robot
from diffgrasp_ros.sim.camera import side_view

CALIBRATION = Path(__file__).resolve().parents[1] / "config" / "sim_side_view_calibration.yaml"
CAPTION, GAP, H, W = 30, 4, 480, 640  # the contact sheet's caption strip, gap and panel size
GRIPPER = get_robot("franka").gripper


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two held picks of the packed scene, seed 1 (baseline planner: 5 s)."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--scene", "packed", "--seed", "1", "--picks", "2", "--executor", "hand",
                 "--method", "baseline", "--out", str(out)]) == 0
    report = json.loads((out / "grasps.json").read_text())
    sheet = cv2.imread(str(out / "picks.png"))
    scene = cv2.imread(str(out / "scene.png"))
    return report, sheet, scene


def panels(sheet, row):
    top = row * (CAPTION + H + GAP) + CAPTION
    return sheet[top:top + H, :W], sheet[top:top + H, W + GAP:2 * W + GAP]


def camera(report):
    picture = report["picture_camera"]
    return CameraIntrinsics.from_dict(picture["intrinsics"]), np.array(picture["T_workspace_camera"])


def grasp_box(grasp, K, T_workspace_camera, margin=8):
    """Pixel bounds (u0, v0, u1, v1) of the grasp's closing region (between the fingers) in the picture."""
    h, d = 0.5 * grasp.width_m, GRIPPER.finger_depth_m
    corners = np.array([[x, y, z] for x in (-0.01, 0.01) for y in (-h, h) for z in (0.0, d)])
    points = transform_points(invert(T_workspace_camera) @ grasp.T_frame_grasp, corners)
    uv = (points @ K.K.T)[:, :2] / points[:, 2:]
    u0, v0 = np.clip(np.floor(uv.min(0)).astype(int) - margin, 0, None)
    u1, v1 = np.minimum(np.ceil(uv.max(0)).astype(int) + margin, [W, H - CAPTION])  # not the title strip
    assert u1 - u0 > 10 and v1 - v0 > 10, "the executed grasp is out of the picture"
    return u0, v0, u1, v1


def near(image, colour, tolerance=20):
    return np.abs(image.astype(int) - np.array(colour)).max(-1) <= tolerance


def test_contact_sheet_has_a_before_and_after_row_per_pick(demo):
    report, sheet, scene = demo
    picks = report["picks"]
    assert len(picks) == 2 and all(p["success"] for p in picks)
    assert sheet.shape == (len(picks) * (CAPTION + H + GAP) - GAP, 2 * W + GAP, 3)
    for row in range(len(picks)):
        before, after = panels(sheet, row)
        assert before.std() > 10 and after.std() > 10 and not np.array_equal(before, after)
        assert (sheet[row * (CAPTION + H + GAP):row * (CAPTION + H + GAP) + CAPTION] == 32).mean() > 0.8
    np.testing.assert_array_equal(scene, panels(sheet, 0)[0])  # scene.png: pick 1's before panel


def test_before_panel_shows_the_picked_object_that_the_after_panel_lacks(demo):
    report, sheet, _ = demo
    K, T = camera(report)
    pick = report["picks"][0]
    grasps = [Grasp.from_dict(g) for g in pick["plan"]["grasps"]]
    k = pick["executed_rank"]
    assert k == 0 and pick["success"]  # the hand executes the best grasp; it held
    before, after = panels(sheet, 0)
    # What was drawn on either panel (lines, labels), dilated: the rest is the rendered scene.
    black = np.zeros((H, W, 3), np.uint8)
    drawn = (draw_grasps(black, grasps, K, T, GRIPPER, executed=k, outcome="held").any(-1)
             | draw_grasps(black, grasps, K, T, GRIPPER, max_drawn=0, executed=k).any(-1))
    drawn = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    u0, v0, u1, v1 = grasp_box(grasps[k], K, T)
    scene_pixels = ~drawn[v0:v1, u0:u1]
    assert scene_pixels.sum() > 200
    changed = np.abs(before.astype(int) - after.astype(int)).sum(-1)[v0:v1, u0:u1] > 40
    # The object between the fingers is in the before render and gone from the after render (were the
    # before panel rendered after the pick, as it used to be, nothing would change here).
    assert changed[scene_pixels].mean() > 0.3, changed[scene_pixels].mean()
    # ... and away from the grasp the scene stays as it was.
    far = ~drawn.copy()
    far[max(0, v0 - 40):v1 + 40, max(0, u0 - 40):u1 + 40] = False
    far[H - CAPTION:] = False
    still = np.abs(before.astype(int) - after.astype(int)).sum(-1) <= 40
    assert still[far].mean() > 0.9


def test_executed_grasp_is_marked_in_the_before_panel(demo):
    report, sheet, _ = demo
    K, T = camera(report)
    pick = report["picks"][0]
    executed = Grasp.from_dict(pick["plan"]["grasps"][pick["executed_rank"]])
    before, _ = panels(sheet, 0)
    marker = near(before, EXECUTED_BGR)
    assert marker.sum() > 100
    u0, v0, u1, v1 = grasp_box(executed, K, T, margin=60)  # the marker, and the label beside it
    assert marker[v0:v1, u0:u1].sum() / marker.sum() > 0.9


def _grasp(x, score):
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # approaching straight down
    T[:3, 3] = [x, 0.15, 0.08]
    return Grasp(T, 0.05, score, "test")


def test_the_marker_follows_the_executed_rank_even_beyond_those_drawn():
    from diffgrasp_ros.cli.demo import picture_intrinsics

    K = picture_intrinsics(CameraIntrinsics(640, 480, 540.0, 540.0, 320.0, 240.0))
    grasps = [_grasp(x, s) for x, s in ((0.09, 0.9), (0.12, 0.8), (0.15, 0.7), (0.18, 0.6), (0.21, 0.5))]
    rgb = np.full((480, 640, 3), 128, np.uint8)
    centres = {}
    for k in (0, 3, 4):
        picture = draw_grasps(rgb, grasps, K, side_view(), GRIPPER, max_drawn=2, executed=k, outcome="held")
        v, u = np.nonzero(near(picture, EXECUTED_BGR, tolerance=0))
        centres[k] = u.mean()
        u0, _, u1, _ = grasp_box(grasps[k], K, side_view(), margin=0)
        assert u0 <= np.median(u) <= u1 + 60  # the marker (and its label, to the right) on grasp k
    assert centres[0] < centres[3] < centres[4]
    plain = draw_grasps(rgb, grasps, K, side_view(), GRIPPER)
    assert not near(plain, EXECUTED_BGR).any() and near(plain, score_colour_bgr(0.9), 0).any()
    with pytest.raises(ValueError, match="executed grasp 5"):
        draw_grasps(rgb, grasps, K, side_view(), GRIPPER, executed=5)


def test_which_grasp_and_what_came_of_it():
    assert executed_rank("arm", SimpleNamespace(rank=3, grasp=object())) == 3
    assert executed_rank("arm", SimpleNamespace(rank=None, grasp=None)) is None
    assert executed_rank("hand", SimpleNamespace(grasp=object())) == 0
    assert executed_rank("hand", SimpleNamespace(grasp=None)) is None
    report = lambda success, message, outcome=object(): SimpleNamespace(  # noqa: E731
        success=success, message=message, outcome=outcome)
    assert outcome_text(report(True, "grasp 2 succeeded")) == "held"
    assert outcome_text(report(False, "grasp 2 failed: slipped")) == "failed: slipped"
    assert outcome_text(report(False, "nothing to execute: no grasp found", None)) == "not executed: no grasp found"


def test_plan_draw_uses_the_same_drawing(box_world, tmp_path):
    view = box_world.camera.render(side_view())
    depth = tmp_path / "depth.png"
    cv2.imwrite(str(depth), np.round(view.depth.depth_m * 1000.0).astype(np.uint16))
    out, picture = tmp_path / "grasps.json", tmp_path / "grasps.png"
    assert main(["plan", "--depth", str(depth), "--calibration", str(CALIBRATION), "--method", "baseline",
                 "--draw", str(picture), "--out", str(out)]) == 0
    drawn = cv2.imread(str(picture))
    assert drawn.shape == (480, 640, 3)
    best = Grasp.from_dict(json.loads(out.read_text())["grasps"][0])
    K = view.depth.intrinsics
    u0, v0, u1, v1 = grasp_box(best, K, side_view(), margin=4)
    assert near(drawn[v0:v1, u0:u1], score_colour_bgr(best.score), tolerance=3).sum() > 10
    assert not near(drawn, EXECUTED_BGR).any()  # nothing was executed
