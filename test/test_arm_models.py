"""Arm + hand assemblies composed from example-robot-data, the hand URDFs and config/<robot>.yaml."""
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffgrasp_ros.robots import leap
from diffgrasp_ros.robots.arm import embodiment_parameter_defaults, load_arm
from diffgrasp_ros.robots.registry import robot_names

CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.mark.parametrize("name", ["franka", "xarm_leap", "ur5_leap"])
def test_assemblies_compose_into_one_urdf_with_absolute_meshes(name):
    arm = load_arm(name)
    assert arm.name == name and arm.urdf_path.is_absolute() and arm.srdf_path.exists()
    robot = ET.parse(arm.urdf_path).getroot()
    assert robot.get("name") == name  # the model id RViz and MoveIt show
    joints = {j.get("name"): j for j in robot.findall("joint")}
    assert set(arm.arm_joint_names + arm.hand_joint_names) <= set(joints)
    children = {j.find("child").get("link") for j in joints.values()}
    roots = [link.get("name") for link in robot.findall("link") if link.get("name") not in children]
    assert roots == [arm.base_link]
    meshes = [Path(m.get("filename")) for m in robot.iter("mesh")]
    assert meshes and all(m.is_absolute() and m.exists() for m in meshes)
    assert arm.home_q.shape == (len(arm.arm_joint_names),)
    assert arm.hand_open_q.shape == arm.hand_closed_q.shape == (len(arm.hand_joint_names),)
    assert load_arm(name) is arm  # cached; the files are content-addressed


def test_leap_assemblies_carry_the_hand_and_its_postures():
    for name in ("xarm_leap", "ur5_leap"):
        arm = load_arm(name)
        assert arm.hand_kind == "leap" and arm.hand_joint_names == leap.JOINT_NAMES
        assert np.allclose(arm.hand_open_q, leap.OPEN_Q) and np.allclose(arm.hand_closed_q, leap.CLOSED_Q)
        srdf = ET.parse(arm.srdf_path).getroot()
        disabled = {frozenset((d.get("link1"), d.get("link2"))) for d in srdf.findall("disable_collisions")}
        assert frozenset(("fingertip", "thumb_fingertip")) in disabled  # hand-internal
        assert srdf.find("group").get("name") == arm.planning_group
    assert load_arm("ur5_leap").arm_controller == "scaled_joint_trajectory_controller"


def test_every_embodiment_file_has_the_same_keys():
    keys = set(embodiment_parameter_defaults(CONFIG))
    for name in robot_names():
        params = yaml.safe_load((CONFIG / f"{name}.yaml").read_text())["/**"]["ros__parameters"]
        flat = {f"{k}.{kk}" for k, v in params.items() if isinstance(v, dict) for kk in v}
        flat |= {k for k, v in params.items() if not isinstance(v, dict)}
        assert flat - {"robot", "planning_group"} == keys, name
        executor = yaml.safe_load((CONFIG / f"{name}.yaml").read_text())["/**/grasp_executor"]["ros__parameters"]
        assert executor == {"motion_enabled": False}, name  # the secure default: the executor moves nothing


def test_bad_names_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown robot 'kuka'"):
        load_arm("kuka")
    with pytest.raises(FileNotFoundError, match="franka.yaml"):
        load_arm("franka", tmp_path)
    text = (CONFIG / "xarm_leap.yaml").read_text().replace("0.0, 0.0, -1.0, 0.022", "0.0, 0.0, -2.0, 0.022")
    (tmp_path / "xarm_leap.yaml").write_text(text)
    with pytest.raises(ValueError, match="T_flange_hand is not a rigid transform"):
        load_arm("xarm_leap", tmp_path)
