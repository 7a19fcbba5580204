"""Depth frames and camera calibration from files: the camera stage when planning on saved data."""
from __future__ import annotations

import json
import math
import os
import tokenize
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..geometry import is_rigid_transform, pose_from_quaternion
from .frame import DepthError, DepthFrame
from .intrinsics import CameraIntrinsics

DEPTH_IMAGE_EXTENSIONS = (".npy", ".png", ".tif", ".tiff", ".exr")

# uint16 depth images (RealSense z16, Kinect, ROS 16UC1, TUM/YCB-style PNGs) store millimetres.
MILLIMETRES = 0.001
# Unit sanity checks, applied only when the scale is the default one (no depth_scale given): no depth
# camera measures below 2 cm, and no tabletop scene has a median depth of 20 m.
MIN_PLAUSIBLE_DEPTH_M = 0.02
MAX_PLAUSIBLE_MEDIAN_M = 20.0


def load_depth_image(path: str | Path, depth_scale: float | None = None) -> np.ndarray:
    """A depth image as float32 metres (0 = invalid).

    ``depth_scale`` is metres per stored unit. Floating-point images (``.npy``, float TIFF, ``.exr``)
    already hold metres (default scale 1). uint16 images are taken as millimetres unless told
    otherwise (default 0.001); other integer types have no common convention and need ``depth_scale``.
    With the default scale, depth in the wrong unit is refused: uint16 values that are nearly all
    below 20 (metres stored as integers), or float depth with a median above 20 (millimetres).
    From an OpenEXR file the depth is its only channel, else its ``Z`` (or ``<layer>.Z``), ``R`` or
    ``Y`` channel, in that order of preference. NaN, inf and negative depth are invalid (0).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth image not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        raw = load_npy(path, "depth array", DepthError)
    elif suffix == ".exr":
        raw = _read_exr(path)
    elif suffix in DEPTH_IMAGE_EXTENSIONS:
        raw = _read_image(path)
    else:
        raise DepthError(
            f"{path}: unsupported depth image type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(DEPTH_IMAGE_EXTENSIONS)}"
        )
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim != 2:
        raise DepthError(f"{path}: depth must be a single-channel HxW image, got shape {raw.shape}")
    return _to_metres(raw, depth_scale, path)


# What np.load raises for a damaged file: a truncated or garbled header (ValueError, EOFError, and from the
# header's parser tokenize.TokenError, SyntaxError, TypeError), an object array (ValueError), a broken .npz
# renamed (BadZipFile), an unreadable file (OSError).
NPY_ERRORS = (ValueError, EOFError, tokenize.TokenError, SyntaxError, TypeError, zipfile.BadZipFile, OSError)


def load_npy(path: Path, what: str, error: type[ValueError] = ValueError) -> np.ndarray:
    """The single array in an .npy file, else ``error`` naming the file: damaged, an object array, an .npz, or
    a header declaring more data than the file holds (which np.load would first try to allocate)."""
    try:
        header = _npy_header(path)
        too_big = header is not None and math.prod(header[0]) * header[1].itemsize > path.stat().st_size
        raw = None if too_big else np.load(path, allow_pickle=False)
    except NPY_ERRORS as exc:
        raise error(f"{path}: not a readable .npy {what} ({exc})") from exc
    if too_big:
        raise error(f"{path}: the .npy header declares a {header[0]} {header[1]} array, more than the file's "
                    f"{path.stat().st_size} bytes hold: truncated or damaged")
    if not isinstance(raw, np.ndarray):  # an .npz renamed to .npy loads as a mapping
        raise error(f"{path}: expected a single {what}, got {type(raw).__name__}")
    return raw


def _npy_header(path: Path):
    """(shape, dtype) from an .npy file's header; None for a file that does not start like one (an .npz)."""
    with open(path, "rb") as file:
        if file.read(6) != b"\x93NUMPY":
            return None
        file.seek(0)
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(file)
    return shape, dtype


def _read_image(path: Path) -> np.ndarray:
    import cv2

    # IMREAD_UNCHANGED keeps 16 bits and the channel count; the default would make 8-bit BGR.
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DepthError(f"{path}: cannot decode the image (corrupt or not a {path.suffix} file)")
    if raw.ndim == 3 and raw.shape[2] in (3, 4):
        raise DepthError(
            f"{path}: a {raw.shape[2]}-channel colour image is not depth; "
            "expected a single-channel 16-bit (millimetres) or float (metres) image"
        )
    if raw.dtype == np.uint8:
        raise DepthError(
            f"{path}: an 8-bit image is not depth (a visualisation or colour image?); "
            "expected a single-channel 16-bit (millimetres) or float (metres) image"
        )
    return raw


def _exr_channels(path: Path) -> list[str]:
    """The channel names of an OpenEXR file (of its first part), read from its header."""
    import struct

    with open(path, "rb") as file:
        head = file.read(1 << 16)  # a header is a few hundred bytes; the channel list comes first
    if head[:4] != b"\x76\x2f\x31\x01":
        raise DepthError(f"{path}: not an OpenEXR file (bad magic number)")
    if int.from_bytes(head[4:8], "little") & 0x800:
        raise DepthError(f"{path}: a deep OpenEXR image is not a depth map")
    try:
        position = 8
        while head[position] != 0:  # attributes: name\0 type\0 int32 size, value; an empty name ends them
            name_end = head.index(b"\0", position)
            type_end = head.index(b"\0", name_end + 1)
            (size,) = struct.unpack_from("<i", head, type_end + 1)
            if size < 0:  # would step back to an earlier attribute, over and over
                raise ValueError(f"negative attribute size {size}")
            value = type_end + 5
            if head[position:name_end] == b"channels" and head[name_end + 1:type_end] == b"chlist":
                names = []
                while head[value] != 0:  # name\0, then pixel type, linear flag + reserved, x and y sampling
                    end = head.index(b"\0", value)
                    names.append(head[value:end].decode("utf-8", "replace"))
                    value = end + 1 + 16
                return names
            position = value + size
    except (IndexError, ValueError, struct.error) as exc:
        raise DepthError(f"{path}: unreadable OpenEXR header ({exc})") from exc
    raise DepthError(f"{path}: the OpenEXR header lists no channels")


def _exr_depth_channel(names: list[str], path: Path) -> str:
    if len(names) == 1:
        return names[0]
    for wanted in ("Z", "R", "Y"):
        if wanted in names:
            return wanted
    layered = [name for name in names if name.rsplit(".", 1)[-1] == "Z"]  # e.g. Blender's "ViewLayer.Depth.Z"
    if len(layered) == 1:
        return layered[0]
    raise DepthError(f"{path}: cannot tell which OpenEXR channel is depth among {names}; "
                     "save the depth as a single channel (or a 'Z' channel)")


def _read_exr(path: Path) -> np.ndarray:
    """The depth channel of an OpenEXR image, float32 (HALF and FLOAT channels alike).

    OpenCV (built with OpenEXR, enabled by ``OPENCV_IO_ENABLE_OPENEXR``) reads R/G/B and Y channels
    but not Z: a Z-only file comes out as zeros. The header therefore picks the channel, and one that
    OpenCV cannot return is read with the ``OpenEXR`` package when it is installed.
    """
    names = set(_exr_channels(path))
    channel = _exr_depth_channel(sorted(names), path)
    problem = f"the depth is in OpenEXR channel {channel!r}, which OpenCV does not read"
    bgr = ("B", "G", "R")
    if (channel in bgr and "0" not in names) or (channel == "Y" and not names & {"R", "G", "B", "RY", "BY", "0"}):
        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read when the codec is first used
        import cv2

        try:
            raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # the codec is disabled in this process
            raw, problem = None, (f"OpenCV cannot read OpenEXR here ({str(exc).strip().splitlines()[-1]}); "
                                  "set OPENCV_IO_ENABLE_OPENEXR=1 before anything else uses OpenCV")
        else:
            if raw is None:
                raise DepthError(f"{path}: cannot decode the OpenEXR image")
            if raw.ndim == 2:
                return raw
            return raw[:, :, bgr.index(channel)] if channel in bgr else raw[:, :, 0]  # B, G, R(, A) or Y(, A)
    try:
        import OpenEXR
    except ImportError:
        raise DepthError(f"{path}: {problem}; pip install OpenEXR, or save the depth as a single "
                         "'Y' or 'R' channel") from None
    try:
        with OpenEXR.File(str(path), separate_channels=True) as file:
            return np.asarray(file.channels()[channel].pixels)
    except (OSError, RuntimeError, KeyError) as exc:
        raise DepthError(f"{path}: cannot read OpenEXR channel {channel!r} ({exc})") from exc


def _to_metres(raw: np.ndarray, depth_scale: float | None, path: Path) -> np.ndarray:
    if np.issubdtype(raw.dtype, np.floating):
        scale = 1.0 if depth_scale is None else depth_scale
    elif raw.dtype == np.uint16:
        scale = MILLIMETRES if depth_scale is None else depth_scale
    elif np.issubdtype(raw.dtype, np.integer) and raw.dtype.itemsize > 1:
        if depth_scale is None:
            raise DepthError(
                f"{path}: {raw.dtype} depth has no standard unit; pass depth_scale (metres per unit)"
            )
        scale = depth_scale
    else:
        raise DepthError(f"{path}: {raw.dtype} is not a depth image type")
    if not 0 < scale < np.inf:  # also NaN; an infinite scale would make every pixel invalid
        raise DepthError(f"{path}: depth_scale must be positive and finite, got {scale}")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, made invalid (0) next
        depth = raw.astype(np.float32) * np.float32(scale)
    depth[~np.isfinite(depth) | (depth < 0.0)] = 0.0
    if depth_scale is None:
        _check_units(raw, depth, scale, path)
    return depth


def _check_units(raw: np.ndarray, depth: np.ndarray, scale: float, path: Path) -> None:
    """Refuse depth that is plainly in another unit than the default scale says (see load_depth_image)."""
    valid = depth > 0.0
    if not valid.any():
        return  # nothing to judge; an empty frame is refused later, with its own message
    if np.issubdtype(raw.dtype, np.integer):
        units = float(np.percentile(raw[valid], 99))
        if units * scale < MIN_PLAUSIBLE_DEPTH_M:
            what = "integer depth values are" if units == raw[valid].max() else "99 % of the integer depth values are"
            raise DepthError(
                f"{path}: {what} at most {units:g} units ({units * scale * 1000:g} mm at {scale:g} m/unit): "
                "this looks like metres stored as integers; save millimetres or pass --depth-scale"
            )
    else:
        with np.errstate(over="ignore"):  # the middle two near float32's max: an infinite median is no unit
            median = float(np.median(depth[valid]))
        # A median beyond 100 km is not millimetres either, but a background value (renderers write
        # 1e10 for "no surface"): range clipping handles that.
        if MAX_PLAUSIBLE_MEDIAN_M < median < 1e5:
            raise DepthError(
                f"{path}: the median depth is {median:.4g} m: this looks like millimetres stored as float "
                "metres; save metres or pass --depth-scale 0.001"
            )


def load_extrinsics(path: str | Path) -> np.ndarray:
    """``T_workspace_camera`` (the optical frame's pose in the workspace frame) from JSON or YAML.

    Accepts a bare 4x4 list, ``{T_workspace_camera: 4x4}``, ``{position: [x, y, z],
    orientation: [x, y, z, w]}`` (geometry_msgs/Pose; ``{x, y, z(, w)}`` mappings also work),
    or any of these under ``extrinsics:`` as in a calibration file.
    """
    path = Path(path)
    return _extrinsics_from(read_structured(path), str(path))


def load_calibration(path: str | Path) -> tuple[CameraIntrinsics, np.ndarray]:
    """Intrinsics and ``T_workspace_camera`` from one file with ``intrinsics:`` and
    ``T_workspace_camera:`` (4x4) or ``extrinsics:`` (matrix or pose)."""
    path = Path(path)
    data = read_structured(path)
    if not isinstance(data, dict) or "intrinsics" not in data:
        raise ValueError(f"{path}: a calibration file needs an 'intrinsics' mapping")
    if not isinstance(data["intrinsics"], dict):
        raise ValueError(f"{path}: 'intrinsics' must be a mapping, got {type(data['intrinsics']).__name__}")
    try:
        intrinsics = CameraIntrinsics.from_dict(data["intrinsics"])
    except ValueError as exc:
        raise ValueError(f"{path}: bad intrinsics: {exc}") from exc
    return intrinsics, _extrinsics_from(data, str(path))


def read_structured(path: Path, what: str = "calibration file"):
    """A JSON (by suffix) or YAML file's contents, with one-line ValueErrors naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is no error
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from exc
    import yaml

    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ValueError(f"{path}: invalid {kind}: {exc}") from exc
    except RecursionError:  # both parsers recurse once per nesting level
        raise ValueError(f"{path}: nested too deeply to be a {what}") from None


def _extrinsics_from(data, source: str) -> np.ndarray:
    if isinstance(data, dict):
        if "T_workspace_camera" in data:
            return _rigid(data["T_workspace_camera"], source)
        if "position" in data and "orientation" in data:
            return _rigid(_pose(data["position"], data["orientation"], source), source)
        if "extrinsics" in data:
            return _extrinsics_from(data["extrinsics"], source)
        raise ValueError(
            f"{source}: no camera pose found; expected 'T_workspace_camera' (4x4), "
            f"'position' + 'orientation' (xyzw) or 'extrinsics', got keys {sorted(data)}"
        )
    if isinstance(data, list):
        return _rigid(data, source)
    raise ValueError(f"{source}: expected a 4x4 matrix or a pose mapping, got {type(data).__name__}")


def _pose(position, orientation, source: str) -> np.ndarray:
    position = _vector(position, "xyz", source, "position")
    quaternion = _vector(orientation, "xyzw", source, "orientation")
    norm = np.linalg.norm(quaternion)
    # Rotation.from_quat would silently normalise; a far-from-unit quaternion is a typo or wxyz mix-up.
    if not abs(norm - 1.0) < 1e-3:
        raise ValueError(
            f"{source}: orientation {quaternion.tolist()} is not a unit quaternion (norm {norm:.4g}); "
            "expected [x, y, z, w]"
        )
    return pose_from_quaternion(position, quaternion)


def _vector(value, axes: str, source: str, name: str) -> np.ndarray:
    if isinstance(value, dict):
        missing = [a for a in axes if a not in value]
        if missing:
            raise ValueError(f"{source}: {name} is missing {missing}")
        value = [value[a] for a in axes]
    try:
        vector = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {name} must be numbers, got {value!r}") from exc
    if vector.shape != (len(axes),) or not np.all(np.isfinite(vector)):
        raise ValueError(f"{source}: {name} must be {len(axes)} finite numbers [{', '.join(axes)}], got {value!r}")
    return vector


def _rigid(matrix, source: str) -> np.ndarray:
    try:
        T = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: T_workspace_camera must be a 4x4 matrix of numbers") from exc
    if T.shape != (4, 4):
        raise ValueError(f"{source}: T_workspace_camera must be 4x4, got shape {T.shape}")
    if not is_rigid_transform(T):
        raise ValueError(
            f"{source}: T_workspace_camera is not a rigid transform (the rotation must be "
            f"orthonormal with determinant +1 and the last row [0, 0, 0, 1]):\n{T}"
        )
    return T


class FileDepthSource:
    """Depth frames from saved images, one per path, all taken with the same camera.

    ``stamp`` is each file's modification time, the closest thing to a capture time a file has.
    """

    def __init__(self, paths: Sequence[str | Path], intrinsics: CameraIntrinsics,
                 frame_id: str = "camera_depth_optical_frame", depth_scale: float | None = None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("FileDepthSource needs at least one depth image path")
        # Fail before any planning starts rather than halfway through a run.
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"depth images not found: {', '.join(missing)}")
        self.intrinsics = intrinsics
        self.frame_id = frame_id
        self.depth_scale = depth_scale

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[DepthFrame]:
        for path in self.paths:
            depth = load_depth_image(path, self.depth_scale)
            try:
                frame = DepthFrame(depth, self.intrinsics, self.frame_id, path.stat().st_mtime)
            except DepthError as exc:  # e.g. image size does not match the intrinsics
                raise DepthError(f"{path}: {exc}") from exc
            yield frame
