"""The model registry: ``model/tiny/registry.json`` lists every shipped ONNX model.

Format (validated by ``model/tiny/registry.schema.json``)::

    {"schema_version": 1, "default": "<id>",
     "models": [{"id", "onnx", "sha256", "bytes", "opset", "params", "license",
                 "metrics", "card", "smoke"}]}

Paths inside are relative to the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sod_train.errors import UserInputError, joined
from sod_train.paths import CARD_DIR, REGISTRY_PATH


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Any]:
    """Read the registry JSON and check it against its schema; UserInputError naming the file.

    Bounded and strict like every JSON read (:func:`sod_train.guards.read_json`), so a
    malformed registry is one clear line, never a KeyError later.
    """
    from sod_train.guards import read_json
    from sod_train.release.schema import validate_registry

    if not Path(path).exists():
        raise UserInputError(f"{path}: model registry not found")
    registry = read_json(path, "the model registry")
    problems = validate_registry(registry)
    if problems:
        raise UserInputError(f"{path}: invalid model registry: {joined(problems, 1)}")
    return registry


def model_entry(model_id: str | None = None, path: Path = REGISTRY_PATH) -> dict[str, Any]:
    """The registry entry for ``model_id`` (default: the registry's ``default``)."""
    registry = load_registry(path)
    wanted = model_id or registry.get("default")
    if wanted is None:
        raise UserInputError(f"{path}: no default model is registered yet")
    for entry in registry["models"]:
        if entry["id"] == wanted:
            return entry
    raise UserInputError(f"{path}: no model with id '{wanted}'")


def registry_root(path: Path = REGISTRY_PATH) -> Path:
    """The folder the registry's paths are relative to: the repository root, two levels
    above ``model/tiny/registry.json``."""
    resolved = Path(path).resolve()
    return resolved.parents[2] if len(resolved.parents) > 2 else resolved.parent


def entry_file(entry: dict[str, Any], key: str, path: Path = REGISTRY_PATH) -> Path:
    """The file an entry's ``key`` (``onnx``, ``metrics``, ``card``) names, confined to
    the repository root (:func:`sod_train.guards.confined`: no ``..``, no absolute path,
    no symlink out); UserInputError naming the registry and the key otherwise."""
    from sod_train.guards import confined

    return confined(registry_root(path), entry[key], f"models[{entry['id']}].{key}", path)


def default_model_path(path: Path = REGISTRY_PATH) -> Path:
    """Absolute path of the default shipped ONNX model."""
    entry = model_entry(None, path)
    return entry_file(entry, "onnx", path).resolve()


def register_model(
    onnx_path: Path, license: str, make_default: bool = False, path: Path = REGISTRY_PATH
) -> dict[str, Any]:
    """Add (or replace) the registry entry for ``onnx_path`` and write the registry atomically.

    The entry is computed from the files (sha256, bytes, opset, params, smoke flag of
    the metrics JSON) and the whole registry is checked against every file it names
    before anything is written, so a stale or half-released model never gets listed.
    """
    from sod_train import atomicio
    from sod_train.errors import GateError
    from sod_train.guards import read_json, refuse_aliases, require_regular_file
    from sod_train.hashing import file_sha256
    from sod_train.release.schema import registry_file_problems, validate_metrics
    from sod_train.runtime.modelfile import parameter_count, read_model

    require_regular_file(onnx_path, "the ONNX model")  # named as given, before resolving
    root = registry_root(path)
    onnx_path = Path(onnx_path).resolve()
    try:
        rel = onnx_path.relative_to(root)
    except ValueError:
        raise UserInputError(f"{onnx_path}: a registered model must live inside {root}") from None
    metrics_rel = rel.with_suffix(".metrics.json")
    card_rel = CARD_DIR / f"{rel.stem}.md"
    reads = [("the model", onnx_path), ("its metrics", root / metrics_rel)]
    refuse_aliases([*reads, ("its card", root / card_rel)], [("the registry", Path(path))])
    registry = load_registry(path)  # schema-checked before anything else is read
    _, model = read_model(onnx_path)
    metrics = read_json(root / metrics_rel, "the model's metrics JSON")
    invalid = validate_metrics(metrics)
    if invalid:
        raise UserInputError(f"{root / metrics_rel}: not a valid metrics file: {invalid[0]}")
    opsets = [i.version for i in model.opset_import if i.domain in ("", "ai.onnx")]
    if not opsets:
        raise UserInputError(f"{onnx_path}: imports no default-domain (ai.onnx) opset")
    entry = {
        "id": rel.stem,
        "onnx": rel.as_posix(),
        "sha256": file_sha256(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "opset": max(opsets),
        "params": parameter_count(model),
        "license": license,
        "metrics": metrics_rel.as_posix(),
        "card": card_rel.as_posix(),
        "smoke": bool(metrics.get("smoke", False)),
    }
    registry["models"] = [m for m in registry["models"] if m["id"] != entry["id"]] + [entry]
    if make_default or registry.get("default") is None:
        registry["default"] = entry["id"]
    problems = registry_file_problems(registry, root)
    if problems:
        raise GateError(f"{path}: not updated: " + "; ".join(problems))
    atomicio.write_json(path, registry)
    return entry
