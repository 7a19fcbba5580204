"""Transfer-model weights on disk: a folder with ``config.json`` (``TransferConfig``) and ``weights.pt``."""
from __future__ import annotations

from pathlib import Path

from ....model_files import load_model_folder, save_model_folder
from .config import TransferConfig

HOW_TO_GET = ("restore models/leap_transfer/ from the repository, or train one with `python -m "
              "diffgrasp_ros.training.transfer_train --template TEMPLATES --out FOLDER` "
              "(models/leap_transfer/MODEL_CARD.md)")


# save_pretrained(model, folder): config.json and weights.pt, each replaced atomically.
save_pretrained = save_model_folder


def from_pretrained(folder: Path, device: str = "auto"):
    """The ``TransferModel`` saved in ``folder``, in eval mode on ``device`` (``devices.resolve_device``); a clear
    error when it is missing or unreadable."""
    from .model import TransferModel

    return load_model_folder(TransferModel, TransferConfig, folder, "contact-transfer", HOW_TO_GET, device)
