"""Files written whole or not at all: datasets' chunks and manifests, training checkpoints.

``atomic_write(path)`` hands out a temporary file next to ``path`` (``NAME.tmpPID``: the same folder, so the
rename is atomic, and a name no reader's ``*.npz`` / ``*.pt`` pattern matches), flushes and fsyncs it, renames
it over ``path`` and fsyncs the folder. A failed write (a full disk, an I/O error, anything raised while
writing) removes the temporary file and leaves ``path`` as it was; an ``OSError`` comes back as a
``WriteError`` naming the file. A process killed mid-write leaves only its temporary file, which
``remove_stale_temps`` deletes when the run is resumed.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

TEMP_MARK = ".tmp"


class WriteError(OSError, RuntimeError):
    """Writing a file failed (``errno`` as the underlying OSError's: ENOSPC, EIO, ...); the message names the
    file and what is left. A RuntimeError too, so the command line reports it in one line."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def temp_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}{TEMP_MARK}{os.getpid()}")


def write_error(path: Path, error: OSError, *notes: str) -> WriteError:
    """``error`` (raised while writing ``path``) as a WriteError saying so, ``notes`` (what is left, what to do)
    after it."""
    reason = (error.strerror or str(error) or type(error).__name__) + (f" (errno {error.errno})" if error.errno else "")
    return WriteError(error.errno, "; ".join([f"could not write {path}: {reason}", *notes]))


@contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends without an exception (see the module)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except BaseException as error:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise write_error(path, error, "no partial file was left") from error
        raise


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible everywhere: then skipped)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def save_npz_atomic(path: Path, arrays: dict) -> None:
    """``np.savez_compressed`` of ``arrays`` to ``path``, whole or not at all. Compressed in memory first: a
    write failing inside numpy's zip writer leaves it to complain again when it is collected. The bytes depend
    on the arrays alone (numpy dates every zip entry 1980-01-01, not now), so data made again is written the same."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(path, buffer.getbuffer())


def torch_save_atomic(obj, path: Path) -> None:
    """``torch.save`` of ``obj`` to ``path``, whole or not at all. Serialised in memory first: torch's writer
    turns a failed write (ENOSPC) into a RuntimeError that says nothing of the disk."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def write_bytes_atomic(path: Path, data) -> None:
    with atomic_write(path) as file:
        file.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def with_hint(error: WriteError, hint: str) -> WriteError:
    """``error`` with ``hint`` (what is complete, how to resume) after its message."""
    return WriteError(error.errno, f"{error}; {hint}")


@contextmanager
def resumable_chunks(folder: Path, pattern: str) -> Iterator[None]:
    """A WriteError raised in the block (a dataset being written) says how many complete chunks (``pattern``)
    ``folder`` keeps and that running the same command again resumes from them."""
    try:
        yield
    except WriteError as error:
        complete = len(list(Path(folder).glob(pattern)))
        raise with_hint(error, f"the {complete} complete chunk(s) in {folder} are kept: free space and run the "
                               "same command again to resume from them") from error


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own temporary files are left only by writes that failed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temps(folder: Path, pattern: str) -> list[Path]:
    """Delete the temporary files of ``pattern`` (e.g. ``chunk_*.npz``) in ``folder`` that no running process
    is writing (left by a run that was killed mid-write); returns them."""
    removed = []
    for tmp in Path(folder).glob(f"{pattern}{TEMP_MARK}*"):
        pid = tmp.name.rsplit(TEMP_MARK, 1)[-1]
        if pid.isdigit() and _pid_running(int(pid)):
            continue  # another process's write in progress
        with suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed
