import json

from click.testing import CliRunner

from sod_train.cli.main import main
from sod_train.export.export import export
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import train


def test_register_lists_a_released_model_and_refuses_an_incomplete_one(synthetic_root, tmp_path):
    registry = tmp_path / "model" / "tiny" / "registry.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(json.dumps({"schema_version": 1, "default": None, "models": []}))
    result = train(
        synthetic_root,
        TrainConfig(epochs=1, batch_size=8, crop_size=32),
        Runtime(device="cpu", quiet=True),
    )
    onnx_path = registry.parent / "tiny_v1.onnx"
    export(result, onnx_path, min_val_iou=0)
    runner = CliRunner()

    no_card = runner.invoke(main, ["register", str(onnx_path), "--registry", str(registry)])
    assert (
        no_card.exit_code == 1
        and "model card docs/ai/models/tiny_v1.md not found" in no_card.output
    )
    assert json.loads(registry.read_text())["models"] == []  # untouched

    card = runner.invoke(
        main,
        [
            "card",
            str(onnx_path.with_suffix(".metrics.json")),
            "--out",
            str(tmp_path / "docs/ai/models/tiny_v1.md"),
        ],
    )
    assert card.exit_code == 0, card.output
    ok = runner.invoke(main, ["register", str(onnx_path), "--registry", str(registry)])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(registry.read_text())
    assert doc["default"] == "tiny_v1"
    (entry,) = doc["models"]
    assert entry["onnx"] == "model/tiny/tiny_v1.onnx" and entry["params"] == 112_545
    assert entry["smoke"] is False and entry["opset"] == 17

    again = runner.invoke(main, ["register", str(onnx_path), "--registry", str(registry)])
    assert again.exit_code == 0 and len(json.loads(registry.read_text())["models"]) == 1

    outside = tmp_path.parent / "elsewhere.onnx"
    outside.write_bytes(b"x")
    bad = runner.invoke(main, ["register", str(outside), "--registry", str(registry)])
    assert bad.exit_code == 2 and "must live inside" in bad.output
