"""Arm + hand assemblies: the kinematic model an executor plans and solves IK with.

``load_arm(name)`` reads ``config/<name>.yaml`` (the embodiment file the ROS nodes also read;
``arm_from_parameters`` takes its parameters as a node holds them) and composes one URDF from the arm
description shipped by example-robot-data, the hand URDF and the hand-arm mount transform, plus the
``diffgrasp_tcp`` link whose frame is the grasp convention of ``robots.gripper`` (+z approach, +y
closing; for the LEAP hand ``leap.T_PALM_TCP`` from its palm frame). URDF and SRDF are written once
per content into the cache directory, with absolute mesh paths.
"""
from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path

import numpy as np

from ..geometry import invert
from ..share import config_dir
from . import leap
from .registry import HAND_KINDS, robot_names

HAND_URDFS = {"leap_hand": leap.URDF_PATH}
TCP_LINK = "diffgrasp_tcp"


@dataclass(frozen=True)
class ArmModel:
    name: str  # "franka" | "xarm_leap" | "ur5_leap"
    urdf_path: Path  # combined arm + hand URDF, absolute mesh paths
    srdf_path: Path
    base_link: str
    ee_link: str  # arm flange link
    tcp_link: str  # frame = grasp convention: +z approach, +y closing
    arm_joint_names: tuple[str, ...]
    hand_joint_names: tuple[str, ...]
    home_q: np.ndarray  # arm joints (rad): a ready pose above the workspace
    T_workspace_base: np.ndarray  # robot base pose in the workspace frame
    planning_group: str
    arm_controller: str
    hand_controller: str  # controller name, or the hand command topic for LEAP
    hand_open_q: np.ndarray
    hand_closed_q: np.ndarray
    hand_kind: str = "parallel"  # "parallel" | "leap"

    @property
    def T_base_workspace(self) -> np.ndarray:
        return invert(self.T_workspace_base)


def load_arm(name: str, config_dir: Path | None = None) -> ArmModel:
    """The assembly described by ``<config_dir>/<name>.yaml`` (default: the package's config/)."""
    if name not in robot_names():
        raise ValueError(f"unknown robot {name!r}: choose one of {robot_names()}")
    path = Path(config_dir or default_config_dir()) / f"{name}.yaml"
    return _load(path.resolve(), path.stat().st_mtime_ns if path.exists() else 0)


def embodiment_parameters(path: Path) -> dict:
    """The ``ros__parameters`` of an embodiment file, with a clear error when it is not one."""
    import yaml

    if not path.exists():
        raise FileNotFoundError(f"embodiment file {path} not found")
    try:
        return yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} is not an embodiment file: expected '/**: ros__parameters:'") from error


def embodiment_parameter_defaults(config_dir: Path | None = None) -> dict[str, object]:
    """Dotted ROS parameter names -> values of the kinematic keys every embodiment file carries
    (those of franka.yaml; ``robot`` and ``planning_group`` excluded), for nodes to declare."""
    params = embodiment_parameters(Path(config_dir or default_config_dir()) / "franka.yaml")

    def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    return {k: v for k, v in flatten(params).items() if k not in ("robot", "planning_group")}


def default_config_dir() -> Path:
    """The checkout's config/ or the installed share/diffgrasp/config (``share.py``)."""
    return config_dir()


def robot_descriptions_dir() -> Path:
    """example-robot-data's ``robots/`` folder (installed by the pinned ``example-robot-data`` wheel)."""
    from importlib import metadata

    try:
        files = metadata.files("example-robot-data") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        parts = Path(str(f)).parts
        for i in range(len(parts) - 1):
            if parts[i:i + 2] == ("example-robot-data", "robots"):
                robots = Path(str(f.locate())).resolve().parents[len(parts) - i - 3]
                if robots.is_dir():
                    return robots
    raise FileNotFoundError("example-robot-data is not installed (pip install example-robot-data==6.0.0, "
                            "see requirements.txt): the arm descriptions come from it")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "diffgrasp" / "robots"


def matrix(values, what: str) -> np.ndarray:
    T = np.asarray(values, dtype=float)
    if T.size != 16:
        raise ValueError(f"{what} must have 16 values (a row-major 4x4 transform), got {T.size}")
    T = T.reshape(4, 4)
    R = T[:3, :3]
    if not np.allclose(T[3], [0, 0, 0, 1]) or not np.allclose(R.T @ R, np.eye(3), atol=1e-6) \
            or np.linalg.det(R) < 0:
        raise ValueError(f"{what} is not a rigid transform")
    return T


@lru_cache(maxsize=None)
def _load(path: Path, _mtime_ns: int) -> ArmModel:
    return arm_from_parameters(embodiment_parameters(path), str(path))


def arm_from_parameters(p: dict, source: str = "embodiment parameters") -> ArmModel:
    """The assembly described by the nested ``ros__parameters`` of an embodiment file, e.g. as a node
    holds them (with its overrides); ``source`` names them in error messages."""
    try:
        arm, hand, tcp = p["arm"], p["hand"], p["tcp"]
        if hand["kind"] not in HAND_KINDS:
            raise ValueError(f"{source}: hand.kind must be one of {HAND_KINDS}, got {hand['kind']!r}")
        joints = tuple(arm["joint_names"])
        hand_joints = tuple(hand["joint_names"])
        home_q = np.asarray(arm["home_q"], dtype=float)
        open_q, closed_q = (np.asarray(hand[k], dtype=float) for k in ("open_q", "closed_q"))
        if home_q.shape != (len(joints),):
            raise ValueError(f"{source}: arm.home_q has {home_q.size} values for {len(joints)} joints")
        for key, q in (("open_q", open_q), ("closed_q", closed_q)):
            if q.shape != (len(hand_joints),):
                raise ValueError(f"{source}: hand.{key} has {q.size} values for {len(hand_joints)} joints")
        urdf = _compose_urdf(p["robot"], arm, hand, tcp, source)
        srdf = _compose_srdf(urdf, p["planning_group"], arm["base_link"], hand_joints)
        model = ArmModel(
            name=p["robot"], urdf_path=_write(urdf, p["robot"], "urdf"), srdf_path=_write(srdf, p["robot"], "srdf"),
            base_link=arm["base_link"], ee_link=arm["flange_link"], tcp_link=TCP_LINK,
            arm_joint_names=joints, hand_joint_names=hand_joints, home_q=home_q,
            T_workspace_base=matrix(p["T_workspace_base"], f"{source}: T_workspace_base"),
            planning_group=p["planning_group"], arm_controller=arm["controller"],
            hand_controller=hand["controller"], hand_open_q=open_q, hand_closed_q=closed_q,
            hand_kind=hand["kind"],
        )
    except KeyError as error:
        raise ValueError(f"{source}: embodiment parameter {error} is missing") from error
    for array in (model.home_q, model.T_workspace_base, model.hand_open_q, model.hand_closed_q):
        array.flags.writeable = False  # models are shared (load_arm caches them)
    return model


def _origin(parent: ET.Element, T: np.ndarray) -> None:
    from scipy.spatial.transform import Rotation

    rpy = Rotation.from_matrix(T[:3, :3]).as_euler("xyz")
    ET.SubElement(parent, "origin", xyz=" ".join(f"{v:.9g}" for v in T[:3, 3]),
                  rpy=" ".join(f"{v:.12g}" for v in rpy))


def _fixed_joint(robot: ET.Element, name: str, parent: str, child: str, T: np.ndarray) -> None:
    joint = ET.SubElement(robot, "joint", name=name, type="fixed")
    ET.SubElement(joint, "parent", link=parent)
    ET.SubElement(joint, "child", link=child)
    _origin(joint, T)


def _compose_urdf(name: str, arm: dict, hand: dict, tcp: dict, source: str) -> str:
    descriptions = robot_descriptions_dir()
    arm_path = descriptions / arm["description"]
    if not arm_path.exists():
        raise FileNotFoundError(f"{source}: arm.description {arm['description']!r} is not in {descriptions}")
    robot = ET.parse(arm_path).getroot()
    # Root the tree at the arm's base: the base placement comes from T_workspace_base.
    for joint in robot.findall("joint"):
        if joint.find("child").get("link") == arm["base_link"]:
            robot.remove(joint)
            parent = joint.find("parent").get("link")
            for link in robot.findall("link"):
                if link.get("name") == parent and not any(
                        j.find("parent").get("link") == parent for j in robot.findall("joint")):
                    robot.remove(link)
    for mesh in robot.iter("mesh"):
        filename = mesh.get("filename")
        if filename.startswith("package://example-robot-data/robots/"):
            mesh.set("filename", str(descriptions / filename.removeprefix("package://example-robot-data/robots/")))
    if hand["description"]:
        if hand["description"] not in HAND_URDFS:
            raise ValueError(f"{source}: hand.description must be '' (part of the arm description) or one of "
                             f"{sorted(HAND_URDFS)}, got {hand['description']!r}")
        hand_robot = ET.parse(HAND_URDFS[hand["description"]]).getroot()
        hand_root = _root_link(hand_robot)
        for element in hand_robot:
            robot.append(element)
        _fixed_joint(robot, "hand_mount_joint", hand["mount_link"], hand_root,
                     matrix(hand["T_flange_hand"], f"{source}: hand.T_flange_hand"))
    ET.SubElement(robot, "link", name=TCP_LINK)
    _fixed_joint(robot, f"{TCP_LINK}_joint", tcp["parent_link"], TCP_LINK,
                 matrix(tcp["T_parent_tcp"], f"{source}: tcp.T_parent_tcp"))
    _add_frame_inertials(robot, arm["base_link"])
    links = {link.get("name") for link in robot.findall("link")}
    for joint in robot.findall("joint"):
        for end in ("parent", "child"):
            if joint.find(end).get("link") not in links:
                raise ValueError(f"{source}: joint {joint.get('name')!r} refers to unknown link "
                                 f"{joint.find(end).get('link')!r}")
    for joint_name in (*arm["joint_names"], *hand["joint_names"]):
        if not any(j.get("name") == joint_name for j in robot.findall("joint")):
            raise ValueError(f"{source}: joint {joint_name!r} is not in the composed robot")
    robot.set("name", name)
    ET.indent(robot)
    return ET.tostring(robot, encoding="unicode") + "\n"


def _add_frame_inertials(robot: ET.Element, root_link: str) -> None:
    """A 0.1 g inertial on every link without one (frames such as the TCP, flange and pad points):
    simulators give such links 1 kg (PyBullet does), which would hang off the LEAP fingers' 0.95 N m
    motors. The fixed root is left alone (KDL rejects an inertia there)."""
    for link in robot.findall("link"):
        if link.find("inertial") is None and link.get("name") != root_link:
            inertial = ET.SubElement(link, "inertial")
            ET.SubElement(inertial, "mass", value="0.0001")
            ET.SubElement(inertial, "inertia", ixx="1e-9", ixy="0", ixz="0", iyy="1e-9", iyz="0", izz="1e-9")


def _root_link(robot: ET.Element) -> str:
    children = {j.find("child").get("link") for j in robot.findall("joint")}
    roots = [link.get("name") for link in robot.findall("link") if link.get("name") not in children]
    if len(roots) != 1:
        raise ValueError(f"a hand URDF must have one root link, found {roots}")
    return roots[0]


def _compose_srdf(urdf: str, group: str, base_link: str, hand_joints: tuple[str, ...]) -> str:
    """Planning group base -> TCP; collisions off between links that touch by construction.

    Disabled: each link with geometry and its nearest ancestor with geometry (adjacent, through
    geometry-less frames), links two such steps apart (they overlap at the joint between them on
    most arms), and every pair inside the hand (its fingers touch each other by design).
    """
    robot = ET.fromstring(urdf)
    parent = {j.find("child").get("link"): j.find("parent").get("link") for j in robot.findall("joint")}
    solid = {link.get("name") for link in robot.findall("link") if link.find("collision") is not None}

    def solid_ancestor(link: str) -> str | None:
        link = parent.get(link)
        while link is not None and link not in solid:
            link = parent.get(link)
        return link

    pairs: dict[tuple[str, str], str] = {}
    for link in solid:
        up = solid_ancestor(link)
        if up is not None:
            pairs[tuple(sorted((link, up)))] = "Adjacent"
            upper = solid_ancestor(up)
            if upper is not None:
                pairs.setdefault(tuple(sorted((link, upper))), "Adjacent to adjacent")
    hand_joint_set = set(hand_joints)
    hand_links = {j.find("child").get("link") for j in robot.findall("joint") if j.get("name") in hand_joint_set}
    hand_roots = {parent[link] for link in hand_links} - hand_links
    for pair in combinations(sorted((hand_links | hand_roots) & solid), 2):
        pairs.setdefault(pair, "Hand")

    srdf = ET.Element("robot", name=robot.get("name"))
    ET.SubElement(ET.SubElement(srdf, "group", name=group), "chain", base_link=base_link, tip_link=TCP_LINK)
    for (a, b), reason in sorted(pairs.items()):
        ET.SubElement(srdf, "disable_collisions", link1=a, link2=b, reason=reason)
    ET.indent(srdf)
    return ET.tostring(srdf, encoding="unicode") + "\n"


def _write(text: str, name: str, suffix: str) -> Path:
    """Content-addressed, so concurrent writers and stale caches cannot disagree."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{digest}.{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path
