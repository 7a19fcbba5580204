import json
import math
from pathlib import Path

import pytest

from conftest import write_box_urdf
from diffgrasp_ros.cli.main import main
from diffgrasp_ros.sim import object_splits
from diffgrasp_ros.sim.object_families import (FROZEN_FILE, HELD_OUT_SHARE, SCENE_KINDS, assign, describe, frozen_data,
                                               frozen_assignment, listed_objects, to_json)
from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR, find_objects
from diffgrasp_ros.sim.object_splits import SHARED_ENV, is_validation_object, training_objects, validation_objects

CYLINDER_URDF = """<?xml version="1.0"?>
<robot name="{name}"><link name="base_link">
  <inertial><mass value="0.1"/><inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
  <collision><origin xyz="0.01 0.02 0.03" rpy="{rpy}"/>
    <geometry><cylinder radius="{radius}" length="{length}"/></geometry></collision>
</link></robot>
"""


def write_cylinder_urdf(folder: Path, name: str, radius_m: float, length_m: float, rpy: str = "0 0 0") -> Path:
    path = folder / f"{name}.urdf"
    path.write_text(CYLINDER_URDF.format(name=name, radius=radius_m, length=length_m, rpy=rpy))
    return path


def names(object_set) -> set[str]:
    return {Path(m.path).name for m in object_set.objects}


@pytest.fixture()
def no_shared(tmp_path, monkeypatch):
    monkeypatch.setattr(object_splits, "REPO_ROOT", tmp_path / "repo")  # no ../shared beside it
    monkeypatch.delenv(SHARED_ENV, raising=False)


@pytest.fixture()
def real_shared(monkeypatch):
    monkeypatch.delenv(SHARED_ENV, raising=False)
    root = object_splits.shared_objects_dir()
    if root is None:
        pytest.skip("../shared/objects is not available")
    return root


def test_the_frozen_file_is_what_the_rule_makes_of_its_descriptors():
    """Steps 2-3 of the rule (standardise, cluster, choose the held-out families) rerun on the frozen
    descriptors give the frozen file back, byte for byte."""
    listed = listed_objects(frozen_data())
    assert to_json(assign(listed), listed) == FROZEN_FILE.read_text()


def test_the_frozen_file_lists_every_shared_object_with_its_descriptors(real_shared):
    """Step 1 of the rule: the file lists exactly the shared objects; descriptors recomputed for a sample
    (the full check: python -m diffgrasp_ros.sim.object_families --check) match."""
    data = frozen_data()
    for kind in SCENE_KINDS:
        listed = data["objects"][kind]
        assert [o["file"] for o in listed] == sorted(m.path.name for m in find_objects(real_shared / kind / "train"))
        for entry in listed[::40]:
            shape = describe(real_shared / kind / "train" / entry["file"])
            assert list(vars(shape.descriptors).values()) == pytest.approx(entry["descriptors"], abs=2e-4)
            assert shape.longest_side_m == pytest.approx(entry["longest_side_m"], abs=1e-4)


def test_held_out_families_are_whole_and_about_a_fifth_of_each_scene_type():
    data, assignment = frozen_data(), frozen_assignment()
    held_out = set(assignment.held_out_names)
    assert held_out and held_out < {f.name for f in assignment.families}
    for kind in SCENE_KINDS:
        objects = data["objects"][kind]
        assert all(o["held_out"] == (o["family"] in held_out) for o in objects)
        training_families = {o["family"] for o in objects if not o["held_out"]}
        assert training_families.isdisjoint(held_out)
        assert HELD_OUT_SHARE[0] <= sum(o["held_out"] for o in objects) / len(objects) <= HELD_OUT_SHARE[1]
    # Held-out families differ in shape from every training family (distances of standardised, scale-free
    # descriptors, in standard deviations).
    for family in data["families"]:
        if family["held_out"]:
            assert family["nearest_training_family"] not in held_out and family["centroid_distance"] > 1.0


def test_descriptors_do_not_change_with_scale_or_pose(tmp_path):
    small = describe(write_cylinder_urdf(tmp_path, "small", 0.015, 0.10))
    large = describe(write_cylinder_urdf(tmp_path, "large", 0.045, 0.30, rpy="0.3 1.1 -0.7"))
    assert list(vars(large.descriptors).values()) == pytest.approx(list(vars(small.descriptors).values()), abs=2e-3)
    assert large.longest_side_m == pytest.approx(3 * small.longest_side_m, rel=1e-3)
    box = describe(write_box_urdf(tmp_path, "box", (0.04, 0.08, 0.02))).descriptors
    assert (box.middle_over_long, box.short_over_middle, box.solidity, box.end_fill, box.top_fill) == \
        pytest.approx((0.5, 0.5, 1.0, 1.0, 1.0), abs=1e-3)
    assert small.descriptors.end_fill == pytest.approx(math.pi / 4, abs=0.01)  # a round cross-section


def test_an_unlisted_object_joins_the_family_with_the_nearest_centroid(tmp_path):
    assignment = frozen_assignment()
    assert assignment.family_of(write_cylinder_urdf(tmp_path, "pencil_tin", 0.015, 0.12)).name == "long cylinder"
    assert assignment.family_of(write_box_urdf(tmp_path, "tea_box", (0.08, 0.10, 0.025))).name == "flat box"
    # A listed file name keeps its frozen family, whatever the file holds.
    listed_held_out = next(f for f, family in assignment.family_of_file.items()
                           if assignment.family(family).held_out)
    assert assignment.is_held_out(write_box_urdf(tmp_path, Path(listed_held_out).stem, (0.08, 0.10, 0.025)))


@pytest.fixture()
def shared_with_families(tmp_path, monkeypatch):
    """A stand-in for ../shared whose pile set holds boxes, long cylinders and squat (held-out) cylinders."""
    folder = tmp_path / "objects" / "pile" / "train"
    folder.mkdir(parents=True)
    for i in range(12):
        write_box_urdf(folder, f"box_{i:02d}", (0.04, 0.05 + 0.003 * i, 0.06))
        write_cylinder_urdf(folder, f"long_{i:02d}", 0.012 + 0.001 * i, 0.13)
        write_cylinder_urdf(folder, f"squat_{i:02d}", 0.03, 0.08 + 0.002 * i)
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    return folder


def test_training_objects_exclude_both_validation_splits(shared_with_families):
    train, by_hash, by_family = (training_objects("pile"), validation_objects("pile", "hash"),
                                 validation_objects("pile", "families"))
    everything = {p.name for p in shared_with_families.glob("*.urdf")}
    assert names(train) | names(by_hash) | names(by_family) == everything
    assert names(train).isdisjoint(names(by_hash)) and names(train).isdisjoint(names(by_family))
    assert {n.split("_")[0] for n in names(by_family)} == {"squat"}  # the held-out "oblong cylinder" family
    assert all(not is_validation_object(n) for n in names(train))
    assert by_family.name.startswith("shared pile/train, held-out families v1 (")
    with pytest.raises(ValueError, match="unknown validation split"):
        validation_objects("pile", "random")


def test_the_real_shared_splits_follow_the_frozen_file(real_shared):
    data = frozen_data()
    for kind in SCENE_KINDS:
        held_out = {o["file"] for o in data["objects"][kind] if o["held_out"]}
        train, by_hash, by_family = (training_objects(kind), validation_objects(kind, "hash"),
                                     validation_objects(kind, "families"))
        assert names(by_family) == held_out
        assert names(train) == {o["file"] for o in data["objects"][kind]} - held_out - names(by_hash)


def test_without_shared_the_families_split_is_the_builtin_val_set(no_shared):
    by_family = validation_objects("pile", "families")
    assert names(by_family) == {m.path.name for m in find_objects(DEFAULT_OBJECTS_DIR / "val")}
    assert "no family hold-out" in by_family.name


def test_bench_runs_on_the_families_split(no_shared, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--scene", "packed", "--rounds", "1", "--split", "families", "--objects-per-round", "2",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "--split families" in report["command"]
    assert report["results"][0]["objects"].startswith("builtin val/ (no family hold-out")
