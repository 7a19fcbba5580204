"""The pick sequence: pre-grasp -> straight approach -> close -> lift -> retreat."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...grasping.grasp import Grasp
from ...robots import leap
from ...robots.arm import ArmModel
from ...scene.workspace import STANDARD_WORKSPACE
from .base import MotionPlan, MotionPlanner, MotionStatus, OrientedBox, SceneObstacles

SEGMENTS = ("pregrasp", "approach", "close", "lift", "retreat")


@dataclass(frozen=True)
class PickSettings:
    pregrasp_offset_m: float = 0.10  # pre-grasp: the grasp moved back along -approach
    lift_m: float = 0.10  # straight up (workspace +z) after closing
    close_duration_s: float = 0.6
    transit_timeout_s: float = 1.0  # per free-space segment (RRTConnect)
    straight_timeout_s: float = 0.5  # per straight-line segment
    contact_margin_m: float = 0.01  # grows the region the hand may touch around the grasp
    table_height_m: float = STANDARD_WORKSPACE.table_height_m  # the table is never touchable


@dataclass(frozen=True)
class HandRegion:
    """Where the hand may touch the grasped object, as a box in the TCP frame (centre, half extents)."""

    centre_m: tuple[float, float, float]
    half_extents_m: tuple[float, float, float]


# By ``ArmModel.hand_kind``. Parallel (the Franka Hand): the closing region (0.08 m opening, 0.05 m
# deep fingers) plus the fingers themselves (~0.012 m thick, ~0.02 m wide). LEAP (``leap.T_PALM_TCP``):
# inside the open thumb and finger pads (y = -0.066, +0.066: what is under them stays an obstacle),
# across the three fingers (x = -0.065 .. +0.065), from just behind the TCP to the fingertips' 0.05 m.
HAND_REGIONS = {
    "parallel": HandRegion((0.0, 0.0, 0.023), (0.01, 0.052, 0.027)),
    "leap": HandRegion((0.0, 0.0, 0.02), (0.065, 0.045, 0.035)),
}


def contact_box(arm: ArmModel, T_workspace_tcp: np.ndarray, margin_m: float) -> OrientedBox:
    """The region around the grasped object that the hand is allowed to touch, at a TCP pose."""
    if arm.hand_kind not in HAND_REGIONS:
        raise ValueError(f"no hand contact region for hand kind {arm.hand_kind!r}: known {sorted(HAND_REGIONS)}")
    region = HAND_REGIONS[arm.hand_kind]
    T_box = T_workspace_tcp.copy()
    T_box[:3, 3] = T_workspace_tcp[:3, :3] @ np.asarray(region.centre_m) + T_workspace_tcp[:3, 3]
    return OrientedBox(T_box, np.asarray(region.half_extents_m) + margin_m)


@dataclass
class PickSegment:
    name: str  # one of SEGMENTS
    plan: MotionPlan  # arm joints, or hand joints for "close"
    T_workspace_tcp_goal: np.ndarray | None = None  # where the TCP should end (pose-goal segments)


@dataclass
class PickPlan:
    """The segments planned so far; on failure ``failed_segment`` says where and ``status`` why."""

    grasp: Grasp
    segments: list[PickSegment]
    status: MotionStatus
    message: str
    planning_time_s: float
    lift_m: float
    failed_segment: str | None = None

    @property
    def success(self) -> bool:
        return self.status is MotionStatus.SUCCESS

    def segment(self, name: str) -> PickSegment:
        return next(s for s in self.segments if s.name == name)

    def trajectory(self) -> tuple[MotionPlan, float]:
        """The whole pick as one trajectory of the arm joints then the hand joints, and the time the
        hand starts closing: the hand is open before, the arm holds still while it closes."""
        if not self.success:
            raise ValueError(f"the pick did not plan ({self.message}): there is no trajectory")
        close = self.segment("close").plan
        hand_open, hand_closed = close.positions[0], close.positions[-1]
        rows, times, close_start = [], [], None
        for segment in self.segments:
            t0 = times[-1] if times else 0.0
            if segment.name == "close":
                close_start = t0
                arm_q = rows[-1][: -len(hand_open)]
                pairs = [(np.concatenate([arm_q, q]), t) for q, t in zip(close.positions, close.times_s)]
            else:
                hand = hand_open if close_start is None else hand_closed
                pairs = [(np.concatenate([q, hand]), t) for q, t in zip(segment.plan.positions, segment.plan.times_s)]
            # Each segment starts where the previous one ended: its first point is already there.
            for q, t in pairs[1 if rows else 0:]:
                rows.append(q)
                times.append(t0 + t)
        names = self.segments[0].plan.joint_names + close.joint_names
        motion = MotionPlan(names, np.array(rows), np.array(times), self.planning_time_s, MotionStatus.SUCCESS,
                            "pick")
        return motion, close_start


def pregrasp_pose(T_workspace_grasp: np.ndarray, offset_m: float) -> np.ndarray:
    T = T_workspace_grasp.copy()
    T[:3, 3] -= offset_m * T_workspace_grasp[:3, 2]
    return T


def hand_motion(arm: ArmModel, q_from: np.ndarray, q_to: np.ndarray, duration_s: float) -> MotionPlan:
    return MotionPlan(arm.hand_joint_names, np.vstack([q_from, q_to]).astype(float), np.array([0.0, duration_s]),
                      0.0, MotionStatus.SUCCESS, "hand")


def pick_hand_postures(arm: ArmModel, grasp: Grasp) -> tuple[np.ndarray, np.ndarray]:
    """The hand's open and closing postures for ``grasp``: a dexterous grasp's own pre-grasp posture and
    ``robots.leap.DEXTEROUS_CLOSED_Q`` (effort-limited, the digits stop on the object near the grasp's
    ``grasp_joints``), else the arm's fixed open and closed postures."""
    if not grasp.dexterous:
        return arm.hand_open_q, arm.hand_closed_q
    if arm.hand_kind != "leap" or grasp.grasp_joints.shape != arm.hand_closed_q.shape:
        raise ValueError(f"a dexterous grasp with {grasp.grasp_joints.shape[0]} hand joints cannot be executed "
                         f"by {arm.name}'s {arm.hand_kind} hand ({len(arm.hand_joint_names)} joints)")
    return grasp.pregrasp_joints, leap.DEXTEROUS_CLOSED_Q.copy()


def plan_pick(planner: MotionPlanner, q_start: np.ndarray, grasp: Grasp, points_workspace_m: np.ndarray,
              settings: PickSettings = PickSettings(), q_pregrasp: np.ndarray | None = None) -> PickPlan:
    """Plan the whole pick from ``q_start`` (arm joints) for a grasp in the workspace frame.

    The hand travels open to the pre-grasp against the whole cloud; the approach and the lift ignore
    cloud points the hand may touch (``contact_box``; for the lift, that box swept up the lift); the
    retreat returns to ``arm.home_q``. ``q_pregrasp`` (e.g. the reachability check's IK solution)
    seeds the pre-grasp IK.
    """
    arm = planner.arm
    start = time.perf_counter()
    segments: list[PickSegment] = []
    T_grasp = np.asarray(grasp.T_frame_grasp, dtype=float)
    T_pre = pregrasp_pose(T_grasp, settings.pregrasp_offset_m)
    T_lift = T_grasp.copy()
    T_lift[2, 3] += settings.lift_m
    contact = contact_box(arm, T_grasp, settings.contact_margin_m)
    hand_open, hand_closed = pick_hand_postures(arm, grasp)
    carried = contact.swept_bounds(np.array([0.0, 0.0, settings.lift_m]))

    def done(status: MotionStatus, message: str, failed: str | None = None) -> PickPlan:
        return PickPlan(grasp, segments, status, message, time.perf_counter() - start, settings.lift_m, failed)

    steps = (
        ("pregrasp", (), T_pre,
         lambda q: planner.plan_to_pose(q, T_pre, hand_q=hand_open, timeout_s=settings.transit_timeout_s,
                                        ik_seed=q_pregrasp)),
        ("approach", (contact,), T_grasp,
         lambda q: planner.plan_to_pose(q, T_grasp, hand_q=hand_open, straight=True,
                                        timeout_s=settings.straight_timeout_s)),
        ("lift", (carried,), T_lift,
         lambda q: planner.plan_to_pose(q, T_lift, hand_q=hand_closed, straight=True,
                                        timeout_s=settings.straight_timeout_s)),
        ("retreat", (carried,), None,
         lambda q: planner.plan_to_joints(q, arm.home_q, hand_q=hand_closed,
                                          timeout_s=settings.transit_timeout_s)),
    )
    q = np.asarray(q_start, dtype=float)
    for name, allowed, T_goal, plan_segment in steps:
        if name == "lift":
            segments.append(PickSegment("close", hand_motion(arm, hand_open, hand_closed,
                                                             settings.close_duration_s)))
        planner.set_scene(SceneObstacles(np.asarray(points_workspace_m, dtype=float), allowed,
                                         settings.table_height_m))
        motion = plan_segment(q)
        segments.append(PickSegment(name, motion, T_goal))
        if not motion.success:
            return done(motion.status, f"{name}: {motion.message}", name)
        q = motion.final_positions
    return done(MotionStatus.SUCCESS, "pick planned")
