"""Training and validation object sets, kept disjoint.

Two sources:

- the project's own procedural set (always there): ``train/`` for training, ``val/`` for validation;
- the shared training sets of the published benchmark at ``../shared/objects`` (next to the repository,
  or wherever ``$DIFFGRASP_SHARED`` points): ``pile/train`` for pile scenes and ``packed/train`` for
  packed scenes. Their matching test sets are not available, so a validation split is carved out of
  them in two ways (``SPLITS``):

  - ``hash``: an object is validation when the SHA-256 of its file name falls in the lowest
    ``VALIDATION_FRACTION`` of the hash range. The split depends only on the file name, so it is the same
    on every machine and stable when objects are added or removed; but similar objects (two soup cans)
    land on both sides.
  - ``families``: the objects of whole shape families held out by the frozen rule of ``object_families``
    (about a fifth of each scene type; an object the frozen file does not list joins its nearest family).

  Training objects are those in neither validation split, so both stay honest for models trained on
  them. Without ``../shared`` both splits are the builtin ``val/`` set (every fourth generated object, not
  a family hold-out) and training uses the builtin ``train/``.

Data generation uses ``training_objects`` only; the benchmark defaults to ``validation_objects``. The
shared files are read in place, never copied into the repository.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .object_families import frozen_assignment
from .object_set import DEFAULT_OBJECTS_DIR, ObjectModel, find_objects

VALIDATION_FRACTION = 0.2
SPLITS = ("hash", "families")
SHARED_ENV = "DIFFGRASP_SHARED"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Object roots by tag, so a dataset written on one machine resolves its models on another.
BUILTIN_ROOT_TAG, SHARED_ROOT_TAG = "builtin", "shared"


@dataclass(frozen=True)
class ObjectSet:
    name: str  # e.g. "shared pile/train, validation split"
    root_tag: str  # "builtin", "shared" or an absolute folder (see ``resolve_object_root``)
    root: Path  # what model paths in scene descriptions are relative to
    objects: tuple[ObjectModel, ...]


def shared_dir() -> Path | None:
    """``$DIFFGRASP_SHARED``, else ``../shared`` beside the repository; None when there is none."""
    configured = os.environ.get(SHARED_ENV)
    if configured:
        if not Path(configured).is_dir():
            raise FileNotFoundError(f"${SHARED_ENV} points to {configured}, which is not a folder")
        return Path(configured).resolve()
    candidate = REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


def shared_objects_dir() -> Path | None:
    shared = shared_dir()
    return shared / "objects" if shared is not None and (shared / "objects").is_dir() else None


def is_validation_object(path: str | Path) -> bool:
    digest = hashlib.sha256(Path(path).name.encode()).digest()
    return int.from_bytes(digest[:8], "big") < VALIDATION_FRACTION * 2**64


def _kind_folder(root: Path, kind: str) -> Path:
    if kind not in ("pile", "packed"):
        raise ValueError(f"unknown scene kind {kind!r}: choose one of ('pile', 'packed')")
    folder = root / kind / "train"
    if not folder.is_dir():
        raise FileNotFoundError(f"the shared object sets have no {kind}/train folder at {root}")
    return folder


def _builtin(folder: str) -> ObjectSet:
    return ObjectSet(f"builtin {folder}/", BUILTIN_ROOT_TAG, DEFAULT_OBJECTS_DIR,
                     tuple(find_objects(DEFAULT_OBJECTS_DIR / folder)))


def _shared(root: Path, kind: str, name: str, keep: Callable[[Path], bool]) -> ObjectSet:
    objects = tuple(m for m in find_objects(_kind_folder(root, kind)) if keep(m.path))
    if not objects:
        raise ValueError(f"the {name} of shared {kind}/train is empty")
    return ObjectSet(f"shared {kind}/train, {name}", SHARED_ROOT_TAG, root, objects)


def validation_objects(kind: str, split: str = "hash") -> ObjectSet:
    """Objects to benchmark ``kind`` scenes on: the shared ``split`` (see ``SPLITS``), else the builtin
    ``val/``."""
    if split not in SPLITS:
        raise ValueError(f"unknown validation split {split!r}: choose one of {SPLITS}")
    root = shared_objects_dir()
    if root is None:
        builtin = _builtin("val")
        if split == "families":  # say in reports that the builtin set holds out no families
            builtin = replace(builtin, name=f"{builtin.name} (no family hold-out without ../shared)")
        return builtin
    if split == "hash":
        return _shared(root, kind, "validation split", is_validation_object)
    families = frozen_assignment()
    return _shared(root, kind, f"held-out families v{families.version} ({', '.join(families.held_out_names)})",
                   families.is_held_out)


def training_objects(kind: str) -> ObjectSet:
    """Objects to generate ``kind`` training scenes from: the shared sets minus both validation splits,
    else the builtin ``train/``."""
    root = shared_objects_dir()
    if root is None:
        return _builtin("train")
    families = frozen_assignment()
    return _shared(root, kind, "training split (hash and family validation removed)",
                   lambda path: not is_validation_object(path) and not families.is_held_out(path))


def folder_objects(folder: str | Path) -> ObjectSet:
    folder = Path(folder).resolve()
    return ObjectSet(str(folder), str(folder), folder, tuple(find_objects(folder)))


def resolve_object_root(tag: str) -> Path:
    """The folder an object-root tag (``ObjectSet.root_tag``) stands for on this machine."""
    if tag == BUILTIN_ROOT_TAG:
        return DEFAULT_OBJECTS_DIR
    if tag == SHARED_ROOT_TAG:
        root = shared_objects_dir()
        if root is None:
            raise FileNotFoundError(f"the scenes use the shared object sets, but there is no ../shared/objects "
                                    f"beside the repository (set ${SHARED_ENV})")
        return root
    return Path(tag)
