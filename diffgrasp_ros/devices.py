"""Where the learned models run: a ``device`` option as users write it, checked against what torch can use.

torch is imported only when a device is resolved, so torch-free code (the baseline planner, the ROS
graph without learned models) can import this module.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

ACCEPTED = "auto (CUDA when available, else the CPU), cpu, cuda, cuda:N or mps"


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The torch device ``spec`` names: ``auto`` is the first CUDA device when torch sees one, else the CPU.

    A device that is named but not available (``cuda`` on a machine or torch build without CUDA) and
    anything that is not a device raise ValueError saying why.
    """
    import torch

    name = str(spec)  # "cuda:0" for a torch.device too
    text = name.strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use {ACCEPTED}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (f"torch {torch.__version__} is a build without CUDA" if torch.version.cuda is None else
                   f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, finds no GPU or driver")
            raise ValueError(f"device {name!r} is not available: torch reports no CUDA ({why}); use device auto "
                             "or cpu")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise ValueError(f"device {name!r} is not available: torch sees {count} CUDA device(s)")
        # With its index, so that it compares equal to the device of the tensors placed on it.
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} is not available: torch reports no MPS (Apple GPU) backend; "
                             "use device auto or cpu")
        if device.index not in (None, 0):
            raise ValueError(f"device {name!r} is not available: there is one MPS device, mps")
        return torch.device("mps", 0)
    raise ValueError(f"unsupported device {name!r}: use {ACCEPTED}")


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (a loaded model has all of them on one device)."""
    return next(module.parameters()).device


def float_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a float32 tensor on ``device``, whatever its dtype and strides (torch refuses negative
    ones); on the CPU it shares the memory of a contiguous float32 array."""
    import torch

    return torch.as_tensor(np.ascontiguousarray(array, np.float32), device=device)
