"""Implicit Grasp Diffusion: scheduler, networks, training loop, weights on disk and the planner."""
import numpy as np
import pytest
import torch

from diffgrasp_ros import make_planner
from diffgrasp_ros.grasping import PlanResult
from diffgrasp_ros.grasping.planner import PlanRecord
from diffgrasp_ros.grasping.igd import IGDConfig, IGDPlanner, load_pretrained, save_pretrained
from diffgrasp_ros.grasping.igd.config import TINY
from diffgrasp_ros.grasping.igd.model import IGDModel
from diffgrasp_ros.grasping.igd.scheduler import DDIMScheduler, project_to_so3
from diffgrasp_ros.scene import SceneBuilder
from diffgrasp_ros.sim.camera import side_view

TINY_CONFIG = IGDConfig(**TINY)




def random_rotations(n, seed=0):
    from scipy.spatial.transform import Rotation

    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix()).float()


# -- scheduler -------------------------------------------------------------------------------------
def test_add_noise_keeps_shapes_and_the_cosine_schedule_runs_from_clean_to_noise():
    s = DDIMScheduler(100)
    x0, noise = torch.rand(7, 9), torch.randn(7, 9)
    assert s.add_noise(x0, noise, torch.randint(0, 100, (7,))).shape == (7, 9)
    assert s.alphas_cumprod[0] > 0.999 and s.alphas_cumprod[-1] < 1e-3
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])


@pytest.mark.parametrize("steps", [1, 5, 100])
def test_ddim_with_the_true_noise_recovers_x0(steps):
    s = DDIMScheduler(100)
    s.set_timesteps(steps)
    assert s.timesteps[0] == 99 and len(s.timesteps) == steps and (steps == 1 or s.timesteps[-1] == 0)
    x0 = random_rotations(16).reshape(16, 9)
    a = s.alphas_cumprod
    x = s.add_noise(x0, torch.randn(16, 9, generator=torch.Generator().manual_seed(0)), torch.full((16,), 99))
    for t in s.timesteps:
        eps = (x - a[t].sqrt() * x0) / (1 - a[t]).sqrt()
        x = s.step(eps, int(t), x)
        assert x.shape == (16, 9)
    torch.testing.assert_close(x, x0, atol=1e-3, rtol=0)  # ᾱ_99 is tiny: 1/√ᾱ magnifies float error
    with pytest.raises(ValueError, match="denoising steps"):
        s.set_timesteps(0)


def test_svd_projection_gives_rotations_and_keeps_rotations():
    m = torch.randn(50, 9, generator=torch.Generator().manual_seed(1))
    R = project_to_so3(m)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(50, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.det(R), torch.ones(50), atol=1e-5, rtol=0)
    rotations = random_rotations(5)
    torch.testing.assert_close(project_to_so3(rotations), rotations, atol=1e-5, rtol=0)


# -- networks --------------------------------------------------------------------------------------
def test_forward_shapes():
    torch.manual_seed(0)
    model, cfg = IGDModel(TINY_CONFIG), TINY_CONFIG
    planes = model.encode(torch.rand(2, 40, 40, 40))
    assert [p.shape for p in planes] == [(2, cfg.plane_channels, 40, 40)] * 3
    p = torch.rand(2, 5, 3) * 0.3
    assert model.encoder.sample(planes, p).shape == (2, 5, 3 * cfg.plane_channels)
    centre = model.centre_features(planes, p)
    assert centre.shape == (2, 5, cfg.hidden) and model.affordance_logits(centre).shape == (2, 5)
    logits, width = model.evaluate(planes, p, random_rotations(10).reshape(2, 5, 3, 3))
    assert logits.shape == width.shape == (2, 5)
    assert model.occupancy_logits(planes, p).shape == (2, 5)
    assert model.denoiser(torch.randn(2, 5, 9), torch.randint(0, cfg.train_steps, (2, 5)), centre).shape == (2, 5, 9)
    scheduler = DDIMScheduler(cfg.train_steps)
    scheduler.set_timesteps(3)
    R = model.sample_rotations(centre[0], scheduler, rounds=4)
    assert R.shape == (5, 4, 3, 3)
    torch.testing.assert_close(torch.det(R), torch.ones(5, 4), atol=1e-4, rtol=0)



def test_inference_shortcuts_give_what_training_computes():
    """Inference runs the 3D convolutions on oneDNN tensors, projects the grasp keys' shared embedding once
    and splits the denoiser's first layer over the DDIM steps; each gives the training path's numbers."""
    torch.manual_seed(0)
    model = IGDModel(TINY_CONFIG)
    tsdf, p = torch.rand(1, 40, 40, 40), torch.rand(1, 6, 3) * 0.3
    with torch.enable_grad():
        planes = model.encode(tsdf)
        centre = model.centre_features(planes, p)[0]
        x_t, t = torch.randn(6, 9), torch.tensor(7)
        eps = model.denoiser(x_t, t.expand(6), centre)
    with torch.inference_mode():
        fast_planes = model.encode(tsdf)
        for slow, fast in zip(planes, fast_planes):
            torch.testing.assert_close(fast, slow.detach(), atol=1e-4, rtol=1e-4)
        attention, shared = model.grasp_attention.attention, model.grasp_attention.embedding
        query, keys = torch.randn(6, attention.q.in_features), torch.randn(6, len(shared), 3 * TINY_CONFIG.plane_channels)
        torch.testing.assert_close(attention(query, keys, shared_keys=shared),
                                   attention(query, torch.cat([keys, shared.expand(6, -1, -1)], -1)), atol=1e-5, rtol=1e-5)
        share = model.denoiser.condition_share(centre.detach())
        torch.testing.assert_close(model.denoiser.step_noise(x_t, t, share), eps.detach(), atol=1e-5, rtol=1e-5)

def test_dam_offsets_start_on_a_cube_around_the_centre():
    model = IGDModel(TINY_CONFIG)
    offsets = model.centre_attention.offsets(torch.randn(3, 3 * TINY_CONFIG.plane_channels)).reshape(3, 8, 3)
    cube = [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    expected = TINY_CONFIG.dam_cube_half_m * torch.tensor(cube, dtype=torch.float32)
    torch.testing.assert_close(offsets, expected.expand(3, 8, 3))


# -- training --------------------------------------------------------------------------------------
def test_every_head_gets_finite_gradients_from_a_real_batch(labelled_box_scenes, tmp_path):
    from diffgrasp_ros.training.igd_train import BatchSizes, GridCache, load_scenes, sample_batch

    scenes = load_scenes(labelled_box_scenes, GridCache(tmp_path / "cache"), log=lambda _: None)
    assert len(scenes) == 2 and any(s.label.sum() > 0 for s in scenes)
    assert sorted(scenes[0].grids) == ["multi", "side", "side_dex"]
    batch = sample_batch(scenes, np.random.default_rng(0), BatchSizes(scenes=2, grasps=16, centres=16,
                                                                      diffusion=8, occupancy=32))
    batch["diff_mask"][:] = 1.0  # the rows of a scene without positives are masked out; count all here
    torch.manual_seed(0)
    model = IGDModel(TINY_CONFIG)
    losses = model.losses(batch, DDIMScheduler(TINY_CONFIG.train_steps), torch.Generator().manual_seed(0))
    assert set(losses) == {"total", "diffusion", "affordance", "classifier", "width", "occupancy"}
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    for name in ("encoder", "centre_attention", "grasp_attention", "denoiser", "affordance_head",
                 "classifier_head", "width_head", "occupancy_head"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name



def test_render_grids_fills_the_cache_train_reads(labelled_box_scenes, tmp_path):
    """`diffgrasp render-grids` renders what training would, so training loads every scene without
    rendering; run again, it renders nothing."""
    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.training.dataset import iter_chunks
    from diffgrasp_ros.training.igd_train import GridCache, load_scenes

    cache = tmp_path / "cache"
    assert main(["render-grids", "--data", str(labelled_box_scenes), "--cache", str(cache), "--workers", "1"]) == 0
    written = {path: path.stat().st_mtime_ns for path in cache.glob("*.npz")}
    scenes = load_scenes(labelled_box_scenes, GridCache(cache), log=lambda _: None)
    assert len(scenes) == 2 == len(written)
    assert {path: path.stat().st_mtime_ns for path in cache.glob("*.npz")} == written  # nothing left to render
    for chunk in iter_chunks(labelled_box_scenes):
        assert GridCache(cache).has(chunk, 0, ("side", "side_dex", "multi"))
    fresh = load_scenes(labelled_box_scenes, GridCache(tmp_path / "fresh"), log=lambda _: None)
    for cached, rendered in zip(scenes, fresh):  # the same grids as training renders itself
        for name in ("side", "multi"):
            np.testing.assert_array_equal(cached.grids[name], rendered.grids[name])
    from diffgrasp_ros.training.igd_train import render_dataset_grids

    assert render_dataset_grids(labelled_box_scenes, cache, workers=1, progress=False) == (2, 0)
    with pytest.raises(ValueError, match="no chunks"):
        render_dataset_grids(tmp_path / "empty", cache, workers=1, progress=False)

def test_cache_adds_a_grafted_input_variant_without_rerendering_the_others(labelled_box_scenes, tmp_path):
    from diffgrasp_ros.training.dataset import iter_chunks
    from diffgrasp_ros.training.igd_train import GridCache, load_scenes, noise_model_digest

    cache = GridCache(tmp_path / "cache")
    clean = load_scenes(labelled_box_scenes, cache, log=lambda _: None, inputs=("side",))
    assert sorted(clean[0].grids) == ["multi", "side"]
    chunk = next(iter_chunks(labelled_box_scenes))
    with np.load(cache.path(chunk, 0)) as data:
        assert sorted(data.files) == ["multi", "side"]
    grafted = load_scenes(labelled_box_scenes, cache, log=lambda _: None, inputs=("side_graft",))
    assert sorted(grafted[0].grids) == ["multi", "side_graft"]
    with np.load(cache.path(chunk, 0)) as data:  # added to the file, the cached grids kept as they were
        assert sorted(data.files) == ["multi", "side", f"side_graft_{noise_model_digest()}"]
        np.testing.assert_array_equal(data["side"], clean[0].grids["side"])
    # Grafting adds holes and noise: the grids differ, but both see the same scene.
    side, graft = clean[0].grids["side"], grafted[0].grids["side_graft"]
    assert not np.array_equal(side, graft)
    assert ((side > 0) & (side < 0.5)).sum() > 0 and ((graft > 0) & (graft < 0.5)).sum() > 0


def test_cache_keeps_grids_grafted_by_different_noise_models_apart(labelled_box_scenes, tmp_path):
    import shutil

    from diffgrasp_ros.depth.noise_diffusion import DEFAULT_WEIGHTS, NoiseDiffusionModel
    from diffgrasp_ros.training.dataset import iter_chunks
    from diffgrasp_ros.training.igd_train import GridCache, noise_model_digest

    chunk = next(iter_chunks(labelled_box_scenes))
    shipped = GridCache(tmp_path / "cache")
    first = shipped.grids(chunk, 0, ("side_graft",))["side_graft"]
    copy = shutil.copytree(DEFAULT_WEIGHTS, tmp_path / "copy")  # the same model elsewhere: its grids are reused
    assert GridCache(tmp_path / "cache", copy).has(chunk, 0, ("side_graft",))
    other = NoiseDiffusionModel.from_pretrained(DEFAULT_WEIGHTS)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.1)
    other.save_pretrained(tmp_path / "other")
    assert noise_model_digest(tmp_path / "other") != noise_model_digest()
    retrained = GridCache(tmp_path / "cache", tmp_path / "other")
    assert not retrained.has(chunk, 0, ("side_graft",))  # never the stale grid of the shipped model
    second = retrained.grids(chunk, 0, ("side_graft",))["side_graft"]
    assert not np.array_equal(first, second)
    with np.load(shipped.path(chunk, 0)) as data:  # both kept, each under its model's digest
        assert sorted(data.files) == sorted(f"side_graft_{noise_model_digest(m)}" for m in (None, tmp_path / "other"))
        np.testing.assert_array_equal(data[f"side_graft_{noise_model_digest()}"], first)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        GridCache(tmp_path / "cache", tmp_path).has(chunk, 0, ("side_graft",))


def test_training_inputs_are_validated(tmp_path):
    from diffgrasp_ros.training.igd_train import TrainOptions

    with pytest.raises(ValueError, match="inputs must be distinct names"):
        TrainOptions(tmp_path, tmp_path, inputs=("side", "side_kinect"))
    with pytest.raises(ValueError, match="inputs must be distinct names"):
        TrainOptions(tmp_path, tmp_path, inputs=())
    with pytest.raises(ValueError, match="only grafts the side_graft input"):
        TrainOptions(tmp_path, tmp_path, inputs=("side",), noise_weights=tmp_path)


def test_training_runs_checkpoints_resumes_and_lowers_the_loss(labelled_box_scenes, tmp_path):
    import json

    from diffgrasp_ros.cli.main import main

    out = tmp_path / "run"
    base = ["train", "--data", str(labelled_box_scenes), "--cache", str(tmp_path / "cache"), "--out", str(out), "--tiny",
            "--log-every", "5", "--checkpoint-every", "10", "--threads", "1", "--lr", "3e-3"]
    assert main(base + ["--steps", "20"]) == 0
    assert {"checkpoint.pt", "config.json", "weights.pt", "train_log.jsonl"} <= {p.name for p in out.iterdir()}
    with pytest.raises(ValueError, match="--resume"):
        from diffgrasp_ros.training.igd_train import TrainOptions, train

        train(TrainOptions(labelled_box_scenes, out, tmp_path / "cache", tiny=True), log=lambda _: None)
    assert main(base + ["--steps", "40", "--resume"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all(np.isfinite(r["total"]) for r in log)
    assert np.mean([r["total"] for r in log[-2:]]) < np.mean([r["total"] for r in log[:2]])
    assert IGDPlanner.from_pretrained(out).model.config == TINY_CONFIG


# -- weights on disk -------------------------------------------------------------------------------
def test_from_pretrained_round_trip(tmp_path):
    torch.manual_seed(3)
    model = IGDModel(TINY_CONFIG)
    save_pretrained(model, tmp_path / "w")
    loaded = load_pretrained(tmp_path / "w")
    assert loaded.config == TINY_CONFIG and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    planner = IGDPlanner.from_pretrained(tmp_path / "w", rounds=3, denoising_steps=2)
    assert (planner.rounds, planner.denoising_steps, len(planner.scheduler.timesteps)) == (3, 2, 2)
    assert make_planner("igd", weights=tmp_path / "w").name == "igd"


def test_missing_or_corrupt_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere.*diffgrasp train"):
        IGDPlanner.from_pretrained(tmp_path / "nowhere")
    save_pretrained(IGDModel(TINY_CONFIG), tmp_path / "w")
    (tmp_path / "w" / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"(?s)w are unreadable.*diffgrasp train"):
        make_planner("igd", weights=tmp_path / "w")
    save_pretrained(IGDModel(TINY_CONFIG), tmp_path / "w")
    TINY_CONFIG.replace(hidden=16).to_json(tmp_path / "w" / "config.json")  # weights of another size
    with pytest.raises(ValueError, match="do not match"):
        load_pretrained(tmp_path / "w")


# -- planning --------------------------------------------------------------------------------------
def test_planner_on_a_box_returns_a_valid_result(box_world):
    """The shipped model on a box it never saw: grasps, valid and ranked, the same for the same seed."""
    builder = SceneBuilder()
    view = box_world.camera.render(side_view())
    builder.integrate(view.depth, view.T_workspace_camera)
    planner = make_planner("igd", rounds=8, denoising_steps=4)
    result = planner.plan(builder.scene())
    assert isinstance(result, PlanResult) and result.method == "igd" and result.message
    assert list(result.timings_s) == ["encoder", "affordance", "diffusion", "classifier", "filters", "ranking", "plan"]
    assert result.found, result.message
    # The named filters account for every sampled candidate that is not its centre's feasible one.
    record = PlanRecord()
    sampled = planner._predict(builder.scene(), record)
    feasible = planner._filter(builder.scene(), sampled, record)
    assert len(sampled) == len(feasible) + sum(record.filtered.values()) and record.filtered == result.filtered
    ws = box_world.workspace
    for grasp in result.grasps:
        T = grasp.T_frame_grasp
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
        assert ws.contains_grasp(grasp.position_m)[0] and 0.0 <= grasp.score <= 1.0
        assert 0.0 < grasp.width_m <= 0.08
    scores = [g.score for g in result.grasps]
    assert scores == sorted(scores, reverse=True)
    again = planner.plan(builder.scene())
    assert [g.to_dict() for g in again.grasps] == [g.to_dict() for g in result.grasps]


# -- options and ablations -------------------------------------------------------------------------
def test_method_specs_carry_planner_options(tmp_path):
    from diffgrasp_ros.grasping import parse_method

    assert parse_method("igd") == ("igd", {})
    assert parse_method("igd:rounds=11, denoising_steps=4,evaluator=affordance,weights=/x/y") == (
        "igd", {"rounds": 11, "denoising_steps": 4, "evaluator": "affordance", "weights": "/x/y"})
    for bad in ("igd:rounds", "igd:rounds=1,rounds=2", "igd:=3"):
        with pytest.raises(ValueError, match="igd"):
            parse_method(bad)
    save_pretrained(IGDModel(TINY_CONFIG), tmp_path / "w")
    planner = make_planner(f"igd:weights={tmp_path / 'w'},rounds=3,denoising_steps=2")
    assert (planner.rounds, planner.denoising_steps) == (3, 2)
    assert make_planner(f"igd:weights={tmp_path / 'w'},rounds=3", rounds=5).rounds == 5  # keywords win
    with pytest.raises(ValueError, match="does not take an option"):
        make_planner(f"igd:weights={tmp_path / 'w'},colour=red")
    with pytest.raises(ValueError, match="evaluator must be one of"):
        make_planner(f"igd:weights={tmp_path / 'w'},evaluator=vibes")


@pytest.mark.parametrize("evaluator", ["affordance", "classifier"])
def test_evaluator_ablations_rank_by_their_own_score(box_world, tmp_path, evaluator):
    torch.manual_seed(0)
    save_pretrained(IGDModel(TINY_CONFIG), tmp_path / "w")
    view = box_world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    # Enough centres that the classifier ablation's random ones include some holding the box between the fingers.
    planner = make_planner("igd", weights=tmp_path / "w", min_affordance=0.0, min_quality=0.0, rounds=4, top_k=400,
                           denoising_steps=2, evaluator=evaluator)
    result = planner.plan(builder.scene())
    assert result.found, result.message
    assert f"evaluator {evaluator}" in result.message
    for grasp in result.grasps:
        assert grasp.score == pytest.approx(grasp.info[evaluator], abs=1e-6)


def test_model_without_dam_trains_and_plans(labelled_box_scenes, tmp_path, box_world):
    from diffgrasp_ros.cli.main import main
    from diffgrasp_ros.grasping.igd.model import PointFeature

    out = tmp_path / "nodam"
    assert main(["train", "--data", str(labelled_box_scenes), "--cache", str(tmp_path / "cache"), "--out", str(out), "--tiny",
                 "--steps", "4", "--threads", "1", "--set", "use_dam=false"]) == 0
    planner = IGDPlanner.from_pretrained(out, min_affordance=0.0, min_quality=0.0, denoising_steps=2, rounds=8,
                                         top_k=400)
    assert planner.model.config.use_dam is False and isinstance(planner.model.centre_attention, PointFeature)
    view = box_world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    result = planner.plan(builder.scene())  # 4 steps from a fixed seed: no skill, but a plan through every stage
    assert result.found, result.message


def test_train_rejects_unknown_config_fields(labelled_box_scenes, tmp_path, capsys):
    from diffgrasp_ros.cli.main import main

    assert main(["train", "--data", str(labelled_box_scenes), "--out", str(tmp_path / "x"), "--tiny", "--set", "dam=0"]) == 1
    assert "unknown IGD config field(s) ['dam']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fine_tuning_starts_from_saved_weights_with_a_new_optimizer(labelled_box_scenes, tmp_path):
    from diffgrasp_ros.training.igd_train import TrainOptions, train

    torch.manual_seed(5)
    start = IGDModel(TINY_CONFIG)
    save_pretrained(start, tmp_path / "start")
    lines: list[str] = []
    options = TrainOptions(labelled_box_scenes, tmp_path / "tuned", tmp_path / "cache", max_steps=3, threads=1,
                           init=tmp_path / "start")
    report = train(options, log=lines.append)
    assert report.steps == 3 and any("starting from the weights" in line for line in lines)
    tuned = load_pretrained(tmp_path / "tuned")
    assert tuned.config == TINY_CONFIG
    changed = [not torch.equal(a, b) for a, b in zip(start.state_dict().values(), tuned.state_dict().values())]
    assert any(changed)  # trained from there, not re-initialised: a fresh init would not keep the config
    with pytest.raises(ValueError, match="do not pass --init"):
        train(TrainOptions(labelled_box_scenes, tmp_path / "tuned", tmp_path / "cache", max_steps=4, resume=True,
                           init=tmp_path / "start"), log=lambda _: None)
