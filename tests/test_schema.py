"""The metrics and registry JSON Schemas: valid documents pass, broken ones name the problem.

``make_metrics`` builds a valid metrics document shaped like the trainer's output; the
diff, card and registry tests import it from here.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sod_train.release.schema import (
    METRICS_SCHEMA_PATH,
    REGISTRY_SCHEMA_PATH,
    validate_evaluations,
    validate_metrics,
    validate_registry,
)


def make_metrics(model_id: str = "tiny_a", smoke: bool | None = None) -> dict[str, Any]:
    """A valid metrics document in the trainer's shape, with distinct, realistic numbers."""
    digest = hashlib.sha256(model_id.encode()).hexdigest()
    doc: dict[str, Any] = {
        "schema_version": 1,
        "model_id": model_id,
        "created_by": "sod-train 0.1.0",
        "contract": {
            "input": {
                "name": "input",
                "dtype": "float32",
                "shape": [1, 3, "H", "W"],
                "normalisation": {
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "range": "RGB/255",
                },
            },
            "output": {
                "name": "saliency_map",
                "dtype": "float32",
                "shape": [1, 1, "H", "W"],
                "range": [0, 1],
            },
            "opset": 17,
        },
        "onnx": {
            "file": f"{model_id}.onnx",
            "sha256": digest,
            "bytes": 456789,
            "opset": 17,
            "ops": ["Conv", "ConvTranspose", "Relu", "MaxPool", "Concat", "Sigmoid"],
            "parity_max_abs_diff": {"256x256": 2.1e-7, "257x263": 3.4e-7, "97x131": 1.9e-7},
        },
        "model": {"arch": "tiny_unet", "config": {"width": 16, "depth": 4}, "params": 112841},
        "config": {
            "epochs": 3,
            "batch_size": 32,
            "lr": 0.001,
            "crop_size": 256,
            "seed": 42,
            "val_fraction": 0.05,
            "min_val_iou": 0.5,
            "preset": "default",
            "loss": "bce+dice",
            "optimizer": "adam",
            "schedule": "cosine",
        },
        "data": {
            "name": "DUTS-TR",
            "digest": "ab" * 32,
            "pairs": 10553,
            "train": 10025,
            "val": 528,
            "skipped_bad": 0,
            "skipped_files": [],
        },
        "training": {
            "history": [
                {
                    "epoch": e,
                    "train_loss": 0.6 - 0.1 * e,
                    "val_loss": 0.55 - 0.1 * e,
                    "val_iou": 0.5 + 0.05 * e,
                    "val_iou_batch": 0.52 + 0.05 * e,
                    "lr": 0.001 / e,
                    "seconds": 10.0,
                    "img_per_s": 1002.5,
                }
                for e in (1, 2, 3)
            ],
            "best_epoch": 3,
            "best_val_iou": 0.65,
            "best_val_iou_batch": 0.67,
            "seconds_total": 30.0,
        },
        "gate": {"metric": "val_iou", "value": 0.65, "threshold": 0.5, "passed": True},
        "environment": {
            "device": "cpu",
            "python": "3.11.7",
            "torch": "2.13.0",
            "onnx": "1.23.2",
            "onnxruntime": "1.31.1",
            "onnxsim": "0.8.1",
            "git_commit": None,
            "deterministic": True,
            "nondeterministic": [],
        },
        "evaluations": {
            "DUTS-TE": {
                "n": 5019,
                "size": 256,
                "protocol": "resize 256 bilinear, ImageNet norm, map back bilinear, uint8",
                "digest": "cd" * 32,
                "metrics": {
                    "maxF": 0.8123,
                    "meanF": 0.7012,
                    "adpF": 0.7345,
                    "wF": 0.6543,
                    "Sm": 0.8234,
                    "meanEm": 0.8456,
                    "maxEm": 0.8901,
                    "MAE": 0.0612,
                    "IoU": 0.6789,
                },
            }
        },
    }
    if smoke is not None:
        doc["smoke"] = smoke
    return doc


@pytest.mark.parametrize("path", [METRICS_SCHEMA_PATH, REGISTRY_SCHEMA_PATH])
def test_schema_files_are_valid_draft_2020_12(path):
    Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_valid_metrics_pass():
    assert validate_metrics(make_metrics()) == []
    assert validate_metrics(make_metrics(smoke=True)) == []


def test_evaluations_and_smoke_are_optional():
    doc = make_metrics()
    del doc["evaluations"]
    assert validate_metrics(doc) == []
    doc["evaluations"] = {}
    assert validate_metrics(doc) == []


def test_permissive_sections_accept_extra_keys():
    doc = make_metrics()
    doc["config"]["warmup_epochs"] = 2
    doc["model"]["config"]["norm"] = "batch"
    doc["environment"]["cuda"] = None
    doc["latency"] = {"256": 3.5, "540x960": 40.1}
    assert validate_metrics(doc) == []


@pytest.mark.parametrize("key", ["schema_version", "contract", "onnx", "gate", "environment"])
def test_missing_top_level_key_is_named(key):
    doc = make_metrics()
    del doc[key]
    assert validate_metrics(doc) == [f"(top level): '{key}' is a required property"]


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (("evaluations", "DUTS-TE", "metrics", "maxF"), 1.2, "evaluations.DUTS-TE.metrics.maxF:"),
        (("evaluations", "DUTS-TE", "metrics", "MAE"), -0.01, "evaluations.DUTS-TE.metrics.MAE:"),
        (("contract", "input", "name"), "image", "contract.input.name: 'input' was expected"),
        (("contract", "output", "name"), "saliency", "contract.output.name:"),
        (("contract", "input", "shape"), [1, 3, 256, 256], "contract.input.shape:"),
        (("contract", "opset"), 18, "contract.opset:"),
        (("onnx", "sha256"), "XYZ", "onnx.sha256:"),
        (("onnx", "opset"), 13, "onnx.opset:"),
        (("gate", "passed"), "yes", "gate.passed:"),
        (("schema_version",), 2, "schema_version:"),
        (("smoke",), "true", "smoke:"),
    ],
)
def test_broken_values_are_rejected_with_their_path(where, value, expected):
    doc = make_metrics()
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    problems = validate_metrics(doc)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_missing_metric_and_unknown_metric_are_rejected():
    doc = make_metrics()
    metrics = doc["evaluations"]["DUTS-TE"]["metrics"]
    del metrics["wF"]
    metrics["F1"] = 0.5
    problems = "\n".join(validate_metrics(doc))
    assert "'wF' is a required property" in problems
    assert "'F1' was unexpected" in problems


def test_nan_is_rejected():
    doc = make_metrics()
    doc["evaluations"]["DUTS-TE"]["metrics"]["Sm"] = float("nan")
    assert validate_metrics(doc)[0].startswith("(document): not representable")


def test_model_id_must_be_the_onnx_stem():
    doc = make_metrics()
    doc["model_id"] = "other"
    assert validate_metrics(doc) == ["model_id: 'other' is not the ONNX file's stem 'tiny_a'"]


def test_not_an_object_is_rejected():
    assert validate_metrics([1, 2]) != []


def test_evaluations_section_alone():
    evals = copy.deepcopy(make_metrics()["evaluations"])
    assert validate_evaluations(evals) == []
    evals["DUTS-TE"]["metrics"]["IoU"] = 3
    assert validate_evaluations(evals)[0].startswith("DUTS-TE.metrics.IoU:")


def _entry(model_id: str = "tiny_a") -> dict[str, Any]:
    return {
        "id": model_id,
        "onnx": f"model/tiny/{model_id}.onnx",
        "sha256": "ef" * 32,
        "bytes": 1234,
        "opset": 17,
        "params": 100,
        "license": "BSD-2-Clause-Patent",
        "metrics": f"model/tiny/{model_id}.metrics.json",
        "card": f"docs/ai/models/{model_id}.md",
        "smoke": False,
    }


def test_registry_schema():
    assert validate_registry({"schema_version": 1, "default": None, "models": []}) == []
    good = {"schema_version": 1, "default": "b", "models": [_entry("a"), _entry("b")]}
    assert validate_registry(good) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"default": "a", "models": []}, "default: 'a' is not of type 'null'"),
        ({"default": None}, "default: None is not of type 'string'"),
        ({"default": "zzz"}, "default: 'zzz' is not the id of any listed model"),
        ({"models": [_entry("a"), _entry("a")]}, "models: id 'a' appears more than once"),
        ({"schema_version": 2}, "schema_version:"),
    ],
)
def test_broken_registry_is_rejected(change, expected):
    registry = {"schema_version": 1, "default": "a", "models": [_entry("a")], **change}
    problems = validate_registry(registry)
    assert problems and problems[0].startswith(expected), problems


def test_registry_entry_fields_are_checked():
    entry = _entry()
    del entry["license"]
    entry["opset"] = 18
    problems = "\n".join(
        validate_registry({"schema_version": 1, "default": "tiny_a", "models": [entry]})
    )
    assert "models.0: 'license' is a required property" in problems
    assert "models.0.opset:" in problems
