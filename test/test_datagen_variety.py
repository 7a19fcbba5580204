"""Data at scale: "checked" labels, randomised physics, label balance; all off by default."""
import json

import numpy as np
import pytest

from diffgrasp_ros.sim.world import ClutterWorld, PhysicsRandomisation
from diffgrasp_ros.training.datagen import DatagenConfig, _label_checked, balanced, generate_dataset
from diffgrasp_ros.training.dataset import (LABELLED_ANALYTICALLY, LABELLED_IN_SIM, MANIFEST, chunk_path, iter_chunks,
                                            rebuild_world)
from diffgrasp_ros.training.labels import AnalyticLabeller, SimLabeller

SMALL = dict(scenes_per_chunk=2, points_per_scene=3, yaws=2, depths=1, baseline_grasps=4)
OLD_CHUNK_KEYS = {"format_version", "chunk_index", "label_mode", "object_root", "scene_kind", "scene_seed",
                  "scene_object_count", "object_model", "object_scale", "object_position", "object_quaternion_xyzw",
                  "grasp_scene", "grasp_position", "grasp_quaternion_xyzw", "grasp_width", "grasp_label",
                  "grasp_source"}


def arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def make(folder, boxes, chunks=1, **options):
    config = DatagenConfig(seed=7, **{**SMALL, **options})
    return generate_dataset(folder, config, chunks, boxes, workers=1, progress=False)


# -- "checked" labels --------------------------------------------------------------------------------
def test_checked_labels_are_simulated_where_checked_and_analytic_elsewhere(box_world):
    from conftest import top_down_grasp

    # Across the box's sides, off-centre, in the air, slanted: positives and negatives.
    poses = np.array([top_down_grasp(0.15 + dx, 0.15, z, yaw) for dx in (0.0, 0.015, 0.06)
                      for z in (0.125, 0.14) for yaw in (0.0, np.pi / 2, np.radians(35))])
    analytic = np.array([AnalyticLabeller(box_world).label(T)[0] for T in poses], np.int8)
    simulator = SimLabeller(box_world)
    simulated = np.array([simulator.label(T)[0] for T in poses], np.int8)
    simulator.close()
    assert analytic.any() and not analytic.all()

    result = _label_checked(box_world, poses, 0.5, np.random.default_rng(1))
    checked = result.source == LABELLED_IN_SIM
    np.testing.assert_array_equal(result.analytic, analytic)
    assert np.all(checked[analytic == 1])  # every analytic positive is executed
    np.testing.assert_array_equal(result.labels, np.where(checked, simulated, analytic))
    again = _label_checked(box_world, poses, 0.5, np.random.default_rng(1))
    np.testing.assert_array_equal(again.source, result.source)
    none = _label_checked(box_world, poses, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(none.source == LABELLED_IN_SIM, analytic == 1)


def test_checked_dataset_records_who_decided_and_is_deterministic(boxes, tmp_path):
    report = make(tmp_path / "a", boxes, labels="checked", sim_check_fraction=0.5)
    make(tmp_path / "b", boxes, labels="checked", sim_check_fraction=0.5)
    a, b = arrays(chunk_path(tmp_path / "a", 0)), arrays(chunk_path(tmp_path / "b", 0))
    assert a.keys() == b.keys() == OLD_CHUNK_KEYS | {"grasp_label_analytic", "grasp_label_source"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    g = next(iter_chunks(tmp_path / "a")).grasps
    assert set(np.unique(g.label_source)) <= {LABELLED_ANALYTICALLY, LABELLED_IN_SIM}
    analytic_only = g.label_source == LABELLED_ANALYTICALLY
    np.testing.assert_array_equal(g.label[analytic_only], g.label_analytic[analytic_only])
    assert np.all(g.label_source[g.label_analytic == 1] == LABELLED_IN_SIM)
    assert report.disagreements == int(np.sum(g.label != g.label_analytic))
    assert report.agreement.count == int(np.sum(g.label_source == LABELLED_IN_SIM))
    manifest = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert manifest["config"]["sim_check_fraction"] == 0.5


# -- randomised physics ------------------------------------------------------------------------------
def test_randomised_physics_is_applied_recorded_and_rebuilt(boxes, tmp_path):
    objects = boxes["pile"]
    with ClutterWorld(objects.objects, seed=3) as plain:
        plain.generate("packed")
        default_masses = {plain.object_physics(b)[0] for b in plain.object_ids}
    with ClutterWorld(objects.objects, seed=3, randomisation=PhysicsRandomisation()) as world:
        assert world.generate("packed") > 0
        physics = [world.object_physics(b) for b in world.object_ids]
        description = world.describe("packed", 3, objects.root)
    np.testing.assert_allclose([(o.mass_kg, o.lateral_friction) for o in description.objects], physics)
    assert all(0.4 <= friction <= 1.0 for _, friction in physics)
    assert not {mass for mass, _ in physics} & default_masses

    make(tmp_path, boxes, randomise_physics=True)
    chunk = next(iter_chunks(tmp_path))
    assert {"object_mass_kg", "object_friction"} <= arrays(chunk_path(tmp_path, 0)).keys()
    stored = chunk.scenes[0]
    assert all(o.mass_kg is not None for o in stored.objects)
    with rebuild_world(stored, chunk.object_root) as rebuilt:
        again = rebuilt.describe(stored.kind, stored.seed, objects.root).objects
        assert [(o.model, o.scale) for o in again] == [(o.model, o.scale) for o in stored.objects]
        np.testing.assert_allclose([o.position_m for o in again], [o.position_m for o in stored.objects], atol=1e-6)
        np.testing.assert_allclose([rebuilt.object_physics(b) for b in rebuilt.object_ids],
                                   [(o.mass_kg, o.lateral_friction) for o in stored.objects])


def test_physics_settings_name_the_bad_value():
    with pytest.raises(ValueError, match="scale_jitter"):
        DatagenConfig(randomise_physics=True, scale_jitter=1.5)
    with pytest.raises(ValueError, match="friction"):
        PhysicsRandomisation(friction=(1.0, 0.4))
    with pytest.raises(ValueError, match="sim_check_fraction"):
        DatagenConfig(labels="checked", sim_check_fraction=2.0)
    with pytest.raises(ValueError, match="max_negative_ratio"):
        DatagenConfig(max_negative_ratio=-1.0)


# -- label balance -----------------------------------------------------------------------------------
def test_balance_keeps_positives_and_caps_negatives():
    labels = np.array([0, 1, 0, 0, 0, 1, 0, 0, 0, 0], np.int8)
    keep = balanced(labels, 1.5, np.random.default_rng(0))
    assert np.all(np.diff(keep) > 0) and {1, 5} <= set(keep.tolist())
    assert np.sum(labels[keep] == 0) == 3
    assert len(balanced(np.zeros(4, np.int8), 3.0, np.random.default_rng(0))) == 0
    np.testing.assert_array_equal(balanced(labels, 10.0, np.random.default_rng(0)), np.arange(10))


def test_balanced_dataset_caps_the_ratio_per_scene(boxes, tmp_path):
    make(tmp_path, boxes, labels="analytic", max_negative_ratio=1.0, points_per_scene=6)
    g = next(iter_chunks(tmp_path)).grasps
    assert len(g) > 0
    for scene in np.unique(g.scene):
        labels = g.label[g.scene == scene]
        assert np.sum(labels == 0) <= np.sum(labels == 1)


# -- defaults ----------------------------------------------------------------------------------------
def test_defaults_keep_the_format_and_the_manifest(boxes, tmp_path):
    make(tmp_path / "default", boxes, labels="analytic")
    explicit = dict(sim_check_fraction=0.25, randomise_physics=False, scale_jitter=0.15, max_negative_ratio=None)
    make(tmp_path / "explicit", boxes, labels="analytic", **explicit)
    a, b = chunk_path(tmp_path / "default", 0), chunk_path(tmp_path / "explicit", 0)
    assert arrays(a).keys() == OLD_CHUNK_KEYS
    assert a.read_bytes() == b.read_bytes()
    manifest = json.loads((tmp_path / "default" / MANIFEST).read_text())
    assert not explicit.keys() & manifest["config"].keys()  # datasets made before these options resume


# -- extra object families ---------------------------------------------------------------------------
def test_extra_families_load_rest_on_the_table_and_fill_a_pile(tmp_path):
    from scipy.spatial.transform import Rotation

    from diffgrasp_ros.sim.generate_objects import EXTRA_FAMILIES, generate
    from diffgrasp_ros.sim.object_set import find_objects

    urdfs = generate(tmp_path, seed=0, extra_families=True)
    assert len(urdfs) == sum(count for _, count, _ in EXTRA_FAMILIES)
    assert {p.name for p in urdfs} >= {"mug_01.urdf", "cup_01.urdf", "stick_01.urdf", "plate_01.urdf"}
    objects = find_objects(tmp_path / "train")
    with ClutterWorld(objects, seed=0) as world:
        table = world.workspace.table_height_m
        for model in objects:
            body = world.add_object(model, (0.15, 0.15, table + 0.12), Rotation.identity(), 1.0)
            world.wait_for_objects_to_rest()
            lower, upper = world.p.getAABB(body)  # (PyBullet pads it by a few mm of collision margin)
            centre = world.p.getBasePositionAndOrientation(body)[0]
            assert table < centre[2] < table + 0.1 and upper[2] - lower[2] < 0.22, model.name
            world.remove_object(body)
        # A cup is concave: a ray down its middle meets the floor, well below the rim.
        cup = next(m for m in objects if m.name == "cup_01")
        body = world.add_object(cup, (0.15, 0.15, table + 0.04), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        rim = world.p.getAABB(body)[1][2]
        hit = world.p.rayTest((0.15, 0.15, rim + 0.05), (0.15, 0.15, table - 0.01))[0]
        assert hit[0] == body and hit[3][2] < rim - 0.03
        assert world.generate("pile") > 0


def test_cli_options_reach_the_dataset(boxes, tmp_path, capsys):
    from diffgrasp_ros.cli.main import main

    objects = boxes["pile"].objects[0].path.parent
    assert main(["datagen", "--out", str(tmp_path), "--chunks", "1", "--scenes-per-chunk", "1", "--objects",
                 str(objects), "--labels", "checked", "--sim-check-fraction", "0.5", "--randomise-physics",
                 "--max-negative-ratio", "2", "--points-per-scene", "2", "--yaws", "2", "--depths", "1",
                 "--baseline-grasps", "2", "--workers", "1"]) == 0
    assert "overruled the analytic test" in capsys.readouterr().out
    config = json.loads((tmp_path / MANIFEST).read_text())["config"]
    assert (config["labels"], config["sim_check_fraction"], config["randomise_physics"],
            config["max_negative_ratio"]) == ("checked", 0.5, True, 2.0)
    chunk = next(iter_chunks(tmp_path))
    assert chunk.grasps.label_source is not None and chunk.scenes[0].objects[0].mass_kg is not None
