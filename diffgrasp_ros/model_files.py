"""A trained model on disk: a folder with ``config.json`` (its config dataclass) and ``weights.pt`` (a state dict)."""
from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


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


def load_model_folder(build, config_cls, folder: str | Path, what: str, how_to_get: str):
    """``build(config)`` with the weights saved in ``folder``, in eval mode. Missing files raise
    FileNotFoundError, unreadable or mismatched ones ValueError, each naming ``what`` and ``how_to_get``."""
    import torch

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{what} weights not found: {path} does not exist; {how_to_get}")
    try:
        model = build(config_cls.from_json(config_path))
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    except Exception as error:  # torch raises several types for truncated / foreign / mismatched files
        raise ValueError(f"{what} weights in {folder} are unreadable or do not match their config "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                         f"{how_to_get}") from error
    return model.eval()
