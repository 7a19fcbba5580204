"""IGD weights on disk: a folder with ``config.json`` (``IGDConfig``) and ``weights.pt`` (a state dict)."""
from __future__ import annotations

from pathlib import Path

from ...model_files import load_model_folder, save_model_folder, shipped_model_folder
from .config import IGDConfig

DEFAULT_WEIGHTS = shipped_model_folder("igd")
HOW_TO_GET = ("train a model with `diffgrasp train --data DATASET --out FOLDER` (see models/igd/MODEL_CARD.md) "
              "and pass weights=FOLDER, or restore models/igd/ from the repository")


def save_pretrained(model, folder: Path) -> None:
    """Write ``model`` (an ``IGDModel``) so ``load_pretrained(folder)`` restores it; files replaced atomically."""
    save_model_folder(model, folder)


def load_pretrained(folder: Path, device: str = "auto"):
    """The ``IGDModel`` saved in ``folder``, in eval mode on ``device`` (``devices.resolve_device``); a clear
    error when it is missing or unreadable."""
    from .model import IGDModel

    return load_model_folder(IGDModel, IGDConfig, folder, "IGD", HOW_TO_GET, device)
