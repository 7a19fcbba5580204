import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from diffgrasp_ros.camera.files import load_calibration
from diffgrasp_ros.cli.main import main
from diffgrasp_ros.cli.plan import EXIT_NO_GRASP
from diffgrasp_ros.sim.camera import side_view

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "config" / "sim_side_view_calibration.yaml"


def save_mm_png(path: Path, depth_m: np.ndarray) -> Path:
    cv2.imwrite(str(path), np.round(depth_m * 1000.0).astype(np.uint16))
    return path


def _commands() -> list[str]:
    import argparse

    from diffgrasp_ros.cli.main import build_parser

    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_every_command_has_help(capsys):
    commands = _commands()
    assert {"demo", "plan", "bench", "train", "train-leap", "leap-datagen"} <= set(commands)
    for argv in [["--help"], *([command, "--help"] for command in commands)]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0, argv
        out = capsys.readouterr().out
        assert "usage: diffgrasp" in out, argv
        if argv[0] in ("demo", "plan", "bench"):
            assert "--method" in out
        if argv[0] in ("demo", "plan", "bench", "restore"):  # the commands that run learned models
            assert "--device" in out


def test_console_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "diffgrasp_ros.cli.main", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "demo" in out and "plan" in out


def test_shipped_calibration_is_the_simulated_side_view():
    intrinsics, T = load_calibration(CALIBRATION)
    assert (intrinsics.width, intrinsics.fx, intrinsics.cy) == (640, 540.0, 240.0)
    np.testing.assert_allclose(T, side_view(), atol=1e-8)


def test_plan_from_a_depth_png_and_calibration(box_world, tmp_path, capsys):
    view = box_world.camera.render(side_view())
    depth = save_mm_png(tmp_path / "depth.png", view.depth.depth_m)
    out = tmp_path / "grasps.json"
    code = main(["plan", "--depth", str(depth), "--calibration", str(CALIBRATION), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["found"] and result["method"] == "igd" and result["robot"] == "franka"
    assert [g["rank"] for g in result["grasps"]] == list(range(len(result["grasps"])))
    best = result["grasps"][0]
    assert best["frame_id"] == "workspace"
    assert np.linalg.norm(np.asarray(best["position_m"][:2]) - 0.15) < 0.04
    assert "fusion" in result["timings_s"]


def test_plan_with_separate_intrinsics_and_extrinsics_files(box_world, tmp_path):
    view = box_world.camera.render(side_view())
    np.save(tmp_path / "depth.npy", view.depth.depth_m)
    (tmp_path / "K.json").write_text(json.dumps(view.depth.intrinsics.to_dict()))
    (tmp_path / "T.json").write_text(json.dumps({"T_workspace_camera": side_view().tolist()}))
    code = main(["plan", "--depth", str(tmp_path / "depth.npy"), "--intrinsics", str(tmp_path / "K.json"),
                 "--extrinsics", str(tmp_path / "T.json"), "--out", str(tmp_path / "g.json")])
    assert code == 0 and json.loads((tmp_path / "g.json").read_text())["found"]


def test_plan_from_a_saved_tsdf_grid(box_world, tmp_path):
    from diffgrasp_ros.scene import SceneBuilder

    view = box_world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    np.save(tmp_path / "tsdf.npy", builder.scene().tsdf_grid[None])  # (1, 40, 40, 40) as VGN stores it
    assert main(["plan", "--tsdf", str(tmp_path / "tsdf.npy"), "--out", str(tmp_path / "g.json"),
                 "--device", "cpu"]) == 0


def test_empty_workspace_exits_with_no_grasp(empty_world, tmp_path, capsys):
    depth = save_mm_png(tmp_path / "table.png", empty_world.camera.render(side_view()).depth.depth_m)
    code = main(["plan", "--depth", str(depth), "--calibration", str(CALIBRATION),
                 "--out", str(tmp_path / "g.json")])
    assert code == EXIT_NO_GRASP
    assert "no grasp found" in capsys.readouterr().out
    assert json.loads((tmp_path / "g.json").read_text())["found"] is False


@pytest.mark.parametrize("case, message", [
    ("all_zero", "no valid pixels"),
    ("colour_8bit", "colour image is not depth"),
    ("grey_8bit", "8-bit"),
    ("wrong_size", "intrinsics are 640x480"),
    ("missing_calibration", "calibration missing"),
    ("missing_file", "not found"),
    ("bad_robot", "unknown robot"),
    ("bad_device", "unknown device 'gpu0': use auto"),
])
def test_bad_input_is_one_clear_error(case, message, tmp_path, capsys):
    depth = tmp_path / "depth.png"
    cv2.imwrite(str(depth), np.full((480, 640), 600, np.uint16))
    argv = ["plan", "--depth", str(depth), "--calibration", str(CALIBRATION), "--out", str(tmp_path / "g.json")]
    if case == "all_zero":
        cv2.imwrite(str(depth), np.zeros((480, 640), np.uint16))
    elif case == "colour_8bit":
        cv2.imwrite(str(depth), np.full((480, 640, 3), 90, np.uint8))
    elif case == "grey_8bit":
        cv2.imwrite(str(depth), np.full((480, 640), 90, np.uint8))
    elif case == "wrong_size":
        cv2.imwrite(str(depth), np.full((240, 320), 600, np.uint16))
    elif case == "missing_calibration":
        argv = argv[:3] + argv[5:]
    elif case == "missing_file":
        argv[2] = str(tmp_path / "nope.png")
    elif case == "bad_robot":
        argv += ["--robot", "kuka"]
    elif case == "bad_device":
        argv += ["--device", "gpu0"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("diffgrasp plan: error:") and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "g.json").exists()


def test_demo_writes_grasps_and_a_picture(tmp_path, capsys):
    code = main(["demo", "--scene", "packed", "--seed", "1", "--picks", "1", "--executor", "hand",
                 "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "grasps.json").read_text())
    assert report["scene"] == "packed" and report["objects_placed"] >= 1 and report["executor"] == "hand"
    assert len(report["picks"]) == 1
    pick = report["picks"][0]
    assert pick["plan"]["found"] and pick["executed"].startswith("grasp ")
    image = cv2.imread(str(tmp_path / "scene.png"))
    assert image.shape == (480, 640, 3)
    sheet = cv2.imread(str(tmp_path / "picks.png"))  # one row of a caption over before | after
    assert sheet.shape == (30 + 480, 2 * 640 + 4, 3)
    np.testing.assert_array_equal(sheet[30:, :640], image)  # scene.png: the pick's before panel
    out = capsys.readouterr().out
    assert "picks succeeded" in out and "wall time" in out


def test_demo_picks_with_the_whole_leap_arm(tmp_path, capsys):
    code = main(["demo", "--scene", "packed", "--seed", "1", "--picks", "1", "--robot", "ur5_leap",
                 "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "grasps.json").read_text())
    assert (report["robot"], report["executor"]) == ("ur5_leap", "arm")
    (pick,) = report["picks"]
    arm = pick["arm"]
    assert arm["ranked"] == len(pick["plan"]["grasps"]) > 0 and 0 < arm["reachable"] <= arm["ranked"]
    assert arm["reachable_fraction"] == pytest.approx(arm["reachable"] / arm["ranked"])
    assert arm["ik_s"] > 0.0 and arm["motion_planning_s"] > 0.0 and arm["attempts"]
    assert arm["rank"] == arm["attempts"][-1]["rank"] and pick["executed"].startswith(f"grasp {arm['rank']} ")
    assert {"ik", "motion_planning", "execute"} <= set(pick["plan"]["timings_s"])
    out = capsys.readouterr().out
    assert "LEAP hand" in out and "ranked grasps reachable" in out and "picks succeeded" in out



def test_up_keeps_discovery_on_this_machine_unless_told_otherwise():
    from diffgrasp_ros.cli.up import restrict_discovery

    environ = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_STATIC_PEERS": "192.0.2.1", "HOME": "/root"}
    assert "this machine only" in restrict_discovery(False, environ)
    assert environ == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "HOME": "/root"}
    environ = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_STATIC_PEERS": "192.0.2.1"}
    assert "SUBNET" in restrict_discovery(True, environ)
    assert environ == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_STATIC_PEERS": "192.0.2.1"}
