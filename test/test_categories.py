import numpy as np
import pytest

from diffgrasp_ros.sim import categories
from diffgrasp_ros.sim.categories import (CATEGORIES, SPLITS, instances, make_instance, shape_parameters,
                                          shared_examples, write_instance)
from diffgrasp_ros.sim.object_set import find_objects, is_watertight
from diffgrasp_ros.sim.object_splits import shared_objects_dir

LEAP_OPENING_M = 0.13  # thumb to fingers, open


@pytest.fixture(scope="module")
def every_instance():
    return {(name, split): instances(name, split) for name in CATEGORIES for split in SPLITS}


def test_five_categories_with_named_parts_and_enough_instances(every_instance):
    assert {"mug", "bottle", "bowl", "hammer", "box"} <= set(CATEGORIES)
    assert CATEGORIES["mug"].parts == ("body", "handle") and "neck" in CATEGORIES["bottle"].parts
    assert "rim" in CATEGORIES["bowl"].parts and {"handle", "head"} <= set(CATEGORIES["hammer"].parts)
    for name in CATEGORIES:
        assert len(every_instance[name, "train"]) >= 20 and len(every_instance[name, "held_out"]) >= 5


def test_every_instance_labels_every_part_on_closed_pieces_of_hand_size(every_instance):
    for (name, split), group in every_instance.items():
        for instance in group:
            assert set(instance.vertex_parts) == set(range(len(instance.part_names))), instance.name
            assert len(instance.vertex_parts) == len(instance.vertices)
            for piece in instance.pieces:
                assert is_watertight(piece.triangles), instance.name
                corners = piece.vertices[piece.triangles]
                signed = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
                assert signed > 0, f"{instance.name}: a piece is wound inwards"
            extents = instance.extents_m()
            # Canonical frame: standing on z = 0, centred in x and y.
            assert instance.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-9)
            lower, upper = instance.vertices.min(axis=0), instance.vertices.max(axis=0)
            np.testing.assert_allclose((lower + upper)[:2], 0.0, atol=1e-9)
            assert extents.max() <= 0.25 and extents.min() < LEAP_OPENING_M - 0.02, instance.name
            assert 0.05 <= instance.mass_kg() <= 0.5


def test_held_out_instances_differ_in_shape_from_every_training_instance(every_instance):
    for name, spec in CATEGORIES.items():
        assert spec.held_out, name
        for key in spec.held_out:
            trained = [i.parameters[key] for i in every_instance[name, "train"]]
            for instance in every_instance[name, "held_out"]:
                value = instance.parameters[key]
                assert value < min(trained) or value > max(trained), (instance.name, key)
        # Only shape ratios are held out, never a size alone.
        assert not any(key.endswith("_m") for key in spec.held_out), name


def test_instance_parameters_follow_the_frozen_rule():
    assert shape_parameters("mug", "train", 3) == make_instance("mug", "train", 3).parameters
    assert shape_parameters("mug", "train", 3) != shape_parameters("mug", "train", 4)
    # Pinned: the split must not drift with library versions.
    assert shape_parameters("bottle", "held_out", 0)["neck_over_body"] == 0.6055
    with pytest.raises(ValueError, match="24 train instances"):
        make_instance("mug", "train", 24)
    with pytest.raises(ValueError, match="unknown object category 'cup'"):
        make_instance("cup", "train", 0)
    with pytest.raises(ValueError, match="unknown category split"):
        make_instance("mug", "val", 0)


def test_surface_samples_cover_the_outside_and_the_concave_inside():
    mug = make_instance("mug", "held_out", 1)
    sample = mug.sample_surface(1500, seed=1)
    assert sample.points_m.shape == (1500, 3) and set(sample.parts) == {0, 1}
    np.testing.assert_allclose(np.linalg.norm(sample.normals, axis=1), 1.0, atol=1e-9)
    # No sample inside (or on the join with) another piece: the joins are not surface.
    for piece in mug.pieces:
        depth = (sample.points_m @ piece.planes[:, :3].T + piece.planes[:, 3]).max(axis=1)
        assert np.sum(depth < -1e-3) == 0
    # The inner wall is surface too: points near the axis-facing side, normals pointing inwards.
    body = sample.parts == 0
    radial = sample.points_m[body, :2] / np.linalg.norm(sample.points_m[body, :2], axis=1, keepdims=True)
    assert np.mean(np.einsum("ij,ij->i", radial, sample.normals[body, :2]) < -0.9) > 0.2


def test_an_instance_loads_into_the_simulated_world_keeping_its_concave_shape(tmp_path):
    from diffgrasp_ros.sim.pick_scene import stand_object
    from diffgrasp_ros.sim.world import ClutterWorld

    mug = make_instance("mug", "train", 0)
    model = write_instance(mug, tmp_path)
    assert [m.name for m in find_objects(tmp_path)] == [mug.name]
    with ClutterWorld([model]) as world:
        body = stand_object(world, model)
        position, _ = world.object_pose(body)
        top = world.p.getAABB(body)[1][2]
        hit = world.p.rayTest(position + (0, 0, 0.3), position - (0, 0, 0.01))[0]
        assert hit[0] == body and hit[3][2] < top - 0.05  # down into the cup onto its floor, not onto a lid
        reach, x_max = mug.parameters["handle_reach_m"], mug.vertices[:, 0].max()
        z = position[2] + 0.5 * np.ptp(mug.vertices[:, 2])
        for x, expected in ((x_max - 0.5 * reach, -1), (x_max - 0.003, body)):  # the gap, then the grip
            ray = world.p.rayTest((position[0] + x, position[1] - 0.2, z), (position[0] + x, position[1] + 0.2, z))
            assert ray[0][0] == expected


def test_shared_objects_of_a_category_are_found_when_the_shared_set_is_there():
    assert shared_examples("mug", None) == []
    root = shared_objects_dir()
    if root is None:
        pytest.skip("../shared/objects is not available")
    for name in CATEGORIES:
        found = shared_examples(name, root)
        assert found and all(name in m.name.lower() for m in found), name


def test_category_list_in_the_docstring_matches_the_ranges():
    for name, spec in CATEGORIES.items():
        row = next(line for line in categories.__doc__.splitlines() if line.startswith(f"| {name} |"))
        for key, (low, high) in spec.held_out.items():
            train_low, train_high = spec.ranges[key]
            assert f"{key} {train_low:g}-{train_high:g} " in row and f"-> {low:g}-{high:g}" in row, (name, key)
