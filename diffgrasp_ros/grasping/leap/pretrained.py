"""LEAP grasp-model weights on disk: a folder with ``config.json`` (``LeapConfig``) and ``weights.pt``."""
from __future__ import annotations

from pathlib import Path

from ...model_files import load_model_folder, save_model_folder, shipped_model_folder
from .config import LeapConfig

DEFAULT_WEIGHTS = shipped_model_folder("leap")
HOW_TO_GET = ("train one with `diffgrasp train-leap --data LEAP_DATASET --out FOLDER` and pass weights=FOLDER "
              "(e.g. --method leap:weights=FOLDER), or restore models/leap/ from the repository")


def save_pretrained(model, folder: Path) -> None:
    """Write ``model`` (a ``LeapGraspModel``) so ``load_pretrained(folder)`` restores it (atomic weights file)."""
    save_model_folder(model, folder)


def load_pretrained(folder: Path, device: str = "auto"):
    """The ``LeapGraspModel`` saved in ``folder``, in eval mode on ``device`` (``devices.resolve_device``); a
    clear error when missing or unreadable."""
    from .model import LeapGraspModel

    return load_model_folder(LeapGraspModel, LeapConfig, folder, "LEAP grasp-model", HOW_TO_GET, device)


def from_pretrained(folder: Path, device: str = "auto"):
    """Alias of ``load_pretrained`` (the ``diffusers``-style name)."""
    return load_pretrained(folder, device)
