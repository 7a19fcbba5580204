"""IGD weights on disk: a folder with ``config.json`` (``IGDConfig``) and ``weights.pt`` (a state dict)."""
from __future__ import annotations

import sys
from pathlib import Path

from ...model_files import CONFIG_FILE, WEIGHTS_FILE, save_model_folder
from .config import IGDConfig

# The shipped weights: models/igd/ of a source checkout, else where setup.py installs them (share/).
_CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "igd"
DEFAULT_WEIGHTS = (_CHECKOUT_WEIGHTS if _CHECKOUT_WEIGHTS.is_dir()
                   else Path(sys.prefix) / "share" / "diffgrasp" / "models" / "igd")
HOW_TO_GET = ("train a model with `diffgrasp train --data DATASET --out FOLDER` (see models/igd/MODEL_CARD.md) "
              "and pass weights=FOLDER, or restore models/igd/ from the repository")


def save_pretrained(model, folder: Path) -> None:
    """Write ``model`` (an ``IGDModel``) so ``load_pretrained(folder)`` restores it; files replaced atomically."""
    save_model_folder(model, folder)


def load_pretrained(folder: Path):
    """The ``IGDModel`` saved in ``folder``, in eval mode; a clear error when it is missing or unreadable."""
    import torch

    from .model import IGDModel

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"IGD weights not found: {path} does not exist; {HOW_TO_GET}")
    try:
        config = IGDConfig.from_json(config_path)
        model = IGDModel(config)
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    except Exception as error:  # torch raises several types for truncated / foreign / mismatched files
        raise ValueError(f"IGD weights in {folder} are unreadable or do not match their config "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                         f"{HOW_TO_GET}") from error
    return model.eval()
