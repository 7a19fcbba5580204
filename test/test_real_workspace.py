"""The workspace from the depth (table fit), calibration checks, planning over large tables, and the
real-camera path of ``diffgrasp plan`` / ``diffgrasp calibrate``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from diffgrasp_ros.camera.frame import DepthFrame
from diffgrasp_ros.camera.intrinsics import CameraIntrinsics
from diffgrasp_ros.geometry import invert, look_at, make_transform, transform_points
from diffgrasp_ros.scene.table import TableNotFoundError, check_camera_pose, estimate_workspace
from diffgrasp_ros.scene.tiling import tile_origins
from diffgrasp_ros.scene.workspace import STANDARD_WORKSPACE, TableArea
from diffgrasp_ros.sim.tabletop import render_tabletop

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real"
K640 = CameraIntrinsics(640, 480, 600.0, 600.0, 320.0, 240.0)


@pytest.fixture(scope="module")
def small_table():
    return render_tabletop((0.3, 0.3), seed=3, intrinsics=K640)


@pytest.fixture(scope="module")
def large_table():
    return render_tabletop((0.8, 0.6), seed=4)


def _true_to_estimated(estimate, table) -> np.ndarray:
    return estimate.T_workspace_camera @ invert(table.T_workspace_camera)


def _plane_depth(normal_camera, offset_m, intrinsics=K640) -> DepthFrame:
    """Depth of the plane n·p + d = 0 (camera frame), 0 where the ray misses it or it lies behind."""
    v, u = np.mgrid[: intrinsics.height, : intrinsics.width]
    rays = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones(u.shape)], -1)
    denominator = rays @ np.asarray(normal_camera, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -offset_m / denominator
    z = np.where(np.isfinite(z) & (z > 0.1) & (z < 3.0), z, 0.0)
    return DepthFrame(z.astype(np.float32), intrinsics)


def _bumps() -> DepthFrame:
    """A hand-held close-up: round things (a person, a bag, a ball) fill the view, nothing flat."""
    rng = np.random.default_rng(0)
    v, u = np.mgrid[: K640.height, : K640.width]
    rays = np.stack([(u - K640.cx) / K640.fx, (v - K640.cy) / K640.fy, np.ones(u.shape)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    depth = np.full(u.shape, np.inf)
    for _ in range(12):
        centre = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.25, 0.25), rng.uniform(0.5, 0.9)])
        radius = rng.uniform(0.08, 0.18)
        b = rays @ centre
        disc = b ** 2 - (centre @ centre - radius ** 2)
        hit = (disc > 0) & (b - np.sqrt(np.maximum(disc, 0)) > 0)
        distance = np.where(hit, b - np.sqrt(np.maximum(disc, 0)), np.inf)
        depth = np.minimum(depth, distance * rays[..., 2])
    return DepthFrame(np.where(np.isfinite(depth), depth, 0.0).astype(np.float32), K640)


@pytest.mark.parametrize("table", ["small_table", "large_table"])
def test_estimated_workspace_puts_the_table_at_its_height_under_the_objects(table, request):
    table = request.getfixturevalue(table)
    estimate = estimate_workspace(table.depth)
    T = _true_to_estimated(estimate, table)
    # Table points anywhere in the true area land on z = 0.05 within 2 mm; the frame is not tilted.
    corners = np.array([[0, 0, 0.05], [table.area.size_x_m, 0, 0.05], [0, table.area.size_y_m, 0.05],
                        [table.area.size_x_m, table.area.size_y_m, 0.05]])
    assert np.abs(transform_points(T, corners)[:, 2] - 0.05).max() < 0.002
    assert np.degrees(np.arccos(T[2, 2])) < 0.5
    # Every object stands inside the estimated workspace, which is about the objects' footprint.
    centres = transform_points(T, table.object_centres_m + [0, 0, 0.02])
    assert estimate.area.inside(centres).all()
    assert estimate.object_share_inside > 0.99 and estimate.table_inlier_share > 0.5
    assert estimate.area.size_x_m >= 0.3 and estimate.area.size_y_m >= 0.3
    # x runs along the optical axis projected onto the table.
    optical_axis = estimate.T_workspace_camera[:3, 2]
    assert optical_axis[0] > 0.3 and abs(optical_axis[1]) < 1e-6


def test_workspace_size_and_pixel_centre_are_honoured(large_table):
    target = large_table.object_centres_m[0] + [0, 0, 0.03]
    p = transform_points(invert(large_table.T_workspace_camera), target[None])[0]
    K = large_table.depth.intrinsics
    pixel = (K.fx * p[0] / p[2] + K.cx, K.fy * p[1] / p[2] + K.cy)
    estimate = estimate_workspace(large_table.depth, size_m=(0.3, 0.3), pixel=pixel)
    assert (estimate.area.size_x_m, estimate.area.size_y_m) == (0.3, 0.3)
    centre = transform_points(_true_to_estimated(estimate, large_table), target[None])[0]
    assert np.allclose(centre[:2], 0.15, atol=0.05)  # the chosen object sits mid-workspace
    assert estimate.object_share_inside == 1.0


def test_a_selection_of_nothing_is_refused(small_table):
    empty = np.zeros(small_table.depth.depth_m.shape, bool)
    with pytest.raises(ValueError, match="selects no valid depth"):
        estimate_workspace(small_table.depth, mask=empty)
    with pytest.raises(ValueError, match="not inside"):
        estimate_workspace(small_table.depth, region=(600, 10, 700, 20))
    with pytest.raises(ValueError, match="at most one"):
        estimate_workspace(small_table.depth, pixel=(10, 10), region=(0, 0, 20, 20))


def test_no_table_a_camera_looking_away_and_a_ceiling_are_refused():
    held = _bumps()
    with pytest.raises(TableNotFoundError, match="no table found"):
        estimate_workspace(held)
    # A floor 1.2 m below a camera looking 3 degrees below the horizon: seen 87 degrees off its normal.
    tilt = np.radians(3.0)
    grazing = _plane_depth([0.0, -np.cos(tilt), -np.sin(tilt)], 1.2)
    with pytest.raises(TableNotFoundError, match="looks along or away"):
        estimate_workspace(grazing)
    ceiling = _plane_depth([0.0, 0.6, -0.8], 1.0)  # its camera side faces image-down
    with pytest.raises(TableNotFoundError, match="ceiling"):
        estimate_workspace(ceiling)


def test_a_wall_is_found_empty_and_planning_on_it_says_so():
    from diffgrasp_ros.grasping import make_planner

    wall = _plane_depth([0.0, 0.0, -1.0], 0.8)
    estimate = estimate_workspace(wall)
    assert any("nothing stands on the table" in w for w in estimate.warnings)
    result = make_planner("baseline").plan_from_depth(wall, estimate.T_workspace_camera, estimate.area)
    assert not result.found and "nothing was observed above the table" in result.message


def test_camera_pose_check_flags_wrong_heights_tilts_and_missing_tables(small_table):
    frame, T = small_table.depth, small_table.T_workspace_camera
    assert check_camera_pose(frame, T).warnings == []
    raised = make_transform(translation=(0, 0, 0.03)) @ T
    assert any(re.search(r"\+3\.[01] cm", w) for w in check_camera_pose(frame, raised).warnings)
    tilted = make_transform(look_at((0, 0, 0), (1, 0, 0)).T[:3, :3] @ np.eye(3)) @ T  # 90 deg: far off
    assert any("tilted" in w for w in check_camera_pose(frame, tilted).warnings)
    c, s = np.cos(np.radians(8)), np.sin(np.radians(8))
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    centre = make_transform(translation=(0.15, 0.15, 0.05))
    tilted8 = centre @ make_transform(rotation) @ invert(centre) @ T
    check = check_camera_pose(frame, tilted8)
    assert check.table_found and 7.5 < check.tilt_deg < 8.5
    assert any("tilted 8.0 deg" in w for w in check.warnings)
    assert check_camera_pose(frame, np.eye(4)).warnings  # the identity puts the table far from z = 0.05
    result = check_camera_pose(_bumps(), T)
    assert not result.table_found and "cannot be checked: no table found" in result.warnings[0]


def test_tiles_cover_every_object_point_with_a_margin():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(0, 0.9, (2000, 2)), rng.normal((0.4, 0.3), 0.05, (500, 2))])
    origins = tile_origins(points)
    usable_lo, usable_hi = origins + 0.03, origins + STANDARD_WORKSPACE.size_m - 0.03
    covered = np.zeros(len(points), bool)
    for lo, hi in zip(usable_lo, usable_hi):
        covered |= np.all((points >= lo - 1e-6) & (points <= hi + 1e-6), axis=1)
    assert covered.all()
    assert len(origins) <= 25  # 0.9 m square at 0.24 m usable tiles: 16 at best, never one per point
    assert len(tile_origins(np.zeros((0, 2)))) == 0


@pytest.mark.parametrize("method", ["baseline", "igd"])
def test_planners_plan_over_a_large_table_at_their_trained_voxel_size(large_table, method):
    from diffgrasp_ros.grasping import make_planner

    planner = make_planner(method, max_grasps=20)
    result = planner.plan_from_depth(large_table.depth, large_table.T_workspace_camera, large_table.area)
    assert result.found, result.message
    assert planner.workspace == STANDARD_WORKSPACE  # tiles are standard cubes: the model's voxel size
    positions = np.array([g.position_m for g in result.grasps])
    assert large_table.area.inside(positions).all()
    tiles = {tuple(g.info["tile_origin_m"]) for g in result.grasps}
    assert len(tiles) >= 3  # grasps come from all over the table, not one cube
    assert positions[:, 0].max() - positions[:, 0].min() > 0.35
    # Each grasp is near an object (within a hand's reach of its centre axis).
    nearest = np.min(np.linalg.norm(positions[:, None, :2] - large_table.object_centres_m[None, :, :2], axis=2), 1)
    assert nearest.max() < 0.08


def test_objects_cut_off_by_the_workspace_get_a_warning(large_table):
    from diffgrasp_ros.grasping import make_planner

    small = TableArea(0.3, 0.3)
    result = make_planner("baseline").plan_from_depth(large_table.depth, large_table.T_workspace_camera, small)
    assert any("lie outside it: objects there are cut off" in w for w in result.warnings)


def _write_frame(tmp_path: Path, table) -> tuple[Path, Path]:
    import cv2

    depth_png = tmp_path / "depth.png"
    cv2.imwrite(str(depth_png), np.round(table.depth.depth_m * 1000).astype(np.uint16))
    intrinsics = tmp_path / "camera.json"
    intrinsics.write_text(json.dumps(table.depth.intrinsics.to_dict()))
    return depth_png, intrinsics


def test_cli_plans_from_a_frame_with_the_workspace_auto_and_draws(tmp_path, small_table, capsys):
    from diffgrasp_ros.cli.main import main

    depth, intrinsics = _write_frame(tmp_path, small_table)
    out, picture = tmp_path / "grasps.json", tmp_path / "grasps.png"
    code = main(["plan", "--depth", str(depth), "--intrinsics", str(intrinsics), "--workspace", "auto",
                 "--method", "baseline", "--draw", str(picture), "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    T = np.array(report["inputs"][0]["T_workspace_camera"])
    assert T.shape == (4, 4) and report["workspace_estimated"] is True
    assert report["workspace"]["size_x_m"] >= 0.3 and report["grasps"]
    assert set(report["timings_cold_s"]) == {"model_load", "first_plan"}
    import cv2

    drawn = cv2.imread(str(picture))
    assert drawn.shape == (480, 640, 3) and drawn.std() > 10
    assert "second plan" in capsys.readouterr().out


def test_cli_calibrate_then_plan_with_the_calibration(tmp_path, small_table):
    from diffgrasp_ros.camera.files import load_calibration
    from diffgrasp_ros.cli.main import main

    depth, intrinsics = _write_frame(tmp_path, small_table)
    calibration = tmp_path / "calib.yaml"
    assert main(["calibrate", "--depth", str(depth), "--intrinsics", str(intrinsics), "--out", str(calibration)]) == 0
    K, T = load_calibration(calibration)
    assert K == small_table.depth.intrinsics
    assert np.abs(transform_points(T @ invert(small_table.T_workspace_camera), [[0.1, 0.2, 0.05]])[0, 2]
                  - 0.05) < 0.003
    out = tmp_path / "grasps.json"
    assert main(["plan", "--depth", str(depth), "--calibration", str(calibration), "--method", "baseline",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["warnings"] == []


def test_cli_warns_about_a_wrong_extrinsic_and_refuses_bad_selections(tmp_path, small_table, capsys):
    from diffgrasp_ros.cli.main import main

    depth, intrinsics = _write_frame(tmp_path, small_table)
    identity = tmp_path / "identity.json"
    identity.write_text(json.dumps(np.eye(4).tolist()))
    main(["plan", "--depth", str(depth), "--intrinsics", str(intrinsics), "--extrinsics", str(identity),
          "--method", "baseline", "--out", str(tmp_path / "g.json")])
    assert "the camera pose is" in capsys.readouterr().err
    import cv2

    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.zeros((480, 640), np.uint8))
    code = main(["plan", "--depth", str(depth), "--intrinsics", str(intrinsics), "--workspace", "auto",
                 "--workspace-mask", str(mask), "--out", str(tmp_path / "g.json")])
    assert code == 1 and "the mask selects nothing" in capsys.readouterr().err
    code = main(["plan", "--depth", str(depth), "--intrinsics", str(intrinsics), "--out", str(tmp_path / "g.json")])
    assert code == 1 and "--workspace auto" in capsys.readouterr().err


def test_plan_hands_the_colour_image_to_restoration(tmp_path, small_table, capsys):
    import cv2

    from diffgrasp_ros.cli.main import main

    depth, intrinsics = _write_frame(tmp_path, small_table)
    color = tmp_path / "color.png"
    cv2.imwrite(str(color), np.zeros((240, 320, 3), np.uint8))  # not the depth's size
    code = main(["plan", "--depth", str(depth), "--intrinsics", str(intrinsics), "--workspace", "auto",
                 "--depth-mode", "restore", "--color", str(color), "--out", str(tmp_path / "g.json")])
    assert code == 1 and "the colour image is 320x240 but the depth is 640x480" in capsys.readouterr().err


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real is not here")
def test_real_frame_from_depth_to_grasps(tmp_path):
    from diffgrasp_ros.cli.main import main

    frame = REAL / "ucn_tabletop" / "000002"
    out = tmp_path / "grasps.json"
    code = main(["plan", "--depth", str(frame / "depth.png"), "--intrinsics", str(frame / "camera.json"),
                 "--workspace", "auto", "--method", "baseline", "--color", str(frame / "color.png"),
                 "--draw", str(tmp_path / "real.png"), "--out", str(out)])
    assert code == 0 and json.loads(out.read_text())["grasps"]
