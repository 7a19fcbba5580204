"""A trained model on disk: a folder with ``config.json`` (its config dataclass) and ``weights.pt`` (a state dict)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .devices import resolve_device
from .share import models_dir

if TYPE_CHECKING:
    import torch

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


class ModelFormatError(ValueError):
    """A model folder written by another version of a model (its config names another format)."""


def shipped_model_folder(name: str) -> Path:
    """The shipped weights ``models/<name>/``: the source checkout's or the installed ones (``share.py``)."""
    return models_dir() / name


def write_config_json(config, path: str | Path) -> None:
    """A config dataclass as indented JSON."""
    Path(path).write_text(json.dumps(asdict(config), indent=2) + "\n")


def check_config_keys(config_cls, data: dict, source: str, what: str) -> dict:
    """``data`` when every key is a field of ``config_cls``; else ValueError naming ``source`` and ``what``."""
    unknown = sorted(set(data) - {f.name for f in fields(config_cls)})
    if unknown:
        raise ValueError(f"{source}: unknown {what} config keys {unknown}")
    return data


def read_config_json(config_cls, path: str | Path, what: str):
    """``config_cls`` from the JSON ``write_config_json`` wrote; unknown keys are a ValueError."""
    return config_cls(**check_config_keys(config_cls, json.loads(Path(path).read_text()), str(path), what))


def save_model_folder(model, folder: str | Path) -> None:
    """Write ``model.config`` (``to_json``) and ``model.state_dict()``; the weights file is replaced atomically,
    so a reader never sees half a file."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{WEIGHTS_FILE}.tmp{os.getpid()}"
    torch.save(model.state_dict(), tmp)
    model.config.to_json(folder / CONFIG_FILE)
    os.replace(tmp, folder / WEIGHTS_FILE)


def load_model_folder(build, config_cls, folder: str | Path, what: str, how_to_get: str,
                      device: str | torch.device):
    """``build(config)`` with the weights saved in ``folder``, in eval mode, on ``device`` (``resolve_device``).
    Missing files raise FileNotFoundError, a folder of another model format ``ModelFormatError``, unreadable
    or mismatched ones ValueError, each naming ``what`` and ``how_to_get``; an unavailable device ValueError."""
    import torch

    device = resolve_device(device)  # outside the try below: a bad device is not an unreadable file
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{what} weights not found: {path} does not exist; {how_to_get}")
    try:
        model = build(config_cls.from_json(config_path)).to(device)
        model.load_state_dict(torch.load(weights_path, map_location=device, weights_only=True))
    except ModelFormatError as error:  # says itself what is wrong; not "unreadable"
        raise ModelFormatError(f"{error}; {how_to_get}") from None
    except Exception as error:  # torch raises several types for truncated / foreign / mismatched files
        raise ValueError(f"{what} weights in {folder} are unreadable or do not match their config "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                         f"{how_to_get}") from error
    return model.eval()
