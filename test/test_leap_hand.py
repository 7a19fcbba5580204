"""The LEAP hand model: kinematics against the published URDF, postures, palm frame, retargeting."""
import logging
from pathlib import Path

import numpy as np
import pytest

from diffgrasp_ros.robots import get_robot, leap

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "leap_hand" / "robot.urdf"


def _chain(urdf_bytes):
    import pytorch_kinematics as pk
    import torch

    logging.disable(logging.WARNING)  # pytorch-kinematics warns about the reference's unknown tags
    try:
        return pk.build_chain_from_urdf(urdf_bytes).to(dtype=torch.float64)
    finally:
        logging.disable(logging.NOTSET)


def _link_poses(chain, q):
    import torch

    order = [leap.JOINT_NAMES.index(n) for n in chain.get_joint_parameter_names()]
    fk = chain.forward_kinematics(torch.tensor(q[:, order]))
    return {name: T.get_matrix().numpy() for name, T in fk.items()}


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference LEAP URDF not available")
def test_link_poses_match_the_published_urdf():
    rng = np.random.default_rng(0)
    q = rng.uniform(leap.LOWER_RAD, leap.UPPER_RAD, (25, 16))
    q[0] = 0.0
    ours = _link_poses(_chain(leap.URDF_PATH.read_bytes()), q)
    reference = _link_poses(_chain(REFERENCE.read_bytes()), q)
    links = ["palm_lower", "mcp_joint", "pip", "dip", "fingertip", "mcp_joint_2", "pip_2", "dip_2", "fingertip_2",
             "mcp_joint_3", "pip_3", "dip_3", "fingertip_3", "pip_4", "thumb_pip", "thumb_dip", "thumb_fingertip"]
    assert set(links) <= set(reference)
    for link in links:
        A, B = ours[link], reference[link]
        assert np.abs(A[:, :3, 3] - B[:, :3, 3]).max() < 1e-5, link  # 0.01 mm
        cos = (np.einsum("nij,nij->n", A[:, :3, :3], B[:, :3, :3]) - 1.0) / 2.0
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1e-3, link


def test_joints_are_named_and_limited_as_the_driver_expects():
    import xml.etree.ElementTree as ET

    robot = ET.parse(leap.URDF_PATH).getroot()
    revolute = {j.get("name"): j for j in robot.findall("joint") if j.get("type") == "revolute"}
    assert sorted(revolute, key=int) == list(leap.JOINT_NAMES)
    for i, name in enumerate(leap.JOINT_NAMES):
        limit = revolute[name].find("limit")
        assert (float(limit.get("lower")), float(limit.get("upper"))) == (leap.LOWER_RAD[i], leap.UPPER_RAD[i])
    # Each finger: the flexion joint (1/5/9) hangs off the palm, the side-to-side joint (0/4/8) after it.
    parents = {j.get("name"): j.find("parent").get("link") for j in revolute.values()}
    assert [parents[n] for n in ("1", "5", "9", "12")] == ["palm_lower"] * 4
    assert all(link.find("collision/geometry/mesh") is None for link in robot.findall("link"))


def test_postures_are_within_limits_and_open_wider_than_closed():
    for q in (leap.OPEN_Q, leap.CLOSED_Q, leap.posture_for_width(0.05)):
        assert q.shape == (16,) and np.all(q >= leap.LOWER_RAD) and np.all(q <= leap.UPPER_RAD)
    assert leap.aperture_m(leap.OPEN_Q) > 0.12  # clears the widest parallel grasp (0.08 m) + margin
    assert leap.aperture_m(leap.CLOSED_Q) < -0.02  # crossed: squeezes even thin objects
    for width in (0.0, 0.03, 0.06, 0.10):
        assert leap.aperture_m(leap.posture_for_width(width)) == pytest.approx(width + leap.APERTURE_MARGIN_M,
                                                                               abs=2e-3)
    # Fingers curl out of the palm (+z) and the thumb closes towards the fingers (+y).
    tips_open, tips_closed = leap.tip_positions(np.stack([leap.OPEN_Q, leap.CLOSED_Q]))
    assert np.all(tips_closed[:3, 2] > 0.03) and tips_closed[3, 2] > 0.03
    assert np.all(tips_open[:3, 1] > tips_open[3, 1] + 0.1)
    assert tips_closed[3, 1] > tips_open[3, 1] + 0.05


def test_thumb_and_middle_finger_pads_face_each_other_around_the_tcp():
    """Through the whole close, thumb and middle-finger pads stay ahead of the TCP, within the 0.05 m
    a parallel gripper's fingers reach, in the middle finger's plane, on either side until they cross."""
    T_tcp_palm = np.linalg.inv(leap.T_PALM_TCP)
    blends = np.linspace(0.0, 1.0, 11)
    tips = leap.tip_positions(np.stack([leap.posture(a) for a in blends]))
    tips_tcp = tips @ T_tcp_palm[:3, :3].T + T_tcp_palm[:3, 3]
    middle, thumb = tips_tcp[:, 1], tips_tcp[:, 3]
    for pad in (middle, thumb):
        assert np.all((pad[:, 2] > 0.0) & (pad[:, 2] < 0.05))
        assert np.all(np.abs(pad[:, 0]) < 0.01)
    opened = blends >= 0.5
    assert np.all(middle[opened, 1] > 0.0) and np.all(thumb[opened, 1] < 0.0)
    assert abs(middle[-1, 1] + thumb[-1, 1]) < 0.01  # the open hand is centred on the TCP


def test_digit_points_cover_the_digits_and_follow_the_posture():
    """27 lattice points per digit-link box; the lattice of each distal link surrounds its pad point, and
    closing the hand moves the digit points while the joint limits keep adduction in range."""
    q = np.stack([leap.OPEN_Q, leap.CLOSED_Q])
    points = leap.digit_points(q)
    assert points.shape == (2, 27 * 16, 3)  # 4 links per finger x 3 fingers + 4 thumb links
    tips = leap.tip_positions(q)
    for posture in range(2):
        nearest = np.linalg.norm(points[posture][None] - tips[posture][:, None], axis=-1).min(1)
        assert np.all(nearest < 0.03), nearest
    assert np.abs(points[1] - points[0]).max() > 0.03
    closed = leap.DEXTEROUS_CLOSED_Q
    assert np.all(closed >= leap.LOWER_RAD) and np.all(closed <= leap.UPPER_RAD)
    assert closed[0] > leap.CLOSED_Q[0] and closed[8] < leap.CLOSED_Q[8]  # index and ring towards the middle
    with pytest.raises(ValueError, match="16 joints"):
        leap.adducted(np.zeros(15), 0.3)


def test_retargeting_puts_the_tcp_on_the_grasp_and_preshapes_to_its_width():
    T = np.eye(4)
    T[:3, 3] = (0.15, 0.15, 0.1)
    T_palm, q_open, q_closed = leap.retarget_parallel_grasp(T, 0.04)
    assert np.allclose(T_palm @ leap.T_PALM_TCP, T)
    assert np.allclose(T_palm[:3, 3], (0.167, 0.165, 0.035))
    assert leap.aperture_m(q_open) == pytest.approx(0.06, abs=2e-3)
    assert np.allclose(q_closed, leap.CLOSED_Q)
    with pytest.raises(ValueError, match="4x4"):
        leap.retarget_parallel_grasp(np.eye(3), 0.04)
    with pytest.raises(ValueError, match="width"):
        leap.retarget_parallel_grasp(T, -0.01)


def test_embodiment_files_put_the_tcp_where_leap_py_does():
    import yaml

    from diffgrasp_ros.robots.arm import default_config_dir, load_arm

    for name in ("xarm_leap", "ur5_leap"):
        tcp = yaml.safe_load((default_config_dir() / f"{name}.yaml").read_text())["/**"]["ros__parameters"]["tcp"]
        assert tcp["parent_link"] == leap.PALM_LINK
        assert np.allclose(np.reshape(tcp["T_parent_tcp"], (4, 4)), leap.T_PALM_TCP)
    # ... and the composed robot carries it: the TCP is T_PALM_TCP from the palm at any arm posture.
    import pytorch_kinematics as pk
    import torch

    arm = load_arm("ur5_leap")
    chain = pk.build_chain_from_urdf(arm.urdf_path.read_bytes()).to(dtype=torch.float64)
    q = {n: 0.3 for n in chain.get_joint_parameter_names()}
    fk = chain.forward_kinematics(q)
    T_palm_tcp = torch.linalg.inv(fk[leap.PALM_LINK].get_matrix()) @ fk[arm.tcp_link].get_matrix()
    assert np.allclose(T_palm_tcp[0].numpy(), leap.T_PALM_TCP, atol=1e-9)


def test_driver_convention_is_offset_by_pi():
    assert np.allclose(leap.to_driver_command(np.zeros(16)), np.pi)
    assert np.allclose(leap.from_driver_state(leap.to_driver_command(leap.CLOSED_Q)), leap.CLOSED_Q)
    with pytest.raises(ValueError, match="16 joints"):
        leap.to_driver_command(np.zeros(15))


def test_leap_embodiments_expose_their_hand():
    for name in ("xarm_leap", "ur5_leap"):
        robot = get_robot(name)
        assert robot.hand == "leap" and robot.hand_joint_names == leap.JOINT_NAMES
        assert np.allclose(robot.hand_posture(0.0), leap.CLOSED_Q)
        assert np.allclose(robot.hand_posture(0.05), leap.posture_for_width(0.05))
    assert get_robot("franka").hand == "parallel"
