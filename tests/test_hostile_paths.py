"""Hostile inputs, round 3, classes 2, 4 and 5: paths named inside files, numbers in JSON,
and permissions, through the real CLI.

* A path a registry names (card, ONNX, metrics) stays inside the repository: ``..``, an
  absolute path or a symlink that leads out is exit 2 naming the key, and the file it
  pointed at is untouched (the registry card path once overwrote a user's file, exit 0).
* JSON values no reader should meet (a lone surrogate, an integer of 64 bits or more,
  a history row of strings) are refused at load naming the key path; a huge but finite
  number still draws (the plot clips it).
* An unreadable folder or file of a data set is one line naming it, exit 2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from hostile import (
    build_model,
    can_drop_permissions,
    cli,
    data_folder,
    one_line,
    refused,
    save,
    sod,
)

from sod_train.errors import UserInputError
from sod_train.guards import confined, read_json
from sod_train.release import card as card_module

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "model" / "tiny"
METRICS = TINY / "sod_tiny_v1.metrics.json"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _registry(tmp_path: Path, **change: object) -> Path:
    """A copy of the shipped registry whose sod_tiny_v1 entry has ``change`` applied."""
    doc = json.loads((TINY / "registry.json").read_text())
    for entry in doc["models"]:
        if entry["id"] == "sod_tiny_v1":
            entry.update(change)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A user's file outside the repository that a hostile registry aims at."""
    path = tmp_path / "outside" / "notes.md"
    path.parent.mkdir()
    path.write_text("my notes\n")
    return path


# -- class 2: paths named inside files ------------------------------------------------------


@pytest.mark.parametrize("how", ["dotdot", "absolute", "inner dotdot"])
def test_a_registry_card_path_outside_the_repository_is_refused(tmp_path, victim, how):
    card = {
        "dotdot": os.path.relpath(victim, REPO),
        "absolute": str(victim),
        "inner dotdot": "docs/../../" + victim.name,
    }[how]
    registry = _registry(tmp_path, card=card)
    result = sod("card", METRICS, "--registry", registry, "--no-anchors", "--quiet")
    line = one_line(result, 2)
    assert "models.1.card" in line or "models[sod_tiny_v1].card" in line, line
    assert victim.read_text() == "my notes\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["notes.md"]  # no image either


@pytest.mark.parametrize("key", ["onnx", "metrics"])
def test_registry_onnx_and_metrics_paths_are_confined_too(tmp_path, key):
    registry = _registry(tmp_path, **{key: "../../../etc/passwd" + (".onnx" if key == "onnx" else
                                                                 ".metrics.json")})  # fmt: skip
    line = one_line(sod("card", METRICS, "--registry", registry, "--no-anchors", "--quiet"), 2)
    assert f".{key}: " in line and "'..'" in line


def test_a_card_path_through_a_symlink_out_of_the_repository_is_refused(
    tmp_path, victim, monkeypatch
):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "models").symlink_to(victim.parent)  # inside, but leads out
    monkeypatch.setattr(card_module, "REPO_ROOT", repo)
    registry = _registry(tmp_path, card="docs/models/notes.md")
    result = cli("card", METRICS, "--registry", registry, "--no-anchors", "--quiet")
    refused(result, 2, registry, "models[sod_tiny_v1].card", "leads out of")
    assert victim.read_text() == "my notes\n"


def test_confined_accepts_inside_and_refuses_every_way_out(tmp_path):
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "out").symlink_to(tmp_path)
    (base / "in").symlink_to(base / "sub")
    assert confined(base, "sub/x.md", "k", "f") == base / "sub" / "x.md"
    assert confined(base, "in/x.md", "k", "f") == base / "in" / "x.md"  # a link that stays in
    for rel in ("../x", "/etc/x", "sub/../../x", "out/x", "", "a\\b", 7, None):
        with pytest.raises(UserInputError, match=r"f: k = "):
            confined(base, rel, "k", "f")


# -- class 4: numbers and strings in JSON ---------------------------------------------------


def _metrics_copy(tmp_path: Path, change) -> Path:
    """sod_tiny_v1's metrics (and ONNX beside it) with ``change(doc)`` applied."""
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    shutil.copy(TINY / "sod_tiny_v1.onnx", folder / "sod_tiny_v1.onnx")
    doc = json.loads(METRICS.read_text())
    text = change(doc)
    path = folder / "sod_tiny_v1.metrics.json"
    path.write_text(text if isinstance(text, str) else json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("label", "change", "where"),
    [
        ("lone surrogate", lambda d: d["training"]["history"][0].update(note="\ud800"),
         "training.history[0].note"),
        ("surrogate key", lambda d: d["training"].update({"\udcff": 1}), "training: a key"),
        ("int 2**70", lambda d: d["onnx"].update(bytes=2**70), "onnx.bytes"),
        ("string loss", lambda d: d["training"]["history"][1].update(train_loss="0.5"),
         "training.history.1.train_loss"),
        ("bool loss", lambda d: d["training"]["history"][0].update(val_loss=True),
         "training.history.0.val_loss"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["card", "diff"])
def test_bad_json_values_are_refused_at_load_naming_the_key(tmp_path, label, change, where,
                                                            command):  # fmt: skip
    metrics = _metrics_copy(tmp_path, change)
    out = tmp_path / "out"
    args = (
        ["card", metrics, "--out", out / "c.md", "--no-anchors", "--quiet"]
        if command == "card"
        else ["diff", METRICS, metrics]
    )
    result = sod(*args)
    line = one_line(result, (1, 2) if command == "diff" else 2)
    assert where.split(":")[0].split(".")[0] in line and str(metrics) in line, line
    if command == "card" or "history" not in where or "[" in where:
        assert where.replace("training: a key", "a key") in line, line
    assert not out.exists()


def test_a_history_of_strings_is_refused_by_report(tmp_path):
    metrics = tmp_path / "h.json"
    metrics.write_text(json.dumps({"history": [{"epoch": 1, "train_loss": "low"}]}))
    model = save(build_model(), tmp_path / "m.onnx")
    data = data_folder(tmp_path / "D", n=3)
    out = tmp_path / "r.html"
    line = one_line(sod("report", model, "--data", data, "--metrics", metrics, "--out", out,
                        "--quiet"), 2)  # fmt: skip
    assert "history[0].train_loss" in line and "not a number" in line
    assert not out.exists()


def test_read_json_names_the_key_path_of_a_bad_value(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, {"b": "\\ud800"}]}')
    with pytest.raises(UserInputError, match=r"a\[1\]\.b: the string holds a lone surrogate"):
        read_json(path, "the file")
    path.write_text('{"n": 123456789012345678901234567890}')
    with pytest.raises(UserInputError, match=r"n: an integer of \d+ bits is out of range"):
        read_json(path, "the file")


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")
def test_huge_finite_numbers_still_draw_the_card(tmp_path):
    def huge(doc):
        doc["training"]["history"][0].update(train_loss=1e308, val_loss=-1e308)
        doc["training"]["history"][1].update(epoch=2**62)

    metrics = _metrics_copy(tmp_path, huge)
    out = tmp_path / "out" / "c.md"
    result = sod("card", metrics, "--out", out, "--no-anchors", "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert (out.parent / "sod_tiny_v1.curves.png").read_bytes().startswith(b"\x89PNG")


# -- class 5: permissions -----------------------------------------------------------------


needs_permissions = pytest.mark.skipif(
    not can_drop_permissions(),
    reason="root without setpriv ignores file permissions: "
    "apt-get install util-linux (setpriv), or run as a normal user",
)


@needs_permissions
@pytest.mark.parametrize("what", ["masks", "images", "root"])
@pytest.mark.parametrize("command", ["evaluate", "fold-iou", "verify-data", "build-cache"])
def test_an_unreadable_data_folder_is_one_line_naming_it(tmp_path, what, command):
    model = save(build_model(), tmp_path / "m.onnx")
    data = data_folder(tmp_path / "D", n=3)
    target = data if what == "root" else data / what
    args = {
        "evaluate": ["evaluate", model, "--data", data, "--quiet"],
        "fold-iou": ["fold-iou", model, "--duts-root", data, "--quiet"],
        "verify-data": ["verify-data", data, "--quiet"],
        "build-cache": ["build-cache", "--duts-root", data, "--out", tmp_path / "C", "--quiet"],
    }[command]
    target.chmod(0)
    try:
        line = one_line(sod(*args, no_dac=True), 2)
    finally:
        target.chmod(0o755)
    assert str(target) in line, line
    assert "permission denied" in line or "is not readable" in line, line
    assert not (tmp_path / "C").exists()


@needs_permissions
@pytest.mark.parametrize("command", ["evaluate", "fold-iou", "verify-data", "build-cache"])
def test_an_unreadable_data_file_is_named_exit_2(tmp_path, command):
    model = save(build_model(), tmp_path / "m.onnx")
    data = data_folder(tmp_path / "D", n=3)
    bad = data / "masks" / "img_001.png"
    args = {
        "evaluate": ["evaluate", model, "--data", data, "--quiet"],
        "fold-iou": ["fold-iou", model, "--duts-root", data, "--quiet", "--skip-bad"],
        "verify-data": ["verify-data", data, "--quiet"],
        "build-cache": ["build-cache", "--duts-root", data, "--out", tmp_path / "C", "--quiet"],
    }[command]
    bad.chmod(0)
    try:
        result = sod(*args, no_dac=True)
    finally:
        bad.chmod(0o644)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "Traceback" not in err and err.count("error: ") == 1, err
    if command != "fold-iou":  # fold-iou: 3 pairs are too few, said before reading any
        assert f"{bad}" in err and "permission denied" in err, err
