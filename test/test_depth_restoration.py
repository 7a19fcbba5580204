"""Learned depth restoration: the stereo-pair data, the model's IO and errors, the training loop."""
from pathlib import Path

import numpy as np
import pytest
import torch

from diffgrasp_ros.camera import SIM_CAMERA, DepthError, DepthFrame
from diffgrasp_ros.camera.real_frames import load_real_frame, within_range
from diffgrasp_ros.depth import DepthProcessor
from diffgrasp_ros.depth.classical import nearest_fill
from diffgrasp_ros.depth.holes import hide_holes, sensor_hole_masks
from diffgrasp_ros.depth.restoration import TINY, DepthRestorer, ModelFormatError, RestorationConfig
from diffgrasp_ros.training.depth_pairs import MATERIAL_NAMES, chunk_path, generate_pairs, load_pairs
from diffgrasp_ros.training.restore_train import (RestoreTrainOptions, load_real_training_set, sample_batch,
                                                  train_restore)

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real"


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    torch.set_num_threads(1)
    generate_pairs(folder, n_chunks=1, frames_per_chunk=2, split="train", seed=0)
    return folder


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    """A folder laid out like ../shared/real with two small learnable frames (a box on a table, with holes)
    and one evaluation-only frame that training must never read (its depth file is garbage)."""
    import cv2

    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    for set_name, name in (("ucn_tabletop", "000000"), ("posecnn_tabletop", "000000"), ("ucn_tabletop", "000008")):
        folder = root / set_name / name
        folder.mkdir(parents=True)
        depth = np.full((240, 320), 700, np.uint16)
        depth[80:160, 100:200] = 600
        depth[rng.random(depth.shape) < 0.02] = 0
        depth[80:160, 90:100] = 0  # a shadow beside the box
        color = np.full((240, 320, 3), 90, np.uint8)
        color[80:160, 100:200] = (200, 40, 40)
        cv2.imwrite(str(folder / "depth.png"), depth)
        cv2.imwrite(str(folder / "color.png"), color[..., ::-1])
        (folder / "camera.json").write_text('{"width": 320, "height": 240, "fx": 300, "fy": 300, "cx": 160, '
                                            '"cy": 120, "depth_scale_m": 0.001}')
    for set_name in ("posecnn_tabletop", "sixdof_graspnet", "cleargrasp_d435"):
        (root / set_name).mkdir(exist_ok=True)
    (root / "sixdof_graspnet" / "x").mkdir()
    (root / "sixdof_graspnet" / "x" / "depth.png").write_bytes(b"evaluation only: never read")
    return root


@pytest.fixture(scope="module")
def tiny_run(pairs_dir, real_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("restore_run")
    report = train_restore(RestoreTrainOptions(pairs_dir, out, val_data=pairs_dir, real=real_dir, steps=3, batch=2,
                                               crop=64, checkpoint_every=2, tiny=True), log=lambda line: None)
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


def test_training_checkpoints_resumes_and_saves_loadable_weights(pairs_dir, real_dir, tiny_run):
    out, report = tiny_run
    assert report.steps == 3 and report.frames == 2 and np.isfinite(report.val_mae_mm)
    assert np.isfinite(report.val_hidden_mae_mm)  # the held-out learnable frame ucn_tabletop/000008
    with pytest.raises(ValueError, match="--resume"):
        train_restore(RestoreTrainOptions(pairs_dir, out, steps=5, crop=64, tiny=True), log=lambda line: None)
    resumed = train_restore(RestoreTrainOptions(pairs_dir, out, real=real_dir, steps=5, batch=2, crop=64, tiny=True,
                                                resume=True), log=lambda line: None)
    assert resumed.steps == 5 and resumed.steps_this_run == 2
    model = DepthRestorer.from_pretrained(out)
    assert model.config == RestorationConfig(**TINY)
    pairs = load_pairs(pairs_dir)
    color = np.full((480, 640, 3), 128, np.uint8)
    restored = model.restore(pairs.raw_depth_m[0], color)
    assert restored.shape == (480, 640) and restored.dtype == np.float32 and np.isfinite(restored).all()
    with pytest.warns(UserWarning, match="no colour image: restoring from depth alone"):
        assert np.isfinite(model.restore(pairs.raw_depth_m[0])).all()
    with pytest.raises(ValueError, match="crop must be a positive multiple of 16"):
        train_restore(RestoreTrainOptions(pairs_dir, out / "other", crop=60, tiny=True), log=lambda line: None)


def test_real_training_set_reads_learnable_frames_only(pairs_dir, real_dir):
    real = load_real_training_set(real_dir)
    assert [f.key for f in real.frames] == ["ucn_tabletop/000000", "posecnn_tabletop/000000"]  # 000008 held out
    assert len(real.hole_masks) == 2 and all(m[80:160, 90:100].all() for m in real.hole_masks)
    batch = sample_batch(load_pairs(pairs_dir), real, np.random.default_rng(1), 8, 64)
    assert batch.raw_m.shape == batch.truth_m.shape == (8, 1, 64, 64) and batch.color.shape == (8, 3, 64, 64)
    assert batch.has_color.any() and (batch.truth_m[batch.fill_mask] > 0).all()
    assert (batch.raw_m[batch.wrong | batch.right] > 0).all() and not (batch.wrong & batch.right).any()
    # Real crops: the pixels to fill are hidden readings, whose truth is the reading itself.
    real_crop = batch.has_color
    assert (batch.raw_m[real_crop][batch.fill_mask[real_crop]] == 0).all()
    assert batch.fill_mask[real_crop].any() and not batch.wrong[real_crop].any()


def test_valid_depth_is_kept_exactly_and_holes_are_filled():
    torch.manual_seed(0)
    model = DepthRestorer(RestorationConfig(**TINY)).eval()
    with torch.no_grad():  # a model that trusts every reading
        model.out.bias[1] = -100.0
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.4, 1.9, (203, 301)).astype(np.float32)  # any size, far and near
    depth[rng.random(depth.shape) < 0.2] = 0.0
    restored = model.restore(depth, rng.integers(0, 255, (203, 301, 3), dtype=np.uint8))
    valid = depth > 0
    np.testing.assert_array_equal(restored[valid], depth[valid])  # bit for bit
    assert (restored[~valid] > 0).all()
    with torch.no_grad():  # and one that distrusts every reading replaces them
        model.out.bias[1] = 100.0
    assert not np.array_equal(model.restore(depth, np.zeros((203, 301, 3), np.uint8))[valid], depth[valid])


def test_bad_frames_and_weights_are_rejected_clearly(tiny_run, tmp_path):
    out, _ = tiny_run
    model = DepthRestorer.from_pretrained(out)
    depth, color = np.full((480, 640), 0.6, np.float32), np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="depth_m must be an \\(H, W\\) float32 array in metres, got uint16"):
        model.restore(depth.astype(np.uint16), color)
    with pytest.raises(ValueError, match="color must be an \\(H, W, 3\\) uint8 RGB image"):
        model.restore(depth, color.astype(np.float32))
    with pytest.raises(ValueError, match="must be the same size"):
        model.restore(depth, color[:100])
    assert model.restore(depth[:475], color[:475]).shape == (475, 640)  # any size: padded inside
    with pytest.raises(ValueError, match="NaN/inf"):
        model.restore(np.full((480, 640), np.nan, np.float32), color)
    with pytest.raises(ValueError, match="no valid pixels"):
        model.restore(np.zeros_like(depth), color)
    with pytest.raises(FileNotFoundError, match="config.json does not exist.*train-restore"):
        DepthRestorer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    (tmp_path / "weights.pt").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="unreadable"):
        DepthRestorer.from_pretrained(tmp_path)
    # Models of earlier versions are refused by name: the IR-gated one (format 1, no format_version
    # key) and the one over a learned joint bilateral fill (format 2).
    (tmp_path / "config.json").write_text('{"widths": [16, 32, 48, 64], "reduction": 4, "head_channels": 8, '
                                          '"max_depth_m": 2.0}')
    with pytest.raises(ModelFormatError, match="format 1 .*this version reads format 3.*train-restore"):
        DepthRestorer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"widths": [16, 24], "reduction": 4, "head_channels": 8, '
                                          '"max_depth_m": 2.0, "uses_color": true, "format_version": 2}')
    with pytest.raises(ModelFormatError, match="format 2 .*this version reads format 3"):
        DepthRestorer.from_pretrained(tmp_path)


def test_depth_processor_restores_with_given_weights(tiny_run, tmp_path):
    out, _ = tiny_run
    depth = np.full((480, 640), 0.6, np.float32)
    depth[100:200, 100:200] = 0.0  # a hole
    processor = DepthProcessor("restore", weights=out)
    restored = processor.process(DepthFrame(depth, SIM_CAMERA), np.full((480, 640, 3), 40, np.uint8))
    assert restored.depth_m.shape == (480, 640) and restored.valid_mask[150, 150]
    assert processor.process(DepthFrame(depth, SIM_CAMERA)).valid_mask.mean() > 0.9  # without colour
    with pytest.raises(DepthError, match="cannot restore.*color"):
        processor.process(DepthFrame(depth, SIM_CAMERA), np.zeros((480, 640), np.uint8))
    with pytest.raises(FileNotFoundError, match="depth restoration weights not found"):
        DepthProcessor("restore", weights=tmp_path)


def test_cli_trains_and_reports_errors_in_one_line(pairs_dir, real_dir, tmp_path, capsys):
    from diffgrasp_ros.cli.main import main

    out = tmp_path / "run"
    assert main(["train-restore", "--data", str(pairs_dir), "--out", str(out), "--steps", "2", "--crop", "64",
                 "--batch", "1", "--tiny"]) == 0
    assert (out / "weights.pt").is_file() and "2 steps in total" in capsys.readouterr().out
    assert main(["depth-data", "--out", str(pairs_dir), "--chunks", "1", "--frames-per-chunk", "2"]) == 0
    assert main(["train-restore", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 1
    assert "no stereo-pair chunks" in capsys.readouterr().err
    assert main(["train-restore", "--data", str(pairs_dir), "--out", str(tmp_path / "y"), "--real", str(real_dir),
                 "--real-sets", "ucn_tabletop", "sixdof_graspnet", "--tiny"]) == 1
    assert "['sixdof_graspnet'] are evaluation-only sets" in capsys.readouterr().err


def test_shipped_weights_keep_good_depth_and_fill_holes_better_than_nearest_fill(tmp_path):
    generate_pairs(tmp_path, n_chunks=1, frames_per_chunk=1, split="val", seed=7)
    pairs = load_pairs(tmp_path)
    raw, clean = pairs.raw_depth_m[0], pairs.clean_depth_m[0]
    restored = DepthProcessor("restore").process(DepthFrame(raw, SIM_CAMERA)).depth_m
    valid, holes = raw > 0, (raw == 0) & (clean > 0)
    assert np.mean(restored[valid] == raw[valid]) > 0.95  # trusted readings are kept bit for bit
    filled = nearest_fill(raw)
    assert np.abs(restored - clean)[holes].mean() < np.abs(filled - clean)[holes].mean()


@pytest.mark.skipif(not (REAL / "ucn_tabletop" / "000008").is_dir(), reason="../shared/real is not available")
def test_shipped_weights_on_a_held_out_real_frame_keep_readings_and_fill_hidden_holes():
    """ucn_tabletop/000008 is a learnable frame the shipped model was not trained on (VALIDATION_FRAMES)."""
    frame = within_range(load_real_frame(REAL / "ucn_tabletop" / "000008"), 0.1, 2.0)
    holes = sensor_hole_masks([within_range(load_real_frame(REAL / "posecnn_tabletop" / "000000"), 0.1, 2.0)])[0]
    hidden = hide_holes(frame.depth_m > 0, holes, np.random.default_rng(0))
    depth = np.where(hidden, 0.0, frame.depth_m).astype(np.float32)
    restored = DepthRestorer.from_pretrained().restore(depth, frame.color_rgb)
    kept = depth > 0
    assert np.median(np.abs(restored[kept] - depth[kept])) == 0.0
    learned = np.abs(restored - frame.depth_m)[hidden].mean()
    assert learned < np.abs(nearest_fill(depth) - frame.depth_m)[hidden].mean()
