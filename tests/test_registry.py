"""model/tiny/registry.json matches the files it lists, and the checker catches a wrong entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_schema import make_metrics

from sod_train.errors import SodTrainError
from sod_train.hashing import file_sha256
from sod_train.paths import REGISTRY_PATH, REPO_ROOT
from sod_train.release.registry import load_registry
from sod_train.release.schema import (
    registry_entry_problems,
    registry_file_problems,
    validate_registry,
)
from sod_train.runtime.modelfile import parameter_count


def _shipped_entries() -> list[dict[str, Any]]:
    """Entries of the committed registry ([] if it is broken: the schema test then fails)."""
    try:
        registry = load_registry(REGISTRY_PATH)
    except SodTrainError:
        return []
    return registry.get("models", []) if isinstance(registry, dict) else []


def test_committed_registry_validates():
    registry = load_registry(REGISTRY_PATH)
    assert validate_registry(registry) == []
    ids = [entry["id"] for entry in registry["models"]]
    if ids:
        assert registry["default"] in ids
    else:
        assert registry["default"] is None


@pytest.mark.parametrize("entry", _shipped_entries(), ids=lambda e: e.get("id", "?"))
def test_shipped_entry_matches_its_files(entry):
    """sha256, bytes, opset, params of the ONNX; metrics valid and for this file; card present."""
    assert registry_entry_problems(entry, REPO_ROOT) == []


# ---------------------------------------------------------------- a registry built in tmp_path


def _tiny_model(opset: int = 17) -> onnx.ModelProto:
    """input -> Conv(3->1, 3x3, bias) -> ConvTranspose(1->1, 1x1, no bias) -> Mul -> Sigmoid.

    Conv/ConvTranspose parameters: 27 + 1 + 1 = 29; the Mul constant must not count.
    """
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((1, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(1, np.float32), "b"),
        numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "wt"),
        numpy_helper.from_array(np.full(1, 2.0, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["c", "wt"], ["t"]),
        helper.make_node("Mul", ["t", "scale"], ["m"]),
        helper.make_node("Sigmoid", ["m"], ["saliency_map"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _release(root: Path, opset: int = 17) -> dict[str, Any]:
    """Write a tiny ONNX model, its metrics and card under root; return a correct registry."""
    onnx_path = root / "model" / "tiny" / "tiny_x.onnx"
    onnx_path.parent.mkdir(parents=True)
    onnx.save(_tiny_model(opset), str(onnx_path))
    metrics = make_metrics("tiny_x")
    metrics["onnx"].update(sha256=file_sha256(onnx_path), bytes=onnx_path.stat().st_size)
    (root / "model" / "tiny" / "tiny_x.metrics.json").write_text(json.dumps(metrics))
    card = root / "docs" / "ai" / "models" / "tiny_x.md"
    card.parent.mkdir(parents=True)
    card.write_text("# Model card: tiny_x\n")
    entry = {
        "id": "tiny_x",
        "onnx": "model/tiny/tiny_x.onnx",
        "sha256": file_sha256(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "opset": 17,
        "params": 29,
        "license": "BSD-2-Clause-Patent",
        "metrics": "model/tiny/tiny_x.metrics.json",
        "card": "docs/ai/models/tiny_x.md",
        "smoke": False,
    }
    return {"schema_version": 1, "default": "tiny_x", "models": [entry]}


def test_parameter_count_counts_conv_weights_and_biases_only():
    assert parameter_count(_tiny_model()) == 29


def test_correct_entry_has_no_problems(tmp_path):
    assert registry_file_problems(_release(tmp_path), tmp_path) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sha256", "0" * 64, "models[tiny_x].sha256: 0000"),
        ("bytes", 1, "models[tiny_x].bytes: 1 but model/tiny/tiny_x.onnx has"),
        ("params", 28, "models[tiny_x].params: 28 but the model has 29"),
        ("onnx", "model/tiny/absent.onnx", "models[tiny_x]: ONNX file model/tiny/absent.onnx not"),
        ("metrics", "model/tiny/absent.metrics.json", "models[tiny_x]: metrics file model/tiny/"),
        ("card", "docs/ai/models/absent.md", "models[tiny_x]: model card docs/ai/models/absent.md"),
        ("smoke", True, "models[tiny_x].smoke: True but model/tiny/tiny_x.metrics.json says"),
    ],
)
def test_wrong_entry_is_caught(tmp_path, field, value, expected):
    registry = _release(tmp_path)
    registry["models"][0][field] = value
    problems = registry_file_problems(registry, tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_wrong_opset_in_the_file_is_caught(tmp_path):
    registry = _release(tmp_path, opset=16)
    problems = registry_file_problems(registry, tmp_path)
    assert problems == ["models[tiny_x].opset: 17 but the model imports {'ai.onnx': 16}"]


def test_stale_or_invalid_metrics_are_caught(tmp_path):
    registry = _release(tmp_path)
    metrics_path = tmp_path / "model" / "tiny" / "tiny_x.metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["onnx"]["sha256"] = "1" * 64
    metrics_path.write_text(json.dumps(metrics))
    assert registry_file_problems(registry, tmp_path) == [
        "models[tiny_x]: model/tiny/tiny_x.metrics.json describes an ONNX file with another sha256"
    ]
    del metrics["gate"]
    metrics_path.write_text(json.dumps(metrics))
    assert registry_file_problems(registry, tmp_path) == [
        "models[tiny_x]: model/tiny/tiny_x.metrics.json: (top level): 'gate' is a required property"
    ]


def test_unloadable_onnx_is_reported_not_raised(tmp_path):
    registry = _release(tmp_path)
    onnx_path = tmp_path / "model" / "tiny" / "tiny_x.onnx"
    onnx_path.write_bytes(b"\x00garbage")
    problems = "\n".join(registry_file_problems(registry, tmp_path))
    assert "is not a loadable ONNX model" in problems
    assert "models[tiny_x].sha256:" in problems


def test_schema_problems_stop_before_file_checks(tmp_path):
    registry = _release(tmp_path)
    registry["default"] = "nope"
    assert registry_file_problems(registry, tmp_path) == [
        "default: 'nope' is not the id of any listed model"
    ]
