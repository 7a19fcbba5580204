"""``diffgrasp restore`` on a tiny restoration model: outputs, the comparison picture, and bad input refused
before anything is written."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from diffgrasp_ros.cli.main import main
from diffgrasp_ros.cli.restore import FILLED_RGB, MIN_PANEL_WIDTH_PX, MOVED_M, RestoreSummary
from diffgrasp_ros.depth.restoration import TINY, DepthRestorer, RestorationConfig

W, H = 301, 203  # odd on both sides: the model pads inside
EXIT_BAD_INPUT = 1  # what `diffgrasp` returns for every refused input (cli.main)
HOLE = (slice(40, 90), slice(60, 140))


def table_m(width: int = W, height: int = H) -> np.ndarray:
    """A tilted table at ~0.8 m with a box on it, a block of missing depth and speckle dropouts."""
    v, u = np.mgrid[0:height, 0:width]
    depth = 0.8 + 0.0004 * (v - height / 2) + 0.0001 * (u - width / 2)
    depth[120:170, 180:260] -= 0.1
    depth[HOLE] = 0.0
    depth[np.random.default_rng(0).random(depth.shape) < 0.02] = 0.0
    return depth.astype(np.float32)


def png_m() -> np.ndarray:
    """The table as read back from its millimetre PNG."""
    return np.round(table_m() * 1000).astype(np.uint16).astype(np.float32) * np.float32(0.001)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_restore")
    DepthRestorer(RestorationConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture()
def inputs(tmp_path) -> Path:
    """depth.png (uint16 mm) and intrinsics.json of one W x H frame in tmp_path/in."""
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "depth.png"), np.round(table_m() * 1000).astype(np.uint16))
    (folder / "intrinsics.json").write_text(json.dumps(dict(width=W, height=H, fx=250.0, fy=250.0, cx=150.0,
                                                            cy=101.0)))
    return folder


def restore(weights: Path, folder: Path, out: Path, *extra: str, depth: str = "depth.png") -> int:
    return main(["restore", "--depth", str(folder / depth), "--intrinsics", str(folder / "intrinsics.json"),
                 "--out", str(out), "--weights", str(weights), "--threads", "1", *extra])


def clip_m(depth_m: np.ndarray) -> np.ndarray:
    """Clipped to the default [0.1, 2] m range."""
    return np.where((depth_m >= 0.1) & (depth_m <= 2.0), depth_m, 0.0).astype(np.float32)


def expected_m(weights: Path, raw_m: np.ndarray) -> np.ndarray:
    """The model's own depth-only restoration of the frame, clipped to the default range."""
    with pytest.warns(UserWarning, match="depth alone"):
        return clip_m(DepthRestorer.from_pretrained(weights).restore(raw_m))


def test_restores_an_odd_sized_png_to_millimetres(weights, inputs, tmp_path, capsys):
    out = tmp_path / "out" / "restored.png"
    assert restore(weights, inputs, out) == 0
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (H, W)
    raw = png_m()
    np.testing.assert_array_equal(written, np.round(expected_m(weights, raw) * 1000).astype(np.uint16))
    assert written[HOLE].all(), "the hole is filled"
    summary = RestoreSummary.of(raw, written.astype(np.float32) / 1000)
    assert summary.filled >= HOLE[0].stop - HOLE[0].start and summary.valid_after > summary.valid_before
    printed = capsys.readouterr().out
    assert f"diffgrasp restore: {W}x{H}, valid {100 * (raw > 0).mean():.1f} % -> " in printed
    assert f"{summary.filled} holes filled" in printed and f"wrote {out}" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["restored.png"]  # no temporary file left


def test_colour_is_used_and_its_absence_warned(weights, inputs, tmp_path, capsys):
    color = np.random.default_rng(1).integers(0, 256, (H, W, 3), np.uint8)
    cv2.imwrite(str(inputs / "color.png"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
    raw = png_m()
    model = DepthRestorer.from_pretrained(weights)
    assert model.uses_color
    assert restore(weights, inputs, tmp_path / "with.npy", "--color", str(inputs / "color.png")) == 0
    assert "warning" not in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "with.npy"), clip_m(model.restore(raw, color)))
    assert restore(weights, inputs, tmp_path / "without.npy") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("diffgrasp restore: warning: ") and "depth alone" in err[0], err
    assert not np.array_equal(np.load(tmp_path / "with.npy"), np.load(tmp_path / "without.npy"))


def test_colour_is_ignored_by_a_depth_only_model(inputs, tmp_path, capsys):
    folder = tmp_path / "depth_only"
    DepthRestorer(RestorationConfig(**TINY, uses_color=False)).save_pretrained(folder)
    cv2.imwrite(str(inputs / "color.png"), np.zeros((H, W, 3), np.uint8))
    assert restore(folder, inputs, tmp_path / "out.png", "--color", str(inputs / "color.png")) == 0
    assert "trained without colour: --color is ignored" in capsys.readouterr().err


def test_npy_in_and_out_in_metres_with_nan_holes(weights, inputs, tmp_path):
    depth = table_m()
    depth[0:20, :] = np.nan  # NaN and inf are invalid depth, as everywhere in diffgrasp
    depth[20:25, :] = np.inf
    np.save(inputs / "depth.npy", depth)
    out = tmp_path / "restored.npy"
    assert restore(weights, inputs, out, depth="depth.npy") == 0
    written = np.load(out)
    assert written.dtype == np.float32 and written.shape == (H, W)
    np.testing.assert_array_equal(written, expected_m(weights, np.nan_to_num(depth, posinf=0.0)))
    assert written[0:25].all()


def test_summary_counts():
    raw = np.array([[0.0, 0.5, 0.5, 0.5]], np.float32)
    restored = np.array([[0.4, 0.5 + MOVED_M / 2, 0.51, 0.0]], np.float32)
    summary = RestoreSummary.of(raw, restored)
    assert (summary.valid_before, summary.valid_after, summary.filled, summary.moved, summary.removed) == \
        (3, 3, 1, 1, 1)
    assert summary.median_move_mm == pytest.approx(10.0, abs=1e-3)


def test_compare_picture_shows_raw_restored_and_change(weights, inputs, tmp_path):
    out, picture_path = tmp_path / "restored.png", tmp_path / "compare.png"
    assert restore(weights, inputs, out, "--compare", str(picture_path)) == 0
    picture = cv2.cvtColor(cv2.imread(str(picture_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    scale = -(-MIN_PANEL_WIDTH_PX // W)  # a small frame is enlarged so the labels fit
    assert scale == 2 and picture.shape[1] > 3 * scale * W and picture.shape[0] > scale * H
    raw_mm = np.round(table_m() * 1000)
    filled = np.count_nonzero((raw_mm == 0) & (cv2.imread(str(out), cv2.IMREAD_UNCHANGED) > 0))
    green = np.count_nonzero(np.all(picture == FILLED_RGB, axis=-1))
    # Every filled hole green in the change panel (enlarged), plus the key's swatch.
    assert filled * scale**2 <= green <= filled * scale**2 + 40**2
    third = picture[:, : picture.shape[1] // 3]
    assert np.count_nonzero(np.all(third == 0, axis=-1)) >= (raw_mm == 0).sum() * scale**2  # raw holes black


def test_color_of_another_size_is_refused(weights, inputs, tmp_path, capsys):
    cv2.imwrite(str(inputs / "color.png"), np.zeros((H, W + 1, 3), np.uint8))
    before = sorted(tmp_path.rglob("*"))
    assert restore(weights, inputs, tmp_path / "out.png", "--color", str(inputs / "color.png")) == EXIT_BAD_INPUT
    assert "colour image is 302x203 but the depth is 301x203" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before


def write_bad_input(case: str, folder: Path, weights: Path) -> tuple[list[str], Path]:
    """Make ``case``'s bad input in ``folder``; the extra arguments and the weights to use."""
    depth = table_m()
    if case == "metres stored as integers":
        cv2.imwrite(str(folder / "depth.png"), np.round(depth).astype(np.uint16))
    elif case == "millimetres stored as float":
        np.save(folder / "depth.npy", depth * 1000)
        return ["--depth", str(folder / "depth.npy")], weights
    elif case == "all invalid":
        cv2.imwrite(str(folder / "depth.png"), np.zeros((H, W), np.uint16))
    elif case == "all NaN":
        np.save(folder / "depth.npy", np.full((H, W), np.nan, np.float32))
        return ["--depth", str(folder / "depth.npy")], weights
    elif case == "nothing inside the depth range":
        return ["--depth-scale", "0.01"], weights  # 8 m: millimetres read as centimetres
    elif case == "intrinsics of another size":
        (folder / "intrinsics.json").write_text(json.dumps(dict(width=640, height=480, fx=1, fy=1, cx=1, cy=1)))
    elif case == "missing depth":
        (folder / "depth.png").unlink()
    elif case == "missing weights":
        return [], folder / "no_model"
    elif case in ("corrupt weights", "model of another version"):
        copy = folder / "model"
        copy.mkdir()
        config = json.loads((weights / "config.json").read_text())
        if case == "corrupt weights":
            (copy / "weights.pt").write_bytes((weights / "weights.pt").read_bytes()[:100])
        else:
            (copy / "weights.pt").write_bytes((weights / "weights.pt").read_bytes())
            config["format_version"] = 999
            config["ir_channels"] = 1  # a field this version does not know
        (copy / "config.json").write_text(json.dumps(config))
        return [], copy
    elif case == "out is not a depth format":
        return ["--out", str(folder.parent / "restored.jpg")], weights
    elif case == "unknown device":
        return ["--device", "gpu0"], weights
    return [], weights


BAD_INPUTS = {
    "metres stored as integers": "looks like metres stored as integers",
    "millimetres stored as float": "looks like millimetres stored as float",
    "all invalid": "no valid pixels",
    "all NaN": "no valid pixels",
    "nothing inside the depth range": r"no depth left inside \[0.1, 2.0\] m",
    "intrinsics of another size": "the intrinsics are 640x480 but the depth is 301x203",
    "missing depth": "depth image not found",
    "missing weights": "depth restoration weights not found",
    "corrupt weights": "depth restoration weights .* unreadable",
    "model of another version": "version|config",
    "out is not a depth format": "--out must end in .png or .npy",
    "unknown device": "unknown device 'gpu0': use auto",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, weights, inputs, tmp_path, capsys):
    extra, model = write_bad_input(case, inputs, weights)
    before = sorted(tmp_path.rglob("*"))
    code = main(["restore", "--depth", str(inputs / "depth.png"), "--intrinsics", str(inputs / "intrinsics.json"),
                 "--out", str(tmp_path / "out" / "restored.png"), "--compare", str(tmp_path / "out" / "compare.png"),
                 "--weights", str(model), "--threads", "1", *extra])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffgrasp restore: error: "), err
    assert re.search(BAD_INPUTS[case], lines[0]), lines[0]
    if model != weights:  # a bad model folder is named
        assert str(model) in lines[0], lines[0]
    assert sorted(tmp_path.rglob("*")) == before, "nothing written"


def test_a_failed_write_leaves_no_output(weights, inputs, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")  # the picture's folder cannot be made: the depth is not kept either
    out = tmp_path / "restored.png"
    assert restore(weights, inputs, out, "--compare", str(tmp_path / "a_file" / "compare.png")) == EXIT_BAD_INPUT
    assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "in"]
