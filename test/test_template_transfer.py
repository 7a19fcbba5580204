"""The ``leap:template=FILE`` method (issue 22): the transfer's steps and its refusals, with a tiny untrained
transfer model saved to a temporary folder, and the shipped model on a held-out mug when it is there."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from diffgrasp_ros.grasping import make_planner
from diffgrasp_ros.grasping.leap.templates import load_template, make_template, save_template
from diffgrasp_ros.grasping.leap.transfer.config import TINY, TransferConfig
from diffgrasp_ros.grasping.leap.transfer.model import TransferModel
from diffgrasp_ros.grasping.leap.transfer.pretrained import save_pretrained
from diffgrasp_ros.grasping.leap.transfer.transfer import (DEFAULT_TRANSFER_WEIGHTS, SHIPPED_TEMPLATES,
                                                           align_about_z, observed_frame, template_path)
from diffgrasp_ros.scene.scene import Scene, TargetBox
from diffgrasp_ros.sim.categories import make_instance, write_instance
from diffgrasp_ros.sim.pick_scene import perceived_scene, stand_object
from diffgrasp_ros.sim.world import ClutterWorld
from test_templates import box_grasp


def turn(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_alignment_about_z_recovers_a_turn_and_shift():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(4, 3)) * 0.05
    target = source @ turn(2.1).T + [0.1, -0.2, 0.03]
    T = align_about_z(source, target)
    np.testing.assert_allclose(T[:3, :3], turn(2.1), atol=1e-12)
    np.testing.assert_allclose(source @ T[:3, :3].T + T[:3, 3], target, atol=1e-12)
    # Noise on the targets: the least-squares turn is still near it.
    noisy = target + rng.normal(size=target.shape) * 0.002
    angle = np.arctan2(align_about_z(source, noisy)[1, 0], align_about_z(source, noisy)[0, 0])
    assert abs(angle - 2.1) < 0.1


def test_a_shipped_template_is_named_by_its_file_name():
    assert template_path("mug_handle") == SHIPPED_TEMPLATES / "mug_handle.npz"
    assert load_template(template_path("mug_handle")).category == "mug"
    assert template_path("my/own.npz") == Path("my/own.npz")  # a file stays a file
    with pytest.raises(FileNotFoundError, match="no shipped template 'mug_rim': the shipped ones are .*mug_handle"):
        template_path("mug_rim")


def test_the_observed_frame_sits_on_the_table_under_the_points():
    points = np.array([[0.1, 0.2, 0.05], [0.2, 0.1, 0.09], [0.15, 0.3, 0.02]])
    T = observed_frame(points, 0.01)
    np.testing.assert_allclose(T[:3, 3], [0.15, 0.2, 0.01])
    np.testing.assert_allclose(T[:3, :3], np.eye(3))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("transfer")
    save_pretrained(TransferModel(TransferConfig(**TINY)).eval(), folder)
    return folder


@pytest.fixture(scope="module")
def box_template(tmp_path_factory):
    box = make_instance("box", "train", 0)
    sample = box.sample_surface(512, seed=0)
    T_object_hand, joints = box_grasp(box)
    path = tmp_path_factory.mktemp("templates") / "box_lift.npz"
    save_template(make_template("box", "lift", box.part_names, sample.points_m, sample.normals, sample.parts,
                                T_object_hand, joints, {"source": "test"}), path)
    return path


def standing_scene(category: str, tmp_path, others: int = 0) -> tuple[Scene, TargetBox]:
    """One held-out instance standing on the simulated table (and ``others`` more beside it), side view."""
    models = [write_instance(make_instance(category, "held_out", k), tmp_path / f"{category}{k}")
              for k in range(1 + others)]
    with ClutterWorld(models, seed=0) as world:
        bodies = [stand_object(world, m, xy_m=(0.1 + 0.1 * k, 0.15)) for k, m in enumerate(models)]
        return perceived_scene(world, "side"), TargetBox(*world.p.getAABB(bodies[0]))


def test_bad_requests_get_a_clear_answer_and_the_planner_plans_on(tmp_path, tiny_weights, box_template):
    planner = make_planner(f"leap:template={box_template},transfer_weights={tiny_weights}", "xarm_leap")
    scene, target = standing_scene("box", tmp_path, others=1)
    # Two objects, no target: which one is not guessed.
    result = planner.plan(scene)
    assert not result.found and "2 separate objects" in result.message and "target" in result.message
    # A target of another category.
    result = planner.plan(dataclasses.replace(scene, target=dataclasses.replace(target, category="mug")))
    assert not result.found and "box grasp: it cannot be transferred onto a mug" in result.message
    # Too few observed points on the target: a box around a corner of the object.
    corner = TargetBox(target.lo_m, target.lo_m + 0.012, category="box")
    result = planner.plan(dataclasses.replace(scene, target=corner))
    assert not result.found and "observed points: a transfer needs at least" in result.message
    # The same planner still answers a good request (found or not, with a plan's message).
    result = planner.plan(dataclasses.replace(scene, target=dataclasses.replace(target, category="box")))
    assert result.message
    with pytest.raises(ValueError, match="transfer_hands must be one of fit, sampled, both"):
        make_planner(f"leap:template={box_template},transfer_weights={tiny_weights},transfer_hands=all", "xarm_leap")


def test_a_template_for_another_hand_or_another_task_is_refused(tmp_path, tiny_weights, box_template):
    data = dict(np.load(box_template))
    import json

    meta = json.loads(str(data["meta"]))
    meta["hand"] = "allegro"
    data["meta"] = np.array(json.dumps(meta))
    other_hand = tmp_path / "allegro.npz"
    np.savez(other_hand, **data)
    with pytest.raises(ValueError, match="template is for the 'allegro' hand"):
        make_planner(f"leap:template={other_hand},transfer_weights={tiny_weights}", "xarm_leap")
    meta["hand"], meta["task"] = "leap", "juggle"
    data["meta"] = np.array(json.dumps(meta))
    unknown_task = tmp_path / "juggle.npz"
    np.savez(unknown_task, **data)
    with pytest.raises(ValueError, match="task 'juggle' is not one the transfer model knows"):
        make_planner(f"leap:template={unknown_task},transfer_weights={tiny_weights}", "xarm_leap")
    with pytest.raises(FileNotFoundError, match="template file not found"):
        make_planner(f"leap:template={tmp_path / 'missing.npz'},transfer_weights={tiny_weights}", "xarm_leap")


SHIPPED_TEMPLATE = SHIPPED_TEMPLATES / "hammer_handle.npz"


@pytest.mark.skipif(not (DEFAULT_TRANSFER_WEIGHTS / "weights.pt").exists() or not SHIPPED_TEMPLATE.exists(),
                    reason="no shipped transfer model")
def test_the_shipped_model_puts_a_held_out_hammers_grasp_on_its_handle(tmp_path):
    scene, target = standing_scene("hammer", tmp_path)
    request = dataclasses.replace(scene, target=dataclasses.replace(target, category="hammer"))
    # The fitted hands: the maps put the contacts on the handle, the fit put the links on them, all on the target.
    fitted = make_planner("leap:template=hammer_handle,transfer_hands=fit", "xarm_leap").plan(request)
    assert fitted.found, fitted.message
    best = fitted.best
    assert best.dexterous and "transferred from a hammer template (handle)" in fitted.message
    assert best.info["part_share"] >= 0.5, best.info
    assert best.info["contact_error_m"] < 0.01, best.info
    contacts = np.array(list(best.info["contacts_m"].values()))
    assert len(contacts) >= 2 and target.contains(contacts, 0.005).all()
    # With the model's own hands sampled on the handle (the default): the best closes its fingertips on it too.
    both = make_planner("leap:template=hammer_handle", "xarm_leap").plan(request)
    assert both.found, both.message
    assert both.best.info["part_share"] >= 0.5, both.best.info
    assert target.contains(np.array([both.best.info["seed_m"]]), 0.005).all()
    # A region beside the hammer, with an approach some hands miss (its filter runs first, the region's on the
    # rest): no transferred hand is in the region, and the answer says which filters removed them.
    beside = ":".join(f"{v:.3f}" for v in (*target.lo_m[:2] - 0.1, target.hi_m[2], 0.03))
    outside = make_planner(f"leap:template=hammer_handle,approach=+x,max_angle=90,region={beside}",
                           "xarm_leap").plan(request)
    assert not outside.found and "approach_cone" in outside.message and "in_region" in outside.message, \
        outside.message
    # Sampled hands only: none has a seed there, and the answer says so.
    sampled = make_planner(f"leap:template=hammer_handle,transfer_hands=sampled,region={beside}",
                           "xarm_leap").plan(request)
    assert not sampled.found and "no point the maps put on the handle in the region" in sampled.message, \
        sampled.message


def test_the_grasp_server_reads_the_targets_category_from_its_object_type(tmp_path, tiny_weights, box_template):
    """ROS: ``leap:template=FILE`` in the grasp server's ``method``; the GraspPlanning target's
    ``type.key`` (object_recognition_msgs/ObjectType) is its category, and a template of another category is
    answered PLANNING_FAILED saying so; the server serves on."""
    rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
    pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")
    import ros_helpers  # noqa: F401  (domain id and localhost discovery before rclpy.init)
    from moveit_msgs.msg import MoveItErrorCodes
    from moveit_msgs.srv import GraspPlanning
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from ros_helpers import Spinner, box_object, call, make_node

    from diffgrasp_ros.nodes.grasp_server import GraspServerNode

    scene, target = standing_scene("box", tmp_path)
    rclpy.init()
    try:
        server = make_node(GraspServerNode, robot="xarm_leap",
                           method=f"leap:template={box_template},transfer_weights={tiny_weights}")
        client_node = rclpy.create_node("template_transfer_client")
        executor = MultiThreadedExecutor(num_threads=2)
        for node in (server, client_node):
            executor.add_node(node)
        with Spinner(executor):
            assert server.trigger_configure() == TransitionCallbackReturn.SUCCESS, server.last_error
            assert server.trigger_activate() == TransitionCallbackReturn.SUCCESS, server.last_error
            server._scene, server._scene_received_s = scene, server.now_s()
            client = client_node.create_client(GraspPlanning, "grasp_server/generate_grasps")
            request = GraspPlanning.Request(target=box_object("cup", "workspace", target.lo_m, target.hi_m))
            request.target.type.key = "mug"
            response = call(client, request, 60.0)
            assert response.error_code.val == MoveItErrorCodes.PLANNING_FAILED
            assert "box grasp: it cannot be transferred onto a mug" in response.error_code.message
            request.target.type.key = "box"
            response = call(client, request, 60.0)
            assert "cannot be transferred" not in response.error_code.message, response.error_code.message
            assert server.active
        server.destroy_node()
        client_node.destroy_node()
    finally:
        rclpy.try_shutdown()


@pytest.mark.skipif(not (DEFAULT_TRANSFER_WEIGHTS / "weights.pt").exists() or not SHIPPED_TEMPLATE.exists(),
                    reason="no shipped transfer model")
def test_plan_takes_a_template_and_a_target_box_on_the_command_line(tmp_path, capsys):
    import json

    import cv2

    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.cli.plan import EXIT_NO_GRASP
    from diffgrasp_ros.sim.camera import side_view

    calibration = Path(__file__).resolve().parents[1] / "config" / "sim_side_view_calibration.yaml"
    hammer = write_instance(make_instance("hammer", "held_out", 0), tmp_path / "hammer")
    box = write_instance(make_instance("box", "held_out", 0), tmp_path / "box")
    with ClutterWorld([hammer, box], seed=0) as world:
        body = stand_object(world, hammer, xy_m=(0.1, 0.1))
        stand_object(world, box, xy_m=(0.2, 0.23))
        lo, hi = world.p.getAABB(body)
        depth = world.camera.render(side_view()).depth.depth_m
    cv2.imwrite(str(tmp_path / "depth.png"), np.round(depth * 1000.0).astype(np.uint16))
    plan = ["plan", "--depth", str(tmp_path / "depth.png"), "--calibration", str(calibration), "--robot", "xarm_leap",
            "--method", "leap:template=hammer_handle", "--out", str(tmp_path / "g.json")]
    target = ["--target", *map(str, (*lo, *hi))]
    # Two objects and no target: refused, which one is not guessed.
    assert main(plan) == EXIT_NO_GRASP
    assert "2 separate objects" in json.loads((tmp_path / "g.json").read_text())["message"]
    assert main(plan + target + ["--target-category", "mug"]) == EXIT_NO_GRASP
    assert "cannot be transferred onto a mug" in json.loads((tmp_path / "g.json").read_text())["message"]
    assert main(plan + target + ["--target-category", "hammer"]) == 0, capsys.readouterr()
    best = json.loads((tmp_path / "g.json").read_text())["grasps"][0]
    contacts = np.array(list(best["info"]["contacts_m"].values()))
    assert TargetBox(np.array(lo), np.array(hi)).contains(contacts, 0.005).all()
    capsys.readouterr()
    assert main(plan + ["--target-category", "hammer"]) == 1
    assert "--target-category names the category of a --target box" in capsys.readouterr().err


def test_a_tiled_plans_position_info_is_moved_into_the_workspace_frame():
    from diffgrasp_ros.grasping.planner import _shift_info_positions

    info = {"seed_m": [0.1, 0.2, 0.3], "contacts_m": {"fingertip": [0.0, 0.01, 0.02]}, "score_parts": 0.5}
    _shift_info_positions(info, np.array([0.3, 0.0, 0.0]))
    np.testing.assert_allclose(info["seed_m"], [0.4, 0.2, 0.3])
    np.testing.assert_allclose(info["contacts_m"]["fingertip"], [0.3, 0.01, 0.02])
    assert info["score_parts"] == 0.5
