"""Real-frame depth evaluation: frame loading, sensor hole shapes, classical fills and the metrics."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from diffgrasp_ros.camera.intrinsics import CameraIntrinsics
from diffgrasp_ros.camera.real_frames import (EVALUATION_SETS, LEARNABLE_SETS, RealFrame, load_learnable_frames,
                                             load_real_frames, within_range)
from diffgrasp_ros.depth.classical import CLASSICAL_FILLS, joint_bilateral_fill, nearest_fill
from diffgrasp_ros.depth.holes import discontinuity_band, hide_holes, interior_holes, sensor_hole_masks
from diffgrasp_ros.evaluation.real_depth import (ground_truth_errors, ground_truth_regions, hidden_hole_trials,
                                                 pooled_errors, region_errors, score_hidden_holes)

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real"


def _frame(set_name: str, name: str, depth: np.ndarray, color: np.ndarray | None = None, **kwargs) -> RealFrame:
    height, width = depth.shape
    color = np.zeros((height, width, 3), np.uint8) if color is None else color
    return RealFrame(set_name, name, depth.astype(np.float32), color,
                     CameraIntrinsics(width, height, 100.0, 100.0, width / 2, height / 2), **kwargs)


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A slanted plane with a box on it (its own colour), and blotchy holes."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[:60, :80]
    depth = (0.7 + 0.002 * v + 0.001 * u).astype(np.float32)
    color = np.full((60, 80, 3), (40, 60, 200), np.uint8)
    depth[20:40, 25:50] -= 0.1
    color[20:40, 25:50] = (220, 40, 30)
    blotches = cv2.GaussianBlur(rng.standard_normal((60, 80)).astype(np.float32), (0, 0), 2.0)
    holes = blotches > np.quantile(blotches, 0.8)
    return np.where(holes, 0.0, depth).astype(np.float32), color


# --- hole shapes ---------------------------------------------------------------------------------

def test_interior_holes_drop_the_regions_touching_the_border():
    invalid = np.zeros((10, 12), bool)
    invalid[:, :2] = True  # a stereo band on the left
    invalid[4:6, 5:7] = True  # a shadow inside
    invalid[0, 8] = True  # speck on the top edge
    assert np.array_equal(np.argwhere(interior_holes(invalid)), [[4, 5], [4, 6], [5, 5], [5, 6]])


def test_sensor_hole_masks_skip_range_cropped_sets():
    depth = np.ones((8, 8), np.float32)
    depth[3, 3] = 0.0
    frames = [_frame("ucn_tabletop", "a", depth), _frame("sixdof_graspnet", "b", depth),
              _frame("cleargrasp_d435", "c", depth)]
    masks = sensor_hole_masks(frames)
    assert len(masks) == 2 and all(m.sum() == 1 and m[3, 3] for m in masks)


def test_hide_holes_tiles_a_smaller_source_and_hides_only_valid_pixels():
    source = np.zeros((2, 2), bool)
    source[0, 0] = True
    valid = np.ones((6, 6), bool)
    valid[0, :] = False
    hidden = hide_holes(valid, source, np.random.default_rng(1))
    assert hidden.shape == (6, 6) and not (hidden & ~valid).any()
    # one pixel in every 2x2 tile, at the same phase: rows and columns of one parity each
    rows, cols = np.nonzero(hidden)
    assert len(set(rows % 2)) == 1 and len(set(cols % 2)) == 1
    assert hidden.sum() in (6, 9)  # 9 pixels, minus the invalid top row's share


def test_hide_holes_crops_a_larger_source_and_is_reproducible():
    rng_source = np.random.default_rng(0)
    source = rng_source.random((50, 70)) < 0.2
    valid = rng_source.random((20, 30)) < 0.9
    first = hide_holes(valid, source, np.random.default_rng(7))
    assert np.array_equal(first, hide_holes(valid, source, np.random.default_rng(7)))
    assert first.shape == valid.shape and not (first & ~valid).any()
    assert 0.1 < first.sum() / valid.sum() < 0.3  # about the source's share of holes
    assert np.array_equal(hide_holes(valid, np.ones((5, 5), bool), np.random.default_rng(0)), valid)
    flipped = [hide_holes(valid, source, np.random.default_rng(s), flip=True) for s in range(4)]
    assert all(not (f & ~valid).any() for f in flipped)


def test_discontinuity_band_marks_jumps_over_the_threshold_only():
    depth = np.full((20, 30), 0.5, np.float32)
    depth[:, 15:] = 0.6  # a 10 cm step between columns 14 and 15
    band = discontinuity_band(depth, jump_m=0.02, width_px=3)
    assert np.array_equal(np.nonzero(band.any(axis=0))[0], np.arange(11, 19)) and band[:, 11:19].all()
    depth[:, 15:] = 0.51  # 1 cm: no discontinuity
    assert not discontinuity_band(depth).any()
    depth[:, 15:] = 0.0  # invalid next to valid: no discontinuity either
    assert not discontinuity_band(depth).any()
    step = np.full((20, 30), 0.5, np.float32)
    step[12:, :] = 0.8
    assert np.array_equal(np.nonzero(discontinuity_band(step, width_px=0).any(axis=1))[0], [11, 12])


# --- classical fills -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CLASSICAL_FILLS))
def test_classical_fills_keep_valid_pixels_and_fill_every_hole(name):
    depth, color = _scene()
    holes = depth == 0.0
    assert 0.05 < holes.mean() < 0.5
    for guide in (color, None):
        filled = CLASSICAL_FILLS[name](depth, guide)
        assert filled.dtype == np.float32 and filled.shape == depth.shape
        assert np.array_equal(filled[~holes], depth[~holes])
        assert np.isfinite(filled).all() and (filled[holes] > 0.0).all()
        assert filled[holes].min() >= depth[~holes].min() - 1e-6 and filled[holes].max() <= depth[~holes].max() + 1e-6


def test_colour_guidance_puts_the_object_edge_where_the_colour_changes():
    depth = np.full((40, 60), 0.8, np.float32)
    depth[:, :30] = 0.5  # an object on the left, its edge at column 30
    color = np.full((40, 60, 3), (30, 30, 220), np.uint8)
    color[:, :30] = (220, 30, 30)
    truth = depth.copy()
    depth[:, 20:50] = 0.0  # a hole over the edge, off centre: nearest would split it at column 35
    jb_error = np.abs(joint_bilateral_fill(depth, color) - truth)[:, 20:50].mean()
    nearest_error = np.abs(nearest_fill(depth, color) - truth)[:, 20:50].mean()
    assert nearest_error > 0.04 and jb_error < nearest_error / 3


def test_classical_fills_reject_bad_input():
    depth, color = _scene()
    with pytest.raises(ValueError, match="float32"):
        nearest_fill(depth.astype(np.float64), None)
    with pytest.raises(ValueError, match="no valid pixels"):
        nearest_fill(np.zeros((4, 4), np.float32), None)
    with pytest.raises(ValueError, match="uint8"):
        joint_bilateral_fill(depth, color[:, :-1])
    with pytest.raises(ValueError, match="NaN"):
        nearest_fill(np.full((4, 4), np.nan, np.float32), None)


# --- metrics and protocols -----------------------------------------------------------------------

def test_region_errors_on_a_toy_case():
    gt = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], np.float32)
    pred = np.array([[1.01, 0.98, 1.0], [0.0, 1.2, 5.0]], np.float32)
    region = np.ones(gt.shape, bool)
    region[1, 1] = False
    e = region_errors(pred, gt, region)  # pixels with gt in region: 10, -20, 0, -1000 mm
    assert e["pixels"] == 4
    assert e["mae_mm"] == pytest.approx((10 + 20 + 0 + 1000) / 4, rel=1e-4)
    assert e["rmse_mm"] == pytest.approx(np.sqrt((100 + 400 + 0 + 1e6) / 4), rel=1e-4)
    assert e["delta_105"] == pytest.approx(3 / 4)
    rest = region_errors(pred, gt, ~region)
    pooled = pooled_errors([e, rest])
    whole = region_errors(pred, gt, np.ones(gt.shape, bool))
    assert all(pooled[k] == pytest.approx(whole[k], rel=1e-5) for k in ("mae_mm", "rmse_mm", "delta_105", "pixels"))
    assert region_errors(pred, gt, np.zeros(gt.shape, bool))["mae_mm"] is None


def test_ground_truth_regions_and_the_kept_check():
    gt = np.full((30, 40), 0.7, np.float32)
    gt[10:20, 10:20] = 0.6  # an object
    raw = gt.copy()
    raw[:, :5] = 0.0
    mask = np.zeros(gt.shape, bool)
    mask[12:18, 12:18] = True
    raw[mask] = 0.7  # the sensor sees through the transparent object
    frame = _frame("cleargrasp_d435", "x", raw, gt_depth_m=gt, transparent_mask=mask)
    regions = ground_truth_regions(frame)
    assert np.array_equal(regions["raw_valid"] | regions["raw_invalid"], regions["all"])
    assert not (regions["kept"] & (mask | (raw == 0) | discontinuity_band(gt))).any()
    errors = ground_truth_errors(frame, nearest_fill(raw, None))
    assert errors["kept"]["mae_mm"] == pytest.approx(0.0) and errors["kept"]["median_change_mm"] == 0.0
    assert errors["transparent"]["mae_mm"] == pytest.approx(100.0, rel=1e-4)
    assert errors["raw_invalid"]["mae_mm"] == pytest.approx(0.0, abs=1e-3)  # a flat table's band: nearest is exact


def test_hidden_hole_trials_use_other_frames_holes_and_score_the_hidden_pixels():
    frames = [_frame("ucn_tabletop", str(i), _scene(i)[0], _scene(i)[1]) for i in range(3)]
    sources = dict(zip([f.key for f in frames], sensor_hole_masks(frames)))
    trials = hidden_hole_trials(frames, sources, seeds=(0, 1))
    assert [len(t) for t in trials] == [2, 2, 2]
    assert all(t.source_key != f.key for f, ts in zip(frames, trials) for t in ts)
    again = hidden_hole_trials(frames[::-1], sources, seeds=(0, 1))[::-1]  # per frame, whatever the others
    assert all(np.array_equal(a.hidden, b.hidden) for ta, tb in zip(trials, again) for a, b in zip(ta, tb))
    frame = frames[0]
    perfect = score_hidden_holes(frame, trials[0], lambda depth, color: frame.depth_m)
    assert perfect["mae_mm"] == 0.0 and perfect["trials"][0]["kept_median_change_mm"] == 0.0
    assert score_hidden_holes(frame, trials[0], nearest_fill)["mae_mm"] > 0.0
    with pytest.raises(ValueError, match="other than"):
        hidden_hole_trials(frames[:1], {frames[0].key: sources[frames[0].key]})


def test_within_range_invalidates_depth_outside_the_working_range():
    frame = _frame("ucn_tabletop", "a", np.array([[0.05, 0.5], [2.5, 0.0]], np.float32))
    assert np.array_equal(within_range(frame, 0.1, 2.0).depth_m, [[0.0, 0.5], [0.0, 0.0]])


# --- loading -------------------------------------------------------------------------------------

def _write_frame(folder: Path, width: int = 8, height: int = 6, camera_width: int | None = None) -> None:
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "depth.png"), np.full((height, width), 700, np.uint16))
    cv2.imwrite(str(folder / "color.png"), np.zeros((height, width, 3), np.uint8))
    (folder / "camera.json").write_text(json.dumps({"width": camera_width or width, "height": height, "fx": 10.0,
                                                    "fy": 10.0, "cx": 3.0, "cy": 3.0, "depth_scale_m": 0.001}))


def test_load_real_frames_reads_a_set_and_says_what_is_wrong(tmp_path):
    _write_frame(tmp_path / "ucn_tabletop" / "000000")
    (frame,) = load_real_frames(tmp_path, ["ucn_tabletop"])
    assert frame.key == "ucn_tabletop/000000" and frame.learnable and frame.gt_depth_m is None
    assert frame.depth_m.dtype == np.float32 and np.allclose(frame.depth_m, 0.7) and frame.color_rgb.shape == (6, 8, 3)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_real_frames(tmp_path / "nowhere")
    _write_frame(tmp_path / "kitchen" / "000000")  # a user's own set: any name, learnable
    (own,) = load_real_frames(tmp_path, ["kitchen"])
    assert own.key == "kitchen/000000" and own.learnable
    assert [f.key for f in load_learnable_frames(tmp_path, ["kitchen", "ucn_tabletop"])] == [
        "kitchen/000000", "ucn_tabletop/000000"]
    with pytest.raises(ValueError, match=r"\['cleargrasp_d435'\] are evaluation-only sets"):
        load_learnable_frames(tmp_path, ["kitchen", "cleargrasp_d435"])
    with pytest.raises(FileNotFoundError, match="posecnn_tabletop"):
        load_real_frames(tmp_path, ["posecnn_tabletop"])
    _write_frame(tmp_path / "posecnn_tabletop" / "000000", camera_width=10)
    with pytest.raises(ValueError, match="camera.json says 10x6"):
        load_real_frames(tmp_path, ["posecnn_tabletop"])
    (tmp_path / "ucn_tabletop" / "000000" / "color.png").unlink()
    with pytest.raises(FileNotFoundError, match="lacks color.png"):
        load_real_frames(tmp_path, ["ucn_tabletop"])


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real is not available")
def test_the_shared_real_frames_load_with_their_ground_truth_and_hole_shapes():
    frames = load_real_frames(REAL)
    counts = {s: sum(f.set_name == s for f in frames) for s in LEARNABLE_SETS + EVALUATION_SETS}
    assert counts == {"ucn_tabletop": 9, "posecnn_tabletop": 5, "sixdof_graspnet": 10, "cleargrasp_d435": 2}
    for frame in frames:
        assert frame.learnable == (frame.set_name in LEARNABLE_SETS)
        assert frame.color_rgb.shape == (*frame.depth_m.shape, 3) and frame.color_rgb.dtype == np.uint8
        has_truth = frame.set_name == "cleargrasp_d435"
        assert (frame.gt_depth_m is not None) == has_truth == (frame.transparent_mask is not None)
        assert 0.0 < (frame.depth_m > 0).mean() < 1.0
    masks = sensor_hole_masks(frames)
    assert len(masks) == 16
    for mask in masks:
        assert mask.any() and not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
