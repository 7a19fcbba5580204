"""Batched reachability: can the arm put its TCP on each grasp and on the grasp's pre-grasp?

Inverse kinematics for many poses at once: damped least squares on pytorch-kinematics Jacobians, in
float64, every pose and restart one row of a batch. The first attempt starts at ``arm.home_q``; poses
it does not solve are retried from random configurations around it. Joint limits are enforced by
clamping every step. A pose counts as reached within ``position_tol_m`` and ``rotation_tol_rad``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..robots.arm import ArmModel


@dataclass(frozen=True)
class IKSettings:
    iterations: int = 80
    restarts: int = 6  # random seeds per pose the first attempt missed
    restart_spread_rad: float = 1.2  # half-width of the uniform spread around home_q
    damping: float = 0.03  # lambda in dq = J^T (J J^T + lambda^2 I)^-1 e
    max_step_rad: float = 0.4  # per joint per iteration, keeps DLS from leaping across the workspace
    position_tol_m: float = 5e-4
    rotation_tol_rad: float = float(np.radians(0.5))
    seed: int = 0


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray  # (n, dof) best solution per pose (arm joint order), radians
    success: np.ndarray  # (n,) bool
    position_error_m: np.ndarray  # (n,)
    rotation_error_rad: np.ndarray  # (n,)


@dataclass(frozen=True)
class ReachabilityResult:
    reachable: np.ndarray  # (n,) bool: grasp and pre-grasp both solved
    q_grasp: np.ndarray  # (n, dof)
    q_pregrasp: np.ndarray  # (n, dof), solved from q_grasp so that the approach is a short motion
    grasp: IKResult
    pregrasp: IKResult

    @property
    def fraction(self) -> float:
        return float(self.reachable.mean()) if self.reachable.size else 0.0


class ReachabilityChecker:
    """IK and reachability for one ``ArmModel``; poses are ``T_base_tcp`` (the arm's base link frame)."""

    def __init__(self, arm: ArmModel, settings: IKSettings = IKSettings()):
        self.arm, self.settings = arm, settings

    @cached_property
    def _chain(self):
        import pytorch_kinematics as pk

        # Kinematics only: pytorch-kinematics prints a line for every tag it does not know
        # (transmission, ros2_control, joint dynamics and safety controllers).
        robot = ET.parse(self.arm.urdf_path).getroot()
        for element in [e for e in robot if e.tag not in ("link", "joint")]:
            robot.remove(element)
        for joint in robot.iter("joint"):
            for element in [e for e in joint if e.tag not in ("parent", "child", "origin", "axis", "limit")]:
                joint.remove(element)
        urdf = ET.tostring(robot)
        chain = pk.build_serial_chain_from_urdf(urdf, self.arm.tcp_link, self.arm.base_link).to(dtype=torch.float64)
        names = tuple(chain.get_joint_parameter_names())
        if names != self.arm.arm_joint_names:
            raise ValueError(f"{self.arm.name}: the chain {self.arm.base_link} -> {self.arm.tcp_link} moves "
                             f"{list(names)}, expected the arm joints {list(self.arm.arm_joint_names)}")
        return chain

    @cached_property
    def limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        lower, upper = self._chain.get_joint_limits()
        return torch.tensor(lower, dtype=torch.float64), torch.tensor(upper, dtype=torch.float64)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """(n, 4, 4) ``T_base_tcp`` for (n, dof) arm joint positions."""
        q = torch.tensor(np.atleast_2d(q), dtype=torch.float64)
        return self._chain.forward_kinematics(q).get_matrix().numpy()

    def link_origins(self, q: np.ndarray) -> np.ndarray:
        """(links, 3) origins of the chain's links, base to TCP, in the base frame, for one arm posture (dof,)."""
        frames = self._chain.forward_kinematics(torch.tensor(q[None], dtype=torch.float64), end_only=False)
        return np.stack([frames[name].get_matrix()[0, :3, 3].numpy() for name in self._chain.get_link_names()])

    def solve(self, T_base_tcp: np.ndarray, q_seed: np.ndarray | None = None) -> IKResult:
        """IK for (n, 4, 4) goals; the first attempt starts at ``q_seed`` (n, dof) or ``home_q``."""
        goals = _check_poses(T_base_tcp)
        s, n = self.settings, len(goals)
        lower, upper = self.limits
        home = torch.tensor(self.arm.home_q, dtype=torch.float64)
        seed = home.expand(n, -1).clone() if q_seed is None else torch.tensor(q_seed, dtype=torch.float64)
        if seed.shape != (n, len(home)):
            raise ValueError(f"q_seed must be ({n}, {len(home)}), got {tuple(seed.shape)}")
        goals_t = torch.as_tensor(goals)

        q, pos_err, rot_err = self._dls(goals_t, torch.clamp(seed, lower, upper))
        ok = self._reached(pos_err, rot_err)
        missed = torch.nonzero(~ok).flatten()
        if len(missed) and s.restarts:
            generator = torch.Generator().manual_seed(s.seed)
            noise = (torch.rand(len(missed), s.restarts, len(home), generator=generator, dtype=torch.float64)
                     * 2.0 - 1.0) * s.restart_spread_rad
            seeds = torch.clamp(home + noise, lower, upper).reshape(-1, len(home))
            rq, rpos, rrot = self._dls(goals_t[missed].repeat_interleave(s.restarts, 0), seeds)
            rq, rpos, rrot = (t.reshape(len(missed), s.restarts, *t.shape[1:]) for t in (rq, rpos, rrot))
            # Of the restarts that reached the pose, keep the one nearest home (else the least error).
            rok = self._reached(rpos, rrot)
            cost = torch.where(rok, torch.linalg.norm(rq - home, dim=-1), 1e3 + rpos + rrot)
            best = torch.argmin(cost, dim=1)
            pick = torch.arange(len(missed))
            q[missed], pos_err[missed], rot_err[missed] = rq[pick, best], rpos[pick, best], rrot[pick, best]
            ok[missed] = rok[pick, best]
        return IKResult(q.numpy(), ok.numpy(), pos_err.numpy(), rot_err.numpy())

    def check(self, T_base_tcp_goals: np.ndarray, pregrasp_offset_m: float = 0.10) -> ReachabilityResult:
        """Grasp and pre-grasp (the grasp moved back ``pregrasp_offset_m`` along its -z) IK per goal."""
        if not np.isfinite(pregrasp_offset_m) or pregrasp_offset_m < 0.0:
            raise ValueError(f"pregrasp_offset_m must be a non-negative distance, got {pregrasp_offset_m}")
        goals = _check_poses(T_base_tcp_goals)
        grasp = self.solve(goals)
        pre = goals.copy()
        pre[:, :3, 3] -= pregrasp_offset_m * goals[:, :3, 2]
        pregrasp = self.solve(pre, q_seed=grasp.q)
        return ReachabilityResult(grasp.success & pregrasp.success, grasp.q, pregrasp.q, grasp, pregrasp)

    def _reached(self, pos_err: torch.Tensor, rot_err: torch.Tensor) -> torch.Tensor:
        return (pos_err < self.settings.position_tol_m) & (rot_err < self.settings.rotation_tol_rad)

    def _dls(self, goals: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.settings
        lower, upper = self.limits
        eye = torch.eye(6, dtype=torch.float64)
        active = torch.ones(len(q), dtype=torch.bool)
        pos_err = torch.full((len(q),), torch.inf, dtype=torch.float64)
        rot_err = pos_err.clone()
        for _ in range(s.iterations):
            idx = torch.nonzero(active).flatten()
            if not len(idx):
                break
            J, T = self._chain.jacobian(q[idx], ret_eef_pose=True)
            error = _pose_error(goals[idx], T)
            pos_err[idx] = torch.linalg.norm(error[:, :3], dim=1)
            rot_err[idx] = torch.linalg.norm(error[:, 3:], dim=1)
            done = self._reached(pos_err[idx], rot_err[idx])
            active[idx[done]] = False
            keep = ~done
            J, error, idx = J[keep], error[keep], idx[keep]
            A = J @ J.transpose(1, 2) + (s.damping ** 2) * eye
            dq = (J.transpose(1, 2) @ torch.linalg.solve(A, error.unsqueeze(-1))).squeeze(-1)
            dq = torch.clamp(dq, -s.max_step_rad, s.max_step_rad)
            q[idx] = torch.clamp(q[idx] + dq, lower, upper)
        if active.any():  # errors of the final step
            idx = torch.nonzero(active).flatten()
            error = _pose_error(goals[idx], self._chain.forward_kinematics(q[idx]).get_matrix())
            pos_err[idx] = torch.linalg.norm(error[:, :3], dim=1)
            rot_err[idx] = torch.linalg.norm(error[:, 3:], dim=1)
        return q, pos_err, rot_err


def _pose_error(goal: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """(n, 6): position error and rotation vector of goal * T^-1, both in the base frame."""
    dp = goal[:, :3, 3] - T[:, :3, 3]
    R = goal[:, :3, :3] @ T[:, :3, :3].transpose(1, 2)
    v = 0.5 * torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], dim=1)
    sin = torch.linalg.norm(v, dim=1)
    cos = 0.5 * (R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2] - 1.0)
    angle = torch.atan2(sin, cos)
    # v = sin(angle) * axis, so axis * angle = v * angle / sin (-> v near 0). Exactly pi away v
    # vanishes too: step about x; any rotation gets the next iteration off that singular point.
    scale = torch.where(sin > 1e-9, angle / sin.clamp_min(1e-12), torch.ones_like(sin))
    dr = v * scale.unsqueeze(1)
    dr[(sin < 1e-9) & (cos < 0), 0] = np.pi
    return torch.cat([dp, dr], dim=1)


def _check_poses(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.ndim == 2:
        T = T[None]
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"goal poses must be (n, 4, 4) homogeneous transforms, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("goal poses contain NaN or infinite values")
    return T
