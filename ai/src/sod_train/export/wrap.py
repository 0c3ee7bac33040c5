"""Give a shipped ONNX model the scale normaliser by graph surgery (``sod-train normalise``).

For a release whose checkpoint is gone: the network's bytes stay exactly as shipped, the
normaliser (:mod:`sod_train.export.normaliser`) is put around them, and the result goes
through the same gate as an export: every rule of ``check`` on the bytes to be written,
then parity of the wrapped file against the normaliser's numpy reference around the
original file, then the ONNX file, golden vectors and metrics JSON, all or nothing.

The metrics JSON is the source model's (recipe, data, training record, build), with the
``onnx`` section rewritten for the new file, ``derived_from`` naming the source and the
command, and the measurements of the old graph (``evaluations``, ``fold_iou``, ``cost``,
``latency``) and its ``build`` dropped: they must be measured again on the new file, and
the source's own build record (on its card) rebuilds the source.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sod_train.check.allowlist import DEFAULT_ALLOWLIST, iter_nodes, load_allowlist
from sod_train.check.check import check_proto
from sod_train.errors import GateError, UserInputError
from sod_train.export.export import (
    PARITY_TOLERANCE,
    finite_or_null,
    parity_sizes,
    write_release,
)
from sod_train.export.normaliser import add_normaliser, check_working_size, reference_map
from sod_train.guards import check_output_file, check_release_outputs, read_json_object
from sod_train.runtime.model import SaliencyModel
from sod_train.runtime.modelfile import read_model

# Records of the source file that do not hold for the wrapped one: its measurements, and
# its build (which rebuilds the source; ``derived_from`` says how this file follows).
MEASURED_KEYS = ("evaluations", "fold_iou", "cost", "latency", "build")


def source_metrics_path(model: Path) -> Path:
    """The metrics JSON shipped next to ``model``: ``x.onnx`` -> ``x.metrics.json``."""
    return model.with_suffix(".metrics.json")


def wrap_metrics(
    source: dict[str, Any],
    model_id: str,
    onnx_bytes: bytes,
    ops: list[str],
    parity: dict[str, float],
    working_size: int,
    source_sha256: str,
) -> dict[str, Any]:
    """The new file's metrics: the source's record, the new ``onnx`` section, provenance."""
    doc = {key: value for key, value in source.items() if key not in MEASURED_KEYS}
    doc["model_id"] = model_id
    doc["onnx"] = {
        "file": f"{model_id}.onnx",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "bytes": len(onnx_bytes),
        "opset": source.get("onnx", {}).get("opset", 17),
        "ops": ops,
        "parity_max_abs_diff": parity,
        "working_size": working_size,
    }
    if isinstance(doc.get("config"), dict):
        doc["config"] = {**doc["config"], "working_size": working_size}
    doc["derived_from"] = {
        "model_id": source.get("model_id"),
        "sha256": source_sha256,
        "how": f"sod-train normalise --working-size {working_size}: the source network's "
        "bytes unchanged inside the scale normaliser",
    }
    return doc


def wrap_release(
    source: Path,
    output: Path,
    working_size: int,
    metrics_in: Path | None = None,
    metrics_out: Path | None = None,
    allowlist_path: Path = DEFAULT_ALLOWLIST,
) -> dict[str, Any]:
    """Wrap ``source`` in the normaliser and write ``output`` (+ golden + metrics); the metrics.

    Raises UserInputError for an unreadable source or metrics JSON, a source that already
    normalises its scale, or ``working_size`` 0; GateError (nothing written) if the result
    breaks the contract or parity.
    """
    check_working_size(working_size)
    if working_size == 0:
        raise UserInputError("--working-size 0 would copy the model unchanged; give T >= 16")
    check_output_file(output, "the wrapped model")  # '' or '.' name no file to suffix
    metrics_in = metrics_in or source_metrics_path(source)
    metrics_out = metrics_out or output.with_suffix(".metrics.json")
    check_release_outputs(
        output,
        metrics_out,
        reads=[
            ("the source model", source),
            ("the source metrics JSON", metrics_in),
            ("the op allowlist", allowlist_path),
        ],
    )
    source_metrics = read_json_object(metrics_in, "the source model's metrics JSON")
    for key in ("onnx", "config"):  # the sections the new metrics are built from
        if not isinstance(source_metrics.get(key, {}), dict):
            kind = type(source_metrics[key]).__name__
            raise UserInputError(f"{metrics_in}: {key}: expected an object, got {kind}")
    data, proto = read_model(source)
    try:
        wrapped = add_normaliser(proto, working_size)
    except UserInputError as exc:
        raise UserInputError(f"{source}: {exc}") from None
    wrapped_bytes = wrapped.SerializeToString()
    report = check_proto(wrapped_bytes, wrapped, output, load_allowlist(allowlist_path))
    if not report.passed:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failed)
        raise GateError(f"normalise: the wrapped model breaks the host contract ({failed})")
    inner = SaliencyModel.open(data, label=str(source))
    outer = SaliencyModel.open(wrapped_bytes, label=str(output))
    parity: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for h, w in parity_sizes(working_size):
        x = rng.standard_normal((1, 3, h, w), dtype=np.float32)
        diff = float(np.abs(outer.run(x) - reference_map(inner.run, x, working_size)).max())
        parity[f"{h}x{w}"] = diff
        if diff > PARITY_TOLERANCE:
            raise GateError(
                f"normalise: wrapped vs reference max abs diff {diff:.2e} at {h}x{w} "
                f"exceeds {PARITY_TOLERANCE}"
            )
    ops = sorted({node.op_type for _, node in iter_nodes(wrapped.graph)})  # If branches too
    metrics = wrap_metrics(
        source_metrics,
        output.stem,
        wrapped_bytes,
        ops,
        parity,
        working_size,
        hashlib.sha256(data).hexdigest(),
    )
    text = json.dumps(finite_or_null(metrics), indent=2, allow_nan=False) + "\n"
    write_release(output, wrapped_bytes, metrics_out, text)
    return metrics
