from pathlib import Path

import pytest

from diffgrasp_ros.sim import object_splits
from diffgrasp_ros.sim.object_set import DEFAULT_OBJECTS_DIR, find_objects
from diffgrasp_ros.sim.object_splits import (SHARED_ENV, is_validation_object, resolve_object_root,
                                             training_objects, validation_objects)


def names(object_set) -> set[str]:
    return {Path(m.path).name for m in object_set.objects}


def test_split_is_a_fixed_fifth_by_file_name():
    files = [f"object_{i}.urdf" for i in range(5000)]
    fraction = sum(map(is_validation_object, files)) / len(files)
    assert fraction == pytest.approx(0.2, abs=0.02)
    # Only the file name counts: the same object is in the same split wherever it is stored.
    assert is_validation_object("/a/b/object_7.urdf") == is_validation_object("c/object_7.urdf")


@pytest.mark.parametrize("kind", ["pile", "packed"])
def test_shared_training_and_validation_splits_partition_each_set(fake_shared, kind):
    train, val = training_objects(kind), validation_objects(kind)
    everything = {p.name for p in (fake_shared / "objects" / kind / "train").glob("*.urdf")}
    assert names(train).isdisjoint(names(val))
    assert names(train) | names(val) == everything
    assert 0 < len(val.objects) < len(train.objects)
    assert train.root_tag == val.root_tag == "shared"
    assert resolve_object_root("shared") == (fake_shared / "objects").resolve()


def test_without_shared_the_builtin_train_and_val_sets_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr(object_splits, "REPO_ROOT", tmp_path / "repo")  # no ../shared beside it
    monkeypatch.delenv(SHARED_ENV, raising=False)
    train, val = training_objects("pile"), validation_objects("packed")
    assert train.root == val.root == DEFAULT_OBJECTS_DIR and train.root_tag == "builtin"
    assert all(Path(m.path).parent.name == "train" for m in train.objects)
    assert all(Path(m.path).parent.name == "val" for m in val.objects)
    assert names(train).isdisjoint(names(val))
    with pytest.raises(FileNotFoundError, match="shared"):
        resolve_object_root("shared")


def test_a_missing_shared_folder_named_by_the_environment_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=SHARED_ENV):
        validation_objects("pile")


def test_the_real_shared_sets_split_about_one_fifth_for_validation(monkeypatch):
    monkeypatch.delenv(SHARED_ENV, raising=False)
    if object_splits.shared_objects_dir() is None:
        pytest.skip("../shared/objects is not available")
    for kind in ("pile", "packed"):
        train, val = training_objects(kind), validation_objects(kind)
        assert names(train).isdisjoint(names(val))
        everything = find_objects(object_splits.shared_objects_dir() / kind / "train")
        # The share of the whole folder: training also leaves out the held-out families (object_families).
        assert 0.1 < len(val.objects) / len(everything) < 0.3
