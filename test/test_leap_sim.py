"""The free-floating simulated LEAP hand, the LEAP executor path, and LEAP grasp data generation."""
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import top_down_grasp
from diffgrasp_ros.execution import SimHandExecutor
from diffgrasp_ros.geometry import quaternion_xyzw
from diffgrasp_ros.grasping.grasp import Grasp, PlanResult
from diffgrasp_ros.robots import get_robot, leap
from diffgrasp_ros.sim.hand import SimulatedHand
from diffgrasp_ros.sim.leap_hand import SimulatedLeapHand
from diffgrasp_ros.sim.world import ClutterWorld

BOX_TOP_M = 0.11  # box_world's 6 cm box on the 5 cm table


def _box_grasp(yaw=0.0, width=0.04, depth=0.015):
    """Top-down on the lone box, closing across its 4 cm side, the TCP ``depth`` below its top."""
    return leap.retarget_parallel_grasp(top_down_grasp(0.15, 0.15, BOX_TOP_M - depth, yaw), width)


def test_leap_hand_holds_a_lone_box(box_world):
    body = box_world.object_ids[0]
    T_palm, q_open, q_closed = _box_grasp()
    outcome = SimulatedLeapHand(box_world, friction=1.0).execute(T_palm, q_open, q_closed)
    assert outcome.success, outcome.reason
    assert outcome.object_id == body and box_world.num_objects == 1  # not removed unless asked
    assert 0.08 < outcome.rise_m < 0.11
    assert "thumb" in outcome.digits and "middle" in outcome.digits
    q = outcome.q_contact
    assert q.shape == (16,) and np.all(q >= leap.LOWER_RAD - 0.05) and np.all(q <= leap.UPPER_RAD + 0.05)
    # The box stopped the middle finger and the thumb short of the closed posture they were driven to...
    assert q[5] < leap.CLOSED_Q[5] - 0.2 and abs(q[14] - leap.CLOSED_Q[14]) > 0.2
    # ...and the thumb closed from the open pre-shape onto it.
    assert q[14] > q_open[14] + 0.5
    assert np.allclose(outcome.T_palm_contact[:3, :3], T_palm[:3, :3], atol=1e-9)
    assert box_world.p.getNumBodies() == 2  # the hand was removed (table + box)


def test_leap_hand_is_deterministic(box_objects):
    outcomes = []
    for _ in range(2):  # the same world state twice
        with ClutterWorld(box_objects) as world:
            world.add_object(box_objects[0], (0.15, 0.15, 0.081), Rotation.identity(), 1.0)
            world.wait_for_objects_to_rest()
            outcomes.append(SimulatedLeapHand(world, friction=0.2).execute(*_box_grasp(yaw=0.3)))
    first, second = outcomes
    assert first.reason == second.reason and np.array_equal(first.q_contact, second.q_contact)


def test_leap_grasp_in_empty_air_fails_clearly(box_world):
    T_palm, q_open, q_closed = leap.retarget_parallel_grasp(top_down_grasp(0.05, 0.05, 0.12), 0.04)
    outcome = SimulatedLeapHand(box_world).execute(T_palm, q_open, q_closed)
    assert not outcome.success and outcome.reason == "nothing touched after closing"
    assert outcome.q_contact is not None and np.abs(outcome.q_contact - q_closed).max() < 0.05  # closed fully
    assert box_world.num_objects == 1


def test_leap_hand_starting_inside_the_box_collides_at_pre_grasp(box_world):
    # The palm 3 cm above the table: the pre-grasp (5 cm back) still has the digits inside the box.
    T_palm, q_open, q_closed = leap.retarget_parallel_grasp(top_down_grasp(0.15, 0.15, 0.03), 0.04)
    contact = SimulatedLeapHand(box_world).close_to_contact(T_palm, q_open, q_closed)
    assert not contact.ok and contact.reason == "collision at pre-grasp" and contact.q_contact is None


def test_close_to_contact_alone_reports_the_touching_digits(box_world):
    contact = SimulatedLeapHand(box_world).close_to_contact(*_box_grasp())
    assert contact.ok and contact.object_id == box_world.object_ids[0]
    assert "thumb" in contact.digits and contact.q_contact.shape == (16,)


def test_strict_friction_is_harder_than_friction_one(box_world):
    """Pads on the box's top edge, closing across its 5 cm side: the weak motors hold it at friction 1 but
    not at 0.2."""
    rest = box_world.p.getBasePositionAndOrientation(box_world.object_ids[0])
    results = {}
    for friction in (1.0, 0.2):
        box_world.p.resetBasePositionAndOrientation(box_world.object_ids[0], *rest)
        box_world.p.resetBaseVelocity(box_world.object_ids[0], (0, 0, 0), (0, 0, 0))
        results[friction] = SimulatedLeapHand(box_world, friction=friction).execute(
            *_box_grasp(yaw=np.pi / 2, depth=0.0)).success
    assert results == {1.0: True, 0.2: False}


# -- executor ---------------------------------------------------------------------------------------
def _plan(grasp):
    return PlanResult([grasp], "test")


def test_franka_keeps_the_parallel_hand_and_leap_robots_get_the_leap_hand(box_world):
    assert isinstance(SimHandExecutor(box_world, get_robot("franka")).hand, SimulatedHand)
    assert isinstance(SimHandExecutor(box_world, get_robot("xarm_leap")).hand, SimulatedLeapHand)


def test_benchmark_executor_takes_the_leap_friction(box_world):
    from diffgrasp_ros.execution import make_sim_executor

    assert make_sim_executor("hand", box_world, get_robot("ur5_leap"), leap_friction=0.2).hand.friction == 0.2
    with pytest.raises(ValueError, match="has no LEAP hand"):
        make_sim_executor("hand", box_world, get_robot("franka"), leap_friction=0.2)


def test_leap_executor_retargets_a_parallel_grasp_and_removes_the_held_box(box_world):
    grasp = Grasp(top_down_grasp(0.15, 0.15, BOX_TOP_M - 0.015), 0.04, 0.9, "test")
    report = SimHandExecutor(box_world, get_robot("ur5_leap")).execute(_plan(grasp))
    assert report.success, report.message
    assert box_world.num_objects == 0  # removed, as the parallel hand's benchmark path does


def test_leap_executor_closes_a_dexterous_grasp_from_its_own_pre_grasp_posture(box_world):
    T_palm, q_open, q_closed = _box_grasp()
    rest = box_world.p.getBasePositionAndOrientation(box_world.object_ids[0])
    contact = SimulatedLeapHand(box_world, friction=1.0).close_to_contact(T_palm, q_open, q_closed)
    T_grasp = contact.T_palm_contact @ leap.T_PALM_TCP

    def reset():
        box_world.p.resetBasePositionAndOrientation(box_world.object_ids[0], *rest)
        box_world.p.resetBaseVelocity(box_world.object_ids[0], (0, 0, 0), (0, 0, 0))

    executor = SimHandExecutor(box_world, get_robot("xarm_leap"))
    # A pre-grasp posture already closed: the digits start inside the box.
    reset()
    closed = Grasp(T_grasp, 0.04, 0.9, "test", pregrasp_joints=leap.CLOSED_Q, grasp_joints=contact.q_contact)
    failed = executor.execute(_plan(closed))
    assert not failed.success and "collision at pre-grasp" in failed.message and box_world.num_objects == 1
    # Its own open pre-grasp posture, closed towards DEXTEROUS_CLOSED_Q: held and removed.
    reset()
    dexterous = Grasp(T_grasp, 0.04, 0.9, "test", pregrasp_joints=q_open, grasp_joints=contact.q_contact)
    report = executor.execute(_plan(dexterous))
    assert report.success, report.message
    assert box_world.num_objects == 0


def test_leap_executor_approach_goes_past_a_pose_short_of_the_object_until_contact(box_world):
    """A grasp planned 1.5 cm short of the box: the guarded approach carries on until the hand touches
    it (at most ``LEAP_GUARDED_APPROACH_M`` past the pose) and the grasp holds."""
    from diffgrasp_ros.execution.sim_executor import LEAP_GUARDED_APPROACH_M

    T_palm, q_open, q_closed = _box_grasp()
    contact = SimulatedLeapHand(box_world, friction=1.0).close_to_contact(T_palm, q_open, q_closed)
    T_short = contact.T_palm_contact.copy()
    T_short[:3, 3] -= 0.015 * T_short[:3, 2]
    grasp = Grasp(T_short @ leap.T_PALM_TCP, 0.04, 0.9, "test", pregrasp_joints=q_open,
                  grasp_joints=contact.q_contact)
    report = SimHandExecutor(box_world, get_robot("xarm_leap")).execute(_plan(grasp))
    assert report.success, report.message
    travelled = (report.outcome.T_palm_contact[:3, 3] - T_short[:3, 3]) @ T_short[:3, 2]
    assert 0.005 < travelled <= LEAP_GUARDED_APPROACH_M + 1e-6

# -- data generation --------------------------------------------------------------------------------
@pytest.fixture()
def one_scene_dataset(tmp_path, box_objects):
    """A gripper dataset of one scene (the lone box) with 2 positive and 2 negative gripper grasps."""
    from diffgrasp_ros.training.dataset import DatasetChunk, GraspRecords, write_chunk

    root = box_objects[0].path.parent
    with ClutterWorld(box_objects) as world:
        world.add_object(box_objects[0], (0.15, 0.15, 0.081), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        scene = world.describe("packed", 7, root)
    poses = [top_down_grasp(0.15, 0.15, BOX_TOP_M - 0.015, 0.0), top_down_grasp(0.15, 0.15, BOX_TOP_M - 0.01, 0.05),
             top_down_grasp(0.05, 0.05, 0.12), top_down_grasp(0.25, 0.06, 0.12)]
    grasps = GraspRecords(np.zeros(4, np.int32), np.array([T[:3, 3] for T in poses], np.float32),
                          np.array([quaternion_xyzw(T) for T in poses], np.float32),
                          np.array([0.04, 0.04, 0.04, 0.04], np.float32), np.array([1, 1, 0, 0], np.int8),
                          np.zeros(4, np.uint8))
    folder = tmp_path / "gripper"
    folder.mkdir()
    write_chunk(folder / "chunk_000003.npz", DatasetChunk(3, "sim", str(root), [scene], grasps))
    return folder


def test_leap_datagen_round_trip(tmp_path, one_scene_dataset, capsys):
    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.training.leap_data import iter_leap_chunks, read_leap_chunk
    from diffgrasp_ros.training.dataset import read_chunk

    out = tmp_path / "leap"
    args = ["leap-datagen", "--data", str(one_scene_dataset), "--out", str(out), "--grasps-per-scene", "4",
            "--friction", "1.0", "--max-scenes", "1"]
    assert main(args) == 0
    assert "grasps/s" in capsys.readouterr().out
    path = out / "leap_chunk_000003.npz"
    assert path.exists() and not list(out.glob("*.tmp*"))
    with np.load(path) as data:
        expected = {"format_version", "chunk_index", "object_root", "friction", "scene_kind", "scene_seed",
                    "scene_object_count", "object_model", "object_scale", "object_position",
                    "object_quaternion_xyzw", "grasp_scene", "palm_position", "palm_quaternion_xyzw",
                    "q_pregrasp", "q_grasp", "label", "source_width", "source_label"}
        assert expected <= set(data.files)
        assert int(data["format_version"]) == 1 and float(data["friction"]) == 1.0
        for name, dtype, shape in (("grasp_scene", np.int32, (4,)), ("palm_position", np.float32, (4, 3)),
                                   ("palm_quaternion_xyzw", np.float32, (4, 4)), ("q_pregrasp", np.float32, (4, 16)),
                                   ("q_grasp", np.float32, (4, 16)), ("label", np.int8, (4,)),
                                   ("source_width", np.float32, (4,)), ("source_label", np.int8, (4,))):
            assert data[name].dtype == dtype and data[name].shape == shape, name
    chunk = read_leap_chunk(path)
    source = read_chunk(one_scene_dataset / "chunk_000003.npz")
    assert chunk.index == 3 and chunk.object_root == source.object_root and chunk.scenes == source.scenes
    g = chunk.grasps
    # Candidates: both positives, a perturbed positive and one negative (an air grasp). The
    # positives hold at friction 1; the air grasp does not.
    assert sorted(g.source_kind.tolist()) == [0, 0, 1, 2]
    assert g.label[g.source_kind == 0].tolist() == [1, 1] and g.label[g.source_kind == 1].tolist() == [0]
    assert g.source_label.tolist() == [int(k != 1) for k in g.source_kind]
    assert np.allclose(g.source_width_m, 0.04)
    assert np.allclose(np.linalg.norm(g.palm_quaternion_xyzw, axis=1), 1.0, atol=1e-5)
    held = g.label == 1
    assert np.all(np.abs(g.q_grasp[held] - g.q_pregrasp[held]).max(axis=1) > 0.3)  # the digits closed
    assert np.all(g.palm_position_m[held, 2] > BOX_TOP_M)  # the palm stopped above the box
    assert [c.index for c in iter_leap_chunks(out)] == [3]
    manifest = json.loads((out / "leap_dataset.json").read_text())
    assert manifest["config"]["friction"] == 1.0 and manifest["runs"][0]["grasps"] == 4
    # Resuming skips the finished chunk.
    mtime = path.stat().st_mtime_ns
    assert main(args) == 0
    assert "wrote 0 chunk(s), skipped 1" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == mtime
