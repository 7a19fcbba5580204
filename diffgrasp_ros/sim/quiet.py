"""Silence the banner lines PyBullet's C code prints straight to stdout."""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys


@contextlib.contextmanager
def c_stdout_silenced():
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a descriptor
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C-level buffered output must land in /dev/null, not later
        os.dup2(saved, fd)
        os.close(saved)
