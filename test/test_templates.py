import json
from pathlib import Path

import numpy as np
import pytest

from diffgrasp_ros.cli.main import main
from diffgrasp_ros.geometry import invert
from diffgrasp_ros.grasping.leap.templates import (MIN_TARGET_POINTS, check_joint_limits, check_transfer_target,
                                                   load_template, make_template, save_template)
from diffgrasp_ros.robots import leap
from diffgrasp_ros.sim.categories import make_instance

POINTS = 512


def box_grasp(instance) -> tuple[np.ndarray, np.ndarray]:
    """(T_object_hand, joints): from above, thumb and fingers pressing the box's two long sides (along y)."""
    width, height = instance.extents_m()[1:]
    T_object_tcp = np.eye(4)
    T_object_tcp[:3, :3] = np.column_stack([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])  # closing y, down
    T_object_tcp[:3, 3] = (0.0, 0.0, height)
    # posture_for_width opens APERTURE_MARGIN_M wider than asked: ask that much less to touch both sides.
    return T_object_tcp @ invert(leap.T_PALM_TCP), leap.posture_for_width(width - leap.APERTURE_MARGIN_M)


@pytest.fixture(scope="module")
def box():
    return make_instance("box", "train", 0)


@pytest.fixture(scope="module")
def template(box):
    sample = box.sample_surface(POINTS, seed=0)
    T_object_hand, joints = box_grasp(box)
    return make_template("box", "lift", box.part_names, sample.points_m, sample.normals, sample.parts,
                         T_object_hand, joints, {"source": "test"})


def test_contacts_are_where_thumb_and_fingers_press(template, box):
    width = box.extents_m()[1]
    y = template.contact_points[:, 1]
    assert np.all(np.abs(y) > width / 2 - 0.01)  # on the two long sides (and the top's edges), not in between
    thumb = np.array([link.startswith("thumb") for link in template.contact_links])
    assert thumb.any() and (~thumb).any()
    assert np.all(np.sign(y[thumb]) != np.sign(y[~thumb][0]))  # the thumb opposes the fingers
    assert template.contact_map.sum() == len(template.contact_indices)
    assert 0.0 < template.part_share("body") < 1.0 and template.part_share("spout") == 0.0


def test_a_template_round_trips_through_its_file(template, tmp_path):
    loaded = load_template(save_template(template, tmp_path / "t.npz"))
    for name in ("points_object", "normals_object", "point_parts", "T_object_hand", "joints", "contact_indices"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(template, name))
    assert (loaded.category, loaded.task, loaded.hand, loaded.part_names, loaded.contact_links, loaded.provenance) \
        == (template.category, template.task, template.hand, template.part_names, template.contact_links,
            template.provenance)


def _rewrite(path: Path, out: Path, change) -> Path:
    with np.load(path) as data:
        fields = {name: data[name] for name in data.files}
    meta = json.loads(str(fields["meta"]))
    change(fields, meta)
    fields["meta"] = np.array(json.dumps(meta))
    np.savez(out, **fields)
    return out


def _set_joint(fields, meta):
    fields["joints"] = fields["joints"].copy()
    fields["joints"][1] = 3.0


@pytest.mark.parametrize("change, message", [
    (lambda f, m: m.update(hand="allegro"), "template is for the 'allegro' hand: only 'leap'"),
    (lambda f, m: f.pop("joints"), "fields missing: joints"),
    (lambda f, m: m.pop("category"), "fields missing: category"),
    (lambda f, m: f.update(points_object=f["points_object"][:, :2]), r"points_object must be \(N, 3\)"),
    (lambda f, m: f.update(point_parts=f["point_parts"][:-1]), r"point_parts must be \(512,\)"),
    (_set_joint, "violate the LEAP hand's joint limits: joint 1 = 3.000 rad"),
    (lambda f, m: m.update(format_version=99), "template format version 99 is not supported"),
    (lambda f, m: m.update(contact_links=["wrist"] * len(m["contact_links"])), r"\['wrist'\] are not links"),
])
def test_a_bad_template_file_is_refused_with_what_is_wrong(template, tmp_path, change, message):
    good = save_template(template, tmp_path / "good.npz")
    bad = _rewrite(good, tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=message):
        load_template(bad)


def test_transfer_targets_and_optimised_poses_are_checked(template):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="a box grasp: it cannot be transferred onto a mug"):
        check_transfer_target(template, "mug", rng.random((1000, 3)))
    with pytest.raises(ValueError, match=f"has 100 observed points: a transfer needs at least {MIN_TARGET_POINTS}"):
        check_transfer_target(template, "box", rng.random((100, 3)))
    points = rng.random((MIN_TARGET_POINTS + 10, 3))
    points[:10] = np.nan  # unobserved pixels do not count
    assert check_transfer_target(template, "box", points).shape == (MIN_TARGET_POINTS, 3)
    points[10] = np.nan
    with pytest.raises(ValueError, match=f"has {MIN_TARGET_POINTS - 1} observed points"):
        check_transfer_target(template, "box", points)
    q = leap.OPEN_Q.copy()
    q[13] = leap.UPPER_RAD[13] + 0.1
    with pytest.raises(ValueError, match="joint 13 = 2.543 rad not in"):
        check_joint_limits(q, "optimised joints")


def test_a_hand_pose_inside_the_object_or_away_from_it_makes_no_template(box):
    sample = box.sample_surface(POINTS, seed=0)
    T_object_hand, joints = box_grasp(box)
    for shift, message in (((0.0, 0.015, 0.0), "mm inside the object"), ((0.0, 0.0, 0.2), "the hand touches nothing")):
        moved = T_object_hand.copy()
        moved[:3, 3] += shift
        with pytest.raises(ValueError, match=message):
            make_template("box", "lift", box.part_names, sample.points_m, sample.normals, sample.parts, moved,
                          joints, {})


def test_template_make_from_a_hand_pose_and_show(box, tmp_path, capsys):
    T_object_hand, joints = box_grasp(box)
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps({"T_object_hand": T_object_hand.tolist(), "joints": joints.tolist()}))
    out = tmp_path / "box_lid.npz"
    assert main(["template", "make", "--hand-pose", str(pose), "--category", "box", "--part", "body",
                 "--task", "lift", "--points", str(POINTS), "--out", str(out)]) == 0
    made = load_template(out)
    assert (made.category, made.task, made.provenance["instance"]) == ("box", "lift", "box_train_00")
    assert made.provenance["source"] == "hand pose pose.json" and len(made.points_object) == POINTS
    capsys.readouterr()
    assert main(["template", "show", str(out)]) == 0
    assert "category box, task lift" in capsys.readouterr().out

    bad = json.loads(pose.read_text())
    bad["joints"][5] = -1.0
    pose.write_text(json.dumps(bad))
    assert main(["template", "make", "--hand-pose", str(pose), "--category", "box", "--part", "body",
                 "--out", str(out)]) == 1
    assert "joint 5 = -1.000 rad" in capsys.readouterr().err
    assert main(["template", "make", "--hand-pose", str(pose), "--category", "box", "--part", "handle",
                 "--out", str(out)]) == 1
    assert "a box has the parts ['body', 'lid'], not 'handle'" in capsys.readouterr().err
