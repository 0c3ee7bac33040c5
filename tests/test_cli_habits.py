"""Habits every command shares (issue 24): repeated options refused, every option described,
no machine paths in --help, --json and --quiet where tools and scripts need them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import REPO
from fetch_server import duts_zip, sha256
from sod_train.cli.main import COMMANDS, main

SMOKE = REPO / "model/tiny/sod_tiny_smoke_cpu_v0.onnx"
SMOKE_METRICS = REPO / "model/tiny/sod_tiny_smoke_cpu_v0.metrics.json"
JSON_COMMANDS = ("predict", "report", "card", "register", "export", "fetch", "train", "check")
QUIET_COMMANDS = ("check", "diff", "export", "register", "predict", "evaluate", "card", "fetch")


def command(name: str) -> click.Command:
    return main.get_command(click.Context(main), name)


def options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


def flags(cmd: click.Command) -> set[str]:
    return {name for p in options(cmd) for name in p.opts + p.secondary_opts}


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_repeated_single_value_option_is_a_usage_error(name):
    """Every option that takes one value, given twice, exits 2 naming it; none is dropped."""
    cmd = command(name)
    singles = [p for p in options(cmd) if not (p.multiple or p.count or p.hidden)]
    singles = [p for p in singles if p.name not in ("help", "version")]
    assert singles, name
    for opt in singles:
        value = [] if opt.is_flag else ["1"]
        result = invoke(name, opt.opts[0], *value, opt.opts[0], *value)
        assert result.exit_code == 2, (name, opt.opts[0], result.output)
        assert f"{opt.opts[0]}" in result.output and "given 2 times" in result.output, (
            name,
            result.output,
        )
        assert "Traceback" not in result.output
    for opt in (p for p in options(cmd) if p.multiple):  # repeatable ones stay repeatable
        result = invoke(name, opt.opts[0], "x", opt.opts[0], "y")
        assert "given 2 times" not in result.output, (name, opt.opts[0])


def test_a_flag_and_its_negation_together_are_refused():
    result = invoke("train", "--amp", "--no-amp")
    assert result.exit_code == 2 and "--amp/--no-amp given 2 times" in result.output


def test_evaluate_second_data_is_no_longer_dropped(tmp_path):
    """The issue's case: two --data sets must give two rows, not the last set alone."""
    from sod_train.data.synthetic import make_synthetic_duts

    a = make_synthetic_duts(tmp_path / "a", n=3, size=(32, 40), name="SETA")
    b = make_synthetic_duts(tmp_path / "b", n=2, size=(32, 40), name="SETB")
    result = invoke("evaluate", SMOKE, "--data", a, "--data", b, "--size", 32, "--quiet")
    assert result.exit_code == 0, result.output
    rows = result.stdout.strip().splitlines()[1:]
    assert [r.split()[1:3] for r in rows] == [["SETA", "3"], ["SETB", "2"]]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_described_and_help_shows_no_machine_path(name):
    cmd = command(name)
    undescribed = [p.opts[0] for p in options(cmd) if not p.help and p.name != "help"]
    assert undescribed == [], f"{name}: options without help: {undescribed}"
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # click wraps long defaults
    for path in {str(REPO), str(REPO.parent), os.path.expanduser("~"), "/home/"}:
        if path not in ("/", ""):
            assert path not in text, f"{name} --help shows {path}"


@pytest.mark.parametrize("name", JSON_COMMANDS)
def test_json_where_tools_consume(name):
    assert "--json" in flags(command(name)), name


@pytest.mark.parametrize("name", QUIET_COMMANDS)
def test_quiet_where_scripts_want_silence(name):
    assert "--quiet" in flags(command(name)), name


def test_check_and_diff_quiet_print_nothing_and_keep_the_exit_code(tmp_path):
    ok = invoke("check", SMOKE, "--quiet")
    assert ok.exit_code == 0 and ok.output == ""
    same = invoke("diff", SMOKE_METRICS, SMOKE_METRICS, "--quiet")
    assert same.exit_code == 0 and same.output == ""
    worse = json.loads(SMOKE_METRICS.read_text())
    for entry in worse["evaluations"].values():
        entry["metrics"]["maxF"] -= 0.1
    bad = tmp_path / "worse.metrics.json"
    bad.write_text(json.dumps(worse))
    failed = invoke("diff", SMOKE_METRICS, bad, "--quiet")
    assert failed.exit_code == 1
    assert failed.stdout == "" and failed.stderr.startswith("error: ")  # the one line only
    both = invoke("check", SMOKE, "--quiet", "--json")
    assert both.exit_code == 2 and "not both" in both.output


def test_predict_json_lists_what_it_wrote(tmp_path):
    rgb = (np.arange(24 * 30 * 3) % 251).astype(np.uint8).reshape(24, 30, 3)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = tmp_path / "a.mask.png"
    one = invoke("predict", tmp_path / "a.png", out, "--model", SMOKE, "--json", "--quiet")
    assert one.exit_code == 0, one.output
    doc = json.loads(one.stdout)
    assert doc["written"] == [
        {"input": str(tmp_path / "a.png"), "output": str(out), "width": 30, "height": 24}
    ]
    assert doc["model"] == str(SMOKE) and doc["skipped"] == [] and out.is_file()
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    many = invoke(
        "predict", tmp_path / "a.png", tmp_path / "broken.jpg", "--out", tmp_path / "o",
        "--model", SMOKE, "--json", "--quiet",
    )  # fmt: skip
    assert many.exit_code == 1  # a picture was skipped
    doc = json.loads(many.stdout)
    assert [Path(w["output"]).name for w in doc["written"]] == ["a.png.mask.png"]
    assert len(doc["skipped"]) == 1 and "broken.jpg" in doc["skipped"][0]["error"]
    refused = invoke("predict", tmp_path / "a.png", "-", "--model", SMOKE, "--json")
    assert refused.exit_code == 2 and "OUTPUT -" in refused.output


def test_fetch_json_reports_the_verified_data(tmp_path):
    data = duts_zip(3)
    archive = tmp_path / "mine.zip"
    archive.write_bytes(data)
    args = ["fetch", "duts-tr", "--dest", tmp_path / "d", "--archive", archive]
    result = invoke(*args, "--sha256", sha256(data), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["pairs"] == 3 and doc["already"] is False
    assert Path(doc["root"]) == tmp_path / "d" / "DUTS-TR" and len(doc["content_digest"]) == 64


def test_train_export_card_register_json_describe_the_release(synthetic_root, tmp_path):
    """train --json, export --json of its checkpoint, card --json and register --json agree
    with the files they name."""
    from sod_train.hashing import file_sha256

    registry = tmp_path / "model" / "tiny" / "registry.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(json.dumps({"schema_version": 1, "default": None, "models": []}))
    onnx_path = registry.parent / "tiny_v1.onnx"
    recipe = [
        "--preset",
        "anchor",
        "--epochs",
        1,
        "--batch-size",
        8,
        "--crop-size",
        32,
        "--min-val-iou",
        0,
    ]
    trained = invoke(
        "train", "--duts-root", synthetic_root, "--output", onnx_path, *recipe,
        "--checkpoint-dir", tmp_path / "ck", "--device", "cpu", "--quiet", "--json",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["onnx"] == str(onnx_path) and summary["sha256"] == file_sha256(onnx_path)
    assert Path(summary["metrics"]).is_file() and Path(summary["golden"]).is_file()
    assert summary["gate"]["passed"] is True and summary["best_epoch"] == 1

    again = tmp_path / "again.onnx"
    exported = invoke(
        "export", tmp_path / "ck", "--output", again, "--min-val-iou", 0, "--json", "--quiet"
    )
    assert exported.exit_code == 0 and exported.stderr == "", exported.output
    assert json.loads(exported.stdout)["sha256"] == file_sha256(again) == summary["sha256"]

    card_path = tmp_path / "docs/ai/models/tiny_v1.md"
    card = invoke("card", summary["metrics"], "--out", card_path, "--registry", registry, "--json")
    assert card.exit_code == 0, card.output
    assert json.loads(card.stdout)["card"] == str(card_path) and card_path.is_file()

    registered = invoke("register", onnx_path, "--registry", registry, "--json")
    assert registered.exit_code == 0, registered.output
    entry = json.loads(registered.stdout)
    assert entry == json.loads(registry.read_text())["models"][0]
    assert entry["sha256"] == summary["sha256"]
    quiet = invoke("register", onnx_path, "--registry", registry, "--quiet")
    assert quiet.exit_code == 0 and quiet.output == ""


def test_report_json_names_the_page_and_the_metrics(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="matplotlib is the report extra: pip install -e '.[report]'"
    )
    from sod_train.data.synthetic import make_synthetic_duts

    data = make_synthetic_duts(tmp_path / "d", n=3, size=(32, 40), name="DUTS-TE")
    out = tmp_path / "r.html"
    result = invoke(
        "report", SMOKE, "--data", data, "--size", 32, "--out", out, "--quiet", "--json"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["out"] == str(out) and out.is_file() and (doc["data"], doc["n"]) == ("DUTS-TE", 3)
    assert list(doc["models"]) == ["sod_tiny_smoke_cpu_v0"]
