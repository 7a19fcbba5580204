"""Fuzzed inputs (issue 20): every boundary a user's data crosses gives a valid result or a documented error
naming the bad input, never another exception, a hang or a partial output file.

The strategies are benchmarks/reliability_fuzz.py's (which runs them at scale for benchmarks/results);
here each boundary gets a few dozen inputs, a fixed seed, so a regression shows up as a failed test.
"""
import importlib.util
import json
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("reliability_fuzz", REPO / "benchmarks" / "reliability_fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up there
_spec.loader.exec_module(fuzz)

# Inputs per boundary: the model and plan boundaries cost ~0.1 s an input, the others a few ms.
EXAMPLES = {"model_folder": 40, "plan_cli": 40}


@pytest.mark.parametrize("name", [b.name for b in fuzz.BOUNDARIES])
def test_boundary_gives_a_valid_result_or_a_documented_error_naming_the_input(name):
    boundary = next(b for b in fuzz.BOUNDARIES if b.name == name)
    if not fuzz._available(boundary.needs):
        pytest.skip(f"{boundary.needs} is not installed")
    examples = EXAMPLES.get(name, 80)
    tally = fuzz.explore(boundary, examples, seed=0)
    assert tally.tried == examples
    assert tally.crashes == 0, json.dumps(tally.crash_examples, indent=1)
    assert tally.named == sum(tally.documented.values()), json.dumps(tally.unnamed_examples, indent=1)
    assert tally.valid > 0 and tally.documented  # both kinds of outcome were exercised


def fake_boundary(call):
    return fuzz.Boundary("fake", "", lambda: fuzz.st.integers(0, 9), lambda case, scratch: case, call,
                         (ValueError,), lambda message, case: "bad" in message)


def test_the_fuzzer_counts_crashes_hangs_invalid_results_and_unnamed_errors(monkeypatch):
    monkeypatch.setattr(fuzz, "HANG_S", 0.2)

    def call(case):
        if case == 0:
            raise KeyError("undocumented")
        if case == 1:
            time.sleep(5)
        if case == 2:
            raise ValueError("no name in here")
        if case == 3:
            raise fuzz.InvalidResult("NaN depth")
        if case == 4:
            raise ValueError("bad input")
        return case

    tally = fuzz.Tally()
    for case in range(6):
        fuzz._try_one(fake_boundary(call), case, tally)
    assert (tally.tried, tally.valid, tally.crashes, tally.hangs) == (6, 1, 3, 1)
    assert tally.documented == {"ValueError": 2} and tally.named == 1
    assert {e["kind"] for e in tally.crash_examples} == {"undocumented exception", "hang", "invalid result"}


# Regression tests: one input each for the bugs the fuzzing found (old behaviour in the comment).
def test_an_exr_header_whose_attribute_points_back_at_itself_is_refused_not_looped_on(tmp_path):
    from diffgrasp_ros.camera import DepthError, load_depth_image

    path = tmp_path / "depth.exr"  # attribute "x" of type "y" with size -8: the next one is itself (hung)
    path.write_bytes(b"\x76\x2f\x31\x01" + (2).to_bytes(4, "little") + b"x\0y\0" + struct.pack("<i", -8) + bytes(20))
    with fuzz.time_limit(5.0), pytest.raises(DepthError, match="depth.exr: unreadable OpenEXR header"):
        load_depth_image(path)


@pytest.mark.parametrize("data, message", [
    ({"width": 640, "K": [500.0, 0, 320, 0, 500, 240, 0, 0, 1]}, "missing.*height"),  # was TypeError
    ({"width": 640, "height": 480, "K": [500.0, 0, 320]}, "'K' must be a 3x3 matrix"),  # unnamed reshape error
    ({"width": math.inf, "height": 480, "fx": 1, "fy": 1, "cx": 1, "cy": 1}, "width must be a whole"),  # Overflow
    ({"width": "abc", "height": 480, "fx": 1, "fy": 1, "cx": 1, "cy": 1}, "width must be a whole"),
    ({"width": 640, "height": 480, "fx": [1], "fy": 1, "cx": 1, "cy": 1}, "fx must be a number"),  # TypeError
])
def test_intrinsics_dicts_with_garbage_name_the_field(data, message):
    from diffgrasp_ros.camera import CameraIntrinsics

    with pytest.raises(ValueError, match=message):
        CameraIntrinsics.from_dict(data)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe" + b"width: 1", "not UTF-8"),  # was UnicodeDecodeError
    (b"[" * 100_000, "nested too deeply"),  # was RecursionError
    (b"!!python/object/apply:os.system ['true']\nwidth: 96\n", "invalid YAML"),  # was yaml's ParserError
])
def test_unreadable_intrinsics_files_are_value_errors_naming_the_file(tmp_path, content, message):
    from diffgrasp_ros.camera import CameraIntrinsics

    path = tmp_path / "camera.yaml"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"camera.yaml.*{message}|{message}.*camera.yaml"):
        CameraIntrinsics.load(path)


@pytest.mark.parametrize("workspace, message", [
    ([], "must be a mapping"),  # was AttributeError
    ({"size_x_m": float("nan")}, "positive finite"),  # was accepted: a NaN table area
    ({"size_x_m": "wide"}, "size_x_m must be a number"),
])
def test_bad_workspace_areas_in_a_calibration_file_are_refused(tmp_path, workspace, message):
    from diffgrasp_ros.scene.calibration import read_workspace_area

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"workspace": workspace}))
    with pytest.raises(ValueError, match=message):
        read_workspace_area(path)


def test_a_cloud_field_beyond_its_point_step_is_a_value_error():
    pytest.importorskip("sensor_msgs.msg")
    from diffgrasp_ros.nodes import conversions as conv

    cloud = conv.array_to_cloud(np.zeros((3, 3)), ("x", "y", "z"), "workspace", 0.0)
    cloud.fields[0].offset = 40  # was IndexError
    with pytest.raises(ValueError, match="field 'x' at offset 40 does not fit in its point_step 12"):
        conv.cloud_to_array(cloud, ("x", "y", "z"))


@pytest.mark.parametrize("change, message", [("nan", "NaN"), ("reshape", "has shape"), ("dtype", "is torch.int64")])
def test_model_weights_that_are_not_finite_or_do_not_match_the_config_are_refused(tmp_path, change, message):
    pytest.importorskip("torch")
    case = {"kind": "leap_evaluator", "config": fuzz._small_model("leap_evaluator")[1], "config_changed": [],
            "config_corruption": "none", "cut": 0.0, "weights": change, "key": "head.0.weight", "shape": (2, 3),
            "dtype": "int64", "value": None, "seed": 0}
    loader, folder = fuzz._prepare_model(case, tmp_path)
    with pytest.raises(ValueError, match=f"model_leap_evaluator.*{message}"):  # NaN weights were loaded
        loader(folder, device="cpu")


def test_a_truncated_tsdf_file_is_a_value_error_naming_it(tmp_path):
    from diffgrasp_ros.cli.plan import _load_tsdf
    from diffgrasp_ros.scene.workspace import STANDARD_WORKSPACE

    path = tmp_path / "tsdf.npy"
    path.write_bytes(fuzz._plan_file("tsdf.npy")[:100])  # was numpy's EOFError / an unnamed reshape error
    with pytest.raises(ValueError, match="tsdf.npy: not a readable .npy TSDF grid"):
        _load_tsdf(path, STANDARD_WORKSPACE)


def test_an_npy_header_declaring_more_data_than_the_file_holds_is_refused_before_allocating(tmp_path):
    from diffgrasp_ros.camera import DepthError, load_depth_image

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 7), }".ljust(117) + "\n"
    path = tmp_path / "depth.npy"  # np.load raised MemoryError (2.6 TiB) for these 200 bytes
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64))
    with pytest.raises(DepthError, match=r"depth.npy: the .npy header declares a \(100000000000, 7\) float32"):
        load_depth_image(path)


def test_from_raw_of_a_0d_array_names_its_shape():
    from diffgrasp_ros.camera import CameraIntrinsics, DepthError, DepthFrame

    # The product was a numpy scalar: "depth must be a numpy array, got float32" for an array.
    with pytest.raises(DepthError, match=r"got shape \(\)"):
        DepthFrame.from_raw(np.array(5, np.uint16), CameraIntrinsics(4, 4, 1.0, 1.0, 2.0, 2.0), 0.001)
