import numpy as np
import pytest
import torch

from diffgrasp_ros.grasping.igd.scheduler import DDIMScheduler
from diffgrasp_ros.grasping.leap.templates import GraspTemplate, check_joint_limits, make_template, save_template
from diffgrasp_ros.grasping.leap.transfer.config import TINY, TransferConfig
from diffgrasp_ros.grasping.leap.transfer.model import (FINGERS, TransferModel, TransferredMaps, channel_count,
                                                       finger_of_link)
from diffgrasp_ros.grasping.leap.transfer.optimise import (ContactTargets, fit_hand, pad_normals_in_tip,
                                                           select_contacts)
from diffgrasp_ros.grasping.leap.transfer.pretrained import from_pretrained
from diffgrasp_ros.robots import leap
from diffgrasp_ros.sim.categories import make_instance
from diffgrasp_ros.training.loop import LoopSettings
from diffgrasp_ros.training.transfer_data import collate, correspondents, make_pair, training_pairs
from diffgrasp_ros.training.transfer_train import TransferTrainOptions, main, train
from test_templates import _rewrite, box_grasp

CONFIG = TransferConfig(**TINY)


@pytest.fixture(scope="module")
def template():
    box = make_instance("box", "train", 0)
    sample = box.sample_surface(512, seed=0)
    T_object_hand, joints = box_grasp(box)
    return make_template("box", "lift", box.part_names, sample.points_m, sample.normals, sample.parts,
                         T_object_hand, joints, {"source": "test"})


@pytest.fixture(scope="module")
def pair(template):
    return make_pair(template, make_instance("box", "train", 3), CONFIG, np.random.default_rng(0))


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_pairs_carry_the_template_contacts_onto_the_visible_target(pair, template):
    assert len(pair.target_points_m) >= 256 and pair.target_points_m.shape[1] == 3
    assert 0.0 < pair.target_contact.mean() < 1.0  # a band, neither everything nor nothing
    np.testing.assert_allclose(np.linalg.norm(pair.target_directions, axis=1), 1.0, atol=1e-6)
    # Seen from the camera's side only: the points facing away from it were dropped.
    assert np.all(pair.target_directions @ pair.view_direction < 0.0)
    assert pair.template_channels.shape == (len(template.points_object), channel_count(CONFIG))


def test_targets_pull_the_template_contacts_back_part_by_part(template):
    # Onto its own points, the correspondence is the identity: the target map is the template's own.
    own = correspondents(template, template.points_object, template.point_parts)
    np.testing.assert_array_equal(own, np.arange(len(template.points_object)))
    # Contacts on a mug's handle land on the handle of another mug, at the same end of it.
    mug = make_instance("mug", "train", 0)
    sample = mug.sample_surface(1024, seed=0)
    handle = np.flatnonzero(sample.parts == mug.part_names.index("handle"))
    top = handle[sample.points_m[handle, 2] > np.quantile(sample.points_m[handle, 2], 0.8)]
    on_handle = GraspTemplate("mug", "lift", mug.part_names, sample.points_m, sample.normals, sample.parts,
                              np.eye(4), leap.OPEN_Q, top, ("fingertip",) * len(top))
    other = make_instance("mug", "train", 5).sample_surface(1024, seed=1)
    contact = on_handle.contact_map[correspondents(on_handle, other.points_m, other.parts)]
    assert contact.sum() > 0.5 * len(top)
    assert np.all(other.parts[contact] == mug.part_names.index("handle"))
    handle_z = other.points_m[other.parts == mug.part_names.index("handle"), 2]
    assert np.all(other.points_m[contact, 2] > np.quantile(handle_z, 0.6))


# "meta" tensors have shapes and a device but no data: a stray CPU tensor in the forward pass fails there.
@pytest.mark.parametrize("device", ["meta"] + devices())
def test_losses_follow_the_inputs_device(pair, device):
    model = TransferModel(CONFIG).to(device)
    batch = collate([pair, pair], CONFIG, np.random.default_rng(0), device)
    losses = model.losses(batch, DDIMScheduler(CONFIG.train_steps, device=device))
    assert set(losses) == {"total", "contact", "part_direction", "cycle"}
    assert all(v.device.type == device and v.shape == () for v in losses.values())


@pytest.mark.parametrize("device", devices())
def test_sampled_maps_cover_every_object_point(pair, device):
    torch.manual_seed(0)
    model = TransferModel(CONFIG).to(device)
    batch = collate([pair, pair], CONFIG, np.random.default_rng(0), device)
    assert all(torch.isfinite(v) for v in model.losses(batch, DDIMScheduler(CONFIG.train_steps, device=device)).values())
    maps = model.sample(batch["object_m"], batch["template_m"], batch["template_channels"], batch["task"],
                        DDIMScheduler(CONFIG.train_steps, device=device))
    n = CONFIG.object_points
    assert len(maps) == 2
    assert maps[0].contact.shape == (n,) and maps[0].directions.shape == (n, 3)
    assert maps[0].fingers.shape == (n, len(FINGERS)) and maps[0].consistency.shape == (n,)
    assert np.all((maps[0].contact >= 0) & (maps[0].contact <= 1)) and set(maps[0].parts) <= {0, 1}
    np.testing.assert_allclose(np.linalg.norm(maps[0].directions, axis=1), 1.0, atol=1e-5)


def test_the_dual_mapping_returns_every_point_to_itself_on_identical_inputs(pair):
    torch.manual_seed(0)
    model = TransferModel(CONFIG).eval()
    batch = collate([pair], CONFIG, np.random.default_rng(0))
    x = batch["object_m"]
    with torch.no_grad():
        f = model.encoder(x / CONFIG.position_scale_m)
        same = model.mapping(f, f, x)
        other_x = collate([pair], CONFIG, np.random.default_rng(1))["object_m"]  # another subset of the view
        other = model.mapping(f, model.encoder(other_x / CONFIG.position_scale_m), x)
    assert torch.equal(same.object_to_template.argmax(-1)[0], torch.arange(x.shape[1]))
    assert torch.count_nonzero(same.hard_cycle_error_m) == 0
    assert torch.count_nonzero(other.hard_cycle_error_m) > 0  # the check can fail


def test_thirty_steps_overfit_one_pair_and_the_weights_round_trip(template, tmp_path):
    loop = LoopSettings(tmp_path / "run", max_steps=30, lr=3e-3, warmup_steps=1, checkpoint_every=30, log_every=10)
    options = TransferTrainOptions(loop, pairs_per_template=1, batch_size=1, tiny=True)
    # The trainer's one pair (its seed is the options' seed for the first template), one fixed draw of it.
    batch = collate(training_pairs(template, 1, CONFIG, seed=0), CONFIG, np.random.default_rng(0))
    scheduler = DDIMScheduler(CONFIG.train_steps)

    def loss(model) -> dict[str, float]:
        with torch.no_grad():
            return {k: float(v) for k, v in model.losses(batch, scheduler, torch.Generator().manual_seed(0)).items()}

    torch.manual_seed(0)
    before = loss(TransferModel(CONFIG))
    model, result = train(options, [template], log=lambda line: None)
    after = loss(model)
    assert result.steps == 30
    assert after["total"] < 0.6 * before["total"], (before, after)
    # Not the cycle term alone: the maps' ε losses fall too.
    assert after["contact"] + after["part_direction"] < 0.7 * (before["contact"] + before["part_direction"])
    assert loss(from_pretrained(tmp_path / "run", device="cpu")) == pytest.approx(after, rel=1e-5)


def test_the_fit_puts_the_pads_on_reachable_contacts():
    q_true = leap.posture(0.5)
    T_true = np.eye(4)
    T_true[:3, 3] = (0.01, -0.02, 0.03)
    pads = leap.tip_positions(q_true[None])[0] + T_true[:3, 3]
    T_palm_tip = leap.link_poses_in_palm(q_true[None], leap.TIP_LINKS)
    pushes = np.stack([T_palm_tip[tip][0, :3, :3] @ pad_normals_in_tip()[tip] for tip in leap.TIP_LINKS])
    rng = np.random.default_rng(0)
    q_start = np.clip(q_true + rng.normal(0.0, 0.1, 16), leap.LOWER_RAD, leap.UPPER_RAD)
    T_start = T_true.copy()
    T_start[:3, 3] += (0.01, 0.01, -0.01)
    fit = fit_hand(ContactTargets((0, 1, 2, 3), pads, pushes), pads, T_start, q_start, steps=200)
    assert np.all(fit.contact_errors_m < 0.003), fit.contact_errors_m
    assert np.all(fit.direction_errors_rad < 0.1), fit.direction_errors_rad
    check_joint_limits(fit.joints)
    assert fit.penetration_m < 0.002
    # Thumb and index 0.3 m apart: out of the hand's reach, the fit says so and keeps the joints in their limits.
    apart = pads[[0, 3]] + [[0.0, 0.0, 0.0], [0.0, -0.3, 0.0]]
    fit = fit_hand(ContactTargets((0, 3), apart, pushes[[0, 3]]), apart, T_true, q_true, steps=100)
    assert np.all(fit.contact_errors_m > 0.02)
    check_joint_limits(fit.joints)


def test_contacts_are_chosen_per_digit_apart_from_each_other():
    points = np.array([[0.0, 0.0, 0.0], [0.005, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0]])
    fingers = np.eye(len(FINGERS))[[0, 1, 1, 3]]
    maps = TransferredMaps(np.array([0.9, 0.95, 0.6, 0.3]), np.zeros(4, int), np.tile([0.0, 0.0, -1.0], (4, 1)),
                           fingers, np.ones(4))
    targets = select_contacts(points, maps)
    assert targets.digits == (0, 1)  # the thumb's only point is below the contact threshold
    np.testing.assert_array_equal(targets.points_object_m, points[[0, 2]])  # the middle finger keeps 15 mm away
    assert [FINGERS[finger_of_link(link)] for link in ("fingertip", "dip_2", "pip_3", "pip_4", "palm_lower")] \
        == ["index", "middle", "ring", "thumb", "palm"]


def test_bad_inputs_are_refused_with_a_reason(template, tmp_path):
    with pytest.raises(ValueError, match="at least 256"):
        make_pair(template, make_instance("box", "train", 3), CONFIG, np.random.default_rng(0), surface_points=300)
    with pytest.raises(ValueError, match="cannot be transferred onto a mug"):
        make_pair(template, make_instance("mug", "train", 0), CONFIG, np.random.default_rng(0))
    with pytest.raises(ValueError, match="task 'juggle'"):
        TransferConfig(**TINY, tasks=("lift",)).task_index("juggle")
    other_hand = _rewrite(save_template(template, tmp_path / "t.npz"), tmp_path / "allegro.npz",
                          lambda fields, meta: meta.update(hand="allegro"))
    with pytest.raises(ValueError, match="only 'leap' templates"):
        main(["--template", str(other_hand), "--out", str(tmp_path / "run"), "--max-steps", "1", "--tiny"])
