"""The dexterous LEAP grasp model (grasping.leap): networks, sampler, guidance, planner, training."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffgrasp_ros.grasping import make_planner  # noqa: E402
from diffgrasp_ros.grasping.igd.scheduler import DDIMScheduler  # noqa: E402
from diffgrasp_ros.grasping.leap import LeapConfig, LeapPlanner, from_pretrained, save_pretrained  # noqa: E402
from diffgrasp_ros.grasping.leap.config import TINY  # noqa: E402
from diffgrasp_ros.grasping.leap.model import LeapGraspModel  # noqa: E402
from diffgrasp_ros.grasping.leap.sampler import (Guidance, farthest_point_sampling, guidance_cost,  # noqa: E402
                                                 guidance_gradient, sample_poses, to_pose)
from diffgrasp_ros.robots import leap  # noqa: E402

TINY_CONFIG = LeapConfig(**TINY)
TABLE = 0.05
BOX = (0.04, 0.05, 0.06)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return LeapGraspModel(TINY_CONFIG).eval()


@pytest.fixture(scope="module")
def box_scene(tmp_path_factory):
    """The side view of one upright 4x5x6 cm box, fused into a Scene."""
    from conftest import write_box_urdf
    from scipy.spatial.transform import Rotation

    from diffgrasp_ros.scene.tsdf import SceneBuilder
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.object_set import find_objects
    from diffgrasp_ros.sim.world import ClutterWorld

    folder = tmp_path_factory.mktemp("leap_box")
    write_box_urdf(folder, "box_a", BOX)
    objects = find_objects(folder)
    world = ClutterWorld(objects, seed=0)
    try:
        world.add_object(objects[0], (0.15, 0.15, TABLE + 0.03 + 0.001), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        view = world.camera.render(side_view())
    finally:
        world.close()
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    return builder.scene()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leap_w")
    save_pretrained(tiny_model(), folder)
    return folder


# -- networks and sampler --------------------------------------------------------------------------
def test_forward_shapes():
    model = tiny_model()
    planes = model.encode(torch.rand(2, 40, 40, 40))
    f = model.point_features(planes, torch.rand(2, 7, 3) * 0.3)
    assert f.shape == (2, 7, TINY_CONFIG.hidden)
    assert model.objectness_logits(f).shape == model.graspness_logits(f).shape == (2, 7)
    eps = model.denoiser(torch.randn(2, 7, 12), torch.randint(0, 20, (2, 7)), f)
    assert eps.shape == (2, 7, 12)
    q_grasp, q_pre = model.joints(f, torch.randn(2, 7, 12) * 5)
    assert q_grasp.shape == q_pre.shape == (2, 7, 16)
    for q in (q_grasp, q_pre):
        assert (q >= torch.tensor(leap.LOWER_RAD, dtype=torch.float32) - 1e-6).all()
        assert (q <= torch.tensor(leap.UPPER_RAD, dtype=torch.float32) + 1e-6).all()


def test_sampled_rotations_are_proper_and_sampling_is_deterministic():
    model, cfg = tiny_model(), TINY_CONFIG
    scheduler = DDIMScheduler(cfg.train_steps)
    scheduler.set_timesteps(4)
    cond, seeds = torch.randn(5, cfg.hidden), torch.rand(5, 3) * 0.2 + 0.05
    x1 = sample_poses(model, cond, seeds, scheduler, 3, torch.Generator().manual_seed(7))
    x2 = sample_poses(model, cond, seeds, scheduler, 3, torch.Generator().manual_seed(7))
    x3 = sample_poses(model, cond, seeds, scheduler, 3, torch.Generator().manual_seed(8))
    torch.testing.assert_close(x1, x2)
    assert not torch.allclose(x1, x3)
    R, t = to_pose(x1, seeds.repeat_interleave(3, 0), cfg.translation_scale_m)
    assert R.shape == (15, 3, 3) and t.shape == (15, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(15, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.det(R), torch.ones(15), atol=1e-5, rtol=0)
    # Translations stay within the clipped offset of their seed.
    assert ((t - seeds.repeat_interleave(3, 0)).abs() <= cfg.translation_scale_m + 1e-5).all()


def test_guidance_gradient_matches_autograd():
    x = torch.randn(6, 12, dtype=torch.float64, requires_grad=True)
    seeds = torch.rand(6, 3, dtype=torch.float64)
    g = Guidance(np.array([0, 0, -1.0]), np.array([0.6, 0.8, 0.0]), np.array([0.1, 0.1, 0.1]), 0.01, 1.0)
    auto, = torch.autograd.grad(guidance_cost(x, seeds, g, 0.08).sum(), x)
    torch.testing.assert_close(guidance_gradient(x.detach(), seeds, g, 0.08), auto)


def test_guidance_pulls_approach_and_translation_towards_the_request():
    model, cfg = tiny_model(), TINY_CONFIG
    scheduler = DDIMScheduler(cfg.train_steps)
    scheduler.set_timesteps(cfg.sampling_steps)
    cond, seeds = torch.randn(32, cfg.hidden), torch.rand(32, 3) * 0.1 + 0.1
    at = seeds.repeat_interleave(4, 0)
    down = np.array([0.0, 0.0, -1.0])

    def mean_angle(guidance):
        x = sample_poses(model, cond, seeds, scheduler, 4, torch.Generator().manual_seed(0), guidance)
        R, t = to_pose(x, at, cfg.translation_scale_m)
        return float(np.degrees(np.arccos(np.clip(R[:, :, 2].numpy() @ down, -1, 1))).mean()), t

    free, t_free = mean_angle(None)
    guided, _ = mean_angle(Guidance(down, scale=1.0))
    assert free > 70.0 and guided < free - 20.0, (free, guided)
    centre = np.array([0.15, 0.15, 0.10])
    _, t_region = mean_angle(Guidance(region_centre_m=centre, region_radius_m=0.02, scale=1.0))
    d_free = (t_free - torch.as_tensor(centre).float()).norm(dim=-1).mean()
    d_region = (t_region - torch.as_tensor(centre).float()).norm(dim=-1).mean()
    assert d_region < 0.5 * d_free, (d_free, d_region)


def test_farthest_point_sampling_spreads_the_seeds():
    points = np.concatenate([np.zeros((50, 3)), np.ones((50, 3)), [[5.0, 5.0, 5.0]]])
    chosen = farthest_point_sampling(points, 3)
    assert len(set(chosen)) == 3 and 100 in chosen
    assert {tuple(points[i]) for i in chosen} == {(0, 0, 0), (1, 1, 1), (5, 5, 5)}
    assert len(farthest_point_sampling(points[:2], 5)) == 2


# -- planner ---------------------------------------------------------------------------------------
def test_planner_returns_valid_dexterous_grasps(box_scene):
    """The shipped model on a box: grasps with 16-joint postures in the limits, ranked, repeatable."""
    planner = make_planner("leap", "xarm_leap")
    result = planner.plan(box_scene)
    assert result.method == "leap" and result.message
    assert {"encoder", "seeds", "diffusion", "filters", "plan"} <= set(result.timings_s)
    assert result.found, result.message
    for grasp in result.grasps:
        T = grasp.T_frame_grasp
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
        assert np.linalg.det(T[:3, :3]) > 0
        assert box_scene.workspace.contains_grasp(grasp.position_m)[0] and 0.0 <= grasp.score <= 1.0
        assert grasp.dexterous and grasp.grasp_joints.shape == grasp.pregrasp_joints.shape == (16,)
        for q in (grasp.grasp_joints, grasp.pregrasp_joints):
            assert np.all(q >= leap.LOWER_RAD - 1e-6) and np.all(q <= leap.UPPER_RAD + 1e-6)
        assert grasp.width_m == pytest.approx(max(leap.aperture_m(grasp.pregrasp_joints), 0.0), abs=1e-4)
        assert {"graspness", "log_likelihood"} <= set(grasp.info)
    scores = [g.score for g in result.grasps]
    assert scores == sorted(scores, reverse=True)
    again = planner.plan(box_scene)
    assert [g.to_dict() for g in again.grasps] == [g.to_dict() for g in result.grasps]


def test_planner_options_guidance_and_no_grasp_message(box_scene, tiny_weights):
    planner = make_planner("leap:approach=top,max_angle=45", "ur5_leap")  # the shipped model
    result = planner.plan(box_scene)
    assert result.found, result.message
    for grasp in result.grasps:
        assert grasp.approach_axis @ np.array([0, 0, -1.0]) >= np.cos(np.radians(45)) - 1e-6
        assert grasp.info["approach_angle_deg"] <= 45 + 1e-6
    # A region with nothing observed in it.
    empty = make_planner("leap:region=0.03:0.03:0.2:0.01", "xarm_leap", weights=tiny_weights).plan(box_scene)
    assert not empty.found and empty.message.startswith("no grasp found: ")
    # Impossible thresholds.
    none = make_planner("leap", "xarm_leap", weights=tiny_weights, min_graspness=1.01).plan(box_scene)
    assert not none.found and none.message.startswith("no grasp found: ")
    with pytest.raises(ValueError, match="approach"):
        make_planner("leap:approach=sideways", "xarm_leap", weights=tiny_weights)
    with pytest.raises(ValueError, match="region"):
        make_planner("leap:region=0.1:0.1:0.1", "xarm_leap", weights=tiny_weights)


def test_planner_refuses_a_parallel_gripper(tiny_weights):
    with pytest.raises(ValueError, match="LEAP"):
        make_planner("leap", "franka", weights=tiny_weights)


def test_missing_and_corrupt_weights_give_clear_errors(tmp_path, monkeypatch):
    import diffgrasp_ros.grasping.leap.planner as leap_planner

    monkeypatch.setattr(leap_planner, "DEFAULT_WEIGHTS", tmp_path / "models" / "leap")
    with pytest.raises(FileNotFoundError, match="train-leap"):
        make_planner("leap", "xarm_leap")
    with pytest.raises(FileNotFoundError, match="train-leap"):
        LeapPlanner.from_pretrained(tmp_path / "nowhere")
    save_pretrained(tiny_model(), tmp_path / "w")
    (tmp_path / "w" / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        from_pretrained(tmp_path / "w")


def test_shipped_weights_grasp_a_lone_box_and_follow_a_top_approach(box_world):
    """The shipped model, on the side view of a box it never saw: its best grasp holds the box in the
    free-floating LEAP hand, and asked for a top approach it plans within the allowed angle."""
    from diffgrasp_ros.execution import SimHandExecutor
    from diffgrasp_ros.grasping.leap.pretrained import DEFAULT_WEIGHTS
    from diffgrasp_ros.robots import get_robot
    from diffgrasp_ros.sim.camera import side_view

    if not (DEFAULT_WEIGHTS / "weights.pt").is_file():
        pytest.skip("no shipped LEAP weights in this checkout")
    view = box_world.camera.render(side_view())
    result = make_planner("leap", "xarm_leap").plan_from_depth(view.depth, view.T_workspace_camera)
    assert result.found, result.message
    assert np.linalg.norm(result.best.position_m[:2] - 0.15) < 0.04  # on the box, not beside it
    top = make_planner("leap:approach=top,max_angle=30", "xarm_leap").plan_from_depth(view.depth,
                                                                                       view.T_workspace_camera)
    assert top.found, top.message
    assert all(g.approach_axis @ np.array([0, 0, -1.0]) >= np.cos(np.radians(30)) - 1e-6 for g in top.grasps)
    # The top three, each from the same world: whether one holds is a knife edge in simulation (the best
    # grasp's outcome flipped with changes of 1e-6 rad in its joints, from another convolution kernel).
    executor = SimHandExecutor(box_world, get_robot("xarm_leap"))
    before = box_world.p.saveState()
    held = []
    for grasp in result.grasps[:3]:
        box_world.p.restoreState(before)
        outcome = executor.execute_grasp(grasp, remove_held=False)
        held.append(outcome.reason if not outcome.success else "held")
    box_world.p.restoreState(before)
    assert "held" in held, held

    # Its own grasps given back are ranked by the evaluator's P(held); one in the air is dropped.
    from dataclasses import replace

    air = replace(result.best, T_frame_grasp=result.best.T_frame_grasp.copy())
    air.T_frame_grasp[:3, 3] = (0.05, 0.05, 0.25)
    ranked = make_planner("leap", "xarm_leap").rank(result.scene, [air, *result.grasps])
    assert ranked.found, ranked.message
    assert 0 not in {g.info["given_index"] for g in ranked.grasps}
    assert len(ranked.grasps) == len(result.grasps)  # its own grasps pass its checks
    for g in ranked.grasps:
        assert g.score == pytest.approx(result.grasps[g.info["given_index"] - 1].info["p_held"], abs=1e-5)


# -- training --------------------------------------------------------------------------------------
def write_fake_leap_chunk(folder, object_root):
    """One scene (the box standing in the middle) with top-down LEAP grasps, in the data helper's format."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    n = 24
    yaw = rng.uniform(-np.pi, np.pi, n)
    R = Rotation.from_euler("xz", np.stack([np.full(n, np.pi), yaw], 1)).as_matrix()  # approach -z
    tcp = np.array([0.15, 0.15, TABLE + 0.05]) + rng.normal(0, 0.005, (n, 3))
    palm = tcp - R @ leap.T_PALM_TCP[:3, 3]
    label = (np.arange(n) % 3 != 0).astype(np.int8)
    arrays = {
        "format_version": np.int32(1), "chunk_index": np.int64(0), "object_root": np.str_(str(object_root)),
        "friction": np.float64(0.2),
        "scene_kind": np.array(["pile"]), "scene_seed": np.array([12345], np.int64),
        "scene_object_count": np.array([1], np.int32), "object_model": np.array(["box_a.urdf"]),
        "object_scale": np.array([1.0]), "object_position": np.array([[0.15, 0.15, TABLE + 0.03]]),
        "object_quaternion_xyzw": np.array([[0.0, 0.0, 0.0, 1.0]]),
        "grasp_scene": np.zeros(n, np.int32), "palm_position": palm.astype(np.float32),
        "palm_quaternion_xyzw": Rotation.from_matrix(R).as_quat().astype(np.float32),
        "q_pregrasp": np.tile(leap.OPEN_Q, (n, 1)).astype(np.float32),
        "q_grasp": np.tile(leap.posture(0.3), (n, 1)).astype(np.float32),
        "label": label, "source_width": np.full(n, 0.05, np.float32), "source_label": label.copy(),
    }
    np.savez_compressed(folder / "leap_chunk_000000.npz", **arrays)


def test_tiny_training_run_writes_loadable_weights(tmp_path, box_scene):
    from conftest import write_box_urdf

    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.training.leap_data import read_leap_chunk
    from diffgrasp_ros.training.leap_train import tcp_from_palm

    objects = tmp_path / "objects"
    objects.mkdir()
    write_box_urdf(objects, "box_a", BOX)
    data = tmp_path / "data"
    data.mkdir()
    write_fake_leap_chunk(data, objects)
    chunk = read_leap_chunk(data / "leap_chunk_000000.npz")
    R, t = tcp_from_palm(chunk.grasps.palm_position_m, chunk.grasps.palm_quaternion_xyzw)
    assert np.all(np.abs(t[:, :2] - 0.15) < 0.03) and np.allclose(R[:, :, 2] @ [0, 0, -1.0], 1, atol=1e-5)

    out = tmp_path / "run"
    args = ["train-leap", "--data", str(data), "--cache", str(tmp_path / "cache"), "--out", str(out), "--tiny",
            "--threads", "1", "--log-every", "2", "--checkpoint-every", "2"]
    assert main([*args, "--steps", "3"]) == 0
    assert (out / "train_log.jsonl").read_text().count("\n") >= 1
    assert main([*args, "--steps", "4", "--resume"]) == 0
    import json

    last = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and all(np.isfinite(last[k]) for k in ("objectness", "graspness", "diffusion", "joints"))
    model = from_pretrained(out)
    assert model.config == TINY_CONFIG
    result = LeapPlanner.from_pretrained(out, min_objectness=0.0).plan(box_scene)
    assert result.method == "leap" and result.message


def test_top_grasps_reaching_under_the_table_back_off_along_their_approach(tiny_weights):
    """A top grasp whose fingertips sit under the table moves up just enough to clear it; a side grasp,
    a clear one and one that would need more than ``retreat`` stay where the diffusion put them."""
    planner = make_planner("leap:retreat=0.02", "xarm_leap", weights=tiny_weights)
    q = np.tile(leap.posture(0.5), (4, 1))
    digits = leap.digit_points(q)  # leap_palm frame
    top = np.diag([1.0, -1.0, -1.0])  # approach (TCP z) straight down
    side = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # approach along +x
    R = np.stack([top, top, top, side])
    lowest_at_zero = planner._world_digit_points(R[:1], np.zeros((1, 3)), digits[:1])[..., 2].min()
    table = planner.workspace.table_height_m
    z_touching = table - lowest_at_zero  # TCP height where the lowest digit point touches the table
    t = np.array([[0.15, 0.15, z_touching - 0.01], [0.15, 0.15, z_touching + 0.02],
                  [0.15, 0.15, z_touching - 0.05], [0.15, 0.15, 0.08]])
    moved = planner._retreat_from_table(R, t, digits, digits)
    assert moved[0, 2] - t[0, 2] == pytest.approx(0.01 + 0.004, abs=1e-6)  # to 4 mm above the table
    np.testing.assert_allclose(moved[0, :2], t[0, :2])
    np.testing.assert_allclose(moved[1:], t[1:])
    lowest = planner._world_digit_points(R[:1], moved[:1], digits[:1])[..., 2].min()
    assert lowest > table + 0.003
    no_retreat = make_planner("leap:retreat=0", "xarm_leap", weights=tiny_weights)
    unmoved = no_retreat._retreat_from_table(R, t, digits, digits)
    np.testing.assert_allclose(unmoved, t)


def test_backed_off_poses_are_the_fallback_and_stay_in_the_asked_for_region(box_scene, tiny_weights):
    """Only when no pose passes the filters where it was sampled are backed-off poses used; with a region
    asked for, those that backing off takes out of it are dropped."""
    def planner_with(region):
        planner = make_planner("leap:min_objectness=0" + (f",region={region}" if region else ""), "xarm_leap",
                               weights=tiny_weights)
        planner._palm_ok = lambda scene, surface, R, t: np.ones(len(R), bool)
        calls = []

        def digits_ok(scene, R, t, pre_palm, grasp_palm):  # nothing passes where sampled, everything once moved
            calls.append(len(R))
            return np.full(len(R), len(calls) > 1)

        planner._digits_ok = digits_ok
        planner._retreat_from_table = lambda R, t, pre_palm, grasp_palm: t + np.array([0.0, 0.0, 0.015])
        return planner, calls

    planner, calls = planner_with(None)
    result = planner.plan(box_scene)
    assert len(calls) == 2 and result.found and "backed off the table" in result.message
    assert all(g.info["table_retreat_m"] == pytest.approx(0.015) for g in result.grasps)

    centre, radius = np.array([0.15, 0.15, 0.11]), 0.02
    planner, _ = planner_with(":".join(str(v) for v in [*centre, radius]))
    result = planner.plan(box_scene)
    assert result.found
    assert all(np.linalg.norm(g.position_m - centre) <= radius + 1e-9 for g in result.grasps)
    unconstrained = planner_with(None)[0].plan(box_scene)
    assert any(np.linalg.norm(g.position_m - centre) > radius for g in unconstrained.grasps)


# -- the grasp evaluator ---------------------------------------------------------------------------
def top_down_poses(xy: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of ``sim.pick_scene.top_down_pose`` TCPs at the (x, y) rows and height ``z``."""
    from diffgrasp_ros.sim.pick_scene import top_down_pose

    T = np.array([top_down_pose(x, y, z) for x, y in xy])
    return T[:, :3, :3], T[:, :3, 3]


def test_evaluator_samples_the_tsdf_in_the_grasp_frame(box_scene):
    from diffgrasp_ros.grasping.leap.evaluator import LeapEvaluatorConfig, grasp_inputs, lattice_offsets, sample_tsdf

    grid = torch.from_numpy(box_scene.tsdf_grid)
    voxels = np.array([[3, 17, 29], [0, 39, 5], [20, 20, 12]])
    centres = torch.from_numpy((voxels + 0.5) * box_scene.workspace.voxel_size_m).float()
    np.testing.assert_allclose(sample_tsdf(grid, centres[None], 0.3)[0].numpy(), box_scene.tsdf_grid[tuple(voxels.T)],
                               atol=1e-6)
    assert sample_tsdf(grid, torch.tensor([[[-0.1, 0.1, 0.1]]]), 0.3).item() == 0.0  # outside the workspace

    cfg = LeapEvaluatorConfig()
    R, t = top_down_poses(np.array([[0.15, 0.15], [0.05, 0.25]]), TABLE + 0.09)
    q = np.tile(leap.posture(0.3), (2, 1))
    volume, vector = grasp_inputs(cfg, box_scene.tsdf_grid, R, t, q, q)
    assert volume.shape == (2, 1, *cfg.lattice) and vector.shape == (2, 36)
    np.testing.assert_allclose(vector[:, :3].numpy(), [[0, 0, 1]] * 2, atol=1e-6)  # gravity along the approach
    # The lattice point below the TCP of the grasp over the box sees its surface, the one beside it nothing.
    offsets = lattice_offsets(cfg)
    world = np.einsum("ij,lj->li", R[0], offsets) + t[0]
    on_top = np.argmin(np.linalg.norm(world - [0.15, 0.15, TABLE + 0.06], axis=1))
    assert volume[0].flatten()[on_top] > 0.2 and volume[1].flatten()[on_top] == 0.0


def write_fake_quality_chunk(folder, scene, index=0):
    """Four rounds of top-down grasps: over the box (held) and over empty table (failed)."""
    rng = np.random.default_rng(index)
    over_box = 0.15 + rng.uniform(-0.01, 0.01, (32, 2))
    beside = np.array([0.06, 0.24])[rng.integers(0, 2, (32, 2))] + rng.uniform(-0.01, 0.01, (32, 2))
    R, t = top_down_poses(np.concatenate([over_box, beside]), TABLE + 0.08)
    T = np.tile(np.eye(4), (64, 1, 1))
    T[:, :3, :3], T[:, :3, 3] = R, t
    state = np.arange(64) % 4
    q = np.tile(leap.posture(0.3), (64, 1))
    np.savez_compressed(folder / f"leap_quality_{index:06d}.npz", format_version=np.int32(1),
                        chunk_index=np.int32(index), friction=np.float32(1.0), noise=np.array("none"),
                        tsdf=np.tile(scene.tsdf_grid.astype(np.float16), (4, 1, 1, 1)),
                        state_round=np.arange(4, dtype=np.int32), state_kind=np.zeros(4, np.uint8),
                        state_objects=np.ones(4, np.int16), grasp_state=state.astype(np.int32),
                        T_tcp=T.astype(np.float32), q_pregrasp=q.astype(np.float32), q_grasp=q.astype(np.float32),
                        rank=(np.arange(64) // 4).astype(np.int16), log_likelihood=np.zeros(64, np.float32),
                        graspness=np.zeros(64, np.float32), label=(np.arange(64) < 32).astype(np.int8),
                        reason=np.array(["held"] * 32 + ["nothing held after lift"] * 32))


def test_evaluator_learns_held_from_failed_and_ranks_for_the_planner(tmp_path, box_scene, tiny_weights):
    import json

    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.grasping.leap.evaluator import load_evaluator

    data = tmp_path / "quality"
    data.mkdir()
    write_fake_quality_chunk(data, box_scene)
    out = tmp_path / "evaluator"
    assert main(["train-leap-evaluator", "--data", str(data), "--out", str(out), "--steps", "60", "--batch", "32",
                 "--holdout-every", "2", "--threads", "1"]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    # Rounds 0 and 2 are held out: the rule (over the box holds) generalises to them.
    assert report["held_out_grasps"] == 32 and report["states"] == 2
    assert report["auc"] > 0.9 and report["held_first_evaluator"] == 1.0
    evaluator = load_evaluator(out)
    R, t = top_down_poses(np.array([[0.15, 0.15], [0.06, 0.24]]), TABLE + 0.08)
    q = np.tile(leap.posture(0.3), (2, 1))
    log_p = evaluator.log_p_held(box_scene.tsdf_grid, R, t, q, q)
    assert log_p[0] > log_p[1] and np.all(log_p <= 0)

    planner = make_planner(f"leap:min_objectness=0,evaluator={out}", "xarm_leap", weights=tiny_weights)
    result = planner.plan(box_scene)
    assert "evaluator" in result.timings_s
    for grasp in result.grasps:
        assert 0.0 < grasp.info["p_held"] <= 1.0
    assert [g.score for g in result.grasps] == sorted((g.score for g in result.grasps), reverse=True)
    plain = make_planner("leap:min_objectness=0,evaluator=none", "xarm_leap", weights=tiny_weights).plan(box_scene)
    assert "evaluator" not in plain.timings_s and all("p_held" not in g.info for g in plain.grasps)


def test_missing_and_corrupt_evaluator_give_clear_errors(tmp_path, tiny_weights):
    from diffgrasp_ros.grasping.leap.evaluator import LeapEvaluatorConfig, LeapGraspEvaluator, save_evaluator

    with pytest.raises(FileNotFoundError, match="train-leap-evaluator"):
        make_planner(f"leap:evaluator={tmp_path / 'nowhere'}", "xarm_leap", weights=tiny_weights)
    save_evaluator(LeapGraspEvaluator(LeapEvaluatorConfig()), tmp_path / "e")
    (tmp_path / "e" / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        make_planner(f"leap:evaluator={tmp_path / 'e'}", "xarm_leap", weights=tiny_weights)
    with pytest.raises(ValueError, match="evaluator_weight"):
        make_planner("leap:evaluator=none,evaluator_weight=-1", "xarm_leap", weights=tiny_weights)


def test_quality_data_lift_tests_the_models_own_grasps(tmp_path):
    from diffgrasp_ros.grasping.leap.pretrained import DEFAULT_WEIGHTS
    from diffgrasp_ros.training.leap_quality_data import QualityDatagenConfig, generate_quality_dataset

    if not (DEFAULT_WEIGHTS / "weights.pt").is_file():
        pytest.skip("no shipped LEAP weights in this checkout")
    config = QualityDatagenConfig(rounds_per_chunk=1, states_per_round=1, grasps_per_state=3, seed=3)
    run = generate_quality_dataset(tmp_path, config, chunks=1)
    assert run["chunks"] == 1 and run["grasps"] == sum(run["outcomes"].values())
    with np.load(tmp_path / "leap_quality_000000.npz") as chunk:
        assert chunk["tsdf"].shape == (run["states"], 40, 40, 40)
        n = len(chunk["label"])
        assert n == run["grasps"] and 1 <= n <= 3 and run["states"] == 1
        assert chunk["T_tcp"].shape == (n, 4, 4) and chunk["q_grasp"].shape == chunk["q_pregrasp"].shape == (n, 16)
        assert np.all(chunk["grasp_state"] == 0) and list(chunk["rank"]) == list(range(n))
        assert [r == "held" for r in chunk["reason"]] == list(chunk["label"] == 1)
    again = generate_quality_dataset(tmp_path, config, chunks=1)  # resumed: nothing left to do
    assert again["chunks"] == 0
    with pytest.raises(ValueError, match="other settings"):
        generate_quality_dataset(tmp_path, QualityDatagenConfig(seed=4), chunks=1)
