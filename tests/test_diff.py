"""`sod-train diff`: exit codes, the named regressions and the --json report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_schema import make_metrics

from sod_train.cli.main import main


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _diff(tmp_path: Path, old: Any, new: Any, *args: str):
    old_path = _write(tmp_path / "old.metrics.json", old)
    new_path = _write(tmp_path / "new.metrics.json", new)
    return CliRunner().invoke(main, ["diff", str(old_path), str(new_path), *args])


def _set_metric(doc: dict[str, Any], metric: str, value: float) -> dict[str, Any]:
    doc["evaluations"]["DUTS-TE"]["metrics"][metric] = value
    return doc


def test_equal_files_pass(tmp_path):
    result = _diff(tmp_path, make_metrics(), make_metrics())
    assert result.exit_code == 0, result.output
    assert "RESULT: PASS" in result.output
    # every shared metric appears in the table, plus the training-fold IoUs
    table = [line.split() for line in result.output.splitlines()]
    shown = [(row[0], row[1]) for row in table if row[-1:] == ["same"]]
    assert shown == [
        *(("DUTS-TE", m) for m in ["maxF", "meanF", "adpF", "wF", "Sm", "meanEm", "maxEm", "MAE"]),
        ("DUTS-TE", "IoU"),
        ("training-val", "best_val_iou"),
        ("training-val", "best_val_iou_batch"),
    ]


def test_drop_beyond_tolerance_fails_naming_the_metric(tmp_path):
    new = _set_metric(make_metrics(), "Sm", 0.8234 - 0.02)
    result = _diff(tmp_path, make_metrics(), new)
    assert result.exit_code == 1
    assert "DUTS-TE Sm dropped by 0.0200" in result.output
    assert "error:" in result.stderr and "DUTS-TE Sm dropped" in result.stderr
    row = next(
        ln.split() for ln in result.output.splitlines() if ln.split()[:2] == ["DUTS-TE", "Sm"]
    )
    assert row[2:] == ["0.8234", "0.8034", "-0.0200", "REGRESSED"]


def test_drop_within_tolerance_passes(tmp_path):
    new = _set_metric(make_metrics(), "maxF", 0.8123 - 0.003)
    result = _diff(tmp_path, make_metrics(), new)
    assert result.exit_code == 0, result.output
    assert "worse<=tol" in result.output


def test_drop_of_exactly_the_tolerance_passes(tmp_path):
    new = _set_metric(make_metrics(), "maxF", 0.8123 - 0.005)
    assert _diff(tmp_path, make_metrics(), new).exit_code == 0


def test_max_drop_option_is_applied(tmp_path):
    new = _set_metric(make_metrics(), "maxF", 0.8123 - 0.003)
    result = _diff(tmp_path, make_metrics(), new, "--max-drop", "0.001")
    assert result.exit_code == 1
    assert "DUTS-TE maxF dropped" in result.output


def test_mae_rise_fails_and_mae_fall_is_better(tmp_path):
    result = _diff(tmp_path, make_metrics(), _set_metric(make_metrics(), "MAE", 0.0712))
    assert result.exit_code == 1
    assert "DUTS-TE MAE rose by 0.0100" in result.output
    result = _diff(tmp_path, make_metrics(), _set_metric(make_metrics(), "MAE", 0.0412))
    assert result.exit_code == 0, result.output
    assert next(ln for ln in result.output.splitlines() if "  MAE " in ln).endswith("better")


def test_training_val_iou_drop_fails(tmp_path):
    new = make_metrics()
    new["training"]["best_val_iou_batch"] = 0.60
    result = _diff(tmp_path, make_metrics(), new)
    assert result.exit_code == 1
    assert "training-val best_val_iou_batch dropped by 0.0700" in result.output


def test_new_gate_failure_fails(tmp_path):
    new = make_metrics()
    new["gate"]["passed"] = False
    result = _diff(tmp_path, make_metrics(), new)
    assert result.exit_code == 1
    assert "NEW fails its training gate" in result.output


def test_contract_change_fails(tmp_path):
    new = make_metrics()
    new["contract"]["input"]["normalisation"]["mean"] = [0.5, 0.5, 0.5]
    result = _diff(tmp_path, make_metrics(), new)
    assert result.exit_code == 1
    assert "contract.input.normalisation.mean: [0.485, 0.456, 0.406] -> [0.5, 0.5, 0.5]" in (
        result.output
    )
    assert "host contract changed" in result.output


def test_missing_dataset_fails_and_added_one_is_noted(tmp_path):
    old = make_metrics()
    old["evaluations"]["ECSSD"] = old["evaluations"]["DUTS-TE"]
    new = make_metrics()
    new["evaluations"]["HKU-IS"] = new["evaluations"].pop("DUTS-TE")
    result = _diff(tmp_path, old, new)
    assert result.exit_code == 1
    assert "data set 'DUTS-TE' is evaluated in OLD but missing from NEW" in result.output
    assert "data set 'ECSSD' is evaluated in OLD but missing from NEW" in result.output
    assert "new in NEW (not compared): HKU-IS" in result.output


def test_changed_eval_data_is_noted(tmp_path):
    new = make_metrics()
    new["evaluations"]["DUTS-TE"]["digest"] = "ee" * 32
    result = _diff(tmp_path, make_metrics(), new)
    assert result.exit_code == 0
    assert "note: DUTS-TE: digest differ" in result.output


@pytest.mark.parametrize("side", ["old", "new"])
def test_schema_invalid_file_fails_naming_it(tmp_path, side):
    broken = make_metrics()
    del broken["gate"]
    docs = {"old": make_metrics(), "new": make_metrics(), side: broken}
    result = _diff(tmp_path, docs["old"], docs["new"])
    assert result.exit_code == 1
    expected = f"{side.upper()} {tmp_path / f'{side}.metrics.json'} fails the metrics schema"
    assert f"{expected}: (top level): 'gate' is a required property" in result.output


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b"NaN", b""])
def test_garbage_file_exits_2(tmp_path, content):
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(content)
    good = _write(tmp_path / "good.metrics.json", make_metrics())
    result = CliRunner().invoke(main, ["diff", str(good), str(garbage)])
    assert result.exit_code == 2
    assert f"error: {garbage}: not valid JSON" in result.stderr
    assert "Traceback" not in result.output


def test_missing_file_exits_2(tmp_path):
    good = _write(tmp_path / "good.metrics.json", make_metrics())
    result = CliRunner().invoke(main, ["diff", str(tmp_path / "absent.json"), str(good)])
    assert result.exit_code == 2
    assert "absent.json: cannot read" in result.stderr


def test_json_output(tmp_path):
    new = _set_metric(make_metrics("tiny_b"), "IoU", 0.6)
    result = _diff(tmp_path, make_metrics(), new, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {
        "passed", "old", "new", "max_drop", "old_model", "new_model", "schema",
        "contract_changes", "rows", "missing_datasets", "added_datasets", "gate", "notes",
        "failures",
    }  # fmt: skip
    assert report["passed"] is False
    assert (report["old_model"], report["new_model"]) == ("tiny_a", "tiny_b")
    assert report["max_drop"] == 0.005
    assert len(report["rows"]) == 9 + 2
    iou = next(r for r in report["rows"] if r["section"] == "DUTS-TE" and r["metric"] == "IoU")
    assert iou["old"] == 0.6789 and iou["new"] == 0.6
    assert iou["delta"] == pytest.approx(-0.0789)
    assert iou["verdict"] == "REGRESSED"
    assert report["failures"] == [
        "DUTS-TE IoU dropped by 0.0789 (0.6789 -> 0.6000, tolerance 0.005)"
    ]
    assert report["gate"] == {"old": True, "new": True}


def test_negative_max_drop_is_a_usage_error(tmp_path):
    result = _diff(tmp_path, make_metrics(), make_metrics(), "--max-drop", "-1")
    assert result.exit_code == 2
