"""The whole arm in PyBullet: planned with mplib, executed with position control, judged like the hand."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from arm_helpers import box_scene_cloud, top_down_grasp
from diffgrasp_ros.execution.arm_executor import SimArmExecutor
from diffgrasp_ros.execution.motion import make_motion_planner, plan_pick
from diffgrasp_ros.grasping.grasp import PlanResult
from diffgrasp_ros.robots.arm import load_arm
from diffgrasp_ros.sim.arm import SimulatedArm
from diffgrasp_ros.sim.world import ClutterWorld


@pytest.fixture(scope="module")
def arm():
    return load_arm("franka")


@pytest.fixture(scope="module")
def planner(arm):
    return make_motion_planner("mplib", arm)


@pytest.fixture()
def world_with_box(box_objects):
    """box_a (4 x 5 x 6 cm) standing at the workspace centre, where ``box_scene_cloud`` has it."""
    model = next(m for m in box_objects if m.name == "box_a")
    with ClutterWorld([model]) as world:
        body = world.add_object(model, (0.15, 0.15, 0.081), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        yield world, body


def test_sim_arm_matches_the_planners_kinematics(arm, planner, world_with_box):
    world, _ = world_with_box
    sim = SimulatedArm(world, arm)
    assert np.allclose(sim.q_arm, arm.home_q, atol=1e-6)
    world.step(120)  # holds its pose against gravity
    assert np.linalg.norm(sim.tcp_pose()[:3, 3] - planner.tcp_pose(arm.home_q, arm.hand_open_q)[:3, 3]) < 2e-3
    assert sim.hand_links and sim.hand_contacts() == []


def test_arm_picks_the_box(arm, planner, world_with_box):
    world, body = world_with_box
    sim = SimulatedArm(world, arm)
    pick = plan_pick(planner, sim.q_arm, top_down_grasp(0.115), box_scene_cloud())
    assert pick.success, pick.message
    start = world.sim_time
    outcome = sim.execute_pick(pick)
    assert outcome.success, outcome.reason
    assert outcome.object_id == body and body not in world.object_ids  # removed, as the hand protocol does
    assert 0.09 < outcome.rise_m < 0.11  # it came up with the 0.10 m lift
    assert outcome.tracking_error_m < 5e-3  # the TCP reached every planned pose
    assert world.sim_time - start >= sum(s.plan.duration_s for s in pick.segments)
    assert np.allclose(sim.q_arm, arm.home_q, atol=1e-3) and np.allclose(sim.q_hand, arm.hand_open_q, atol=1e-3)


def test_closing_on_air_fails(arm, planner, world_with_box):
    world, body = world_with_box
    sim = SimulatedArm(world, arm)
    grasp = top_down_grasp(0.115)
    grasp.T_frame_grasp[:2, 3] = (0.08, 0.22)  # empty table
    pick = plan_pick(planner, sim.q_arm, grasp, box_scene_cloud())
    assert pick.success, pick.message
    outcome = sim.execute_pick(pick)
    assert not outcome.success and outcome.reason == "nothing held after lift"
    assert body in world.object_ids


def test_executor_skips_unreachable_grasps_and_picks(arm, world_with_box):
    world, body = world_with_box
    far = top_down_grasp(0.115)
    far.T_frame_grasp[:3, 3] = (1.2, 0.15, 0.115)  # beyond the Panda's 0.855 m reach
    plan = PlanResult([far, top_down_grasp(0.115)], "test")
    executor = SimArmExecutor(world, arm, "mplib")
    report = executor.execute(plan, box_scene_cloud())
    assert report.success, report.message
    assert report.rank == 1 and report.reachable == 1 and [a.rank for a in report.attempts] == [1]
    assert 0.0 < report.planning_time_s < 10.0
    assert body not in world.object_ids
    empty = executor.execute(PlanResult([], "test", message="no grasp found"), box_scene_cloud())
    assert not empty.success and "no grasp found" in empty.message
