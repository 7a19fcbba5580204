"""Depth-noise diffusion, its training (simulated pairs, temporal prior), noise grafting and ``diffgrasp record``."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from diffgrasp_ros.camera.frame import DepthFrame
from diffgrasp_ros.camera.intrinsics import SIM_CAMERA
from diffgrasp_ros.camera.sequence import load_sequence, save_sequence
from diffgrasp_ros.depth.grafting import depth_error_stats, graft
from diffgrasp_ros.depth.noise_diffusion import (NoiseDiffusionConfig, NoiseDiffusionModel, apply_artifacts,
                                                 artifact_map)
from diffgrasp_ros.geometry import camera_on_sphere
from diffgrasp_ros.sim.stereo import D435Simulator
from diffgrasp_ros.training.noise_train import NoiseTrainOptions, sequence_to_training_pairs, train


@pytest.fixture(scope="module")
def static_sequence(box_objects):
    """Six D435 frames of one static box scene, each with its own sensor-noise seed, and the exact depth."""
    from scipy.spatial.transform import Rotation

    from diffgrasp_ros.sim.world import ClutterWorld

    with ClutterWorld(box_objects, seed=0) as world:
        world.add_object(box_objects[0], (0.15, 0.15, world.workspace.table_height_m + 0.031), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        T = camera_on_sphere((0.15, 0.15, 0.05), 0.6, np.deg2rad(35.0), np.deg2rad(-90.0))
        frames = [D435Simulator(world.p, seed=seed).render(T) for seed in range(6)]
    return [f.depth_m for f in frames], frames[0].clean_depth_m


def test_artifact_map_round_trips_to_the_raw_depth(static_sequence):
    raws, clean = static_sequence
    config = NoiseDiffusionConfig()
    artifacts = artifact_map(clean, raws[0], config)
    assert artifacts.shape == (2, *clean.shape) and np.abs(artifacts).max() <= 1.0
    rebuilt = apply_artifacts(clean, artifacts, config)
    np.testing.assert_array_equal(rebuilt > 0, (raws[0] > 0) & (clean > 0))
    within = (rebuilt > 0) & (np.abs(artifacts[1]) < 1.0)  # errors inside the bound are reproduced
    assert within.mean() > 0.5
    np.testing.assert_allclose(rebuilt[within], raws[0][within], atol=0.0011)
    # holes only: valid pixels keep the clean depth (to the mm)
    holes_only = apply_artifacts(clean, artifacts, config, with_error=False)
    valid = holes_only > 0
    np.testing.assert_allclose(holes_only[valid], clean[valid], atol=0.0006)


def test_temporal_prior_fuses_a_static_sequence_into_a_cleaner_reference(static_sequence):
    raws, clean = static_sequence
    reference, samples = sequence_to_training_pairs(raws)
    assert len(samples) == len(raws) and reference.shape == clean.shape
    # The simulated sensor's error is mostly locked to the fixed emitter pattern (static for a static
    # scene): the median removes the frame-to-frame part only, so it beats the average frame, not by much.
    frame_mae = np.mean([depth_error_stats(raw, clean).mae_mm for raw in raws])
    assert depth_error_stats(reference, clean).mae_mm < frame_mae
    valid_count = np.sum([r > 0 for r in raws], axis=0)
    assert not reference[valid_count <= 3].any()  # trusted only where more than half of the frames are valid
    assert reference[valid_count == 6].all()


def test_temporal_prior_refuses_a_short_sequence():
    with pytest.raises(ValueError, match="at least 5 frames"):
        sequence_to_training_pairs([np.ones((8, 8))] * 4)


def test_tiny_training_resumes_and_grafts(static_sequence, tmp_path):
    raws, clean = static_sequence
    sequence = save_sequence(tmp_path / "seq", [DepthFrame(r, SIM_CAMERA, stamp=i) for i, r in enumerate(raws)])
    loaded = load_sequence(sequence)
    assert len(loaded) == 6
    np.testing.assert_allclose(loaded[2].depth_m, raws[2], atol=1e-6)  # z16 in mm, lossless
    options = NoiseTrainOptions(tmp_path / "run", sequences=(sequence,), max_steps=3, batch=2, crop_px=64,
                                tiny=True, threads=1, log_every=1, checkpoint_every=2)
    report = train(options, log=lambda line: None)
    assert report.steps == 3 and np.isfinite(report.loss) and report.frames == 6
    with pytest.raises(ValueError, match="--resume"):
        train(options, log=lambda line: None)
    resumed = train(NoiseTrainOptions(**{**options.__dict__, "max_steps": 5, "resume": True}), log=lambda line: None)
    assert (resumed.steps, resumed.steps_this_run) == (5, 2)

    model = NoiseDiffusionModel.from_pretrained(tmp_path / "run")
    grafted = graft(clean, model, np.random.default_rng(0))
    assert grafted.shape == clean.shape and grafted.dtype == np.float32
    assert not grafted[clean == 0].any()
    valid = grafted > 0
    fb, bound = model.config.focal_baseline_px_m, model.config.max_error_px
    # metric geometry kept: every valid pixel within the disparity-error bound (+ re-centring, mm rounding)
    assert np.abs(fb / grafted[valid] - fb / clean[valid]).max() <= 2.0 * bound + 0.1
    same = graft(clean, model, np.random.default_rng(0))
    np.testing.assert_array_equal(grafted, same)  # seeded


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        NoiseDiffusionModel.from_pretrained(tmp_path)
    NoiseDiffusionModel(NoiseDiffusionConfig(channels=(8, 16), groups=4, time_dim=16)).save_pretrained(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="unreadable"):
        NoiseDiffusionModel.from_pretrained(tmp_path)


def test_shipped_weights_load_and_keep_geometry():
    from diffgrasp_ros.depth.noise_diffusion import DEFAULT_WEIGHTS

    if not (DEFAULT_WEIGHTS / "weights.pt").is_file():
        pytest.skip("no shipped depth-noise weights in this checkout")
    model = NoiseDiffusionModel.from_pretrained(DEFAULT_WEIGHTS)
    clean = np.full((96, 128), 0.6, np.float32)
    clean[:, :40] = 0.0  # nothing within range
    grafted = graft(clean, model, np.random.default_rng(0), steps=2)
    assert not grafted[:, :40].any()
    assert np.abs(grafted[grafted > 0] - 0.6).max() <= 0.6**2 / model.config.focal_baseline_px_m * 2.2


def _record_parser():
    from diffgrasp_ros.cli import record

    parser = argparse.ArgumentParser()
    record.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_record_without_a_camera_says_so(tmp_path):
    pytest.importorskip("pyrealsense2")
    from diffgrasp_ros.camera.realsense import CameraNotFoundError

    args = _record_parser().parse_args(["record", "--out", str(tmp_path / "seq"), "--frames", "5"])
    with pytest.raises(CameraNotFoundError, match="no RealSense device is connected"):
        args.run(args)
    args = _record_parser().parse_args(["record", "--out", str(tmp_path / "seq"), "--frames", "4"])
    with pytest.raises(ValueError, match="at least 5"):
        args.run(args)


def test_record_replays_a_recording_into_a_sequence(tmp_path):
    pytest.importorskip("pyrealsense2")
    from test_camera_realsense import record as write_recording
    from test_camera_realsense import scene_mm

    bag = tmp_path / "scene.db3"
    write_recording(bag, [scene_mm(seed, noise_mm=2.0) for seed in range(6)])
    out = tmp_path / "seq"
    args = _record_parser().parse_args(["record", "--bag", str(bag), "--out", str(out), "--frames", "5"])
    assert args.run(args) == 0
    frames = load_sequence(out)
    assert len(frames) == 5 and frames[0].depth_m.shape == scene_mm(0).shape
    np.testing.assert_allclose(frames[1].depth_m, np.where(scene_mm(1, 2.0) <= 2000, scene_mm(1, 2.0), 0) * 1e-3,
                               atol=1e-6)
    reference, samples = sequence_to_training_pairs([f.depth_m for f in frames])
    assert len(samples) == 5 and (reference > 0).any()
    args = _record_parser().parse_args(["record", "--bag", str(bag), "--out", str(tmp_path / "long"), "--frames", "9"])
    with pytest.raises(ValueError, match="ended after 6 of 9 frames"):
        args.run(args)
