"""Where the package's data lives (``config/``, ``models/``, ``launch/``): a source checkout, or the installed
``share/diffgrasp`` found the ROS way.

Looked up in this order:

1. the source checkout this module runs from (the repository root holds ``package.xml`` and ``config/``);
2. the ament index, where the package is registered (a sourced colcon workspace or ROS install:
   ``AMENT_PREFIX_PATH``);
3. the install prefix this module was installed under: ``colcon build`` without ``--symlink-install`` (and
   ``setup.py install --prefix P``) puts the code in ``P/lib/pythonX.Y/site-packages/diffgrasp_ros`` and the
   data in ``P/share/diffgrasp``, wherever the interpreter lives;
4. ``sys.prefix/share/diffgrasp`` (a pip install into the running environment).

The library never needs ROS for this: ``ament_index_python`` is used only when it is importable.
"""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "diffgrasp"


def share_dir() -> Path:
    """The folder holding ``config/``, ``models/`` and ``launch/`` (see the module docstring). The last
    fallback is returned even when it does not exist, so the caller's own "not found" error names it."""
    here = Path(__file__).resolve()
    checkout = here.parents[1]
    if (checkout / "package.xml").is_file() and (checkout / "config").is_dir():
        return checkout
    indexed = _ament_share_dir()
    if indexed is not None:
        return indexed
    for prefix in here.parents:
        candidate = prefix / "share" / PACKAGE
        if (candidate / "package.xml").is_file():
            return candidate
    return Path(sys.prefix) / "share" / PACKAGE


def config_dir() -> Path:
    return share_dir() / "config"


def models_dir() -> Path:
    return share_dir() / "models"


def _ament_share_dir() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError):  # not registered there; or no AMENT_PREFIX_PATH at all
        return None
