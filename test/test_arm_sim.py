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
    assert 0.0 < report.planning_time_s < 60.0  # a sanity bound, not a speed target (benchmarks/arm_planning.py)
    assert body not in world.object_ids
    empty = executor.execute(PlanResult([], "test", message="no grasp found"), box_scene_cloud())
    assert not empty.success and "no grasp found" in empty.message


def test_executor_plans_around_the_scene_the_grasps_came_with(arm, world_with_box):
    from diffgrasp_ros.scene.scene import Scene

    world, body = world_with_box
    cloud = box_scene_cloud()
    scene = Scene(np.zeros((40, 40, 40), np.float32), cloud, np.zeros_like(cloud))
    executor = SimArmExecutor(world, arm, "mplib")
    report = executor.execute(PlanResult([top_down_grasp(0.115)], "test", scene=scene))
    assert report.success, report.message
    assert (report.ranked, report.reachable, report.reachable_fraction) == (1, 1, 1.0)
    assert 0.0 < report.reachability_time_s and 0.0 < report.motion_planning_time_s
    assert report.reachability_time_s + report.motion_planning_time_s == pytest.approx(report.planning_time_s)
    assert report.duration_s > report.planning_time_s  # the simulated pick comes on top
    with pytest.raises(ValueError, match="no collision geometry"):
        executor.execute(PlanResult([top_down_grasp(0.115)], "test"))


@pytest.mark.parametrize("robot", ["ur5_leap", "xarm_leap"])
def test_leap_arms_hold_a_box_and_a_cylinder_between_thumb_and_fingers(robot, box_objects):
    """The parallel-gripper convention on the LEAP hand: the TCP 5 mm above the object's top, the
    thumb and the fingers closing along the grasp's y axis, at two yaws each."""
    from diffgrasp_ros.grasping.grasp import Grasp
    from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR, ObjectModel
    from diffgrasp_ros.sim.pick_scene import perceived_cloud, stand_object, top_down_pose, top_z_m

    arm = load_arm(robot)
    planner = make_motion_planner("mplib", arm)
    box = next(m for m in box_objects if m.name == "box_a")
    cylinder = ObjectModel("cylinder_01", DEFAULT_OBJECTS_DIR / "train" / "cylinder_01.urdf")  # 3.4 x 10 cm
    with ClutterWorld([box, cylinder]) as world:
        sim = SimulatedArm(world, arm)
        for model in (box, cylinder):
            for yaw in (0.0, np.pi / 2):
                world.clear()
                body = stand_object(world, model)
                x, y, _ = world.object_pose(body)[0]
                grasp = Grasp(top_down_pose(x, y, top_z_m(world, body) + 0.005, yaw), 0.04, 1.0, "test")
                pick = plan_pick(planner, sim.q_arm, grasp, perceived_cloud(world, "side"))
                assert pick.success, f"{model.name} at yaw {yaw:.2f}: {pick.message}"
                outcome = sim.execute_pick(pick)
                assert outcome.success, f"{model.name} at yaw {yaw:.2f}: {outcome.reason}"
                assert outcome.object_id == body and 0.09 < outcome.rise_m < 0.12
