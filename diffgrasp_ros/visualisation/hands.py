"""Hand meshes for the viewer, from the project's own hand URDFs (boxes per link, the geometry the planners
and the simulation use): the Franka Hand at a grasp's opening, the LEAP hand in its posture.

Postures are hand joint positions in the embodiment's ``hand_joint_names`` order (``Grasp.grasp_joints``,
``Embodiment.hand_posture``): for the Franka Hand each finger's travel in metres (half the opening), for
the LEAP hand the 16 joints in radians (URDF convention).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..geometry import invert
from ..grasping.grasp import Grasp
from ..robots import leap
from ..robots.gripper import FRANKA_HAND
from ..robots.registry import get_robot

# The 12 triangles of the unit cube [-0.5, 0.5]^3, outward-facing (counter-clockwise seen from outside).
_CUBE_VERTICES = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
_CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


@dataclass(frozen=True, eq=False)  # hashed by identity: a cache key
class HandModel:
    urdf_path: Path
    urdf_joint_names: tuple[str, ...]  # the URDF joints of the embodiment's hand joints, in that order
    tcp_link: str  # the link the grasp TCP is fixed to
    T_link_tcp: np.ndarray


FRANKA = HandModel(FRANKA_HAND.urdf_path, ("finger_joint_left", "finger_joint_right"), "hand_tcp", np.eye(4))
LEAP = HandModel(leap.URDF_PATH, leap.JOINT_NAMES, leap.PALM_LINK, leap.T_PALM_TCP)


def hand_model(robot: str) -> HandModel:
    return LEAP if get_robot(robot).hand == "leap" else FRANKA


def grasp_posture(robot: str, grasp: Grasp) -> np.ndarray:
    """The posture a grasp is shown in: a dexterous grasp's contact posture, else the pre-shape for its
    width (what the executor opens the hand to before it closes)."""
    if grasp.dexterous:
        return grasp.grasp_joints
    return np.asarray(get_robot(robot).hand_posture(grasp.width_m))


def hand_mesh(hand: HandModel, T_workspace_tcp: np.ndarray, posture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) in the workspace frame, faces (F, 3))``: every link box of the hand in
    ``posture`` with its TCP at ``T_workspace_tcp``."""
    posture = np.asarray(posture, dtype=float)
    if posture.shape != (len(hand.urdf_joint_names),):
        raise ValueError(f"{hand.urdf_path.name}: a posture has {len(hand.urdf_joint_names)} joints, "
                         f"got shape {posture.shape}")
    chain, order = _chain(hand)
    import torch

    frames = chain.forward_kinematics(torch.as_tensor(posture[order][None]))
    T_root = {link: frames[link].get_matrix()[0].numpy() for link in frames}
    T_workspace_root = T_workspace_tcp @ invert(T_root[hand.tcp_link] @ hand.T_link_tcp)
    vertices, faces = [], []
    for link, T_link_box, size in _boxes(hand.urdf_path):
        T = T_workspace_root @ T_root[link] @ T_link_box
        faces.append(_CUBE_FACES + 8 * len(faces))
        vertices.append((_CUBE_VERTICES * size) @ T[:3, :3].T + T[:3, 3])
    return np.concatenate(vertices), np.concatenate(faces)


@lru_cache(maxsize=None)
def _chain(hand: HandModel):
    import pytorch_kinematics as pk
    import torch

    # Kinematics only: pytorch-kinematics prints a line for every tag it does not know (contact, ...).
    robot = ET.parse(hand.urdf_path).getroot()
    for link in robot.iter("link"):
        for element in [e for e in link if e.tag not in ("visual", "collision", "inertial")]:
            link.remove(element)
    chain = pk.build_chain_from_urdf(ET.tostring(robot)).to(dtype=torch.float64)
    order = [hand.urdf_joint_names.index(name) for name in chain.get_joint_parameter_names()]
    return chain, order


@lru_cache(maxsize=None)
def _boxes(urdf_path: Path) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """``(link, T_link_box, size_m)`` of every visual box of a URDF."""
    from scipy.spatial.transform import Rotation

    boxes = []
    for link in ET.parse(urdf_path).getroot().iter("link"):
        for visual in link.iter("visual"):
            box = visual.find("geometry/box")
            if box is None:
                continue
            origin = visual.find("origin")
            xyz, rpy = ((origin.get(key, "0 0 0") if origin is not None else "0 0 0") for key in ("xyz", "rpy"))
            T = np.eye(4)
            T[:3, :3] = Rotation.from_euler("xyz", [float(v) for v in rpy.split()]).as_matrix()
            T[:3, 3] = [float(v) for v in xyz.split()]
            boxes.append((link.get("name"), T, np.array([float(v) for v in box.get("size").split()])))
    return tuple(boxes)
