"""Provenance of benchmark results: which code, command, date and machine produced a figure.

Every results file records ``run_context()``: the commit (full hash and ``git describe``), whether the work
tree was dirty and how, the exact command as it was typed (``sys.orig_argv``, shell-quoted, with the working
directory and the thread-count variables that change timings), the UTC date, the machine (CPU model, cores,
RAM, OS, Python, torch) and a code hash (``code_hash``) over the files the run depends on.

**Dirty** means ``git status`` lists anything outside ``benchmarks/results/``: a tracked file changed, added,
deleted or renamed (staged or not), or an untracked file that ``.gitignore`` does not ignore. Untracked files
count because Python imports a new module or runs a new script as readily as a committed one (``git describe
--dirty``, used before, ignored them). Ignored files (``.venv``, ``__pycache__``) do not count. Changes under
``benchmarks/results/`` do not count either: results are outputs, not code, and they live in the tree, so a
run that writes several results files (or appends to an evaluation log) must not turn dirty by its own first
output, nor because earlier results are not committed yet.

**Writing results** (``check_results_destination``): a benchmark refuses to write under
``benchmarks/results/`` from a dirty tree unless ``--allow-dirty`` is given, and it checks before it runs, so
nobody waits for a long run to be refused. Writing anywhere else (``/tmp``) is always allowed. A context of a
dirty tree carries ``dirty_warning``, which ``provenance_markdown`` puts first in a report's header.

**Runs chunked across sessions** (``ChunkLedger``) record the code hash of every chunk and refuse to add a
chunk made by other code (``check_same_code``); a report that combines runs checks them the same way.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from .. import __version__
from ..share import models_dir

RESULTS_DIR = PurePosixPath("benchmarks", "results")  # relative to the repository root
PACKAGE_DIR = Path(__file__).resolve().parents[1]
GIT_TIMEOUT_S = 10.0
LISTED_CHANGES = 20  # dirty files kept in a context (all are counted)
RECORDED_ENVIRONMENT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                        "DIFFGRASP_SHARED", "PYTHONHASHSEED")
SKIPPED_NAMES = {"__pycache__", ".git", ".pytest_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")

PathLike = str | os.PathLike


class ProvenanceError(RuntimeError):
    """Results whose code could not be named exactly."""


class DirtyTreeError(ProvenanceError):
    """Results asked for under benchmarks/results/ from a dirty work tree without --allow-dirty."""


class MixedCodeError(ProvenanceError):
    """Chunks or runs to be combined were made by different code."""


# -- git --------------------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str | None:
    """``git -C repo args`` output, or None when git is missing, fails or hangs."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def repository_root(start: PathLike | None = None) -> Path | None:
    """The git work tree holding ``start`` (default: this package's source), or None (an installed package)."""
    out = _git(Path(start) if start is not None else PACKAGE_DIR, "rev-parse", "--show-toplevel")
    return Path(out.strip()).resolve() if out and out.strip() else None


def _under_results(path: str) -> bool:
    return PurePosixPath(path).parts[:len(RESULTS_DIR.parts)] == RESULTS_DIR.parts


def dirty_files(repo: PathLike) -> list[str]:
    """``git status`` lines (``M path``, ``?? path``) of every change that makes the tree dirty (see the module)."""
    out = _git(Path(repo), "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if out is None:
        raise ProvenanceError(f"git status failed in {repo}: cannot tell whether the tree is clean")
    entries, changes, i = out.split("\0"), [], 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        status, paths = entry[:2], [entry[3:]]
        if status[0] in "RC":  # a rename or copy: the next entry is the original path
            paths.append(entries[i])
            i += 1
        if not all(_under_results(p) for p in paths):
            changes.append(f"{status.strip()} {paths[0]}")
    return changes


def git_state(repo: PathLike | None = None) -> dict:
    """Commit, ``git describe`` and the dirty files of ``repo`` (default: this package's checkout)."""
    root = repository_root(repo) if repo is not None else repository_root()
    if root is None:
        return {"repository": None, "commit": None, "describe": None, "dirty": None, "dirty_files": []}
    commit, describe = _git(root, "rev-parse", "HEAD"), _git(root, "describe", "--always")
    changes = dirty_files(root)
    return {"repository": str(root), "commit": commit.strip() if commit else None,
            "describe": describe.strip() if describe else None, "dirty": bool(changes), "dirty_files": changes}


# -- where results go --------------------------------------------------------------------------------
def _destinations(paths) -> list[Path]:
    if paths is None or isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [Path(p).resolve() for p in paths if p is not None]


def results_destinations(paths, repo: PathLike | None = None) -> list[Path]:
    """Those of ``paths`` (one, several or None) that lie in the repository's benchmarks/results/."""
    root = repository_root(repo) if repo is not None else repository_root()
    if root is None:
        return []
    results = root.joinpath(*RESULTS_DIR.parts)
    return [p for p in _destinations(paths) if p.is_relative_to(results)]


def check_results_destination(paths, allow_dirty: bool, repo: PathLike | None = None) -> None:
    """Raise ``DirtyTreeError`` when any of ``paths`` (one, several or None) lies under benchmarks/results/
    and the work tree is dirty, unless ``allow_dirty``. Call it before the run, with every file it will write.
    Paths elsewhere are always allowed."""
    inside = results_destinations(paths, repo)
    if not inside or allow_dirty:
        return
    state = git_state(repo)
    if not state["dirty"]:
        return
    changes = state["dirty_files"]
    listed = ", ".join(changes[:5]) + (f", … {len(changes) - 5} more" if len(changes) > 5 else "")
    raise DirtyTreeError(
        f"refusing to write {', '.join(str(p) for p in inside)}: the work tree has {len(changes)} uncommitted "
        f"change(s) outside {RESULTS_DIR}/ ({listed}), so the results would name no exact code. Commit "
        "(or remove) them and run again, write somewhere else (e.g. under /tmp), or pass --allow-dirty to "
        "write anyway: the results then say that they come from a dirty tree.")


def add_provenance_arguments(parser: argparse.ArgumentParser) -> None:
    """``--allow-dirty``, for every command that can write into benchmarks/results/."""
    parser.add_argument("--allow-dirty", action="store_true",
                        help=f"write into {RESULTS_DIR}/ although the work tree has uncommitted changes outside "
                             "it (refused otherwise); the results then say so")


def prepare_results(args: argparse.Namespace, *paths, command: str | None = None,
                    code_paths: Iterable[PathLike] = ()) -> dict:
    """For a benchmark script, before it runs: check the files it will write (``paths``, None for an output
    not asked for) against ``args.allow_dirty`` (a refusal exits with the reason), then return its
    ``run_context``."""
    try:
        check_results_destination(paths, args.allow_dirty)
    except ProvenanceError as error:
        raise SystemExit(f"{Path(sys.argv[0]).name}: error: {error}") from None
    return run_context(command, allow_dirty=args.allow_dirty, code_paths=code_paths)


def report_paths(out: PathLike) -> tuple[Path, Path]:
    """``<out>.json`` and ``<out>.md``: where a benchmark with ``--out`` writes."""
    out = Path(out)
    return out.with_suffix(".json"), out.with_suffix(".md")


def write_text(path: PathLike, text: str) -> None:
    """``text`` into ``path``, its folder made first."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def write_report(out: PathLike, data: Mapping, markdown: str) -> None:
    """``data`` (holding its ``context``) as ``<out>.json`` and ``markdown`` as ``<out>.md``."""
    json_path, md_path = report_paths(out)
    write_text(json_path, json.dumps(data, indent=1) + "\n")
    write_text(md_path, markdown)


# -- code hash ---------------------------------------------------------------------------------------
def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"code path {path} does not exist")
    found = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_NAMES and not d.endswith(".egg-info"))
        found += [Path(folder) / n for n in names if not n.endswith(SKIPPED_SUFFIXES)]
    return found


def _display(path: Path, root: Path | None) -> str:
    """``path`` relative to the repository when inside it or beside it (``../shared/objects``: the same name on
    every machine), else absolute."""
    if root is None:
        return str(path)
    if path.is_relative_to(root):
        return str(path.relative_to(root))
    return os.path.relpath(path, root) if path.is_relative_to(root.parent) else str(path)


def code_hash(paths: Iterable[PathLike], root: PathLike | None = None) -> str:
    """sha256 over the sorted (name, sha256 of the contents) of every file in ``paths`` (folders walked,
    ``__pycache__``, ``*.pyc``, ``.git`` skipped). A name is the file's path relative to ``root`` when inside
    it, else relative to the parent of the ``paths`` entry it was found under, so the hash follows a file's
    contents and name, not where the checkout lies."""
    base = Path(root).resolve() if root is not None else None
    entries = []
    for given in paths:
        given = Path(given).resolve()
        anchor = base if base is not None and given.is_relative_to(base) else given.parent
        for file in _files(given):
            entries.append((file.relative_to(anchor).as_posix(), hashlib.sha256(file.read_bytes()).hexdigest()))
    digest = hashlib.sha256()
    for name, content in sorted(entries):
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def default_code_paths() -> list[Path]:
    """What every run depends on: the ``diffgrasp_ros`` package, the shipped ``models/`` and the entry script
    (``sys.argv[0]`` when it is a Python file, e.g. ``benchmarks/x.py``)."""
    paths = [PACKAGE_DIR]
    if models_dir().is_dir():
        paths.append(models_dir())
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.suffix == ".py" and script.is_file():
        paths.append(script)
    return paths


def method_code_paths(specs: Iterable[str]) -> list[Path]:
    """The files and folders named in method specs' options (``igd:weights=FOLDER``), for ``code_paths``."""
    from ..grasping.planner import parse_method

    return [Path(value) for spec in specs for value in parse_method(spec)[1].values()
            if isinstance(value, str) and Path(value).exists()]


def recorded_code(context: Mapping) -> str | None:
    """What names a recorded run's code: its code hash; for a run recorded before code hashes, its commit
    when the tree was clean (``git describe`` without ``-dirty``); else None (unknown)."""
    if context.get("code_hash"):
        return context["code_hash"]
    commit = context.get("git_commit")
    return commit if commit and not str(commit).endswith("-dirty") else None


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """``paths`` resolved, in order, without repeats and without those inside another (``models/igd`` with
    ``models/``)."""
    unique = list(dict.fromkeys(Path(p).resolve() for p in paths))
    return [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]


def check_same_code(hashes: Mapping[str, str | None], start_over: str) -> str:
    """The one code hash of ``hashes`` (a name per chunk or run → its code hash, None when unknown);
    ``MixedCodeError`` naming two that differ otherwise (an unknown hash never matches: two runs of unknown
    code may differ). ``start_over`` tells the user how to start over."""
    items = list(hashes.items())
    if not items:
        raise ValueError("no code hashes to compare")
    def made_by(value: str | None) -> str:
        return f"code {value}" if value else "code that cannot be named (no code hash recorded, no clean commit)"

    first_name, first = items[0]
    for name, value in items[1:]:
        if first is None or value is None or value != first:
            raise MixedCodeError(
                f"{first_name} was made by {made_by(first)}, {name} by {made_by(value)}: results of different "
                f"(or unknown) code would be mixed. Finish with the code that started it, or start over: "
                f"{start_over}")
    return first


class ChunkLedger:
    """The code hash of every chunk of a run resumed across sessions, in ``<folder>/provenance.json``.

    Before resuming: ``ChunkLedger(folder).check(context, existing=names of the chunks on disk)`` refuses when
    a chunk already there was made by other code, or is not in the ledger (made by code of unknown hash);
    after writing a chunk: ``ledger.record(name, context)``.
    """

    FILE = "provenance.json"

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        self.path = self.folder / self.FILE
        self.chunks: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def check(self, context: Mapping, existing: Iterable[str] = (), start_over: str | None = None) -> None:
        recorded = {name: entry.get("code_hash") for name, entry in self.chunks.items()}
        recorded.update({name: None for name in existing if name not in recorded})
        hashes = {"this run": context["code_hash"], **{f"chunk {n}": h for n, h in sorted(recorded.items())}}
        check_same_code(hashes, start_over or f"delete {self.folder} (or choose another output folder)")

    def record(self, name: str, context: Mapping) -> None:
        self.check(context)
        self.chunks[name] = {key: context.get(key) for key in ("code_hash", "commit", "git_commit", "dirty", "date")}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.chunks, indent=1) + "\n")
        tmp.replace(self.path)


# -- the context -------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (AttributeError, ValueError, OSError):
        return None


def _os_name() -> str:
    name = f"{platform.system()} {platform.release()}"
    try:
        return f"{name} ({platform.freedesktop_os_release()['PRETTY_NAME']})"
    except (AttributeError, OSError, KeyError):
        return name


def _torch_version() -> str | None:
    try:
        return importlib.metadata.version("torch")  # without importing torch
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gb": _ram_gb(), "os": _os_name(),
            "python": platform.python_version(), "torch": _torch_version()}


def exact_command() -> str:
    """The command as it was typed: the interpreter, its options and every argument (``sys.orig_argv``)."""
    return shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


def run_context(command: str | None = None, *, allow_dirty: bool = False, code_paths: Iterable[PathLike] = (),
                repo: PathLike | None = None) -> dict:
    """What a results file records about its run (see the module). ``command``: the run as the caller spells it
    (``diffgrasp bench`` gives every option explicitly), else the exact command; the exact command as typed is
    ``exact_command`` either way, with ``cwd`` and ``environment``. ``code_paths`` are hashed with
    ``default_code_paths()`` (give the data and weights from outside the package the run reads); ``repo``
    defaults to this package's checkout."""
    state = git_state(repo)
    info = machine_info()
    ram = f"{info['ram_gb']:.1f} GB RAM, " if info["ram_gb"] else ""
    paths = _outermost([*default_code_paths(), *(Path(p) for p in code_paths)])
    root = Path(state["repository"]) if state["repository"] else None
    describe = state["describe"]
    context = {
        "command": command or exact_command(),
        "exact_command": exact_command(),
        "cwd": os.getcwd(),
        "environment": {k: os.environ[k] for k in RECORDED_ENVIRONMENT if k in os.environ},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{info['cpu']}, {info['cores']} cores, {ram}{info['os']}, Python {info['python']}"
                   + (f", torch {info['torch']}" if info["torch"] else ""),
        "machine_info": info,
        "diffgrasp": __version__,
        "commit": state["commit"],
        "git_commit": f"{describe}-dirty" if describe and state["dirty"] else describe,
        "dirty": state["dirty"],
        "dirty_files": state["dirty_files"][:LISTED_CHANGES],
        "dirty_count": len(state["dirty_files"]),
        "allow_dirty": allow_dirty,
        "code_hash": code_hash(paths, root),
        "code_paths": [_display(p, root) for p in paths],
    }
    if state["dirty"]:
        listed = ", ".join(context["dirty_files"][:5]) + (", …" if len(state["dirty_files"]) > 5 else "")
        context["dirty_warning"] = (
            f"{'Written with --allow-dirty from' if allow_dirty else 'Run from'} a dirty tree: "
            f"{len(state['dirty_files'])} uncommitted change(s) outside {RESULTS_DIR}/ ({listed}); commit "
            f"{(state['commit'] or 'unknown')[:12]} alone does not reproduce these figures")
    return context


def dirty_warning(context: Mapping) -> str | None:
    """The context's dirty-tree warning; for a context recorded before these checks, one made from its
    ``git describe --dirty`` (which saw tracked changes only, so a clean-looking one proves less)."""
    if context.get("dirty_warning"):
        return context["dirty_warning"]
    if str(context.get("git_commit") or "").endswith("-dirty"):
        return (f"Run from a dirty tree ({context['git_commit']}): uncommitted changes to tracked files; "
                "the commit alone does not reproduce these figures")
    return None


def provenance_markdown(context: Mapping) -> list[str]:
    """A report header's provenance lines (Markdown list items), the dirty-tree warning first. Takes the
    contexts of older results files too (no ``commit``, ``cwd`` or code hash)."""
    warning = dirty_warning(context)
    lines = [f"- **{warning}**"] if warning else []
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in context.get("environment", {}).items())
    where = f" (in `{context['cwd']}`)" if context.get("cwd") else ""
    exact = context.get("exact_command")
    if exact is None or exact == context["command"]:
        lines.append(f"- command: `{env + ' ' if env else ''}{context['command']}`{where}")
    else:
        lines += [f"- command: `{context['command']}`", f"- as typed: `{env + ' ' if env else ''}{exact}`{where}"]
    commit = context.get("commit")
    lines += [f"- date: {context['date']}", f"- machine: {context['machine']}",
              f"- commit: {commit} ({context.get('git_commit')})" if commit
              else f"- commit: {context.get('git_commit') or 'unknown (not a git checkout)'}"]
    if context.get("code_hash"):
        lines.append(f"- code hash: sha256 `{context['code_hash']}` over {', '.join(context['code_paths'])}")
    return lines
