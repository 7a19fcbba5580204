"""LEAP grasp-model weights on disk: a folder with ``config.json`` (``LeapConfig``) and ``weights.pt``."""
from __future__ import annotations

import sys
from pathlib import Path

from ...model_files import CONFIG_FILE, WEIGHTS_FILE, save_model_folder
from .config import LeapConfig

# The shipped weights: models/leap/ of a source checkout, else where setup.py installs them (share/).
_CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "leap"
DEFAULT_WEIGHTS = (_CHECKOUT_WEIGHTS if _CHECKOUT_WEIGHTS.is_dir()
                   else Path(sys.prefix) / "share" / "diffgrasp" / "models" / "leap")
HOW_TO_GET = ("train one with `diffgrasp train-leap --data LEAP_DATASET --out FOLDER` and pass weights=FOLDER "
              "(e.g. --method leap:weights=FOLDER), or restore models/leap/ from the repository")


def save_pretrained(model, folder: Path) -> None:
    """Write ``model`` (a ``LeapGraspModel``) so ``load_pretrained(folder)`` restores it (atomic weights file)."""
    save_model_folder(model, folder)


def load_pretrained(folder: Path):
    """The ``LeapGraspModel`` saved in ``folder``, in eval mode; a clear error when missing or unreadable."""
    import torch

    from .model import LeapGraspModel

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"LEAP grasp-model weights not found: {path} does not exist; {HOW_TO_GET}")
    try:
        config = LeapConfig.from_json(config_path)
        model = LeapGraspModel(config)
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    except Exception as error:  # torch raises several types for truncated / foreign / mismatched files
        raise ValueError(f"LEAP weights in {folder} are unreadable or do not match their config "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                         f"{HOW_TO_GET}") from error
    return model.eval()


def from_pretrained(folder: Path):
    """Alias of ``load_pretrained`` (the ``diffusers``-style name)."""
    return load_pretrained(folder)
