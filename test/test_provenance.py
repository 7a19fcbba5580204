"""Provenance of results (evaluation/provenance.py): the dirty-tree check, the run context, code hashes and
the refusal to mix chunks of different code. Each test works in its own small git repository."""
from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from diffgrasp_ros.evaluation import provenance
from diffgrasp_ros.evaluation.provenance import (ChunkLedger, DirtyTreeError, MixedCodeError, add_provenance_arguments,
                                                 check_results_destination, check_same_code, code_hash, git_state,
                                                 prepare_results, provenance_markdown, recorded_code, run_context,
                                                 write_report)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository: a module, a results file, and an ignored pattern."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "pkg" / "code.py").write_text("X = 1\n")
    (root / "benchmarks" / "results" / "old.md").write_text("# old\n")
    (root / ".gitignore").write_text("*.log\n__pycache__/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def results(repo: Path, name: str = "new.json") -> Path:
    return repo / "benchmarks" / "results" / name


def test_a_clean_tree_may_write_results(repo):
    check_results_destination(results(repo), allow_dirty=False, repo=repo)
    assert git_state(repo)["dirty"] is False


@pytest.mark.parametrize("change", ["tracked", "staged", "untracked", "deleted"])
def test_a_dirty_tree_is_refused_unless_allowed(repo, tmp_path, change):
    code = repo / "pkg" / "code.py"
    if change == "tracked":
        code.write_text("X = 2\n")
    elif change == "staged":
        code.write_text("X = 2\n")
        git(repo, "add", "pkg/code.py")
    elif change == "untracked":
        (repo / "pkg" / "new_module.py").write_text("Y = 1\n")
    else:
        code.unlink()
    with pytest.raises(DirtyTreeError, match=r"--allow-dirty") as refused:
        check_results_destination([None, tmp_path / "elsewhere.md", results(repo)], allow_dirty=False, repo=repo)
    assert "pkg/" in str(refused.value)  # names what is dirty
    check_results_destination(results(repo), allow_dirty=True, repo=repo)
    check_results_destination(tmp_path / "out" / "x.json", allow_dirty=False, repo=repo)  # outside: always
    check_results_destination(None, allow_dirty=False, repo=repo)  # nothing written


def test_relative_destinations_resolve_against_the_working_directory(repo, monkeypatch):
    (repo / "pkg" / "code.py").write_text("X = 2\n")
    monkeypatch.chdir(repo / "benchmarks")
    with pytest.raises(DirtyTreeError):
        check_results_destination("results/x.md", allow_dirty=False, repo=repo)


def test_changes_under_results_and_ignored_files_keep_the_tree_clean(repo):
    (repo / "benchmarks" / "results" / "old.md").write_text("# rewritten\n")
    results(repo, "first_output.json").write_text("{}\n")  # a run's own first output
    git(repo, "mv", "benchmarks/results/old.md", "benchmarks/results/renamed.md")
    (repo / "run.log").write_text("ignored\n")
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"\0")
    assert git_state(repo)["dirty_files"] == []
    check_results_destination(results(repo, "second_output.md"), allow_dirty=False, repo=repo)


def test_code_paths_beside_the_repository_are_named_relative_to_it(repo):
    shared = repo.parent / "shared" / "objects"
    shared.mkdir(parents=True)
    (shared / "a.urdf").write_text("<robot/>")
    context = run_context("bench", repo=repo, code_paths=[repo / "pkg", shared])
    assert context["code_paths"][-2:] == ["pkg", "../shared/objects"]


def test_the_context_has_every_field(repo):
    context = run_context("bench --every option", repo=repo)
    assert context["commit"] == git(repo, "rev-parse", "HEAD").strip() and len(context["commit"]) == 40
    assert context["git_commit"] == git(repo, "describe", "--always").strip()
    assert context["dirty"] is False and context["dirty_files"] == [] and "dirty_warning" not in context
    assert context["command"] == "bench --every option" and context["exact_command"] and context["cwd"]
    assert run_context(repo=repo)["command"] == context["exact_command"]  # no command given: the exact one
    date = datetime.datetime.fromisoformat(context["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert set(context["machine_info"]) == {"cpu", "cores", "ram_gb", "os", "python", "torch"}
    assert context["machine_info"]["cores"] >= 1 and context["machine_info"]["ram_gb"] > 0
    assert context["machine_info"]["torch"] and f"torch {context['machine_info']['torch']}" in context["machine"]
    assert re.fullmatch(r"[0-9a-f]{64}", context["code_hash"]) and "diffgrasp_ros" in context["code_paths"][0]
    json.dumps(context)  # goes into results files as it is
    header = provenance_markdown(context)
    assert header[0] == "- command: `bench --every option`"
    assert header[1].startswith("- as typed: `") and header[1].endswith(
        f"{context['exact_command']}` (in `{context['cwd']}`)")  # after the thread-count variables, when set
    assert not any("dirty" in line.lower() for line in header)


def test_results_written_with_allow_dirty_say_so(repo, tmp_path, monkeypatch):
    (repo / "pkg" / "code.py").write_text("X = 2\n")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", repo / "pkg")  # the tree the "code" runs from
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    with pytest.raises(SystemExit, match="--allow-dirty"):
        prepare_results(parser.parse_args([]), results(repo, "x.json"))
    context = prepare_results(parser.parse_args(["--allow-dirty"]), results(repo, "x.json"))
    assert context["dirty"] is True and context["allow_dirty"] is True
    assert context["git_commit"].endswith("-dirty") and context["dirty_files"] == ["M pkg/code.py"]
    out = results(repo, "x")
    write_report(out, {"context": context}, "\n".join(["# x", "", *provenance_markdown(context)]) + "\n")
    md = out.with_suffix(".md").read_text().splitlines()
    assert md[2].startswith("- **Written with --allow-dirty from a dirty tree") and "pkg/code.py" in md[2]
    recorded = json.loads(out.with_suffix(".json").read_text())["context"]
    assert recorded["dirty"] is True and recorded["allow_dirty"] is True and "dirty tree" in recorded["dirty_warning"]


def test_bench_refuses_before_it_runs(repo, monkeypatch, capsys):
    from diffgrasp_ros.cli.main import main

    (repo / "pkg" / "stray.py").write_text("")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", repo / "pkg")
    # An unknown method would fail when the planners are built: the refusal must come first.
    assert main(["bench", "--method", "no_such_method", "--json", str(results(repo, "b.json"))]) == 1
    assert "refusing to write" in capsys.readouterr().err


def test_old_dirty_records_are_flagged():
    old = {"command": "diffgrasp bench", "date": "2026-11-22", "machine": "m", "git_commit": "b057d3a-dirty"}
    assert "dirty tree" in provenance_markdown(old)[0]
    assert recorded_code(old) is None and recorded_code({**old, "git_commit": "b057d3a"}) == "b057d3a"


def test_the_code_hash_follows_the_files_the_run_depends_on(repo, tmp_path):
    paths = [repo / "pkg", repo / ".gitignore"]
    before = code_hash(paths, repo)
    assert code_hash(paths, repo) == before
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"compiled")
    assert code_hash(paths, repo) == before  # byte code is not code
    moved = tmp_path / "elsewhere"
    shutil.copytree(repo, moved)
    assert code_hash([moved / "pkg", moved / ".gitignore"], moved) == before  # where the checkout lies: no matter
    (repo / "pkg" / "code.py").write_text("X = 2\n")
    changed = code_hash(paths, repo)
    assert changed != before
    (repo / "pkg" / "more.py").write_text("")
    assert code_hash(paths, repo) not in (before, changed)
    with pytest.raises(FileNotFoundError):
        code_hash([repo / "missing"], repo)


def test_chunks_of_different_code_are_not_mixed(repo, tmp_path):
    folder = tmp_path / "run"
    ledger = ChunkLedger(folder)
    first = {"code_hash": code_hash([repo / "pkg"], repo), "commit": "c1", "date": "d"}
    ledger.check(first)  # nothing there yet
    ledger.record("chunk_000000", first)
    ledger.record("chunk_000001", first)
    ChunkLedger(folder).check(first, existing=["chunk_000000", "chunk_000001"])  # next session, same code
    with pytest.raises(MixedCodeError, match="cannot be named"):  # a chunk on disk the ledger does not know
        ChunkLedger(folder).check(first, existing=["chunk_000000", "chunk_000001", "chunk_000009"])
    (repo / "pkg" / "code.py").write_text("X = 2\n")
    second = {**first, "code_hash": code_hash([repo / "pkg"], repo)}
    with pytest.raises(MixedCodeError) as refused:
        ChunkLedger(folder).check(second)
    message = str(refused.value)
    assert first["code_hash"] in message and second["code_hash"] in message and f"delete {folder}" in message
    with pytest.raises(MixedCodeError):
        ChunkLedger(folder).record("chunk_000002", second)
    assert sorted(json.loads((folder / ChunkLedger.FILE).read_text())) == ["chunk_000000", "chunk_000001"]


def test_check_same_code():
    assert check_same_code({"a": "h", "b": "h"}, "start over") == "h"
    assert check_same_code({"only": None}, "start over") is None  # one run mixes with nothing
    with pytest.raises(MixedCodeError, match="start over"):
        check_same_code({"a": "h", "b": "g"}, "start over")
    with pytest.raises(MixedCodeError):  # unknown code never matches
        check_same_code({"a": None, "b": None}, "start over")
