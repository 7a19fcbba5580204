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
