"""Silence the banner lines PyBullet's C code prints on import and connect (to stdout and stderr)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys


@contextlib.contextmanager
def c_output_silenced():
    streams = [s for s in (sys.stdout, sys.stderr) if _has_fd(s)]
    for stream in streams:
        stream.flush()
    saved = [(stream.fileno(), os.dup(stream.fileno())) for stream in streams]
    try:
        with open(os.devnull, "w") as devnull:
            for fd, _ in saved:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        libc = ctypes.CDLL(None)
        libc.fflush(ctypes.c_void_p.in_dll(libc, "stdout"))  # buffered C output lands in /dev/null
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _has_fd(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
        return False
