"""A trained model on disk: a folder with ``config.json`` (its config dataclass) and ``weights.pt`` (a state dict)."""
from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .devices import resolve_device
from .share import models_dir

if TYPE_CHECKING:
    import torch

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"
# A config's whole numbers are counts, sizes and steps: never negative, and beyond this a corrupt file (building
# from it would overflow torch's size arithmetic).
MAX_CONFIG_INT = 2**20


class ModelFormatError(ValueError):
    """A model folder written by another version of a model (its config names another format)."""


def shipped_model_folder(name: str) -> Path:
    """The shipped weights ``models/<name>/``: the source checkout's or the installed ones (``share.py``)."""
    return models_dir() / name


def write_config_json(config, path: str | Path) -> None:
    """A config dataclass as indented JSON."""
    Path(path).write_text(json.dumps(asdict(config), indent=2) + "\n")


def check_config_keys(config_cls, data: dict, source: str, what: str) -> dict:
    """``data`` when every key is a field of ``config_cls`` and every value has the type of that field's
    default (a whole number from 0 to ``MAX_CONFIG_INT`` for an int, a finite number for a float, a list of
    such for a tuple, a mapping for a nested config); else ValueError naming ``source``, ``what`` and the key."""
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(str(key) for key in set(data) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown {what} config keys {unknown}")
    for key, value in data.items():
        default = known[key].default
        if default is MISSING:
            continue  # every model config has defaults; a field without one has no type to check against
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{source}: {what} config {key!r} must be a mapping, got {value!r}")
            check_config_keys(type(default), value, source, f"{what} {key}")
        elif not _same_kind(value, default):
            raise ValueError(f"{source}: {what} config {key!r} must be {_kind_name(default)}, got {value!r}")
    return data


def _same_kind(value, default) -> bool:
    """Whether a JSON value can stand for a config field with this default (bool is no number here)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int) and 0 <= value <= MAX_CONFIG_INT
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and all(_same_kind(v, default[0]) for v in value) if default else True
    return True


def _kind_name(default) -> str:
    if isinstance(default, tuple):
        return f"a list of {_kind_name(default[0])}s" if default else "a list"
    return {bool: "true or false", int: f"a whole number from 0 to {MAX_CONFIG_INT}", float: "a finite number",
            str: "a string"}[type(default)]


def check_ranges(config, what: str, **ranges: tuple[int, int]) -> None:
    """ValueError naming the first of ``config``'s fields outside its inclusive ``(low, high)`` range: for the
    fields a network is built from, where a value out of range cannot be built, or takes minutes to."""
    for name, (low, high) in ranges.items():
        value = getattr(config, name)
        for item in value if isinstance(value, tuple) else (value,):
            if not low <= item <= high:
                raise ValueError(f"{what} config {name} must be from {low} to {high}, got {value}")


def read_config_data(path: str | Path, what: str) -> dict:
    """The JSON object in a model's ``config.json``; ValueError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: a {what} config is UTF-8 JSON text ({error})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON in the {what} config: {error}") from error
    except RecursionError:  # json recurses once per nesting level
        raise ValueError(f"{path}: nested too deeply to be a {what} config") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a {what} config is a JSON object, got {type(data).__name__}")
    return data


def read_config_json(config_cls, path: str | Path, what: str):
    """``config_cls`` from the JSON ``write_config_json`` wrote; unknown keys and wrong types are a ValueError."""
    return config_cls(**check_config_keys(config_cls, read_config_data(path, what), str(path), what))


def save_model_folder(model, folder: str | Path) -> None:
    """Write ``model.config`` (``to_json``) and ``model.state_dict()``. Both are written beside their place and
    then renamed into it, so a failed write (a full disk) leaves the previous files whole and a reader never
    sees half a file."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_tmp, weights_tmp = (folder / f"{name}.tmp{os.getpid()}" for name in (CONFIG_FILE, WEIGHTS_FILE))
    try:
        torch.save(model.state_dict(), weights_tmp)
        model.config.to_json(config_tmp)
        os.replace(config_tmp, folder / CONFIG_FILE)
        os.replace(weights_tmp, folder / WEIGHTS_FILE)
    finally:
        for tmp in (config_tmp, weights_tmp):
            tmp.unlink(missing_ok=True)


def load_model_folder(build, config_cls, folder: str | Path, what: str, how_to_get: str,
                      device: str | torch.device):
    """``build(config)`` with the weights saved in ``folder``, in eval mode, on ``device`` (``resolve_device``).
    Missing files raise FileNotFoundError, a folder of another model format ``ModelFormatError``; an unreadable
    config or weights file (``weights.pt`` is the zip archive ``torch.save`` writes), a config value of the
    wrong type, or weights whose names, shapes or dtypes are not the ones the config builds (or that are not
    finite) ValueError; each names the file and ``how_to_get``. An unavailable device is a ValueError too."""
    import torch

    device = resolve_device(device)
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{what} weights not found: {path} does not exist; {how_to_get}")
    try:
        config = config_cls.from_json(config_path)
    except ModelFormatError as error:  # says itself what is wrong; not "unreadable"
        raise ModelFormatError(f"{error}; {how_to_get}") from None
    except ValueError as error:  # the config's own checks name no file
        raise ValueError(f"{what} config {config_path}: {error}; {how_to_get}") from None
    problem = _damaged_archive(weights_path)
    if problem:
        raise ValueError(f"{what} weights in {folder} are unreadable ({weights_path}: {problem}); {how_to_get}")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    # A sound archive torch cannot read: another program's zip, or pickled objects weights_only refuses.
    except (RuntimeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{what} weights in {folder} are unreadable ({weights_path}: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); {how_to_get}") from error
    # Built without memory first: a config that asks for a huge network must not allocate it before its
    # shapes are found to disagree with the weights file.
    with torch.device("meta"):
        expected = build(config).state_dict()
    problem = _state_mismatch(state, expected)
    if problem:
        raise ValueError(f"{what} weights {weights_path} do not match their config {config_path}: {problem}; "
                         f"{how_to_get}")
    model = build(config)
    model.load_state_dict(state)
    return model.to(device).eval()


def _damaged_archive(path: Path) -> str | None:
    """What is wrong with ``path`` as the zip archive ``torch.save`` writes, or None. Its entries carry CRC-32s,
    so a truncated file or changed bytes are found here, before torch's unpickler meets them (which raises
    a different exception type for nearly every kind of damage)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    # What zipfile raises for a damaged archive: no or a broken directory (BadZipFile, EOFError, OSError on a
    # seek before the start), an undecodable entry name, a compression method from flipped bits.
    except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError, NotImplementedError) as error:
        return f"not a torch.save zip archive, or a damaged one ({type(error).__name__}: {error})"
    return None if bad is None else f"entry {bad!r} is damaged (CRC-32 mismatch)"


def _state_mismatch(state, expected: dict) -> str | None:
    """What is wrong with a loaded state dict against the one the config builds, or None."""
    import torch

    if not isinstance(state, dict):
        return f"the file holds a {type(state).__name__}, not a state dict"
    missing, unexpected = sorted(set(expected) - set(state)), sorted(map(str, set(state) - set(expected)))
    if missing or unexpected:
        return f"missing weights {missing[:5]}, unexpected weights {unexpected[:5]}"
    for name, want in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor):
            return f"{name!r} is a {type(got).__name__}, not a tensor"
        if got.shape != want.shape:
            return f"{name!r} has shape {tuple(got.shape)}, the config builds {tuple(want.shape)}"
        # Another float precision is cast on loading; an integer, bool or complex tensor is another model's.
        if got.dtype != want.dtype and not (got.is_floating_point() and want.is_floating_point()):
            return f"{name!r} is {got.dtype}, the config builds {want.dtype}"
        if got.is_floating_point() and not torch.isfinite(got).all():
            return f"{name!r} holds NaN or infinite values"
    return None
