"""Hostile inputs, class 6: special files where a regular file is expected.

A FIFO, a character device (/dev/zero, /dev/null, /dev/urandom), a socket or a folder
given as any file a command reads is refused at once with exit 2 and one line naming it:
nothing is opened in a way that could block, and nothing reads forever.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import build_model, cli, data_folder, error_line, fifo, png_bytes, save, unix_socket
from test_schema import make_metrics

KINDS = ["fifo", "dev-zero", "dev-null", "dev-urandom", "socket", "folder"]


@contextlib.contextmanager
def special(kind: str, folder: Path, name: str) -> Iterator[Path]:
    """A special file of ``kind`` at ``folder / name`` (devices: a symlink to them)."""
    path = folder / name
    if kind == "fifo":
        yield fifo(path)
    elif kind.startswith("dev-"):
        path.symlink_to(f"/dev/{kind[4:]}")
        yield path
    elif kind == "socket":
        with unix_socket(path) as sock:
            yield sock
    else:
        path.mkdir()
        yield path


def assert_refused_at_once(result, path: Path, kind: str) -> None:
    assert result.exit_code == 2, result.output
    if kind == "folder":  # click's own check may answer first; either way it names the path
        assert str(path) in result.stderr
        return
    line = error_line(result)
    assert str(path) in line and "not a regular file" in line, line


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save(build_model(), tmp_path / "m.onnx")


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_a.metrics.json"
    path.write_text(json.dumps(make_metrics()))
    return path


def _registry(tmp_path: Path) -> Path:
    path = tmp_path / "reg.json"
    path.write_text(json.dumps({"schema_version": 1, "default": None, "models": []}))
    return path


# (command template, the placeholder the special file replaces); M = a good model,
# J = a good metrics JSON, R = a good registry, D = a good data folder, X = the special file.
CASES = {
    "check MODEL": ["check", "X"],
    "check --allowlist": ["check", "M", "--allowlist", "X"],
    "predict --model": ["predict", "P", "--model", "X", "--out", "O"],
    "predict PICTURE": ["predict", "X", "--model", "M", "--out", "O"],
    "evaluate MODEL": ["evaluate", "X", "--data", "D"],
    "evaluate --record": ["evaluate", "M", "--data", "D", "--record", "X"],
    "bench MODEL": ["bench", "X", "--sizes", "8", "--threads", "1", "--runs", "1"],
    "diff OLD": ["diff", "X", "J"],
    "diff NEW": ["diff", "J", "X"],
    "card METRICS": ["card", "X", "--registry", "R", "--out", "O/c.md"],
    "card --registry": ["card", "J", "--registry", "X", "--out", "O/c.md"],
    "card --anchor-metrics": ["card", "J", "--registry", "R", "--anchor-metrics", "X"],
    "register MODEL": ["register", "X", "--registry", "R"],
    "fold-iou MODEL": ["fold-iou", "X", "--duts-root", "D"],
    "fold-iou --record": ["fold-iou", "M", "--duts-root", "D", "--record", "X"],
    "fetch --archive": ["fetch", "duts-tr", "--archive", "X", "--dest", "O"],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_special_file_is_refused_at_once(tmp_path, model, metrics, case, kind):
    if case == "register MODEL":  # a registered model must live under the registry's repo
        repo = tmp_path / "repo" / "model" / "tiny"
        repo.mkdir(parents=True)
        folder, registry = repo, _registry(repo)
    else:
        folder, registry = tmp_path, _registry(tmp_path)
    picture = tmp_path / "a.png"
    picture.write_bytes(png_bytes())
    data = data_folder(tmp_path / "D")
    name = (
        "x.png"
        if "PICTURE" in case
        else "x.onnx"
        if "MODEL" in case or "model" in case
        else "x.json"
    )
    with special(kind, folder, name) as path:
        subs = {
            "X": path,
            "M": model,
            "J": metrics,
            "R": registry,
            "D": data,
            "P": picture,
            "O": tmp_path / "out",
        }
        subs["O/c.md"] = tmp_path / "c.md"
        args = [str(subs.get(a, a)) for a in CASES[case]]
        result = cli(*args, timeout=30)
        if case == "predict PICTURE" and kind != "folder":
            # a picture is one job among many: skipped with its reason, exit 1
            assert result.exit_code in (1, 2) and str(path) in result.stderr, result.output
            assert "not a regular file" in result.stderr or "no such" in result.stderr
            return
        if case == "predict PICTURE":
            assert result.exit_code == 2 and "no images" in result.stderr
            return
        assert_refused_at_once(result, path, kind)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "socket", "folder"])
def test_golden_file_that_is_special_is_a_fail_line_not_a_hang(tmp_path, model, kind):
    with special(kind, tmp_path, "m.golden.json") as path:
        result = cli("check", model, timeout=60)
        assert result.exit_code == 1
        (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("FAIL golden:")]
        assert str(path.name) in line


def test_proc_files_are_read_boundedly(tmp_path):
    # /proc files claim 0 bytes and are regular: read with the same byte limit, then parsed
    result = cli("diff", "/proc/self/status", "/proc/self/status", timeout=30)
    assert result.exit_code == 2 and "/proc/self/status" in error_line(result)


def test_symlink_loop_is_refused(tmp_path, metrics):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    result = cli("diff", loop, metrics)
    assert result.exit_code == 2 and str(loop) in error_line(result)


def test_unreadable_file_is_refused(tmp_path, metrics):
    if os.geteuid() == 0:
        pytest.skip(
            "root reads any file, so the refusal cannot happen: run the tests as an ordinary user"
        )
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    result = cli("diff", locked, metrics)
    assert result.exit_code == 2 and "permission" in error_line(result).lower()
