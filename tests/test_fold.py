import json

import pytest
from click.testing import CliRunner

from sod_train.cli.main import main
from sod_train.export.export import export
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import train


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory):
    result = train(
        synthetic_root,
        TrainConfig(epochs=1, batch_size=8, crop_size=32),
        Runtime(device="cpu", quiet=True),
    )
    path = tmp_path_factory.mktemp("fold") / "m.onnx"
    export(result, path, min_val_iou=0)
    return result, path


def test_fold_iou_of_the_onnx_matches_the_trainers_validation(trained, synthetic_root):
    result, path = trained
    out = CliRunner().invoke(
        main,
        [
            "fold-iou",
            str(path),
            str(path),
            "--duts-root",
            str(synthetic_root),
            "--crop-size",
            "32",
            "--json",
            "--quiet",
        ],
    )
    assert out.exit_code == 0, out.output
    first, second = json.loads(out.output)
    assert first == second  # one decode, two models scored the same way
    assert first["n"] == 64
    assert first["iou"] == pytest.approx(result.best_val_iou, abs=1e-4)
    assert first["iou_batch"] == pytest.approx(result.best_val_iou_batch, abs=1e-4)


def test_a_bad_model_fails_before_decoding(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    out = CliRunner().invoke(main, ["fold-iou", str(bad), "--duts-root", str(tmp_path / "nowhere")])
    assert out.exit_code == 2 and "bad.onnx: cannot load" in out.output


def test_record_stores_the_fold_iou_in_a_valid_metrics_json(trained, synthetic_root):
    from sod_train.release.schema import validate_metrics

    _, path = trained
    metrics_path = path.with_suffix(".metrics.json")
    out = CliRunner().invoke(
        main,
        [
            "fold-iou",
            str(path),
            "--duts-root",
            str(synthetic_root),
            "--crop-size",
            "32",
            "--record",
            str(metrics_path),
            "--quiet",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(metrics_path.read_text())
    assert doc["fold_iou"]["n"] == 64 and doc["fold_iou"]["crop"] == 32
    assert validate_metrics(doc) == []
    two = CliRunner().invoke(
        main,
        [
            "fold-iou",
            str(path),
            str(path),
            "--duts-root",
            str(synthetic_root),
            "--record",
            str(metrics_path),
        ],
    )
    assert two.exit_code == 2
