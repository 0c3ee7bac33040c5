"""Hostile inputs, class 2: sizes, thread and count options without bounds.

Every size, thread and count option has a fixed range, shown in ``--help`` and checked
before any work (exit 2): no option can ask for a huge allocation, a runaway thread pool
or a crash in onnxruntime.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hostile import build_model, cli, data_folder, png_bytes, save

from sod_train import guards


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(build_model(), tmp_path_factory.mktemp("m") / "m.onnx")


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("p") / "a.png"
    path.write_bytes(png_bytes())
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return data_folder(tmp_path_factory.mktemp("d") / "D", n=2)


def _usage_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    text = result.stderr.lower()
    assert "traceback" not in text
    for word in words:
        assert word.lower() in text, (word, result.stderr)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--size", "200000"),
        ("--size", "0"),
        ("--size", "-3"),
        ("--size", "4097"),
        ("--threads", "100000"),
        ("--threads", "1000"),
        ("--threads", "0"),
    ],
)
def test_predict_options_out_of_range(model, picture, tmp_path, option, value):
    result = cli("predict", picture, "--model", model, "--out", tmp_path / "o", option, value)
    _usage_error(result, option, value)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--size", "200000"), ("--size", "0"), ("--threads", "100000"), ("--threads", "65")],
)
def test_evaluate_options_out_of_range(model, data, option, value):
    _usage_error(cli("evaluate", model, "--data", data, option, value), option, value)


@pytest.mark.parametrize(
    ("option", "value", "word"),
    [
        ("--sizes", "1000000", "1000000"),
        ("--sizes", "100000x1", "100000x1"),
        ("--sizes", "1x100000", "1x100000"),
        ("--sizes", "8192x8192", "8192x8192"),  # each side fits, the area does not
        ("--sizes", "0", "0"),
        ("--sizes", "99999999999999999999999p", "expected"),
        ("--sizes", "-5x7", "-5x7"),
        ("--sizes", ",".join(str(n) for n in range(1, 18)), "at most 16"),
        ("--sizes", ",,,", "empty"),
        ("--threads", "100000", "100000"),
        ("--threads", "1000", "1000"),
        ("--threads", "0", "0"),
        ("--threads", "1,two", "two"),
        ("--threads", ",".join(str(n) for n in range(1, 18)), "at most 16"),
        ("--runs", "0", "--runs"),
        ("--runs", "100001", "--runs"),
        ("--warmup", "-1", "--warmup"),
        ("--warmup", "1000000", "--warmup"),
    ],
)
def test_bench_options_out_of_range(model, option, value, word):
    result = cli("bench", model, option, value, "--quiet", timeout=30)
    _usage_error(result, word)


def test_bench_too_many_models_is_refused(model):
    _usage_error(cli("bench", *[model] * 17, "--quiet"), "17 models")


@pytest.mark.parametrize(
    ("option", "value"), [("--crop-size", "100000"), ("--crop-size", "4"), ("--workers", "1000")]
)
def test_fold_iou_options_out_of_range(model, tmp_path, option, value):
    result = cli("fold-iou", model, "--duts-root", tmp_path, option, value)
    _usage_error(result, option)


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["check", "M", "--max-mb", "1e12"], "--max-mb"),
        (["check", "M", "--max-mb", "0"], "--max-mb"),
        (["diff", "M", "M", "--max-drop", "5"], "--max-drop"),
        (["fetch", "duts-tr", "--sha256", "a" * 64, "--size", str(2**50)], "--size"),
        (["build-cache", "--duts-root", "D", "--out", "C", "--shard-mb", "1e9"], "--shard-mb"),
    ],
)
def test_other_numeric_options_out_of_range(model, tmp_path, args, word):
    args = [str(model) if a == "M" else str(tmp_path / a) if a in ("D", "C") else a for a in args]
    _usage_error(cli(*args), word)


# Every option that sets a size, a number of threads or a count of things, per command.
RANGED = {
    "predict": ["--size", "--threads"],
    "evaluate": ["--size", "--threads"],
    "bench": ["--sizes", "--threads", "--runs", "--warmup"],
    "fold-iou": ["--crop-size", "--workers"],
    "check": ["--max-mb"],
    "build-cache": ["--shard-mb"],
    "fetch": ["--size"],
    "diff": ["--max-drop"],
}


@pytest.mark.parametrize("command", sorted(RANGED))
def test_every_size_thread_and_count_option_shows_its_range_in_help(command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    entries = _help_entries(result.stdout)
    for option in RANGED[command]:
        entry = entries[option]
        shows_range = re.search(r"\d+<=x<=\d+|\d+<x<=\d+|\d+<=x<\d+|\bto \d", entry)
        assert shows_range, f"{command} {option}: no range in help: {entry!r}"


def _help_entries(text: str) -> dict[str, str]:
    """Option name -> its whole help entry (click indents each entry's first line by 2)."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if re.match(r"^  --[a-z]", line):
            current = line.split()[0]
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {name: " ".join(entry.split()) for name, entry in entries.items()}


def test_train_size_and_count_options_are_bounded():
    entries = _help_entries(cli("train", "--help").stdout)
    for option in ("--epochs", "--batch-size", "--crop-size", "--workers", "--threads"):
        assert re.search(r"\d+<=x<=\d+", entries[option]), option


def test_range_constants_are_consistent():
    assert guards.MAX_SQUARE**2 <= guards.MAX_PIXELS
    assert guards.MAX_SIDE >= guards.MAX_SQUARE
    assert 1 <= guards.MAX_THREADS <= guards.MAX_TORCH_THREADS
