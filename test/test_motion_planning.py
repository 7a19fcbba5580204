"""Motion planning backends and the pick sequence, planned for real with mplib on a box scene."""
import numpy as np
import pytest

from arm_helpers import TOP_DOWN, box_scene_cloud, top_down_grasp
from diffgrasp_ros.execution.motion import (MOVEIT_ERROR_CODES, MotionStatus, OrientedBox, PickSettings,
                                            SceneObstacles, contact_box, make_motion_planner, plan_pick)
from diffgrasp_ros.execution.motion.moveit_backend import pose_goal_msg, status_from_moveit
from diffgrasp_ros.robots.arm import load_arm

@pytest.fixture(scope="module")
def arm():
    return load_arm("franka")


@pytest.fixture(scope="module")
def planner(arm):
    return make_motion_planner("mplib", arm)


def assert_collision_free(planner, motion, hand_q, obstacles: SceneObstacles):
    planner.set_scene(obstacles)
    # Waypoints and midpoints between them (the controller interpolates linearly).
    q = motion.positions
    for config in np.vstack([q, 0.5 * (q[1:] + q[:-1])]):
        assert planner.collisions(config, hand_q) == []


def test_plan_to_pose_reaches_goal_collision_free(arm, planner):
    cloud = box_scene_cloud()
    planner.set_scene(SceneObstacles(cloud))
    goal = top_down_grasp(0.25).T_frame_grasp
    motion = planner.plan_to_pose(arm.home_q, goal, hand_q=arm.hand_open_q, timeout_s=2.0)
    assert motion.success, motion.message
    assert motion.joint_names == arm.arm_joint_names
    assert np.allclose(motion.positions[0], arm.home_q, atol=1e-6)
    assert np.all(np.diff(motion.times_s) > 0) and motion.planning_time_s < 2.0
    T_end = planner.tcp_pose(motion.final_positions, arm.hand_open_q)
    assert np.linalg.norm(T_end[:3, 3] - goal[:3, 3]) < 2e-3
    assert np.allclose(T_end[:3, :3], goal[:3, :3], atol=5e-3)
    # An independent forward kinematics (pytorch-kinematics, part A's checker) agrees.
    from diffgrasp_ros.execution.reachability import ReachabilityChecker

    T_fk = arm.T_workspace_base @ ReachabilityChecker(arm).fk(motion.final_positions)[0]
    assert np.linalg.norm(T_fk[:3, 3] - goal[:3, 3]) < 2e-3
    assert_collision_free(planner, motion, arm.hand_open_q, SceneObstacles(cloud))


def test_pick_sequence_segments(arm, planner):
    cloud = box_scene_cloud()
    grasp = top_down_grasp(0.115)  # TCP 5 mm above the box top: the fingers reach 4.5 cm down its sides
    pick = plan_pick(planner, arm.home_q, grasp, cloud)
    assert pick.success, pick.message
    assert [s.name for s in pick.segments] == ["pregrasp", "approach", "close", "lift", "retreat"]

    def tcp(motion, hand_q):
        return np.array([planner.tcp_pose(q, hand_q)[:3, 3] for q in motion.positions])

    G = grasp.T_frame_grasp
    pre = tcp(pick.segment("pregrasp").plan, arm.hand_open_q)[-1]
    assert np.allclose(pre, G[:3, 3] - 0.10 * G[:3, 2], atol=2e-3)
    # The approach is a straight line along the approach axis at constant orientation.
    approach = pick.segment("approach").plan
    path = tcp(approach, arm.hand_open_q)
    off_line = path - G[:3, 3] - np.outer((path - G[:3, 3]) @ G[:3, 2], G[:3, 2])
    assert np.abs(off_line).max() < 2e-3 and np.linalg.norm(path[-1] - G[:3, 3]) < 2e-3
    for q in approach.positions:
        assert np.allclose(planner.tcp_pose(q, arm.hand_open_q)[:3, :3], G[:3, :3], atol=5e-3)
    close = pick.segment("close").plan
    assert close.joint_names == arm.hand_joint_names
    assert np.allclose(close.positions[-1], arm.hand_closed_q)
    lift = tcp(pick.segment("lift").plan, arm.hand_closed_q)
    assert np.allclose(lift[-1], G[:3, 3] + [0.0, 0.0, 0.10], atol=2e-3)
    assert np.abs(lift[:, :2] - G[:2, 3]).max() < 2e-3  # straight up
    assert np.allclose(pick.segment("retreat").plan.final_positions, arm.home_q, atol=1e-3)
    # Collision-free against the cloud, less only what the hand may touch (never the table).
    contact = contact_box(arm, G, 0.01)
    assert_collision_free(planner, pick.segment("pregrasp").plan, arm.hand_open_q, SceneObstacles(cloud))
    assert_collision_free(planner, approach, arm.hand_open_q, SceneObstacles(cloud, (contact,), 0.05))


def test_pick_trajectory_joins_the_segments_and_holds_the_arm_while_the_hand_closes(arm, planner):
    pick = plan_pick(planner, arm.home_q, top_down_grasp(0.115), box_scene_cloud())
    assert pick.success, pick.message
    motion, close_start = pick.trajectory()
    n = len(arm.arm_joint_names)
    assert motion.joint_names == arm.arm_joint_names + arm.hand_joint_names
    assert np.all(np.diff(motion.times_s) > 0) and motion.times_s[0] == 0.0
    durations = [s.plan.duration_s for s in pick.segments]
    assert motion.duration_s == pytest.approx(sum(durations))
    assert close_start == pytest.approx(sum(durations[:2]))
    t = motion.times_s
    closing = (t >= close_start - 1e-9) & (t <= close_start + durations[2] + 1e-9)
    assert np.allclose(motion.positions[closing, :n], pick.segment("approach").plan.final_positions)
    assert np.allclose(motion.positions[t < close_start, n:], arm.hand_open_q)
    assert np.allclose(motion.positions[t >= close_start + durations[2], n:], arm.hand_closed_q)
    for name in ("pregrasp", "lift", "retreat"):  # every segment ends on the joined trajectory
        segment = pick.segment(name).plan
        assert any(np.allclose(segment.final_positions, q) for q in motion.positions[:, :n])
    failed = plan_pick(planner, arm.home_q, top_down_grasp(0.115), box_scene_cloud(),
                       PickSettings(transit_timeout_s=1e-6))
    with pytest.raises(ValueError, match="no trajectory"):
        failed.trajectory()


def test_contact_region_drops_object_points_but_not_the_table(arm):
    cloud = box_scene_cloud()
    G = top_down_grasp(0.115).T_frame_grasp
    obstacles = SceneObstacles(cloud, (contact_box(arm, G, 0.01),), table_height_m=0.05)
    kept = obstacles.collision_points()
    dropped = len(cloud) - len(kept)
    assert dropped > 0
    assert np.sum(kept[:, 2] <= 0.0501) == np.sum(cloud[:, 2] <= 0.0501)  # every table point stays
    far = np.abs(cloud[:, 0] - 0.15) > 0.04  # box points beyond the fingers' width stay too
    assert np.all(np.isin(cloud[far].view("f8,f8,f8"), kept.view("f8,f8,f8")))
    box = OrientedBox(np.eye(4), np.ones(3))
    assert box.swept_bounds(np.array([0.0, 0.0, 0.5])).half_extents_m.tolist() == [1.0, 1.0, 1.25]


def test_failures_have_explicit_codes(arm, planner):
    cloud = box_scene_cloud()
    planner.set_scene(SceneObstacles(cloud))
    far = top_down_grasp(0.2).T_frame_grasp
    far[:3, 3] = (2.0, 0.15, 0.2)  # 2.4 m from the base
    assert planner.plan_to_pose(arm.home_q, far, hand_q=arm.hand_open_q).status is MotionStatus.UNREACHABLE
    inside = top_down_grasp(0.08).T_frame_grasp  # the hand inside the box
    motion = planner.plan_to_pose(arm.home_q, inside, hand_q=arm.hand_open_q)
    assert motion.status is MotionStatus.GOAL_IN_COLLISION and not motion.success and len(motion.positions) == 0
    # 3 cm too deep: the palm would have to pass through the box top on the approach.
    pick = plan_pick(planner, arm.home_q, top_down_grasp(0.08), cloud)
    assert pick.status is MotionStatus.NO_COLLISION_FREE_PATH and pick.failed_segment == "approach"
    assert [s.name for s in pick.segments] == ["pregrasp", "approach"] and pick.segments[0].plan.success
    # No time to plan within.
    pick = plan_pick(planner, arm.home_q, top_down_grasp(0.115), cloud, PickSettings(transit_timeout_s=1e-6))
    assert pick.status is MotionStatus.PLANNING_TIMEOUT and pick.failed_segment == "pregrasp"
    # A ceiling of points over the robot's base cuts through the arm where it stands.
    xs = np.linspace(-0.25, 0.25, 101)
    cx, cy = np.meshgrid(xs, xs)
    ceiling = np.c_[cx.ravel() - 0.25, cy.ravel() + 0.15, np.full(cx.size, 0.33)]
    planner.set_scene(SceneObstacles(np.vstack([cloud, ceiling])))
    motion = planner.plan_to_joints(arm.home_q, arm.home_q + 0.1, hand_q=arm.hand_open_q)
    assert motion.status is MotionStatus.START_IN_COLLISION and "scene_cloud" in motion.message
    assert MOVEIT_ERROR_CODES[MotionStatus.UNREACHABLE] == -31
    assert status_from_moveit(-6) is MotionStatus.PLANNING_TIMEOUT


def test_moveit_backend_explains_missing_moveit_py(arm):
    pytest.importorskip("geometry_msgs.msg")
    try:
        import moveit.planning  # noqa: F401
        pytest.skip("moveit_py is installed: the missing-dependency path cannot be exercised")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="moveit_py.*mplib"):
        make_motion_planner("moveit", arm)
    with pytest.raises(ValueError, match="unknown motion planning backend"):
        make_motion_planner("chomp", arm)


def test_moveit_pose_goal_message():
    pytest.importorskip("geometry_msgs.msg")
    T = np.eye(4)
    T[:3, :3] = TOP_DOWN
    T[:3, 3] = (0.5, -0.1, 0.3)
    msg = pose_goal_msg(T, "panda_link0")
    assert msg.header.frame_id == "panda_link0"
    assert (msg.pose.position.x, msg.pose.position.y, msg.pose.position.z) == (0.5, -0.1, 0.3)
    q = np.array([msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w])
    from scipy.spatial.transform import Rotation

    assert np.allclose(Rotation.from_quat(q).as_matrix(), TOP_DOWN, atol=1e-9)


def test_a_dexterous_grasp_brings_its_own_hand_postures_to_the_pick():
    from diffgrasp_ros.execution.motion.pick import pick_hand_postures
    from diffgrasp_ros.grasping import Grasp
    from diffgrasp_ros.robots import leap

    arm = load_arm("ur5_leap")
    plain = Grasp(np.eye(4), 0.05, 0.5, "baseline")
    assert all(np.array_equal(a, b) for a, b in zip(pick_hand_postures(arm, plain),
                                                      (arm.hand_open_q, arm.hand_closed_q)))
    q_pre, q_grasp = leap.posture(0.9), leap.posture(0.5)
    dexterous = Grasp(np.eye(4), 0.05, 0.5, "leap", pregrasp_joints=q_pre, grasp_joints=q_grasp)
    hand_open, hand_closed = pick_hand_postures(arm, dexterous)
    np.testing.assert_array_equal(hand_open, q_pre)
    # Closed from its own pre-shape towards the adducted closed hand, as the training grasps were lift-tested.
    np.testing.assert_array_equal(hand_closed, leap.DEXTEROUS_CLOSED_Q)
    assert np.linalg.norm(hand_closed - q_pre) > np.linalg.norm(q_grasp - q_pre)
    with pytest.raises(ValueError, match="cannot be executed by franka"):
        pick_hand_postures(load_arm("franka"), dexterous)


def test_moveit_execution_status_is_checked(arm, monkeypatch):
    """moveit_py's execute returns an ExecutionStatus (false unless the controllers succeeded): a failed
    one is an error, not a silent success. moveit_py is faked: it is not installable here."""
    import sys
    import types
    from contextlib import nullcontext

    msg = pytest.importorskip("moveit_msgs.msg", reason="the moveit_msgs subset is built by scripts/setup.sh --test")
    from diffgrasp_ros.execution.motion.base import MotionPlan
    from diffgrasp_ros.execution.motion.moveit_backend import MoveItPlanner

    class Status:
        def __init__(self, status):
            self.status = status

        def __bool__(self):
            return self.status == "SUCCEEDED"

    class RobotTrajectory:
        def __init__(self, model):
            pass

        def set_robot_trajectory_msg(self, state, message):
            self.message = message

    class TrajectoryMsg:  # moveit_msgs/RobotTrajectory: not in the GraspPlanning subset built here
        def __init__(self):
            from trajectory_msgs.msg import JointTrajectory

            self.joint_trajectory = JointTrajectory()

    module = types.ModuleType("moveit.core.robot_trajectory")
    module.RobotTrajectory = RobotTrajectory
    for name, value in (("moveit", types.ModuleType("moveit")), ("moveit.core", types.ModuleType("moveit.core")),
                        ("moveit.core.robot_trajectory", module)):
        monkeypatch.setitem(sys.modules, name, value)
    monkeypatch.setattr(msg, "RobotTrajectory", TrajectoryMsg, raising=False)
    planner = MoveItPlanner.__new__(MoveItPlanner)  # without __init__: no MoveItPy to start
    planner.arm = arm
    outcome = {"status": Status("ABORTED")}
    planner.robot = types.SimpleNamespace(
        get_robot_model=lambda: None,
        get_planning_scene_monitor=lambda: types.SimpleNamespace(
            read_only=lambda: nullcontext(types.SimpleNamespace(current_state=None))),
        execute=lambda trajectory, controllers: outcome["status"])
    motion = MotionPlan(arm.arm_joint_names, np.tile(arm.home_q, (2, 1)), np.array([0.0, 1.0]), 0.0,
                        MotionStatus.SUCCESS)
    with pytest.raises(RuntimeError, match="did not execute the arm trajectory.*ABORTED"):
        planner.execute(motion)
    outcome["status"] = Status("SUCCEEDED")
    planner.execute(motion)
    outcome["status"] = None  # an older moveit_py that returns nothing: not taken as success
    with pytest.raises(RuntimeError, match="no execution status"):
        planner.execute(motion)
