"""Batched IK and grasp reachability for the three embodiments."""
import numpy as np
import pytest

from diffgrasp_ros.execution.reachability import ReachabilityChecker
from diffgrasp_ros.robots.arm import load_arm


@pytest.fixture(scope="module", params=["franka", "xarm_leap", "ur5_leap"])
def checker(request):
    return ReachabilityChecker(load_arm(request.param))


def _angle_deg(A, B):
    cos = (np.einsum("nij,nij->n", A[:, :3, :3], B[:, :3, :3]) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_ik_reproduces_poses_of_random_configurations_within_limits(checker):
    lower, upper = (t.numpy() for t in checker.limits)
    rng = np.random.default_rng(1)
    q = rng.uniform(np.maximum(lower, -3.0), np.minimum(upper, 3.0), (40, len(lower)))
    goals = checker.fk(q)
    result = checker.solve(goals)
    assert result.success.mean() >= 0.9
    reached = checker.fk(result.q[result.success])
    assert np.linalg.norm(reached[:, :3, 3] - goals[result.success, :3, 3], axis=1).max() < 1e-3
    assert _angle_deg(reached, goals[result.success]).max() < 1.0
    assert np.all(result.q >= lower - 1e-9) and np.all(result.q <= upper + 1e-9)


def test_far_away_pose_is_unreachable_and_pregrasp_is_behind_the_grasp(checker):
    T_base_tcp = checker.fk(checker.arm.home_q)[0]
    far = T_base_tcp.copy()
    far[:3, 3] += (2.0, 0.0, 0.0)
    result = checker.check(np.stack([T_base_tcp, far]), pregrasp_offset_m=0.10)
    assert result.reachable.tolist() == [True, False]
    pre = checker.fk(result.q_pregrasp[:1])[0]
    assert np.allclose(pre[:3, 3], T_base_tcp[:3, 3] - 0.10 * T_base_tcp[:3, 2], atol=1e-3)
    with pytest.raises(ValueError, match=r"\(n, 4, 4\)"):
        checker.check(np.eye(3))
