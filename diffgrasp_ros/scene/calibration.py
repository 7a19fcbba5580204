"""Calibration files that carry an estimated workspace: written by ``diffgrasp calibrate``, read by
``plan --calibration`` and the ``scene_builder`` node (``camera.files.load_calibration`` reads the same
file's intrinsics and ``T_workspace_camera``; the ``workspace`` mapping adds the table area)."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import yaml

from ..camera.files import read_structured
from ..camera.intrinsics import CameraIntrinsics
from .table import WorkspaceEstimate
from .workspace import TableArea


def write_calibration(path: str | Path, intrinsics: CameraIntrinsics, estimate: WorkspaceEstimate,
                      source: str = "") -> None:
    """Write atomically (a half-written calibration would move the robot's idea of the table)."""
    path = Path(path)
    data = {
        "intrinsics": intrinsics.to_dict(),
        "T_workspace_camera": np.round(estimate.T_workspace_camera, 9).tolist(),
        "workspace": estimate.area.to_dict(),
        "estimated_from": {"source": source, "date": datetime.date.today().isoformat(),
                           **estimate.diagnostics()},
    }
    header = ("# Camera pose estimated from the depth by `diffgrasp calibrate` (table plane fit).\n"
              "# T_workspace_camera: the optical frame's pose in the workspace frame (origin at a corner,\n"
              "# z up the table normal, table top at workspace.table_height_m).\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(header + yaml.safe_dump(data, sort_keys=False))
    partial.replace(path)


def read_workspace_area(path: str | Path) -> TableArea | None:
    """The ``workspace`` table area of a calibration file, None when it has none."""
    path = Path(path)
    data = read_structured(path)
    if not isinstance(data, dict) or "workspace" not in data:
        return None
    try:
        return TableArea.from_dict(data["workspace"])
    except ValueError as error:
        raise ValueError(f"{path}: bad workspace: {error}") from error
