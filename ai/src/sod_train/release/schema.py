"""Validate the release artefacts hosts rely on: the metrics JSON and the model registry.

The JSON Schemas live in ``model/tiny/`` (``metrics.schema.json``, ``registry.schema.json``)
so that non-Python tools can use them too; :mod:`jsonschema` applies them here. The few
rules a schema cannot state (the model id is the ONNX stem, registry ids are unique, the
default names a listed model, files match their recorded hashes) are checked in code.

Every function returns a list of ``"where: problem"`` lines, empty when all is well, so a
caller can print every problem at once.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from sod_train.errors import UserInputError
from sod_train.hashing import file_sha256
from sod_train.paths import MODEL_DIR, REPO_ROOT
from sod_train.runtime.modelfile import parameter_count

SCHEMA_DIR = MODEL_DIR
METRICS_SCHEMA_PATH = SCHEMA_DIR / "metrics.schema.json"
REGISTRY_SCHEMA_PATH = SCHEMA_DIR / "registry.schema.json"


_MAX_MESSAGE = 160


@functools.cache
def _load_schema(schema_path: Path) -> dict[str, Any]:
    """The parsed schema file (read once per process)."""
    try:
        return json.loads(schema_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{schema_path}: cannot read schema ({exc})") from None


@functools.cache
def _validator(schema_path: Path, definition: str | None = None) -> Any:
    """A Draft 2020-12 validator for a schema file, or for one of its ``$defs`` entries."""
    try:
        import jsonschema
    except ImportError:
        raise UserInputError(
            "jsonschema is not installed: pip install 'jsonschema>=4' "
            "(needed to validate metrics and registry files)"
        ) from None
    schema = _load_schema(schema_path)
    if definition is not None:
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
        for key in ("type", "required", "properties", "if", "then", "else"):
            schema.pop(key, None)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_problems(obj: Any, schema_path: Path, definition: str | None = None) -> list[str]:
    """Every schema violation of ``obj`` as ``"dotted.path: message"``, in a stable order.

    NaN and Infinity are rejected too: JSON has no such numbers, and a range check in the
    schema would let NaN through.
    """
    try:
        json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [f"(document): not representable as strict JSON ({exc})"]
    lines = []
    for error in _validator(schema_path, definition).iter_errors(obj):
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        lines.append(f"{where}: {message}")
    return sorted(set(lines))


def validate_metrics(obj: Any) -> list[str]:
    """Problems with a metrics JSON document (parsed), checked against metrics.schema.json.

    Also checks that ``model_id`` is the stem of ``onnx.file``, which ties the metrics to
    the model they describe.
    """
    problems = _schema_problems(obj, METRICS_SCHEMA_PATH)
    if not problems:
        stem = Path(obj["onnx"]["file"]).stem
        if obj["model_id"] != stem:
            problems.append(f"model_id: '{obj['model_id']}' is not the ONNX file's stem '{stem}'")
    return problems


def validate_evaluations(obj: Any) -> list[str]:
    """Problems with an ``evaluations`` section on its own (e.g. an anchor model's results)."""
    return _schema_problems(obj, METRICS_SCHEMA_PATH, "evaluations")


REGISTRY_PATH_KEYS = ("onnx", "metrics", "card")  # paths relative to the repository root


def validate_registry(obj: Any) -> list[str]:
    """Problems with a registry document (parsed): schema, unique ids, default is listed,
    and every path in it plain and relative (no absolute path, no ``..``), so it cannot
    name a file outside the repository."""
    from sod_train.guards import plain_relative

    problems = _schema_problems(obj, REGISTRY_SCHEMA_PATH)
    if problems:
        return problems
    for i, entry in enumerate(obj["models"]):
        for key in REGISTRY_PATH_KEYS:
            if (why := plain_relative(entry[key])) is not None:
                problems.append(
                    f"models.{i}.{key}: {entry[key]!r} {why}; it must stay inside the repository"
                )
    ids = [entry["id"] for entry in obj["models"]]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"models: id '{dup}' appears more than once")
    if obj["default"] is not None and obj["default"] not in ids:
        problems.append(f"default: '{obj['default']}' is not the id of any listed model")
    return problems


def registry_entry_problems(entry: dict[str, Any], root: Path = REPO_ROOT) -> list[str]:
    """Compare one (schema-valid) registry entry with the ONNX, metrics and card files it names."""
    from sod_train.guards import confined

    where = f"models[{entry['id']}]"
    try:  # symlinks that lead out of the repository
        for key in REGISTRY_PATH_KEYS:
            confined(root, entry[key], f"{where}.{key}", "the registry")
    except UserInputError as exc:
        return [str(exc).removeprefix("the registry: ")]
    onnx_path = root / entry["onnx"]
    if not onnx_path.is_file():
        return [f"{where}: ONNX file {entry['onnx']} not found"]
    problems = []
    actual_sha = file_sha256(onnx_path)
    if actual_sha != entry["sha256"]:
        problems.append(f"{where}.sha256: {entry['sha256']} but {entry['onnx']} has {actual_sha}")
    size = onnx_path.stat().st_size
    if size != entry["bytes"]:
        problems.append(f"{where}.bytes: {entry['bytes']} but {entry['onnx']} has {size}")
    from sod_train.runtime.modelfile import read_model

    try:
        _, model = read_model(onnx_path)
    except UserInputError as exc:  # any read or decode failure is a problem, not a crash
        problems.append(f"{where}: {entry['onnx']} is not a loadable ONNX model ({exc})")
    else:
        opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
        if opsets.get("ai.onnx") != entry["opset"]:
            problems.append(f"{where}.opset: {entry['opset']} but the model imports {opsets}")
        params = parameter_count(model)
        if params != entry["params"]:
            problems.append(f"{where}.params: {entry['params']} but the model has {params}")
    problems += _entry_metrics_problems(entry, root, actual_sha)
    if not (root / entry["card"]).is_file():
        problems.append(f"{where}: model card {entry['card']} not found (run sod-train card)")
    return problems


def _entry_metrics_problems(entry: dict[str, Any], root: Path, onnx_sha: str) -> list[str]:
    """Check that the entry's metrics file exists, validates and describes this ONNX file."""
    where = f"models[{entry['id']}]"
    if not (root / entry["metrics"]).exists():
        return [f"{where}: metrics file {entry['metrics']} not found"]
    try:
        from sod_train.guards import read_json

        metrics = read_json(root / entry["metrics"], "the metrics JSON")
    except UserInputError as exc:
        return [f"{where}: metrics file {entry['metrics']} is unreadable ({exc})"]
    invalid = validate_metrics(metrics)
    if invalid:
        return [f"{where}: {entry['metrics']}: {line}" for line in invalid]
    problems = []
    if metrics["onnx"]["sha256"] != onnx_sha:
        problems.append(f"{where}: {entry['metrics']} describes an ONNX file with another sha256")
    if metrics["model_id"] != entry["id"]:
        problems.append(f"{where}: {entry['metrics']} is for model '{metrics['model_id']}'")
    if bool(metrics.get("smoke", False)) != entry["smoke"]:
        problems.append(f"{where}.smoke: {entry['smoke']} but {entry['metrics']} says otherwise")
    return problems


def registry_file_problems(registry: dict[str, Any], root: Path = REPO_ROOT) -> list[str]:
    """Check a registry document and every file its entries name (paths relative to root).

    Catches a model re-exported without updating the registry, a stale metrics file and a
    missing card: the registry is what release tooling and hosts trust.
    """
    problems = validate_registry(registry)
    if problems:
        return problems
    for entry in registry["models"]:
        problems += registry_entry_problems(entry, Path(root))
    return problems
