import dataclasses

import numpy as np
import pytest
import torch

from diffgrasp_ros.grasping.igd.scheduler import DDIMScheduler
from diffgrasp_ros.grasping.leap.templates import (GraspTemplate, check_joint_limits, link_boxes, make_template,
                                                  save_template)
from diffgrasp_ros.grasping.leap.transfer.config import TINY, TransferConfig
from diffgrasp_ros.grasping.leap.transfer.model import (FINGERS, TransferModel, TransferredMaps, channel_count,
                                                       finger_of_link)
from diffgrasp_ros.grasping.leap.transfer.optimise import (ContactTargets, FitWeights, HandFit, fit_hand, fit_hands,
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


TIPS = ("fingertip", "fingertip_2", "fingertip_3", "thumb_fingertip")  # the digits' last links


def tip_targets(q: np.ndarray, T_object_hand: np.ndarray, links=TIPS) -> ContactTargets:
    """Each link's spot on the face of its box (as contacts are, outside it), where ``q`` at ``T_object_hand`` puts
    it as the contact."""
    spots = np.array([link_boxes()[link][0] + [link_boxes()[link][1][0] + 0.0005, 0.0, 0.0] for link in links])
    poses = leap.link_poses_in_palm(q[None], links)
    points = np.array([(T_object_hand @ poses[link][0] @ np.append(spot, 1.0))[:3] for link, spot in zip(links, spots)])
    return ContactTargets(tuple(links), points, spots)


def test_the_fit_puts_the_links_on_reachable_contacts():
    q_true = leap.posture(0.5)
    T_true = np.eye(4)
    T_true[:3, 3] = (0.01, -0.02, 0.03)
    targets = tip_targets(q_true, T_true)
    rng = np.random.default_rng(0)
    q_start = np.clip(q_true + rng.normal(0.0, 0.1, 16), leap.LOWER_RAD, leap.UPPER_RAD)
    T_start = T_true.copy()
    T_start[:3, 3] += (0.01, 0.01, -0.01)
    fit = fit_hand(targets, targets.points_object_m, T_start, q_start, steps=200)
    assert np.all(fit.contact_errors_m < 0.003), fit.contact_errors_m
    check_joint_limits(fit.joints)
    # Thumb and index 0.3 m apart: out of the hand's reach, the fit says so and keeps the joints in their limits.
    two = tip_targets(q_true, T_true, (TIPS[0], TIPS[3]))
    apart = ContactTargets(two.links, two.points_object_m + [[0.0, 0.0, 0.0], [0.0, -0.3, 0.0]], two.spots_link_m)
    fit = fit_hand(apart, apart.points_object_m, T_true, q_true, steps=100)
    assert np.all(fit.contact_errors_m > 0.02)
    check_joint_limits(fit.joints)


def test_the_fit_keeps_the_template_posture_where_the_contacts_allow():
    # Contacts where the template's own posture puts them: the fit has nothing to change.
    q = leap.posture(0.4)
    targets = tip_targets(q, np.eye(4))
    fit = fit_hand(targets, targets.points_object_m, np.eye(4), q, steps=100)
    np.testing.assert_allclose(fit.joints, q, atol=0.03)
    np.testing.assert_allclose(fit.T_object_hand, np.eye(4), atol=0.005)


def lowest_link_corner_z(fit) -> float:
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    poses = leap.link_poses_in_palm(fit.joints[None], tuple(link_boxes()))
    corners = [(poses[link][0][:3, :3] @ (centre + signs * half).T).T + poses[link][0][:3, 3]
               for link, (centre, half) in link_boxes().items()]
    return float((np.concatenate(corners) @ fit.T_object_hand[:3, :3].T + fit.T_object_hand[:3, 3])[:, 2].min())


def test_with_a_table_the_fit_keeps_the_hand_above_it():
    q_true = leap.posture(0.5)
    targets = tip_targets(q_true, np.eye(4), (TIPS[0], TIPS[3]))
    free = fit_hand(targets, targets.points_object_m, np.eye(4), q_true, steps=150)
    # A table 1 cm above the hand's lowest box corner: the fit lifts the hand over it and still reaches the
    # contacts (which are above it).
    table = lowest_link_corner_z(free) + 0.01
    assert targets.points_object_m[:, 2].min() > table + 0.01
    fit = fit_hand(targets, targets.points_object_m, np.eye(4), q_true, steps=150, table_z_m=table)
    assert lowest_link_corner_z(fit) > table, (lowest_link_corner_z(fit), table)
    assert np.all(fit.contact_errors_m < 0.01), fit.contact_errors_m


def test_contacts_are_read_link_by_link_through_the_template_match(template):
    # The maps on the template's own points, matched to themselves: every link that touched the template is
    # found, touching where it did (the centroid of its contacts, moved onto the nearest of them).
    n = len(template.points_object)
    maps = TransferredMaps(template.contact_map.astype(float), template.point_parts, -template.normals_object,
                           np.zeros((n, len(FINGERS))), np.ones(n), np.arange(n))
    targets = select_contacts(template.points_object, maps, template)
    links = np.array(template.contact_links)
    counts = {link: int(np.sum(links == link)) for link in set(links)}
    assert set(targets.links) == {link for link, count in counts.items() if count >= 2}
    poses = leap.link_poses_in_palm(template.joints[None], targets.links)
    for link, point, spot in zip(targets.links, targets.points_object_m, targets.spots_link_m):
        own = template.contact_points[links == link]
        assert min(np.linalg.norm(own - point, axis=1)) < 1e-9  # one of its own contacts
        assert np.linalg.norm(point - own.mean(axis=0)) <= np.linalg.norm(own - own.mean(axis=0), axis=1).min() + 1e-9
        at = (template.T_object_hand @ poses[link][0] @ np.append(spot, 1.0))[:3]
        np.testing.assert_allclose(at, own.mean(axis=0), atol=1e-9)
    # Below the thresholds, nothing.
    with pytest.raises(ValueError, match="no object point has contact probability"):
        select_contacts(template.points_object, dataclasses.replace(maps, contact=np.zeros(n)), template)
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


def test_a_fit_ending_outside_the_joint_limits_is_refused_in_its_place():
    q = leap.posture(0.5)
    reachable = tip_targets(q, np.eye(4))
    # With the other three digits pinning the palm, the index tip asked 6 cm along the palm's -z without a limit
    # penalty: its joints go past their limits.
    moved = np.array([[0.0, 0.0, -0.06]] + [[0.0] * 3] * 3)
    beyond = ContactTargets(reachable.links, reachable.points_object_m + moved, reachable.spots_link_m)
    free = FitWeights(shape_per_rad2=0.0, limits_per_rad2=0.0)
    fits = fit_hands([reachable, beyond], reachable.points_object_m, [np.eye(4)] * 2, [q] * 2, steps=150, lr=0.05,
                     weights=free)
    assert isinstance(fits[0], HandFit) and np.all(fits[0].contact_errors_m < 0.01)
    assert isinstance(fits[1], ValueError) and "the fitted joints" in str(fits[1])
    with pytest.raises(ValueError, match="the fitted joints"):
        fit_hand(beyond, reachable.points_object_m, np.eye(4), q, steps=150, lr=0.05, weights=free)
