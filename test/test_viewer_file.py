"""`diffgrasp view` without a browser: what grasps.json keeps for it, bad files, hand meshes, the port, live
markers."""
import json
import socket

import numpy as np
import pytest

from diffgrasp_ros.camera.intrinsics import CameraIntrinsics
from diffgrasp_ros.cli.main import main
from diffgrasp_ros.geometry import make_transform
from diffgrasp_ros.grasping.grasp import Grasp
from diffgrasp_ros.scene.workspace import TableArea
from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.visualisation.hands import FRANKA, LEAP, grasp_posture, hand_mesh
from diffgrasp_ros.visualisation.record import (FORMAT_VERSION, MAX_SURFACE_POINTS, ArmTrajectory, CameraView,
                                                load_viewer_scene, scene_record, trajectory_record)

from test_cli import CALIBRATION, save_mm_png


def test_plan_keeps_the_scene_the_viewer_shows(box_world, tmp_path):
    depth = save_mm_png(tmp_path / "depth.png", box_world.camera.render(side_view()).depth.depth_m)
    out = tmp_path / "grasps.json"
    assert main(["plan", "--depth", str(depth), "--calibration", str(CALIBRATION), "--method", "baseline",
                 "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    scene = load_viewer_scene(out)
    assert written["version"] == FORMAT_VERSION and scene.robot == "franka" and scene.trajectory is None
    assert len(scene.grasps) == len(written["grasps"]) > 0
    np.testing.assert_allclose(scene.grasps[0].position_m, written["grasps"][0]["position_m"])
    assert scene.grasps[0].score == written["grasps"][0]["score"]
    np.testing.assert_allclose(scene.cameras[0].T_workspace_camera, side_view(), atol=1e-8)
    assert scene.cameras[0].intrinsics.width == 640 and scene.area == TableArea()
    # The fused surface: the table and the 4 x 5 x 6 cm box standing in the middle of it.
    points = scene.surface_points_m
    assert 1000 < len(points) <= MAX_SURFACE_POINTS
    top = points[points[:, 2] > 0.10]
    assert len(top) and np.abs(top[:, :2].mean(axis=0) - 0.15).max() < 0.03


def test_a_table_planned_in_several_cubes_keeps_the_observed_surface(box_world, tmp_path):
    view = box_world.camera.render(side_view())
    depth = save_mm_png(tmp_path / "depth.png", view.depth.depth_m)
    (tmp_path / "K.json").write_text(json.dumps(view.depth.intrinsics.to_dict()))
    out = tmp_path / "grasps.json"
    assert main(["plan", "--depth", str(depth), "--intrinsics", str(tmp_path / "K.json"), "--workspace", "auto",
                 "--workspace-size", "0.5", "0.5", "--method", "baseline", "--out", str(out)]) == 0
    scene = load_viewer_scene(out)
    assert (scene.area.size_x_m, scene.area.size_y_m) == (0.5, 0.5) and scene.grasps
    points = scene.surface_points_m
    assert len(points) == MAX_SURFACE_POINTS and scene.area.inside(points).all()
    assert points[:, 0].max() > 0.45 and points[:, 1].max() > 0.45  # beyond one 0.30 m cube


def test_a_demo_pick_and_its_trajectory_read_back(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.uniform(0.0, 0.3, (MAX_SURFACE_POINTS + 500, 3))
    camera = CameraView(CameraIntrinsics(640, 480, 540.0, 540.0, 320.0, 240.0), side_view())
    grasp = Grasp(make_transform(translation=(0.15, 0.15, 0.1)), 0.04, 0.8, "igd")
    T_tcp = np.stack([make_transform(translation=(0.1 * i, 0.0, 0.3)) for i in range(3)])
    trajectory = ArmTrajectory(("a1", "a2"), ("f1", "f2"), np.array([0.0, 0.5, 1.0]),
                               np.array([[0.0, 0.1, 0.04, 0.04], [0.2, 0.3, 0.04, 0.04], [0.4, 0.5, 0.0, 0.0]]),
                               T_tcp, make_transform(translation=(-0.4, 0.15, 0.0)), 0)
    pick = {"plan": {"grasps": [grasp.to_dict()]}, "scene": scene_record(TableArea(), points, [camera]),
            "trajectory": trajectory_record(trajectory)}
    path = tmp_path / "grasps.json"
    picks = [pick, {**pick, "trajectory": None}]
    path.write_text(json.dumps({"version": FORMAT_VERSION, "robot": "franka", "picks": picks}))

    first = load_viewer_scene(path)
    assert len(first.surface_points_m) == MAX_SURFACE_POINTS  # downsampled
    np.testing.assert_allclose(first.surface_points_m[[0, -1]], points[[0, -1]], atol=1e-4)
    back = first.trajectory
    assert (back.arm_joint_names, back.hand_joint_names, back.rank) == (("a1", "a2"), ("f1", "f2"), 0)
    np.testing.assert_allclose(back.T_workspace_tcp, T_tcp, atol=1e-12)
    np.testing.assert_allclose(back.hand_positions, trajectory.positions[:, 2:])
    np.testing.assert_allclose(back.T_workspace_base, trajectory.T_workspace_base)
    assert load_viewer_scene(path, pick=2).trajectory is None and first.title == "pick 1 of 2"


def _write(tmp_path, data) -> str:
    path = tmp_path / "grasps.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


SCENE = {"workspace": TableArea().to_dict(), "surface_points_m": [[0.1, 0.1, 0.05]], "cameras": []}


@pytest.mark.parametrize("data, pick, message", [
    ({"robot": "franka", "grasps": []}, None, "older diffgrasp, without a format version"),
    ({"version": FORMAT_VERSION, "robot": "franka", "grasps": []}, None, "carries no scene"),
    ({"version": 99, "robot": "franka", "grasps": [], "scene": SCENE}, None, "format version 99"),
    ("{not json", None, "not JSON"),
    ("[1, 2]", None, "a JSON list, not an object"),
    ({"version": FORMAT_VERSION, "robot": "franka", "picks": []}, 1, "has 0 pick(s)"),
    ({"version": FORMAT_VERSION, "robot": "franka", "grasps": [], "scene": SCENE}, 2, "it has no picks"),
    ({"version": FORMAT_VERSION, "robot": "franka", "grasps": [{"score": 1}], "scene": SCENE}, None, "malformed"),
    ({"version": FORMAT_VERSION, "robot": "hexapod", "grasps": [], "scene": SCENE}, None, "unknown robot"),
    (None, None, "grasps file not found"),
])
def test_a_file_the_viewer_cannot_show_is_one_clear_error(data, pick, message, tmp_path, capsys):
    path = _write(tmp_path, data) if data is not None else str(tmp_path / "missing.json")
    argv = ["view", path, "--duration", "0"] + (["--pick", str(pick)] if pick else [])
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("diffgrasp view: error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_an_empty_scene_is_shown(tmp_path, capsys):
    path = _write(tmp_path, {"version": FORMAT_VERSION, "robot": "franka", "grasps": [], "scene": SCENE})
    assert main(["view", path, "--port", "0", "--duration", "0"]) == 0
    assert f"{path} (0 grasps) at http://127.0.0.1:" in capsys.readouterr().out


def test_a_port_in_use_is_said_and_the_next_free_one_taken(tmp_path, capsys):
    path = _write(tmp_path, {"version": FORMAT_VERSION, "robot": "franka", "grasps": [], "scene": SCENE})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", path, "--port", str(port), "--duration", "0"]) == 0
    out = capsys.readouterr().out
    assert f"port {port} is in use: serving on " in out and f"127.0.0.1:{port}/" not in out


def test_the_franka_mesh_is_the_planners_gripper_geometry():
    from diffgrasp_ros.robots.gripper import FRANKA_HAND

    width = 0.05
    vertices, faces = hand_mesh(FRANKA, np.eye(4), grasp_posture("franka", Grasp(np.eye(4), width, 0.5, "x")))
    corners = FRANKA_HAND.corner_points(width)  # the boxes collisions are checked with
    np.testing.assert_allclose(vertices.min(axis=0), corners.min(axis=0), atol=1e-9)
    np.testing.assert_allclose(vertices.max(axis=0), corners.max(axis=0), atol=1e-9)
    assert faces.shape == (36, 3) and faces.max() == len(vertices) - 1  # palm + 2 fingers, 12 triangles each


def test_the_leap_mesh_follows_the_grasp_pose_and_posture():
    T = make_transform(translation=(0.1, 0.2, 0.3))
    open_hand = Grasp(T, 0.08, 0.5, "x")
    dexterous = Grasp(T, 0.08, 0.5, "x", pregrasp_joints=np.zeros(16), grasp_joints=np.zeros(16))  # flat hand
    v_open, _ = hand_mesh(LEAP, T, grasp_posture("xarm_leap", open_hand))
    v_flat, _ = hand_mesh(LEAP, T, grasp_posture("xarm_leap", dexterous))
    # The digits reach no further than the finger depth ahead of the TCP; flat, they stretch out sideways.
    assert v_open[:, 2].max() - 0.3 == pytest.approx(0.05, abs=0.005)
    assert np.ptp(v_flat[:, 1]) > np.ptp(v_open[:, 1]) + 0.05
    with pytest.raises(ValueError, match="a posture has 16 joints"):
        hand_mesh(LEAP, T, np.zeros(2))


def test_live_grasps_read_back_from_the_grasp_servers_markers():
    pytest.importorskip("rclpy")
    from diffgrasp_ros.nodes.conversions import grasps_to_markers
    from diffgrasp_ros.nodes.viewer_feed import markers_to_grasps
    from diffgrasp_ros.robots.registry import get_robot

    grasps = [Grasp(make_transform(translation=(0.1, 0.1 * i, 0.1)), 0.02 * (i + 1), 0.9 - 0.3 * i, "igd")
              for i in range(3)]
    back = markers_to_grasps(grasps_to_markers(grasps, get_robot("franka"), "workspace", 0.0))
    assert [round(g.score, 2) for g in back] == [0.9, 0.6, 0.3]
    assert [g.width_m for g in back] == pytest.approx([0.02, 0.04, 0.06])
    np.testing.assert_allclose([g.position_m for g in back], [g.position_m for g in grasps])


def test_the_arm_drawn_for_a_pick_is_its_chain_from_base_to_tcp():
    from diffgrasp_ros.execution.reachability import ReachabilityChecker
    from diffgrasp_ros.robots.arm import load_arm

    arm = load_arm("franka")
    checker = ReachabilityChecker(arm)
    q = arm.home_q + 0.2
    origins = checker.link_origins(q)
    np.testing.assert_allclose(origins[0], 0.0, atol=1e-12)  # the base link
    np.testing.assert_allclose(origins[-1], checker.fk(q)[0, :3, 3], atol=1e-9)  # the TCP
    assert len(origins) > len(arm.arm_joint_names)
