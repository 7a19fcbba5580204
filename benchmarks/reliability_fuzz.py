"""Fuzzed inputs (issue 20): every boundary a user's data crosses, fed hypothesis-generated inputs in-process.

    .venv/bin/python benchmarks/reliability_fuzz.py [--examples 1500] [--seed 0] [--boundary NAME ...] [--json OUT]

``run(examples_per_boundary, seed)`` runs each boundary's strategy for that many examples and counts, per
boundary, the inputs actually tried (counted inside the test body) and their outcomes:

- **valid**: a result that passes the boundary's own checks (e.g. depth float32, finite, >= 0, of the
  intrinsics' size; a 4x4 rigid camera pose; a model in eval mode whose weights are the file's; a
  ``plan`` output JSON that parses strictly);
- **documented error**: one of the types the boundary documents (``DepthError``, ``ValueError`` and
  its subclasses, ``FileNotFoundError``...), by type; each message is checked for naming the bad input
  (the file's name, the field or key, the dtype or shape: defined per boundary below);
- **crash**: any other exception, an invalid result, or a file boundary that leaves an output file
  after an error (or a half-written one after success); the first few are kept with the input;
- **hang**: an example still running after ``HANG_S`` seconds (a SIGALRM watchdog interrupts it).

Bulk contents (pixels, weights, bytes) come from a numpy generator seeded by a drawn integer, so
hypothesis draws the structure (sizes, dtypes, fields, keys, where a file is cut) and stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# OpenCV reads the variable when its OpenEXR codec is first used: set before anything imports cv2.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from diffgrasp_ros.camera.frame import DepthError  # noqa: E402
from diffgrasp_ros.model_files import ModelFormatError  # noqa: E402

HANG_S = 20.0  # per example; the slowest valid input (a whole `plan` on a small image) takes ~1 s
KEEP = 5  # crash and unnamed-message examples kept per boundary


class Hang(BaseException):
    """Raised by the watchdog; a BaseException so no ``except Exception`` under test can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM: main thread only, elsewhere no limit); a timer already
    running is set going again afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an outer timer (pytest-timeout's) runs on with what it had left
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


class InvalidResult(Exception):
    """A boundary returned something it should not have (NaN depth, a non-rigid pose, a partial file...)."""


@dataclass
class Boundary:
    name: str
    what: str  # one line for the report
    strategy: Callable[[], st.SearchStrategy]  # built lazily: some need the ROS message classes
    # Makes one input in a fresh scratch folder (files, messages, arrays): the fuzzer's own code, whose
    # errors are the fuzzer's bugs and stop the run, not outcomes of the boundary.
    prepare: Callable[[Any, Path], Any]
    call: Callable[[Any], Any]  # the boundary itself, on what prepare made
    documented: tuple[type[Exception], ...]
    names_input: Callable[[str, Any], bool]  # does a documented error's message name the bad input?
    check: Callable[[Any, Any], None] = lambda result, case: None  # raises InvalidResult
    needs: str | None = None  # a module without which the boundary is skipped


@dataclass
class Tally:
    tried: int = 0
    valid: int = 0
    documented: Counter = field(default_factory=Counter)
    crashes: int = 0
    crash_examples: list = field(default_factory=list)
    hangs: int = 0
    named: int = 0
    unnamed_examples: list = field(default_factory=list)
    seconds: float = 0.0

    def crash(self, kind: str, error: BaseException | str, case) -> None:
        self.crashes += 1
        if len(self.crash_examples) < KEEP:
            self.crash_examples.append({"kind": kind, "error": _describe(error), "input": _short(case)})

    def to_dict(self) -> dict:
        errors = sum(self.documented.values())
        return {"tried": self.tried, "valid": self.valid, "documented_errors": dict(sorted(self.documented.items())),
                "crashes": self.crashes, "hangs": self.hangs, "crash_examples": self.crash_examples,
                "messages_name_input": f"{self.named}/{errors}", "unnamed_examples": self.unnamed_examples,
                "seconds": round(self.seconds, 1)}


def _describe(error) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {str(error)[:300]}"
    return str(error)[:300]


def _short(case) -> str:
    text = repr(case)
    return text if len(text) <= 400 else text[:400] + "…"


def _try_one(boundary: Boundary, case, tally: Tally) -> None:
    tally.tried += 1
    with tempfile.TemporaryDirectory(prefix="fuzz_") as scratch:
        prepared = boundary.prepare(case, Path(scratch))
        try:
            with time_limit(HANG_S):
                result = boundary.call(prepared)
                boundary.check(result, case)
        except Hang as error:
            tally.hangs += 1
            tally.crash("hang", error, case)
        except InvalidResult as error:
            tally.crash("invalid result", error, case)
        except boundary.documented as error:
            tally.documented[type(error).__name__] += 1
            if boundary.names_input(str(error), case):
                tally.named += 1
            elif len(tally.unnamed_examples) < KEEP:
                tally.unnamed_examples.append({"error": _describe(error), "input": _short(case)})
        except Exception as error:  # the fuzzer's job: record whatever the boundary let through
            tally.crash("undocumented exception", error, case)
        else:
            tally.valid += 1


def explore(boundary: Boundary, examples: int, seed: int = 0) -> Tally:
    """Feed ``examples`` generated inputs to one boundary; every outcome is counted, none fails the run."""
    tally = Tally()

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(boundary.strategy())
    def body(case):
        _try_one(boundary, case, tally)

    start = time.perf_counter()
    body()
    tally.seconds = time.perf_counter() - start
    return tally


def _mentions(message: str, tokens) -> bool:
    return any(token and str(token) in message for token in tokens)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


SEEDS = st.integers(0, 2**32 - 1)
GARBAGE_FLOATS = st.sampled_from([0.0, -0.0, -1.0, 1e-300, 1e300, math.inf, -math.inf, math.nan, 5e-324])
FLOATS = st.one_of(GARBAGE_FLOATS, st.floats(allow_nan=True, allow_infinity=True))
INTS = st.one_of(st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, -(10**30)]), st.integers(-10**6, 10**6))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, st.text(max_size=6),
                    st.sampled_from(["640", "5e2", " 7 ", "nan", "inf", "0x10", "", "-1", "1_0"]))
# Anything YAML or JSON can hold: scalars, lists and mappings, nested.
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                       max_leaves=12)


# == depth arrays: DepthFrame, DepthFrame.from_raw, validate_depth ================================
DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32",
          "float64", "longdouble", "complex64", "complex128", "object", "<U4", "S3", "datetime64[ms]",
          "timedelta64[s]", ">f4", ">u2", "<f8", [("d", "<f4")], [("d", "<f4"), ("c", "u1")]]
FILLS = ["plausible", "zeros", "nan", "inf", "negative", "huge", "bits"]


def _fill_array(rng: np.random.Generator, shape, dtype, fill: str) -> np.ndarray:
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    if dtype == object:
        choices, out = [None, 0.5, "0.5", [1.0], 1], np.empty(size, dtype=object)
        for i, choice in enumerate(rng.integers(0, len(choices), size)):
            out[i] = choices[choice]
        return out.reshape(shape)
    if fill == "bits" or dtype.fields is not None or dtype.kind in "USMm":
        return np.frombuffer(rng.bytes(size * dtype.itemsize), dtype=dtype).reshape(shape).copy()
    value = {"plausible": rng.uniform(0.2, 2.0, shape), "zeros": np.zeros(shape), "nan": np.full(shape, np.nan),
             "inf": np.full(shape, np.inf), "negative": -rng.uniform(0.0, 5.0, shape),
             "huge": np.full(shape, 1e300)}[fill]
    if dtype.kind in "iu":  # plausible integer depth is millimetres; the rest saturates
        info = np.iinfo(dtype)
        value = value * 1000.0 if fill == "plausible" else value
        value = np.clip(np.nan_to_num(value, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
    with np.errstate(all="ignore"):  # NaN to bool, 1e300 to float16: whatever numpy makes of it
        return value.astype(dtype)


@st.composite
def depth_array_cases(draw):
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    # Weighted towards the expected shape and dtypes, so valid results are checked often too.
    shape_kind = draw(st.sampled_from(["match"] * 4 + ["match1", "channels", "transposed", "random"]))
    shape = {"match": (height, width), "match1": (height, width, 1), "transposed": (width, height),
             "channels": (height, width, draw(st.integers(2, 4)))}.get(shape_kind)
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 9), max_size=4)))
    container = draw(st.sampled_from(["ndarray"] * 6 + ["list", "scalar", "none"]))
    return {"intrinsics": (width, height, draw(st.floats(1.0, 2000.0)), draw(st.floats(1.0, 2000.0)),
                           draw(st.floats(0.0, 1.0)) * width, draw(st.floats(0.0, 1.0)) * height),
            "shape": shape, "dtype": draw(st.sampled_from(DTYPES + ["float32"] * 6 + ["uint16"] * 4)),
            "fill": draw(st.sampled_from(FILLS)),
            "container": container, "op": draw(st.sampled_from(["frame", "from_raw", "validate"])),
            "depth_scale": draw(st.one_of(st.sampled_from([0.001, 1.0, 0.0001]), FLOATS)),
            "seed": draw(SEEDS)}


def _depth_input(case):
    array = _fill_array(_rng(case["seed"]), case["shape"], case["dtype"], case["fill"])
    return {"ndarray": array, "list": array.tolist(), "scalar": 0.5, "none": None}[case["container"]]


def _prepare_depth_array(case, scratch):
    from diffgrasp_ros.camera import CameraIntrinsics

    return case["op"], _depth_input(case), CameraIntrinsics(*case["intrinsics"]), case["depth_scale"]


def _call_depth_array(prepared):
    from diffgrasp_ros.camera import DepthFrame, validate_depth

    op, depth, K, depth_scale = prepared
    if op == "frame":
        return DepthFrame(depth, K).depth_m, K
    if op == "from_raw":
        return DepthFrame.from_raw(depth, K, depth_scale).depth_m, K
    return validate_depth(depth, K), K


def _check_depth(depth, width: int, height: int) -> None:
    if not isinstance(depth, np.ndarray) or depth.dtype != np.float32 or depth.shape != (height, width):
        raise InvalidResult(f"depth is not float32 {height}x{width}: "
                            f"{getattr(depth, 'dtype', type(depth))} {getattr(depth, 'shape', '')}")
    if not (np.isfinite(depth).all() and (depth >= 0).all()):
        raise InvalidResult("depth holds non-finite or negative values")


def _refuses_scale(depth_scale) -> bool:
    """A zero, negative or non-finite scale must be an error: it would make every pixel invalid."""
    return depth_scale is not None and not 0 < depth_scale < math.inf


def _check_depth_array(result, case):
    depth, K = result
    _check_depth(depth, K.width, K.height)
    if case["op"] == "from_raw" and _refuses_scale(case["depth_scale"]):
        raise InvalidResult(f"depth_scale {case['depth_scale']} accepted")


def _names_depth_array(message, case):
    """The message names what was wrong: the type, dtype, shape or size it got, or depth_scale."""
    given = _depth_input(case)
    array = np.asarray(given) if case["op"] == "from_raw" else given  # from_raw converts lists; the others not
    tokens = [type(given).__name__] + (["depth_scale"] if case["op"] == "from_raw" else [])
    if isinstance(array, np.ndarray):
        tokens += [str(array.dtype), str(array.shape)]
        tokens += [f"{array.shape[1]}x{array.shape[0]}"] if array.ndim >= 2 else []  # "the depth is WxH"
    return _mentions(message, tokens)


# == camera intrinsics as users write them: CameraIntrinsics.from_dict (plain and ROS forms) ====
PLAIN_KEYS = ("width", "height", "fx", "fy", "cx", "cy")
# A message names a ROS-form key when it names it or one of the values it carries.
KEY_TOKENS = {"image_width": ("image_width", "width"), "image_height": ("image_height", "height"),
              "camera_matrix": ("camera_matrix", "fx", "fy", "cx", "cy"), "k": ("'k'", "fx", "fy", "cx", "cy"),
              "K": ("'K'", "fx", "fy", "cx", "cy")}


@st.composite
def intrinsics_dicts(draw):
    width, height = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    values = {"width": width, "height": height, "fx": draw(st.floats(1.0, 5000.0)),
              "fy": draw(st.floats(1.0, 5000.0)), "cx": draw(st.floats(0, 1)) * width,
              "cy": draw(st.floats(0, 1)) * height}
    form = draw(st.sampled_from(["plain", "camera_matrix", "k", "K"]))
    if form == "plain":
        data = dict(values)
    else:
        K = [values["fx"], 0.0, values["cx"], 0.0, values["fy"], values["cy"], 0.0, 0.0, 1.0]
        matrix = {"rows": 3, "cols": 3, "data": K} if form == "camera_matrix" else K
        sizes = ({"image_width": width, "image_height": height} if draw(st.booleans())
                 else {"width": width, "height": height})
        data = {**sizes, form: matrix}
    mutated = []
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "garbage", "extra", "matrix"]))
        key = draw(st.sampled_from(sorted(data)))
        if action == "drop":
            data.pop(key, None)
            mutated.append(key)
        elif action == "garbage":
            data[key] = draw(JSONISH)
            mutated.append(key)
        elif action == "extra":  # ignored, unless it collides with a real key: then it is a mutation too
            extra = draw(st.one_of(st.text(min_size=1, max_size=8), st.sampled_from(PLAIN_KEYS + tuple(KEY_TOKENS))))
            data[extra] = draw(JSONISH)
            if extra in PLAIN_KEYS or extra in KEY_TOKENS:
                mutated.append(extra)
        elif form != "plain":  # the matrix of another length, or its values garbage
            data[form] = draw(st.one_of(st.lists(FLOATS, max_size=12), st.lists(SCALARS, min_size=9, max_size=9),
                                        st.just({"rows": 3, "cols": 3}), st.just({"data": "1 2 3"})))
            mutated.append(form)
    return {"data": data, "mutated": mutated}


def _call_intrinsics(data):
    from diffgrasp_ros.camera import CameraIntrinsics

    return CameraIntrinsics.from_dict(data)


def _check_intrinsics(K, case=None):
    if not (isinstance(K.width, int) and isinstance(K.height, int) and K.width > 0 and K.height > 0
            and all(math.isfinite(v) for v in (K.fx, K.fy, K.cx, K.cy)) and K.fx > 0 and K.fy > 0):
        raise InvalidResult(f"invalid intrinsics {K}")


def _names_intrinsics(message, case):
    tokens = [token for key in case["mutated"] for token in KEY_TOKENS.get(key, (key,))]
    return _mentions(message, tokens)


# == sensor_msgs Image + CameraInfo: nodes.conversions.msgs_to_depth_frame =======================
ENCODINGS = ["32FC1", "16UC1", "mono16", "8UC1", "mono8", "rgb8", "32FC3", "64FC1", "16SC1", "", "32fc1",
             "\u00e9", "16UC1 "]


@st.composite
def ros_depth_cases(draw):
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    encoding = draw(st.sampled_from(ENCODINGS))
    itemsize = 2 if encoding in ("16UC1", "mono16") else 4
    case = {"encoding": encoding, "width": width, "height": height, "step": width * itemsize,
            "is_bigendian": 0, "info_width": width, "info_height": height,
            "k": [draw(st.floats(1, 2000)), 0.0, width / 2, 0.0, draw(st.floats(1, 2000)), height / 2, 0.0, 0.0, 1.0],
            "frame_ids": ("cam", "cam"), "data_size": None, "fill": draw(st.sampled_from(FILLS)),
            "seed": draw(SEEDS), "mutated": []}
    u32 = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 2**31]), st.integers(0, 64))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["width", "height", "step", "is_bigendian", "info_width", "info_height", "k",
                                    "frame_ids", "data_size"]))
        case["mutated"].append(key)
        if key == "is_bigendian":
            case[key] = draw(st.integers(0, 255))
        elif key == "k":
            case["k"] = draw(st.lists(FLOATS, min_size=9, max_size=9))
        elif key == "frame_ids":
            case["frame_ids"] = (draw(st.text(max_size=4)), draw(st.text(max_size=4)))
        elif key == "data_size":
            case["data_size"] = draw(st.integers(0, 8000))
        else:
            case[key] = draw(u32)
    return case


def _ros_messages(case, scratch=None):
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    size = case["step"] * case["height"] if case["data_size"] is None else case["data_size"]
    rng = _rng(case["seed"])
    if case["fill"] == "bits" or size > 1 << 20:  # a huge declared size gets random bytes of a bounded length
        data = rng.bytes(min(size, 1 << 16))
    else:
        dtype = np.dtype("<f4" if case["encoding"] == "32FC1" else "<u2")
        data = _fill_array(rng, (size // dtype.itemsize + 1,), dtype, case["fill"]).tobytes()[:size]
    image = Image(header=Header(frame_id=case["frame_ids"][0]), encoding=case["encoding"], width=case["width"],
                  height=case["height"], step=case["step"], is_bigendian=case["is_bigendian"], data=data)
    info = CameraInfo(header=Header(frame_id=case["frame_ids"][1]), width=case["info_width"],
                      height=case["info_height"], k=case["k"])
    return image, info


def _call_ros_depth(messages):
    from diffgrasp_ros.nodes.conversions import msgs_to_depth_frame

    return msgs_to_depth_frame(*messages)


def _check_ros_depth(frame, case):
    _check_depth(frame.depth_m, case["width"], case["height"])


ROS_FIELD_TOKENS = {"width": ("width", "x"), "height": ("height", "x"), "step": ("step",),
                    "is_bigendian": ("is_bigendian", "bytes"), "info_width": ("camera info", "width", "image size"),
                    "info_height": ("camera info", "height", "image size"),
                    "k": ("K", "fx", "fy", "cx", "cy", "focal", "principal point"), "frame_ids": ("frame",),
                    "data_size": ("bytes", "data")}


def _names_ros_depth(message, case):
    tokens = [token for key in case["mutated"] for token in ROS_FIELD_TOKENS[key]]
    return _mentions(message, tokens + ["encoding"])


# == sensor_msgs PointCloud2: cloud_to_array and clouds_to_scene ==================================
CLOUD_NAMES = ("x", "y", "z", "normal_x", "normal_y", "normal_z", "tsdf")


@st.composite
def cloud_specs(draw, names):
    """A float32 cloud with ``names`` (as ``array_to_cloud`` writes it), then fields and strides mutated."""
    count = draw(st.integers(0, 30))
    spec = {"names": list(names), "offsets": [4 * i for i in range(len(names))], "datatypes": [7] * len(names),
            "counts": [1] * len(names), "width": count, "height": 1, "point_step": 4 * len(names),
            "row_step": None, "data_size": None, "is_bigendian": False, "fill": draw(st.sampled_from(FILLS)),
            "seed": draw(SEEDS), "mutated": []}
    small = st.one_of(st.integers(0, 64), st.sampled_from([2**32 - 1, 2**31]))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["name", "offset", "datatype", "count", "drop", "duplicate", "width", "height",
                                    "point_step", "row_step", "data_size", "is_bigendian"]))
        spec["mutated"].append(key)
        i = draw(st.integers(0, max(len(spec["names"]) - 1, 0)))
        if key in ("name", "offset", "datatype", "count", "drop", "duplicate") and not spec["names"]:
            continue
        if key == "name":
            spec["names"][i] = draw(st.sampled_from(list(CLOUD_NAMES) + ["", "rgb", "X"]))
        elif key == "offset":  # often at the end of the point, where a 4-byte field no longer fits
            spec["offsets"][i] = draw(st.one_of(small, st.integers(max(spec["point_step"] - 6, 0),
                                                                    spec["point_step"] + 2)))
        elif key == "datatype":
            spec["datatypes"][i] = draw(st.integers(0, 255))
        elif key == "count":
            spec["counts"][i] = draw(small)
        elif key == "drop":
            for part in ("names", "offsets", "datatypes", "counts"):
                del spec[part][i]
        elif key == "duplicate":
            for part in ("names", "offsets", "datatypes", "counts"):
                spec[part].append(spec[part][i])
        elif key == "is_bigendian":
            spec["is_bigendian"] = True
        elif key == "data_size":
            spec["data_size"] = draw(st.integers(0, 4000))
        else:
            spec[key] = draw(small)
    return spec


def _cloud(spec, frame_id="workspace"):
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    row_step = spec["width"] * spec["point_step"] if spec["row_step"] is None else spec["row_step"]
    size = row_step * spec["height"] if spec["data_size"] is None else spec["data_size"]
    rng = _rng(spec["seed"])
    if spec["fill"] == "bits" or size > 1 << 20:
        data = rng.bytes(min(size, 1 << 16))
    else:
        # Coordinates inside the 0.30 m workspace and TSDF values in [0, 1], unless the fill says otherwise.
        values = _fill_array(rng, (size // 4 + 1,), "<f4", spec["fill"])
        if spec["fill"] == "plausible":
            values *= np.float32(0.15)
        data = values.tobytes()[:size]
    fields = [PointField(name=n, offset=o, datatype=d, count=c)
              for n, o, d, c in zip(spec["names"], spec["offsets"], spec["datatypes"], spec["counts"])]
    return PointCloud2(header=Header(frame_id=frame_id), height=spec["height"], width=spec["width"],
                       fields=fields, is_bigendian=spec["is_bigendian"], point_step=spec["point_step"],
                       row_step=row_step, data=data, is_dense=False)


SURFACE_FIELDS = ("x", "y", "z", "normal_x", "normal_y", "normal_z")
TSDF_FIELDS = ("x", "y", "z", "tsdf")


def cloud_cases():
    return st.one_of(
        st.fixed_dictionaries({"op": st.just("array"), "cloud": cloud_specs(SURFACE_FIELDS),
                               "names": st.sampled_from([SURFACE_FIELDS, TSDF_FIELDS, ("x", "y", "z"), ("rgb",)])}),
        st.fixed_dictionaries({"op": st.just("scene"), "surface": cloud_specs(SURFACE_FIELDS),
                               "tsdf": cloud_specs(TSDF_FIELDS)}))


def _prepare_cloud(case, scratch):
    if case["op"] == "array":
        return "array", _cloud(case["cloud"]), case["names"]
    return "scene", _cloud(case["surface"]), _cloud(case["tsdf"])


def _call_cloud(prepared):
    from diffgrasp_ros.nodes.conversions import cloud_to_array, clouds_to_scene
    from diffgrasp_ros.scene.workspace import STANDARD_WORKSPACE

    op, first, second = prepared
    if op == "array":
        return cloud_to_array(first, second)
    return clouds_to_scene(first, second, STANDARD_WORKSPACE)


def _check_cloud(result, case):
    if case["op"] == "array":
        if result.dtype != np.float64 or result.ndim != 2 or result.shape[1] != len(case["names"]):
            raise InvalidResult(f"cloud array of dtype {result.dtype} and shape {result.shape}")
        return  # NaN is how PointCloud2 marks an invalid point (is_dense false): passed through as data
    grid, points, normals = result.tsdf_grid, result.points_m, result.normals
    if not (np.isfinite(grid).all() and grid.min() >= 0 and grid.max() <= 1):
        raise InvalidResult("scene TSDF grid outside [0, 1] or not finite")
    if not (np.isfinite(points).all() and np.isfinite(normals).all()):
        raise InvalidResult("scene surface points or normals not finite")


CLOUD_KEY_TOKENS = {"name": ("field",), "offset": ("offset", "field"), "datatype": ("FLOAT32", "datatype"),
                    "count": ("count", "FLOAT32"), "drop": ("lacks fields",), "duplicate": ("field",),
                    "width": ("width",), "height": ("height",), "point_step": ("point_step",),
                    "row_step": ("row_step",), "data_size": ("data",), "is_bigendian": ("big-endian",)}


def _names_cloud(message, case):
    specs = [case["cloud"]] if case["op"] == "array" else [case["surface"], case["tsdf"]]
    tokens = [t for spec in specs for key in spec["mutated"] for t in CLOUD_KEY_TOKENS[key]]
    if case["op"] == "array":
        tokens += ["lacks fields"]  # asked for fields the cloud never had (e.g. rgb)
    else:
        tokens += ["surface", "TSDF"]  # clouds_to_scene names which cloud
    return _mentions(message, tokens)


# == calibration YAML / JSON: load_calibration, read_workspace_area, CameraIntrinsics.load, load_extrinsics ==
TOP_DOWN = [[1.0, 0.0, 0.0, 0.15], [0.0, -1.0, 0.0, 0.15], [0.0, 0.0, -1.0, 0.55], [0.0, 0.0, 0.0, 1.0]]
BASE_INTRINSICS = {"width": 96, "height": 72, "fx": 90.0, "fy": 90.0, "cx": 48.0, "cy": 36.0}
POSE = {"position": [0.15, 0.15, 0.55], "orientation": [1.0, 0.0, 0.0, 0.0]}  # xyzw: 180 deg about x


def _paths(value, prefix=()):
    """Every key path into nested dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


def _set(root, path, value, delete=False):
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return root


@st.composite
def structured_documents(draw, base):
    """``base`` with keys dropped, added or given garbage values anywhere in it; returns (data, changed paths)."""
    data = json.loads(json.dumps(base))
    changed = []
    for _ in range(draw(st.integers(0, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["drop", "garbage", "extra"]))
        if action == "drop" and path:
            _set(data, path, None, delete=True)
        elif action == "extra" and isinstance(_get(data, path), dict):
            _get(data, path)[draw(st.text(min_size=1, max_size=8))] = draw(JSONISH)
        else:
            data = _set(data, path, draw(JSONISH))
        changed.append(path)
    return data, changed


def _get(root, path):
    for key in path:
        root = root[key]
    return root


TEXT_CORRUPTIONS = ["none"] * 6 + ["truncate", "flip", "bad_utf8", "bom", "empty", "yaml_tag", "deep", "tabs"]


def _corrupt_text(text: str, corruption: str, cut: float, rng: np.random.Generator) -> bytes:
    raw = text.encode()
    if corruption == "truncate":
        return raw[: int(cut * len(raw))]
    if corruption == "flip":
        data = bytearray(raw)
        for i in rng.integers(0, max(len(data), 1), 3):
            if data:
                data[i] = int(rng.integers(0, 256))
        return bytes(data)
    # "deep": nested past both parsers' recursion limits.
    return {"none": raw, "bad_utf8": b"\xff\xfe\x80" + raw, "bom": b"\xef\xbb\xbf" + raw, "empty": b"",
            "yaml_tag": b"!!python/object/apply:os.system ['true']\n" + raw, "deep": b"[" * 1100,
            "tabs": b"\t" + raw.replace(b"  ", b"\t")}[corruption]


def _dump(data, suffix: str) -> str:
    import yaml

    if suffix == ".json":
        return json.dumps(data)
    return yaml.safe_dump(data, sort_keys=False)


@st.composite
def calibration_cases(draw):
    reader = draw(st.sampled_from(["load_calibration", "read_workspace_area", "intrinsics", "extrinsics"]))
    if reader == "intrinsics":
        base = dict(BASE_INTRINSICS)
    elif reader == "extrinsics":
        base = draw(st.sampled_from([TOP_DOWN, {"T_workspace_camera": TOP_DOWN}, POSE, {"extrinsics": POSE}]))
    else:
        extrinsics = draw(st.sampled_from([{"T_workspace_camera": TOP_DOWN}, POSE, {"extrinsics": POSE}]))
        base = {"intrinsics": dict(BASE_INTRINSICS), **extrinsics,
                "workspace": {"size_x_m": 0.3, "size_y_m": 0.3, "height_m": 0.3, "table_height_m": 0.05}}
    data, changed = draw(structured_documents(base))
    return {"reader": reader, "data": data, "changed": changed,
            "suffix": draw(st.sampled_from([".yaml", ".yml", ".json", ".JSON", ".txt"])),
            "corruption": draw(st.sampled_from(TEXT_CORRUPTIONS)), "cut": draw(st.floats(0, 1)),
            "seed": draw(SEEDS)}


def _prepare_calibration(case, scratch):
    path = scratch / f"calibration{case['suffix']}"
    text = _dump(case["data"], case["suffix"].lower())
    path.write_bytes(_corrupt_text(text, case["corruption"], case["cut"], _rng(case["seed"])))
    return case["reader"], path


def _call_calibration(prepared):
    from diffgrasp_ros.camera import CameraIntrinsics, load_calibration, load_extrinsics
    from diffgrasp_ros.scene.calibration import read_workspace_area

    reader, path = prepared
    return {"load_calibration": load_calibration, "read_workspace_area": read_workspace_area,
            "intrinsics": CameraIntrinsics.load, "extrinsics": load_extrinsics}[reader](path)


def _check_pose(T):
    from diffgrasp_ros.geometry import is_rigid_transform

    if not (isinstance(T, np.ndarray) and T.shape == (4, 4) and np.isfinite(T).all() and is_rigid_transform(T)):
        raise InvalidResult(f"camera pose is not a finite 4x4 rigid transform: {T!r}")


def _check_calibration(result, case):
    reader = case["reader"]
    if reader == "load_calibration":
        _check_intrinsics(result[0])
        _check_pose(result[1])
    elif reader == "intrinsics":
        _check_intrinsics(result)
    elif reader == "extrinsics":
        _check_pose(result)
    elif result is not None:
        sizes = (result.size_x_m, result.size_y_m, result.height_m)
        if not (all(math.isfinite(s) and s > 0 for s in sizes) and math.isfinite(result.table_height_m)):
            raise InvalidResult(f"workspace area of sizes {sizes}, table height {result.table_height_m}")


def _names_calibration(message, case):
    return _mentions(message, [f"calibration{case['suffix']}"])


# == depth image files: load_depth_image and FileDepthSource, every supported type =================
DEPTH_SUFFIXES = [".npy", ".png", ".tif", ".tiff", ".exr", ".jpg", ".PNG", ""]
FILE_DTYPES = ["uint16", "float32", "float64", "uint8", "int32", "int16", "bool", "complex64", "float16", "object",
               "<U2", [("d", "<f4")], ">u2", "uint64"]


@st.composite
def depth_file_cases(draw):
    suffix = draw(st.sampled_from(DEPTH_SUFFIXES))
    shape_kind = draw(st.sampled_from(["image"] * 4 + ["channels", "1d", "3d", "empty", "scalar"]))
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    shape = {"image": (height, width), "channels": (height, width, draw(st.sampled_from([1, 2, 3, 4, 5]))),
             "1d": (width,), "3d": (2, height, width), "empty": (0, width), "scalar": ()}[shape_kind]
    return {"suffix": suffix, "shape": shape, "dtype": draw(st.sampled_from(FILE_DTYPES + ["uint16", "float32"] * 4)),
            "fill": draw(st.sampled_from(FILLS)), "writer": draw(st.sampled_from(["native"] * 5 + ["bytes", "npz"])),
            "corruption": draw(st.sampled_from(["none"] * 3 + ["truncate", "flip", "exr_header", "npy_header"])),
            "cut": draw(st.floats(0, 1)), "depth_scale": draw(st.one_of(st.none(), st.none(), FLOATS)),
            "through_source": draw(st.booleans()), "seed": draw(SEEDS)}


def _write_depth_file(case, path: Path) -> None:
    import cv2

    rng = _rng(case["seed"])
    array = _fill_array(rng, case["shape"], case["dtype"], case["fill"])
    suffix = case["suffix"].lower()
    if case["writer"] == "bytes":
        path.write_bytes(rng.bytes(int(rng.integers(0, 600))))
    elif case["writer"] == "npz":  # an .npz saved under another name
        with open(path, "wb") as file:
            np.savez(file, depth=array)
    elif suffix == ".npy" or suffix == "":
        with open(path, "wb") as file:
            np.save(file, array, allow_pickle=True)  # an object array a user pickled: must be refused
    else:
        ok, encoded = False, None
        if array.dtype.kind in "uif" and array.dtype.fields is None:
            with contextlib.suppress(cv2.error):
                ok, encoded = cv2.imencode(suffix, array)
        # cv2 cannot encode every dtype in every format: then the file holds the array as text.
        path.write_bytes(encoded.tobytes() if ok else repr(array.tolist()).encode())
    data = path.read_bytes()
    if case["corruption"] == "truncate":
        path.write_bytes(data[: int(case["cut"] * len(data))])
    elif case["corruption"] == "flip" and data:
        data = bytearray(data)
        for i in rng.integers(0, len(data), 4):
            data[i] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
    elif case["corruption"] == "exr_header":
        path.write_bytes(_exr_header(rng, case["cut"]))
    elif case["corruption"] == "npy_header":  # a header declaring far more data than follows it
        header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({int(rng.integers(1, 10**12))}, 7), }}"
        header = header.ljust(117) + "\n"
        path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + rng.bytes(64))


def _exr_header(rng: np.random.Generator, cut: float) -> bytes:
    """An OpenEXR magic number and version, then attributes with random names, types and sizes (some negative)."""
    out = bytearray(b"\x76\x2f\x31\x01" + int(rng.choice([2, 2 | 0x800, 0x200])).to_bytes(4, "little"))
    for _ in range(int(rng.integers(0, 4))):
        name = rng.choice([b"channels", b"compression", b"dataWindow", b"x"])
        kind = rng.choice([b"chlist", b"compression", b"box2i", b""])
        # -(len(name) + len(kind) + 6) points the next attribute back at this one.
        size = int(rng.choice([-(len(name) + len(kind) + 6), -1, 0, 4, 18, 40, 1 << 30]))
        value = rng.choice([b"Z\0" + bytes(16) + b"\0", b"R\0" + bytes(16) + b"G\0" + bytes(16) + b"\0", b"\0" * 4])
        out += name + b"\0" + kind + b"\0" + size.to_bytes(4, "little", signed=True) + value
    out += b"\0" + rng.bytes(int(rng.integers(0, 64)))
    return bytes(out[: max(8, int(cut * len(out)))]) if cut < 0.5 else bytes(out)


def _prepare_depth_file(case, scratch):
    from diffgrasp_ros.camera import CameraIntrinsics

    path = scratch / f"depth{case['suffix']}"
    _write_depth_file(case, path)
    shape = case["shape"]
    K = (CameraIntrinsics(shape[1], shape[0], 50.0, 50.0, shape[1] / 2, shape[0] / 2)
         if len(shape) >= 2 and shape[0] > 0 else CameraIntrinsics(8, 8, 50.0, 50.0, 4.0, 4.0))
    return path, case["depth_scale"], K if case["through_source"] else None


def _call_depth_file(prepared):
    from diffgrasp_ros.camera import FileDepthSource, load_depth_image

    path, depth_scale, K = prepared
    if K is None:
        return load_depth_image(path, depth_scale)
    return next(iter(FileDepthSource([path], K, depth_scale=depth_scale))).depth_m


def _check_depth_file(depth, case):
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        raise InvalidResult(f"depth of shape {getattr(depth, 'shape', type(depth))}")
    _check_depth(depth, depth.shape[1], depth.shape[0])
    if _refuses_scale(case["depth_scale"]):
        raise InvalidResult(f"depth_scale {case['depth_scale']} accepted")


def _names_depth_file(message, case):
    return _mentions(message, [f"depth{case['suffix']}"])


# == model folders: config.json + weights.pt of every learned model ===============================
def _model_kinds():
    """name -> (loader(folder, device), a small model, its config dataclass)."""
    from diffgrasp_ros.depth.noise_diffusion import NoiseDiffusionConfig, NoiseDiffusionModel
    from diffgrasp_ros.depth.restoration import TINY as RESTORE_TINY
    from diffgrasp_ros.depth.restoration import DepthRestorer, RestorationConfig
    from diffgrasp_ros.grasping.igd.config import TINY as IGD_TINY
    from diffgrasp_ros.grasping.igd.config import IGDConfig
    from diffgrasp_ros.grasping.igd.model import IGDModel
    from diffgrasp_ros.grasping.igd.pretrained import load_pretrained as load_igd
    from diffgrasp_ros.grasping.leap.config import TINY as LEAP_TINY
    from diffgrasp_ros.grasping.leap.config import LeapConfig
    from diffgrasp_ros.grasping.leap.evaluator import LeapEvaluatorConfig, LeapGraspEvaluator, load_evaluator
    from diffgrasp_ros.grasping.leap.model import LeapGraspModel
    from diffgrasp_ros.grasping.leap.pretrained import load_pretrained as load_leap

    return {
        "igd": (load_igd, lambda: IGDModel(IGDConfig(**IGD_TINY))),
        "leap": (load_leap, lambda: LeapGraspModel(LeapConfig(**LEAP_TINY))),
        "leap_evaluator": (load_evaluator,
                           lambda: LeapGraspEvaluator(LeapEvaluatorConfig(lattice=(4, 4, 4), channels=2, hidden=8))),
        "depth_restore": (DepthRestorer.from_pretrained, lambda: DepthRestorer(RestorationConfig(**RESTORE_TINY))),
        "depth_noise": (NoiseDiffusionModel.from_pretrained,
                        lambda: NoiseDiffusionModel(NoiseDiffusionConfig(channels=(8, 16), groups=4, time_dim=16))),
    }


_MODELS: dict = {}


def _small_model(kind: str):
    """(loader, config dict, state dict) of a small model of ``kind``, made once per process."""
    if kind not in _MODELS:
        import dataclasses

        import torch

        torch.manual_seed(0)
        loader, make = _model_kinds()[kind]
        model = make()
        config = json.loads(json.dumps(dataclasses.asdict(model.config)))
        _MODELS[kind] = (loader, config, {k: v.clone() for k, v in model.state_dict().items()})
    return _MODELS[kind]


MODEL_KINDS = ["igd", "leap", "leap_evaluator", "depth_restore", "depth_noise"]
WEIGHT_CHANGES = ["none"] * 3 + ["drop", "extra", "reshape", "dtype", "nan", "not_tensor", "not_dict",
                                 "truncate", "garbage", "empty", "missing"]


@st.composite
def model_cases(draw):
    kind = draw(st.sampled_from(MODEL_KINDS))
    _, config, state = _small_model(kind)
    data, changed = draw(structured_documents(config))
    keys = sorted(state)
    return {"kind": kind, "config": data, "config_changed": changed,
            "config_corruption": draw(st.sampled_from(TEXT_CORRUPTIONS + ["missing"])), "cut": draw(st.floats(0, 1)),
            "weights": draw(st.sampled_from(WEIGHT_CHANGES)), "key": draw(st.sampled_from(keys)),
            "shape": tuple(draw(st.lists(st.integers(0, 5), max_size=3))),
            "dtype": draw(st.sampled_from(["float64", "float16", "int64", "bool", "complex64", "uint8"])),
            "value": draw(st.one_of(SCALARS, st.lists(st.integers(0, 3), max_size=3))), "seed": draw(SEEDS)}


def _write_model_folder(case, folder: Path) -> None:
    import torch

    _, _, state = _small_model(case["kind"])
    rng = _rng(case["seed"])
    folder.mkdir()
    if case["config_corruption"] != "missing":
        text = json.dumps(case["config"])
        (folder / "config.json").write_bytes(_corrupt_text(text, case["config_corruption"], case["cut"], rng))
    change, key = case["weights"], case["key"]
    weights = dict(state)
    if change == "drop":
        del weights[key]
    elif change == "extra":
        weights[key + "_extra"] = torch.zeros(2)
    elif change == "reshape":
        weights[key] = torch.zeros(case["shape"])
    elif change == "dtype":
        weights[key] = weights[key].to(getattr(torch, case["dtype"]))
    elif change == "nan" and weights[key].is_floating_point() and weights[key].numel():
        weights[key] = weights[key].clone().view(-1).index_fill(0, torch.tensor([0]), math.nan).view_as(weights[key])
    elif change == "not_tensor":
        weights[key] = case["value"]
    path = folder / "weights.pt"
    if change == "missing":
        return
    if change == "not_dict":
        torch.save([weights[key]], path)
    elif change == "empty":
        path.write_bytes(b"")
    elif change == "garbage":
        path.write_bytes(rng.bytes(int(rng.integers(1, 2000))))
    else:
        torch.save(weights, path)
        if change == "truncate":
            data = path.read_bytes()
            path.write_bytes(data[: int(case["cut"] * len(data))])


def _prepare_model(case, scratch):
    folder = scratch / f"model_{case['kind']}"
    _write_model_folder(case, folder)
    return _small_model(case["kind"])[0], folder


def _call_model(prepared):
    loader, folder = prepared
    return loader(folder, device="cpu")


def _check_model(model, case):
    import torch

    _, _, state = _small_model(case["kind"])
    if model.training:
        raise InvalidResult("model not in eval mode")
    loaded = model.state_dict()
    for key, value in state.items():
        if key not in loaded or loaded[key].shape != value.shape or not torch.isfinite(loaded[key].float()).all():
            raise InvalidResult(f"loaded weight {key!r} is missing, of another shape or not finite")


def _names_model(message, case):
    return _mentions(message, [f"model_{case['kind']}"])


# == `diffgrasp plan`: every file type it reads, whole, truncated or with bytes changed, in-process ==
PLAN_DEPTH_SUFFIXES = [".npy", ".png", ".tif", ".tiff", ".exr"]
PLAN_FORMATS = [".yaml", ".json"]


def _plan_scene():
    """A 96x72 top-down view of the table with a 4x5x6 cm box in the middle, and its camera."""
    K = BASE_INTRINSICS
    v, u = np.mgrid[0:K["height"], 0:K["width"]].astype(np.float64)
    depth = np.full(v.shape, 0.5)  # camera at z = 0.55 looking down at the table top z = 0.05
    x = 0.15 + 0.44 * (u - K["cx"]) / K["fx"]  # where the ray meets the box top (z = 0.11)
    y = 0.15 - 0.44 * (v - K["cy"]) / K["fy"]
    depth[(abs(x - 0.15) < 0.02) & (abs(y - 0.15) < 0.025)] = 0.44
    return depth.astype(np.float32)


_PLAN_FILES: dict = {}


def _plan_file(kind: str) -> bytes:
    """The valid bytes of each file ``plan`` reads, made once per process."""
    if not _PLAN_FILES:
        import cv2
        import yaml

        depth = _plan_scene()
        mm = np.round(depth * 1000).astype(np.uint16)
        calibration = {"intrinsics": BASE_INTRINSICS, "T_workspace_camera": TOP_DOWN}
        buffer = io.BytesIO()
        np.save(buffer, depth)
        files = {"depth.npy": buffer.getvalue(), "depth.png": cv2.imencode(".png", mm)[1].tobytes(),
                 "depth.tif": cv2.imencode(".tif", mm)[1].tobytes(),
                 "depth.tiff": cv2.imencode(".tiff", depth)[1].tobytes(),
                 "depth.exr": cv2.imencode(".exr", depth)[1].tobytes(),
                 "calibration.yaml": yaml.safe_dump(calibration).encode(),
                 "calibration.json": json.dumps(calibration).encode(),
                 "intrinsics.yaml": yaml.safe_dump(BASE_INTRINSICS).encode(),
                 "intrinsics.json": json.dumps(BASE_INTRINSICS).encode(),
                 "extrinsics.yaml": yaml.safe_dump(POSE).encode(),
                 "extrinsics.json": json.dumps({"T_workspace_camera": TOP_DOWN}).encode()}
        from diffgrasp_ros.camera import CameraIntrinsics, DepthFrame
        from diffgrasp_ros.scene import SceneBuilder

        builder = SceneBuilder()
        builder.integrate(DepthFrame(depth, CameraIntrinsics(**BASE_INTRINSICS)), np.array(TOP_DOWN))
        buffer = io.BytesIO()
        np.save(buffer, builder.scene().tsdf_grid[None])  # (1, 40, 40, 40) as VGN stores it
        files["tsdf.npy"] = buffer.getvalue()
        _PLAN_FILES.update(files)
    return _PLAN_FILES[kind]


@st.composite
def plan_cases(draw):
    mode = draw(st.sampled_from(["calibration", "intrinsics_extrinsics", "auto", "tsdf"]))
    depth = f"depth{draw(st.sampled_from(PLAN_DEPTH_SUFFIXES))}"
    fmt = draw(st.sampled_from(PLAN_FORMATS))
    files = {"calibration": [depth, f"calibration{fmt}"],
             "intrinsics_extrinsics": [depth, f"intrinsics{fmt}", f"extrinsics{draw(st.sampled_from(PLAN_FORMATS))}"],
             "auto": [depth, f"intrinsics{fmt}"], "tsdf": ["tsdf.npy"]}[mode]
    return {"mode": mode, "files": files, "broken": draw(st.sampled_from(files)),
            # A whole file now and then, so the valid path (fusion, planning, writing) is exercised too.
            "damage": draw(st.sampled_from(["truncate"] * 8 + ["flip"] * 3 + ["none"])),
            "cut": draw(st.floats(0, 1, exclude_max=True)), "seed": draw(SEEDS),
            # --draw: none, a picture, or one plan cannot draw (unknown type, or no camera view with --tsdf).
            "draw": draw(st.sampled_from([None, None, ".png", ".jpg", ".xyz", ""]))}


def _prepare_plan(case, scratch):
    from diffgrasp_ros.cli.main import build_parser

    rng = _rng(case["seed"])
    paths = {}
    for name in case["files"]:
        data = _plan_file(name)
        if name == case["broken"] and case["damage"] == "truncate":
            data = data[: int(case["cut"] * len(data))]
        elif name == case["broken"] and case["damage"] == "flip":
            data = bytearray(data)
            for i in rng.integers(0, len(data), 6):
                data[i] = int(rng.integers(0, 256))
            data = bytes(data)
        paths[name] = scratch / name
        paths[name].write_bytes(data)
    out, picture = scratch / "out" / "grasps.json", scratch / "out" / f"grasps{case['draw'] or ''}"
    argv = ["plan", "--method", "baseline", "--out", str(out)]
    if case["mode"] == "tsdf":
        argv += ["--tsdf", str(paths["tsdf.npy"])]
    else:
        argv += ["--depth", str(paths[case["files"][0]])]
        given = [str(paths[name]) for name in case["files"][1:]]
        argv += {"calibration": ["--calibration", *given], "auto": ["--intrinsics", *given, "--workspace", "auto"],
                 "intrinsics_extrinsics": ["--intrinsics", given[0], "--extrinsics", *given[1:]]}[case["mode"]]
    argv += ["--draw", str(picture)] if case["draw"] is not None else []
    args = build_parser().parse_args(argv)
    args.ros_args = []
    return args, out, picture if case["draw"] is not None else None


def _call_plan(prepared):
    args, out, picture = prepared
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = args.run(args)
    except BaseException:
        left = [p.name for p in (out, picture) if p is not None and p.exists()]
        if left:  # an error must leave no output behind: a reader would take it for this run's
            raise InvalidResult(f"plan failed but left {left}") from None
        raise
    return code, out, picture


def _check_plan(result, case):
    import cv2

    code, out, picture = result
    if code not in (0, 3):
        raise InvalidResult(f"plan exit code {code}")

    def refuse(constant):
        raise InvalidResult(f"plan output holds {constant}, which is not JSON")

    try:
        report = json.loads(out.read_text(), parse_constant=refuse)
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidResult(f"plan output {out.name} is missing or partial: {error}") from None
    if "grasps" not in report or report.get("found") != (code == 0):
        raise InvalidResult("plan output lacks grasps or disagrees with the exit code")
    if picture is not None and cv2.imread(str(picture)) is None:
        raise InvalidResult(f"plan picture {picture.name} is missing or partial")


def _bad_draw(case) -> bool:
    return case["draw"] is not None and (case["draw"] not in (".png", ".jpg") or case["mode"] == "tsdf")


def _names_plan(message, case):
    return _mentions(message, [case["broken"]] + (["--draw"] if _bad_draw(case) else []))


# Documented error types: what each boundary's docstring and the README's "bad input" promise.
# `plan` (cli/main.py) turns ValueError (DepthError, ModelFormatError, EmptySceneError, TableNotFoundError are
# ValueErrors), FileNotFoundError and NotImplementedError into one line and exit status 1; a bare RuntimeError
# (main catches it too, for devices and cameras) is counted as a crash here.
BOUNDARIES = [
    Boundary("depth_array", "DepthFrame / DepthFrame.from_raw / validate_depth: arrays of random sizes, dtypes, "
             "values and containers", depth_array_cases, _prepare_depth_array, _call_depth_array,
             documented=(DepthError,), names_input=_names_depth_array, check=_check_depth_array),
    Boundary("camera_intrinsics", "CameraIntrinsics.from_dict: plain and ROS camera_info dicts with zero, negative, "
             "huge, NaN, garbage, missing and extra values", intrinsics_dicts, lambda case, scratch: case["data"],
             _call_intrinsics, documented=(ValueError,), names_input=_names_intrinsics, check=_check_intrinsics),
    Boundary("ros_image_camera_info", "conversions.msgs_to_depth_frame: sensor_msgs Image + CameraInfo with random "
             "encodings, sizes, steps, byte orders, data lengths, K and frame ids", ros_depth_cases, _ros_messages,
             _call_ros_depth, documented=(DepthError, ValueError), names_input=_names_ros_depth,
             check=_check_ros_depth, needs="sensor_msgs.msg"),
    Boundary("pointcloud2", "conversions.cloud_to_array / clouds_to_scene: PointCloud2 with odd fields (names, "
             "offsets, datatypes, counts), strides, sizes and values", cloud_cases, _prepare_cloud, _call_cloud,
             documented=(ValueError,), names_input=_names_cloud, check=_check_cloud, needs="sensor_msgs.msg"),
    Boundary("calibration_file", "load_calibration / read_workspace_area / CameraIntrinsics.load / load_extrinsics: "
             "YAML and JSON with missing, extra and garbage keys, truncated or corrupt text", calibration_cases,
             _prepare_calibration, _call_calibration, documented=(ValueError, FileNotFoundError),
             names_input=_names_calibration, check=_check_calibration),
    Boundary("depth_file", "load_depth_image / FileDepthSource: .npy .png .tif .tiff .exr (and unsupported) files "
             "of random dtypes, shapes and values, truncated or corrupt, with random depth_scale", depth_file_cases,
             _prepare_depth_file, _call_depth_file, documented=(DepthError, FileNotFoundError),
             names_input=_names_depth_file, check=_check_depth_file),
    Boundary("model_folder", "from_pretrained / load_pretrained of igd, leap, leap evaluator, depth restoration and "
             "depth noise: config.json and weights.pt with missing, extra, garbage or wrongly shaped entries, "
             "truncated", model_cases, _prepare_model, _call_model,
             documented=(ModelFormatError, ValueError, FileNotFoundError), names_input=_names_model,
             check=_check_model, needs="torch"),
    Boundary("plan_cli", "`diffgrasp plan` in-process (baseline method): depth .npy/.png/.tif/.tiff/.exr, "
             "calibration, intrinsics and extrinsics .yaml/.json, --tsdf .npy, whole, truncated or with bytes "
             "changed, --draw of every kind; no output file after an error", plan_cases, _prepare_plan, _call_plan,
             documented=(ValueError, FileNotFoundError, NotImplementedError), names_input=_names_plan,
             check=_check_plan),
]


def _available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run(examples_per_boundary: int, seed: int = 0, boundaries: list[str] | None = None) -> dict:
    """Fuzz every boundary (or those named) with ``examples_per_boundary`` inputs each; a JSON-able summary."""
    results, start = {}, time.perf_counter()
    for boundary in BOUNDARIES:
        if boundaries and boundary.name not in boundaries:
            continue
        if not _available(boundary.needs):
            results[boundary.name] = {"skipped": f"{boundary.needs} is not installed", "what": boundary.what}
            continue
        tally = explore(boundary, examples_per_boundary, seed)
        results[boundary.name] = {"what": boundary.what,
                                  "documented_types": [t.__name__ for t in boundary.documented], **tally.to_dict()}
    ran = [r for r in results.values() if "tried" in r]
    return {"examples_per_boundary": examples_per_boundary, "seed": seed, "boundaries": results,
            "total_tried": sum(r["tried"] for r in ran), "total_crashes": sum(r["crashes"] for r in ran),
            "total_hangs": sum(r["hangs"] for r in ran), "seconds": round(time.perf_counter() - start, 1)}


def format_table(summary: dict) -> str:
    lines = [f"{'boundary':<24}{'tried':>7}{'valid':>7}{'documented':>11}{'crashes':>9}{'hangs':>7}"
             f"{'named':>13}{'s':>7}  documented errors"]
    for name, r in summary["boundaries"].items():
        if "skipped" in r:
            lines.append(f"{name:<24} skipped: {r['skipped']}")
            continue
        errors = ", ".join(f"{k} {v}" for k, v in r["documented_errors"].items())
        lines.append(f"{name:<24}{r['tried']:>7}{r['valid']:>7}{sum(r['documented_errors'].values()):>11}"
                     f"{r['crashes']:>9}{r['hangs']:>7}{r['messages_name_input']:>13}{r['seconds']:>7}  {errors}")
        for example in r["crash_examples"]:
            lines.append(f"    crash ({example['kind']}): {example['error']}\n      input: {example['input']}")
        for example in r["unnamed_examples"]:
            lines.append(f"    message names no input: {example['error']}\n      input: {example['input']}")
    lines.append(f"total: {summary['total_tried']} inputs tried, {summary['total_crashes']} crashes "
                 f"({summary['total_hangs']} hangs), {summary['seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1500, help="inputs per boundary (default: 1500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--boundary", nargs="+", choices=[b.name for b in BOUNDARIES], help="only these")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    summary = run(args.examples, args.seed, args.boundary)
    print(format_table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["total_crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
