"""`sod-train card`: the Markdown model card carries the metrics file's numbers, faithfully."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from test_schema import make_metrics

from sod_train.cli.main import main
from sod_train.release import card as card_module
from sod_train.release.card import render_card, write_card

LICENCE = "CC-BY-NC-4.0 (weights)"


def _entry(metrics: dict[str, Any], smoke: bool = False) -> dict[str, Any]:
    mid = metrics["model_id"]
    return {
        "id": mid,
        "onnx": f"model/tiny/{mid}.onnx",
        "sha256": metrics["onnx"]["sha256"],
        "bytes": metrics["onnx"]["bytes"],
        "opset": 17,
        "params": 1000,
        "license": LICENCE,
        "metrics": f"model/tiny/{mid}.metrics.json",
        "card": f"docs/ai/models/{mid}.md",
        "smoke": smoke,
    }


def _files(tmp_path: Path, metrics: dict[str, Any], entries: list[dict[str, Any]]):
    metrics_path = tmp_path / f"{metrics['model_id']}.metrics.json"
    metrics_path.write_text(json.dumps(metrics))
    registry_path = tmp_path / "registry.json"
    default = entries[0]["id"] if entries else None
    registry_path.write_text(
        json.dumps({"schema_version": 1, "default": default, "models": entries})
    )
    return metrics_path, registry_path


def test_card_carries_the_numbers():
    metrics = make_metrics()
    text = render_card(metrics, _entry(metrics))
    assert text.startswith("# Model card: tiny_a\n")
    # contract
    assert "| input | `input` | float32 | [1, 3, H, W] |" in text
    assert "| output | `saliency_map` | float32 | [1, 1, H, W] |" in text
    assert "subtract mean [0.485, 0.456, 0.406], divide by std [0.229, 0.224, 0.225]" in text
    assert "**Opset** 17" in text
    assert "`Conv`, `ConvTranspose`, `Relu`, `MaxPool`, `Concat`, `Sigmoid`" in text
    assert "256x256: 2.1e-07, 257x263: 3.4e-07, 97x131: 1.9e-07" in text
    # summary, provenance, licence
    assert "112,841 parameters" in text
    assert metrics["onnx"]["sha256"] in text
    assert "Wang et al." in text and "CVPR 2017" in text
    assert "free for academic research" in text and "never redistributed" in text
    assert f"**Weights licence:** {LICENCE}." in text
    # recipe and fold IoU both ways
    assert "| `batch_size` | 32 |" in text and "| `loss` | bce+dice |" in text
    assert "| this model, best epoch 3 (validated at 256) | 0.6500 | 0.6700 |" in text
    # history: first and best/last epoch rows
    assert "| 1 | 0.5000 | 0.4500 | 0.5500 | 0.5700 | 1.00e-03 | 1002.5 |" in text
    assert "| 3 (best) |" in text
    # benchmark row, in the documented column order
    header = "| data set | n | size | maxF | meanF | adpF | wF | Sm | meanEm | maxEm | MAE | IoU |"
    assert header in text
    assert (
        "| **DUTS-TE** | 5019 | 256×256 | 0.8123 | 0.7012 | 0.7345 | 0.6543 | 0.8234 | 0.8456 "
        "| 0.8901 | 0.0612 | 0.6789 |"
    ) in text
    assert metrics["evaluations"]["DUTS-TE"]["protocol"] in text
    assert "`tiny_a.golden.json`" in text
    assert "## Known limits" in text
    assert "smoke model" not in text.lower()


def test_smoke_banner():
    metrics = make_metrics(smoke=True)
    assert "> **Warning: smoke model.**" in render_card(metrics, None)
    # the registry's smoke flag raises the banner too
    plain = make_metrics()
    assert "> **Warning: smoke model.**" in render_card(plain, _entry(plain, smoke=True))
    assert "Warning: smoke model" not in render_card(plain, _entry(plain))


def test_latency_and_missing_parts():
    metrics = make_metrics()
    assert "Not recorded in the metrics JSON" in render_card(metrics, None)
    metrics["latency"] = {"540x960": 41.234, "256": 3.5}
    del metrics["evaluations"]
    text = render_card(metrics, None)
    assert text.index("| 256×256 | 3.50 |") < text.index("| 540×960 | 41.23 |")
    assert "No evaluations recorded" in text
    assert "not recorded (model not in `model/tiny/registry.json`)" in text


def test_render_is_deterministic():
    metrics = make_metrics()
    assert render_card(metrics, _entry(metrics)) == render_card(make_metrics(), _entry(metrics))


def test_cli_writes_the_card_deterministically(tmp_path):
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [_entry(metrics)])
    out = tmp_path / "cards" / "tiny_a.md"
    args = ["card", str(metrics_path), "--out", str(out), "--registry", str(registry_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    first = out.read_bytes()
    assert first.decode() == render_card(metrics, _entry(metrics))
    assert CliRunner().invoke(main, args).exit_code == 0
    assert out.read_bytes() == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny_a.md"]  # no temp files


def test_default_destination_is_the_registry_card_path(tmp_path, monkeypatch):
    monkeypatch.setattr(card_module, "REPO_ROOT", tmp_path)
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [_entry(metrics)])
    written = write_card(metrics_path, registry_path=registry_path)
    assert written == tmp_path / "docs" / "ai" / "models" / "tiny_a.md"
    assert LICENCE in written.read_text()


def test_anchor_rows(tmp_path):
    metrics = make_metrics()
    anchor = {"model_id": "saliency_student_v2", "evaluations": make_metrics()["evaluations"]}
    anchor["evaluations"]["DUTS-TE"]["metrics"]["maxF"] = 0.7777
    anchor_path = tmp_path / "anchor.json"
    anchor_path.write_text(json.dumps(anchor))
    metrics_path, registry_path = _files(tmp_path, metrics, [])
    out = write_card(metrics_path, tmp_path / "c.md", registry_path, [anchor_path])
    assert "| DUTS-TE, anchor `saliency_student_v2` | 5019 | 256×256 | 0.7777 |" in (
        out.read_text()
    )


def test_bad_inputs_exit_2_naming_the_file(tmp_path):
    metrics = make_metrics()
    metrics_path, registry_path = _files(tmp_path, metrics, [])
    runner = CliRunner()

    broken = make_metrics()
    broken["evaluations"]["DUTS-TE"]["metrics"]["MAE"] = 2
    broken_path = tmp_path / "broken.metrics.json"
    broken_path.write_text(json.dumps(broken))
    result = runner.invoke(main, ["card", str(broken_path), "--registry", str(registry_path)])
    assert result.exit_code == 2
    assert f"{broken_path}: not a valid metrics file: evaluations.DUTS-TE.metrics.MAE" in (
        result.stderr
    )

    result = runner.invoke(
        main,
        ["card", str(metrics_path), "--out", str(metrics_path), "--registry", str(registry_path)],
    )
    assert result.exit_code == 2
    assert "refusing to overwrite the metrics JSON" in result.stderr
    assert json.loads(metrics_path.read_text()) == metrics

    other = _entry(metrics)
    other["sha256"] = "0" * 64
    metrics_path, registry_path = _files(tmp_path, metrics, [other])
    out = tmp_path / "x.md"
    args = ["card", str(metrics_path), "--out", str(out), "--registry", str(registry_path)]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "entry 'tiny_a' has sha256 0000" in result.stderr
    assert not out.exists()


def test_recorded_fold_iou_rows_for_the_model_and_anchors(tmp_path):
    metrics = make_metrics()
    metrics["fold_iou"] = {
        "crop": 256,
        "seed": 42,
        "val_fraction": 0.05,
        "n": 528,
        "iou": 0.7012,
        "iou_batch": 0.7003,
    }
    anchor = {
        "model_id": "v1",
        "evaluations": {},
        "fold_iou": {**metrics["fold_iou"], "iou": 0.6565, "iou_batch": 0.6557},
    }
    text = render_card(metrics, None, {"v1": anchor})
    assert "| this model, `sod-train fold-iou` (crop 256, n 528) | 0.7012 | 0.7003 |" in text
    assert "| anchor `v1`, `sod-train fold-iou` (crop 256, n 528) | 0.6565 | 0.6557 |" in text


def test_build_and_cost_sections_come_from_the_metrics():
    metrics = make_metrics()
    metrics["training"]["wall_seconds"] = 3110.0
    metrics["environment"].update({"threads": 2, "amp": True, "cpu_bf16_features": ["x_bf16"]})
    metrics["build"] = {
        "command": "python ai/scripts/train_saliency_student.py --preset release",
        "machine": "two test cores",
        "reproduced": "yes: a second run gave the same sha256",
    }
    metrics["cost"] = {
        "note": "one bench run",
        "models": {"ours": {"params": 97185, "gmac_256": 0.0746, "ms_1080p_2t": 207.9}},
    }
    text = render_card(metrics, _entry(metrics))
    assert "## Reproducible build" in text and "--preset release" in text
    assert "51.8 min" in text and "bf16 autocast on" in text and "x_bf16" in text
    assert "yes: a second run gave the same sha256" in text
    assert "| `ours` | 97,185 | 0.075 | — | 207.9 |" in text
    assert "## Cost" not in render_card(make_metrics(), None)
