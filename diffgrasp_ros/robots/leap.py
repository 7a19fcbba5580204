"""The LEAP hand: joints, postures, palm and grasp frames, and the parallel-grasp retargeting.

Joint positions are in radians in the URDF convention (0 = flat hand), ordered by joint name
"0".."15" (index 0-3, middle 4-7, ring 8-11, thumb 12-15; each finger: MCP side-to-side, MCP
flexion, PIP, DIP). The LEAP driver's native command (``/cmd_leap``) is this plus pi
(``to_driver_command``).

Frames. ``leap_palm`` (a fixed link of ``urdf/leap_hand.urdf``) has the axes of the grasp convention
of ``robots.gripper``: +z out of the palm face (the approach direction), +y from the thumb towards
the fingers (the closing direction); its origin is 0.01 m in front of the palm. The grasp TCP is
``leap_palm`` moved by ``T_PALM_TCP`` (``tcp.T_parent_tcp`` of the LEAP embodiment files): into the
plane of the middle finger, which the thumb opposes, midway between thumb and middle-finger pads
when open, and 0.065 m out of the palm, so that the digits reach no further than 0.05 m past the TCP
along +z — the Franka Hand's finger depth. A parallel-gripper grasp (object centred on the TCP,
between the finger roots and 0.05 m ahead) then maps onto a thumb-versus-fingers grasp by putting
the TCP on the grasp frame: the thumb pad and the finger pads face each other along ±y, 0.01-0.03 m
ahead of the TCP, open 0.13 m apart, and close past each other (so they squeeze whatever is between).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..geometry import invert
from .gripper import FRANKA_HAND, Box, ParallelGripper

URDF_PATH = Path(__file__).parent / "urdf" / "leap_hand.urdf"
BASE_LINK = "palm_lower"
PALM_LINK = "leap_palm"
TIP_LINKS = ("index_tip", "middle_tip", "ring_tip", "thumb_tip")
JOINT_NAMES = tuple(str(i) for i in range(16))
DRIVER_OFFSET_RAD = np.pi  # /cmd_leap: 180 deg = flat

LOWER_RAD = np.array([-1.047, -0.314, -0.506, -0.366] * 3 + [-0.349, -0.47, -1.20, -1.34])
UPPER_RAD = np.array([1.047, 2.23, 1.885, 2.042] * 3 + [2.094, 2.443, 1.90, 1.88])

# Open: finger pads upright facing -y at y = +0.05, the thumb pad facing them at y = -0.08 (palm frame).
OPEN_Q = np.array([0.0, 0.93, 0.0, 0.62] * 3 + [1.93, 0.0, -0.78, 0.95])
# Closed: finger and thumb pads crossed (y = -0.04 and -0.01), a target an object stops them short
# of, so they squeeze it (with at most the motors' 0.95 N m). Linear blends of the two keep the pads
# facing each other 0.08-0.095 m out of the palm.
CLOSED_Q = np.array([0.0, 1.86, 0.0, 0.0] * 3 + [1.92, 0.0, 1.07, -0.86])
# leap_palm -> grasp TCP (see the module docstring); the LEAP embodiment files' tcp.T_parent_tcp.
T_PALM_TCP = np.array([
    [1.0, 0.0, 0.0, -0.017],
    [0.0, 1.0, 0.0, -0.015],
    [0.0, 0.0, 1.0, 0.065],
    [0.0, 0.0, 0.0, 1.0],
])
# What the parallel-grasp planners plan with for a LEAP hand: Franka-Hand fingers (the grasp models
# are parallel-jaw models) with the open LEAP hand's palm and knuckles behind them, as a box in the
# TCP frame, so grasps that would push the palm into the scene are filtered. The free-floating hand
# simulation executes them with the Franka Hand URDF.
PARALLEL_PROXY = ParallelGripper(
    name="leap_parallel_proxy",
    max_opening_m=FRANKA_HAND.max_opening_m,
    finger_depth_m=FRANKA_HAND.finger_depth_m,
    finger_width_m=FRANKA_HAND.finger_width_m,
    finger_thickness_m=FRANKA_HAND.finger_thickness_m,
    finger_root_z_m=FRANKA_HAND.finger_root_z_m,
    palm=Box((0.004, 0.011, -0.080), (0.067, 0.083, 0.044)),
    urdf_path=FRANKA_HAND.urdf_path,
)
# Pre-shape this much wider than the grasp width so the fingers clear the object on approach.
APERTURE_MARGIN_M = 0.02


def _check_q(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    if q.shape[-1:] != (16,):
        raise ValueError(f"LEAP hand postures have 16 joints, got shape {q.shape}")
    return q


def to_driver_command(q: np.ndarray) -> np.ndarray:
    """URDF joint positions -> the LEAP driver's ``/cmd_leap`` convention."""
    return _check_q(q) + DRIVER_OFFSET_RAD


def from_driver_state(q_driver: np.ndarray) -> np.ndarray:
    """The LEAP driver's joint positions -> URDF convention."""
    return np.asarray(q_driver, dtype=float) - DRIVER_OFFSET_RAD


def posture(alpha: float) -> np.ndarray:
    """Joint-space blend from closed (0) to open (1)."""
    a = float(np.clip(alpha, 0.0, 1.0))
    return (1.0 - a) * CLOSED_Q + a * OPEN_Q


def aperture_m(q: np.ndarray) -> float:
    """The hand's opening: thumb pad to middle-finger pad along the closing axis (negative once crossed)."""
    tips = tip_positions(q[None])[0]
    return float(tips[1, 1] - tips[3, 1])


def posture_for_width(width_m: float) -> np.ndarray:
    """The blend whose aperture is ``width_m`` + the margin (fully open when wider than the hand)."""
    if not np.isfinite(width_m) or width_m < 0.0:
        raise ValueError(f"grasp width must be a finite non-negative number of metres, got {width_m}")
    alphas, apertures = _aperture_table()
    return posture(float(np.interp(width_m + APERTURE_MARGIN_M, apertures, alphas)))


def retarget_parallel_grasp(T_workspace_grasp: np.ndarray,
                            width_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put the LEAP TCP on a parallel-gripper grasp frame, pre-shape to its width, close past contact.

    Returns ``(T_workspace_palm, q_open, q_closed)``: the ``leap_palm`` pose and the two postures.
    """
    T = np.asarray(T_workspace_grasp, dtype=float)
    if T.shape != (4, 4) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ValueError(f"T_workspace_grasp must be a 4x4 homogeneous transform, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError("T_workspace_grasp's rotation is not a proper rotation matrix")
    return T @ invert(T_PALM_TCP), posture_for_width(width_m), CLOSED_Q.copy()


def adducted(q: np.ndarray, adduction_rad: float) -> np.ndarray:
    """``q`` with index and ring turned ``adduction_rad`` towards the middle finger (their MCP side
    joints), within the joint limits: three fingers oppose the thumb rather than one."""
    q = _check_q(q).copy()
    q[0] += adduction_rad  # index towards the middle finger
    q[8] -= adduction_rad  # ring towards the middle finger
    return np.clip(q, LOWER_RAD, UPPER_RAD)


# Where the executors drive a dexterous grasp's digits, from its pre-grasp posture, effort-limited: the
# closed hand with index and ring adducted, so the digits stop on the object (near the grasp's predicted
# contact posture, ``Grasp.grasp_joints``) and press with the motors' full torque. The LEAP training
# grasps were lift-tested closing this way (``training.leap_data``); closing only a little past the
# predicted contact posture held far less often in the benchmark (models/leap/MODEL_CARD.md).
DEXTEROUS_ADDUCTION_RAD = 0.3
DEXTEROUS_CLOSED_Q = adducted(CLOSED_Q, DEXTEROUS_ADDUCTION_RAD)


def tip_positions(q: np.ndarray) -> np.ndarray:
    """(n, 4, 3) pad points of index, middle, ring, thumb in the ``leap_palm`` frame, for (n, 16) q."""
    T_palm_link = link_poses_in_palm(q, TIP_LINKS)
    return np.stack([T_palm_link[tip][:, :3, 3] for tip in TIP_LINKS], axis=1)


def digit_points(q: np.ndarray) -> np.ndarray:
    """(n, P, 3) points on the digits' collision boxes (a 3x3x3 lattice over the box of every finger and
    thumb link in the URDF) in the ``leap_palm`` frame, for (n, 16) q: where a posture puts the digits,
    for cheap collision checks of dexterous grasps against the table and the scene."""
    boxes = _digit_box_points()
    T_palm_link = link_poses_in_palm(q, tuple(boxes))
    # A broadcast matmul (batched BLAS): several times faster than the equivalent einsum here.
    return np.concatenate([local @ T_palm_link[link][:, :3, :3].transpose(0, 2, 1)
                           + T_palm_link[link][:, None, :3, 3] for link, local in boxes.items()], axis=1)


def link_poses_in_palm(q: np.ndarray, links: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{link: (n, 4, 4) T_palm_link}`` for (n, 16) q (forward kinematics of the hand URDF)."""
    import torch

    q = torch.as_tensor(np.atleast_2d(np.asarray(q, dtype=float)))
    return {link: T.numpy() for link, T in link_poses_in_palm_torch(q, links).items()}


def link_poses_in_palm_torch(q, links: tuple[str, ...]) -> dict:
    """``link_poses_in_palm`` on an (n, 16) float64 tensor, differentiable in q (for pose optimisation)."""
    import torch

    chain, order = _chain()
    fk = chain.forward_kinematics(q[:, order])
    T_palm_base = torch.linalg.inv(fk[PALM_LINK].get_matrix())
    return {link: T_palm_base @ fk[link].get_matrix() for link in links}


@lru_cache(maxsize=1)
def _digit_box_points() -> dict[str, np.ndarray]:
    """Per digit link, a 3x3x3 lattice over its collision box, in the link frame."""
    import xml.etree.ElementTree as ET

    lattice = np.stack(np.meshgrid(*[np.array([-1.0, 0.0, 1.0])] * 3, indexing="ij"), -1).reshape(-1, 3)
    boxes = {}
    for link in ET.parse(URDF_PATH).getroot().iter("link"):
        box = link.find("collision/geometry/box")
        if box is None or link.get("name") in (BASE_LINK, PALM_LINK):
            continue
        origin = link.find("collision/origin")
        centre = np.array([float(v) for v in origin.get("xyz", "0 0 0").split()]) if origin is not None else np.zeros(3)
        boxes[link.get("name")] = centre + lattice * 0.5 * np.array([float(v) for v in box.get("size").split()])
    return boxes


@lru_cache(maxsize=1)
def _chain():
    import pytorch_kinematics as pk
    import torch

    chain = pk.build_chain_from_urdf(URDF_PATH.read_bytes()).to(dtype=torch.float64)
    order = [JOINT_NAMES.index(name) for name in chain.get_joint_parameter_names()]
    return chain, order


@lru_cache(maxsize=1)
def _aperture_table() -> tuple[np.ndarray, np.ndarray]:
    alphas = np.linspace(0.0, 1.0, 41)
    tips = tip_positions(np.stack([posture(a) for a in alphas]))
    apertures = tips[:, 1, 1] - tips[:, 3, 1]
    if np.any(np.diff(apertures) <= 0):
        raise RuntimeError("LEAP aperture does not grow monotonically from CLOSED_Q to OPEN_Q")
    return alphas, apertures
