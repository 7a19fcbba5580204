"""Learned depth restoration: the stereo-pair data, the model's IO and errors, the training loop."""
import numpy as np
import pytest
import torch

from diffgrasp_ros.camera import SIM_CAMERA, DepthError, DepthFrame
from diffgrasp_ros.depth import DepthProcessor
from diffgrasp_ros.depth.restoration import TINY, DepthRestorer, RestorationConfig
from diffgrasp_ros.training.depth_pairs import MATERIAL_NAMES, chunk_path, generate_pairs, load_pairs
from diffgrasp_ros.training.restore_train import RestoreTrainOptions, train_restore


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    torch.set_num_threads(1)
    generate_pairs(folder, n_chunks=1, frames_per_chunk=2, split="train", seed=0)
    return folder


@pytest.fixture(scope="module")
def tiny_run(pairs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("restore_run")
    report = train_restore(RestoreTrainOptions(pairs_dir, out, val_data=pairs_dir, steps=3, batch=2, crop=64,
                                               checkpoint_every=2, tiny=True), log=lambda line: None)
    return out, report


def test_pairs_are_stored_compactly_and_resume(pairs_dir):
    pairs = load_pairs(pairs_dir)
    assert len(pairs) == 2
    assert pairs.raw_depth_mm.dtype == pairs.clean_depth_mm.dtype == np.uint16
    assert pairs.ir_left.dtype == pairs.material.dtype == np.uint8
    assert pairs.raw_depth_mm.shape == (2, 480, 640) and pairs.material.max() < len(MATERIAL_NAMES)
    valid = pairs.raw_depth_mm > 0
    # Where the sensor matched, it is mostly within a centimetre of the truth; and it has holes.
    error_mm = np.abs(pairs.raw_depth_mm[valid].astype(int) - pairs.clean_depth_mm[valid])
    assert np.median(error_mm) <= 3 and 0.3 < valid.mean() < 0.99
    stamp = chunk_path(pairs_dir, 0).stat().st_mtime_ns
    generate_pairs(pairs_dir, n_chunks=1, frames_per_chunk=2, split="train", seed=0)
    assert chunk_path(pairs_dir, 0).stat().st_mtime_ns == stamp  # finished chunks are skipped
    with pytest.raises(ValueError, match="other settings"):
        generate_pairs(pairs_dir, n_chunks=1, frames_per_chunk=2, split="train", seed=1)
    with pytest.raises(ValueError, match="split"):
        generate_pairs(pairs_dir, n_chunks=1, split="test")


def test_training_checkpoints_resumes_and_saves_loadable_weights(pairs_dir, tiny_run):
    out, report = tiny_run
    assert report.steps == 3 and report.frames == 2 and np.isfinite(report.val_mae_mm)
    with pytest.raises(ValueError, match="--resume"):
        train_restore(RestoreTrainOptions(pairs_dir, out, steps=5, crop=64, tiny=True), log=lambda line: None)
    resumed = train_restore(RestoreTrainOptions(pairs_dir, out, steps=5, batch=2, crop=64, tiny=True, resume=True),
                            log=lambda line: None)
    assert resumed.steps == 5 and resumed.steps_this_run == 2
    model = DepthRestorer.from_pretrained(out)
    assert model.config == RestorationConfig(**TINY)
    pairs = load_pairs(pairs_dir)
    restored = model.restore(pairs.raw_depth_m[0], pairs.ir_left[0])
    assert restored.shape == (480, 640) and restored.dtype == np.float32 and np.isfinite(restored).all()
    np.testing.assert_array_equal(model.restore(pairs.raw_depth_m[0]), model.restore(pairs.raw_depth_m[0], None))
    with pytest.raises(ValueError, match="crop must be a positive multiple of 8"):
        train_restore(RestoreTrainOptions(pairs_dir, out / "other", crop=60, tiny=True), log=lambda line: None)


def test_bad_frames_and_weights_are_rejected_clearly(tiny_run, tmp_path):
    out, _ = tiny_run
    model = DepthRestorer.from_pretrained(out)
    depth, ir = np.full((480, 640), 0.6, np.float32), np.zeros((480, 640), np.uint8)
    with pytest.raises(ValueError, match="depth_m must be an \\(H, W\\) float32 array, got uint16"):
        model.restore(depth.astype(np.uint16), ir)
    with pytest.raises(ValueError, match="ir_left must be an \\(H, W\\) uint8"):
        model.restore(depth, ir.astype(np.float32))
    assert model.restore(depth[:475], ir[:475]).shape == (475, 640)  # any size: padded inside
    with pytest.raises(ValueError, match="NaN/inf"):
        model.restore(np.full((480, 640), np.nan, np.float32), ir)
    with pytest.raises(ValueError, match="no valid pixels"):
        model.restore(np.zeros_like(depth), ir)
    with pytest.raises(FileNotFoundError, match="config.json does not exist.*train-restore"):
        DepthRestorer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    (tmp_path / "weights.pt").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="unreadable"):
        DepthRestorer.from_pretrained(tmp_path)


def test_depth_processor_restores_with_given_weights(tiny_run, tmp_path):
    out, _ = tiny_run
    depth = np.full((480, 640), 0.6, np.float32)
    depth[100:200, 100:200] = 0.0  # a hole
    processor = DepthProcessor("restore", weights=out)
    restored = processor.process(DepthFrame(depth, SIM_CAMERA), np.full((480, 640), 40, np.uint8))
    assert restored.depth_m.shape == (480, 640) and restored.valid_mask[150, 150]
    assert processor.process(DepthFrame(depth, SIM_CAMERA)).valid_mask.mean() > 0.9  # without IR
    with pytest.raises(DepthError, match="cannot restore.*ir_left"):
        processor.process(DepthFrame(depth, SIM_CAMERA), np.zeros((480, 640), np.float32))
    with pytest.raises(FileNotFoundError, match="depth restoration weights not found"):
        DepthProcessor("restore", weights=tmp_path)


def test_cli_trains_and_reports_errors_in_one_line(pairs_dir, tmp_path, capsys):
    from diffgrasp_ros.cli.main import main

    out = tmp_path / "run"
    assert main(["train-restore", "--data", str(pairs_dir), "--out", str(out), "--steps", "2", "--crop", "64",
                 "--batch", "1", "--tiny"]) == 0
    assert (out / "weights.pt").is_file() and "2 steps in total" in capsys.readouterr().out
    assert main(["depth-data", "--out", str(pairs_dir), "--chunks", "1", "--frames-per-chunk", "2"]) == 0
    assert main(["train-restore", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 1
    assert "no stereo-pair chunks" in capsys.readouterr().err


def test_shipped_weights_beat_hole_filling_on_a_held_out_frame(tmp_path):
    from scipy import ndimage

    generate_pairs(tmp_path, n_chunks=1, frames_per_chunk=1, split="val", seed=7)
    pairs = load_pairs(tmp_path)
    raw, clean = pairs.raw_depth_m[0], pairs.clean_depth_m[0]
    restored = DepthProcessor("restore").process(DepthFrame(raw, SIM_CAMERA), pairs.ir_left[0]).depth_m
    filled = raw[tuple(ndimage.distance_transform_edt(raw == 0, return_distances=False, return_indices=True))]
    truth = clean > 0
    restored_mae, filled_mae = (np.abs(d - clean)[truth].mean() for d in (restored, filled))
    assert restored_mae < 0.8 * filled_mae and restored_mae < 0.006
