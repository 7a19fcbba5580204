import numpy as np
import pytest

from diffgrasp_ros.cli.main import main
from diffgrasp_ros.scene import SceneBuilder
from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.sim.world import ClutterWorld
from diffgrasp_ros.training.datagen import DatagenConfig, generate_dataset
from diffgrasp_ros.training.dataset import chunk_path, iter_chunks, read_chunk, reconstruct

SMALL = dict(scenes_per_chunk=1, points_per_scene=3, yaws=2, depths=1, baseline_grasps=4)


@pytest.fixture(scope="module")
def serial_dataset(boxes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serial")
    report = generate_dataset(folder, DatagenConfig("sim", seed=5, **SMALL), 2, boxes, workers=1, progress=False)
    return folder, report


def arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_a_chunk_holds_scene_descriptions_and_labelled_grasps(serial_dataset):
    folder, report = serial_dataset
    assert (report.chunks_written, report.chunks_skipped) == (2, 0)
    chunks = list(iter_chunks(folder))
    assert [c.index for c in chunks] == [0, 1]
    assert [s.kind for c in chunks for s in c.scenes] == ["pile", "packed"]  # alternating
    g = chunks[0].grasps
    assert len(g) == report.grasps - len(chunks[1].grasps) > 0
    assert set(np.unique(g.label)) <= {0, 1} and set(np.unique(g.source)) == {0, 1}
    assert np.all((g.width_m > 0) & (g.width_m <= 0.08))
    np.testing.assert_allclose(np.linalg.norm(g.quaternion_xyzw, axis=1), 1.0, atol=1e-5)
    assert g.label_analytic is None and chunks[0].label_mode == "sim"
    assert report.positives == sum(int(c.grasps.label.sum()) for c in chunks) > 0
    scene = chunks[0].scenes[0]
    assert len(scene.objects) >= 1 and all(o.model in ("box_a.urdf", "box_b.urdf") for o in scene.objects)


def test_chunks_store_no_images(serial_dataset):
    folder, _ = serial_dataset
    path = chunk_path(folder, 0)
    assert path.stat().st_size < 8_000  # one scene: a few kB (one 640x480 depth image would be 1.2 MB)
    assert all(a.size < 2_000 for a in arrays(path).values())


def test_resume_skips_written_chunks_and_parallel_output_equals_serial(serial_dataset, boxes, tmp_path):
    folder, _ = serial_dataset
    written = chunk_path(folder, 0).stat().st_mtime_ns
    resumed = generate_dataset(folder, DatagenConfig("sim", seed=5, **SMALL), 3, boxes, workers=1, progress=False)
    assert (resumed.chunks_written, resumed.chunks_skipped, resumed.written) == (1, 2, [2])
    assert chunk_path(folder, 0).stat().st_mtime_ns == written
    # The same dataset made by two worker processes, chunks in whatever order they finish.
    generate_dataset(tmp_path, DatagenConfig("sim", seed=5, **SMALL), 3, boxes, workers=2, progress=False)
    for index in range(3):
        a, b = arrays(chunk_path(folder, index)), arrays(chunk_path(tmp_path, index))
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resuming_with_other_settings_is_refused(serial_dataset, boxes):
    folder, _ = serial_dataset
    with pytest.raises(ValueError, match="labels differ"):
        generate_dataset(folder, DatagenConfig("analytic", seed=5, **SMALL), 2, boxes, workers=1, progress=False)


def test_rerendering_a_stored_scene_reproduces_its_tsdf(serial_dataset, boxes):
    folder, _ = serial_dataset
    chunk = read_chunk(chunk_path(folder, 1))
    description = chunk.scenes[0]
    # The scene as generated: its seed and kind regenerate it.
    with ClutterWorld(boxes["packed"].objects, seed=description.seed) as world:
        world.generate(description.kind)
        view = world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    original = builder.scene().tsdf_grid
    rebuilt = reconstruct(description, chunk.object_root, "side").tsdf_grid
    assert (original[:, :, 9:] > 0).sum() > 50  # objects above the table were observed
    np.testing.assert_allclose(rebuilt, original, atol=1e-4)


def test_both_labels_are_stored_and_compared(boxes, tmp_path):
    report = generate_dataset(tmp_path, DatagenConfig("both", seed=1, **SMALL), 1, boxes, workers=1, progress=False)
    (chunk,) = iter_chunks(tmp_path)
    assert chunk.label_mode == "both" and len(chunk.grasps.label_analytic) == len(chunk.grasps)
    assert report.agreement.count == report.grasps
    # On boxes the analytic test and simulation rarely disagree.
    assert report.agreement.accuracy >= 0.8


def test_datagen_command_uses_the_training_split(fake_shared, tmp_path, capsys):
    out = tmp_path / "data"
    code = main(["datagen", "--out", str(out), "--chunks", "1", "--scenes-per-chunk", "1", "--labels", "analytic",
                 "--points-per-scene", "2", "--yaws", "2", "--depths", "1", "--baseline-grasps", "2",
                 "--workers", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "shared pile/train, training split" in printed and "grasps/s" in printed
    (chunk,) = iter_chunks(out)
    from diffgrasp_ros.sim.object_splits import is_validation_object

    models = [o.model for s in chunk.scenes for o in s.objects]
    assert models and not any(is_validation_object(m) for m in models)


def test_datagen_rejects_bad_input(tmp_path, capsys):
    assert main(["datagen", "--out", str(tmp_path / "d"), "--objects", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["datagen", "--out", str(tmp_path / "d"), "--chunks", "0"]) == 1
    assert "chunks must be at least 1" in capsys.readouterr().err
