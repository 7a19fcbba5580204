"""Learning the depth-noise model from single real frames: the stand-in clean depth, per-channel loss
weights, the real-frame data path (learnable sets only) and fine-tuning from a model folder."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from diffgrasp_ros.depth.noise_diffusion import NoiseDiffusionConfig, NoiseDiffusionModel, condition_map
from diffgrasp_ros.grasping.igd.scheduler import DDIMScheduler
from diffgrasp_ros.training.noise_train import (TINY, NoiseTrainOptions, TrainingSet, load_training_set, sample_batch,
                                                stand_in_clean, train)

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real"


def _tabletop(height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Clean depth of a slanted table (0.70–0.75 m) with a box (0.5 m) on it, and a raw copy with a stereo
    shadow left of the box and a hole on the table."""
    clean = np.tile(np.linspace(0.70, 0.75, height)[:, None], (1, width)).astype(np.float32)
    clean[16:32, 30:46] = 0.5
    raw = clean.copy()
    raw[16:32, 24:30] = 0  # occlusion shadow on the background, left of the box's edge
    raw[38:42, 8:14] = 0  # a hole on the table
    return clean, raw


def test_stand_in_clean_fills_shadows_with_the_background_and_surfaces_smoothly():
    clean, raw = _tabletop()
    filled = stand_in_clean(raw)
    assert filled.shape == raw.shape and filled.dtype == np.float32 and (filled > 0).all()
    np.testing.assert_allclose(filled[18:30, 25:29], clean[18:30, 25:29], atol=0.002)  # background, not the box
    np.testing.assert_allclose(filled[38:42, 8:14], clean[38:42, 8:14], atol=0.002)  # interpolated table
    np.testing.assert_allclose(filled[18:30, 33:43], 0.5, atol=1e-6)  # the box stays where it was
    empty_rows = raw.copy()
    empty_rows[:5] = 0
    assert (stand_in_clean(empty_rows)[:5] > 0.69).all()  # rows with nothing valid take their nearest depth
    with pytest.raises(ValueError, match="no valid pixel"):
        stand_in_clean(np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        stand_in_clean(np.ones((2, 8, 8)))


def test_condition_keeps_pixel_disparity_for_another_focal_length():
    config = NoiseDiffusionConfig()
    depth = np.full((4, 4), 0.6, np.float32)
    default = condition_map(depth, config)
    scaled = condition_map(depth, config, focal_baseline_px_m=2 * config.focal_baseline_px_m)
    np.testing.assert_allclose((scaled[0] + 1), 2 * (default[0] + 1), rtol=1e-6)
    np.testing.assert_array_equal(scaled[1], default[1])


def test_loss_weights_silence_the_error_channel():
    config = NoiseDiffusionConfig(**TINY)
    model = NoiseDiffusionModel(config)
    scheduler = DDIMScheduler(config.train_steps, clip_sample=1.0)
    condition = torch.rand(2, 2, 16, 16) * 2 - 1
    artifacts = torch.cat([torch.where(torch.rand(2, 1, 16, 16) > 0.8, 1.0, -1.0),
                           torch.rand(2, 1, 16, 16) - 0.5], dim=1)

    def loss(weights=None):
        return model.loss(condition, artifacts, scheduler, torch.Generator().manual_seed(3), weights=weights)

    with torch.no_grad():
        assert loss(torch.ones_like(artifacts)).item() == pytest.approx(loss().item(), rel=1e-5)
    bits = config.pack**2  # the U-Net's last layer: invalid-bit outputs first, then the error outputs
    for weights, error_learned in ((None, True), (torch.stack([torch.ones(2, 16, 16), torch.zeros(2, 16, 16)], 1),
                                                  False)):
        model.zero_grad()
        loss(weights).backward()
        grad = model.unet.out.bias.grad
        assert grad[:bits].abs().sum() > 0
        assert (grad[bits:].abs().sum() > 0) == error_learned
    with pytest.raises(ValueError, match="shaped like the artifacts"):
        model.loss(condition, artifacts, scheduler, weights=torch.ones(2, 1, 16, 16))


def test_batches_mix_real_crops_without_error_loss():
    clean, raw = _tabletop()
    data = TrainingSet()
    data.add(clean, [raw])  # a simulated pair
    data.add(stand_in_clean(raw), [raw], real=True, focal_baseline_px_m=30.0)
    config = NoiseDiffusionConfig(**TINY)
    rng = np.random.default_rng(0)
    *_, weights = sample_batch(data, config, rng, batch=64, crop_px=32, real_share=0.75)
    assert (weights[:, 0] == 1).all()
    real = weights[:, 1, 0, 0] == 0
    assert set(weights[:, 1].unique().tolist()) == {0.0, 1.0}
    assert 0.55 < float(real.float().mean()) < 0.95
    *_, only_real = sample_batch(data, config, rng, batch=8, crop_px=32, real_share=1.0)
    assert (only_real[:, 1] == 0).all()


def _write_real_root(root: Path) -> None:
    """A ../shared/real look-alike: two learnable frames; the evaluation-only sets hold files that cannot be
    read, so a loader that touches them fails."""
    clean, raw = _tabletop()
    camera = {"width": 64, "height": 48, "fx": 60.0, "fy": 60.0, "cx": 32.0, "cy": 24.0, "depth_scale_m": 0.001}
    for set_name, frame in (("ucn_tabletop", "000000"), ("posecnn_tabletop", "000000")):
        folder = root / set_name / frame
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "depth.png"), np.round(raw * 1000).astype(np.uint16))
        cv2.imwrite(str(folder / "color.png"), np.zeros((48, 64, 3), np.uint8))
        (folder / "camera.json").write_text(json.dumps(camera))
    for set_name in ("sixdof_graspnet", "cleargrasp_d435"):
        folder = root / set_name / "frame"
        folder.mkdir(parents=True)
        for name in ("depth.png", "color.png", "camera.json"):
            (folder / name).write_text("evaluation only: never read")


def test_real_frames_train_from_learnable_sets_only_and_fine_tune(tmp_path):
    root = tmp_path / "real"
    _write_real_root(root)
    data = load_training_set(real=root)
    assert len(data) == 2 and all(data.real)
    assert data.focal_baseline_px_m == [pytest.approx(3.0)] * 2  # fx 60 px × 50 mm
    assert (data.cleans[0] > 0).all() and (data.raws[0] == 0).any()

    init = tmp_path / "init"
    NoiseDiffusionModel(NoiseDiffusionConfig(**TINY)).save_pretrained(init)
    options = NoiseTrainOptions(tmp_path / "run", real=root, init=init, max_steps=2, batch=2, crop_px=32,
                                threads=1, log_every=1, checkpoint_every=2, lr=0.0)
    report = train(options, log=lambda line: None)
    assert report.steps == 2 and report.frames == 2 and np.isfinite(report.loss)
    start, tuned = NoiseDiffusionModel.from_pretrained(init), NoiseDiffusionModel.from_pretrained(tmp_path / "run")
    assert tuned.config == start.config
    for (name, a), b in zip(start.state_dict().items(), tuned.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} moved at lr 0: fine-tuning did not start from --init")
    with pytest.raises(ValueError, match="real_share"):
        train(NoiseTrainOptions(tmp_path / "bad", real=root, real_share=1.5), log=lambda line: None)


@pytest.mark.skipif(not (REAL / "ucn_tabletop").is_dir(), reason="../shared/real is not here")
def test_stand_in_clean_on_a_real_frame_keeps_the_measured_depth():
    from diffgrasp_ros.camera.real_frames import load_real_frame

    frame = load_real_frame(REAL / "ucn_tabletop" / "000000")
    filled = stand_in_clean(frame.depth_m)
    valid = frame.depth_m > 0
    assert (filled > 0).all() and (~valid).mean() > 0.02
    change_mm = 1000 * np.abs(filled - frame.depth_m)[valid]
    assert np.median(change_mm) < 1.0 and np.percentile(change_mm, 90) < 4.0  # the 5×5 median moves little
