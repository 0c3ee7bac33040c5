"""The model registry: ``model/tiny/registry.json`` lists every shipped ONNX model.

Format (validated by ``model/tiny/registry.schema.json``)::

    {"schema_version": 1, "default": "<id>",
     "models": [{"id", "onnx", "sha256", "bytes", "opset", "params", "license",
                 "metrics", "card", "smoke"}]}

Paths inside are relative to the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserInputError

REPO_ROOT = Path(__file__).resolve().parents[3]
REGISTRY_PATH = REPO_ROOT / "model" / "tiny" / "registry.json"


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Any]:
    """Read the registry JSON, or raise UserInputError naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserInputError(f"{path}: model registry not found") from None
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc})") from None


def model_entry(model_id: str | None = None, path: Path = REGISTRY_PATH) -> dict[str, Any]:
    """The registry entry for ``model_id`` (default: the registry's ``default``)."""
    registry = load_registry(path)
    wanted = model_id or registry.get("default")
    if wanted is None:
        raise UserInputError(f"{path}: no default model is registered yet")
    for entry in registry.get("models", []):
        if entry["id"] == wanted:
            return entry
    raise UserInputError(f"{path}: no model with id '{wanted}'")


def default_model_path(path: Path = REGISTRY_PATH) -> Path:
    """Absolute path of the default shipped ONNX model."""
    entry = model_entry(None, path)
    return (Path(path).resolve().parents[2] / entry["onnx"]).resolve()


def register_model(
    onnx_path: Path, license: str, make_default: bool = False, path: Path = REGISTRY_PATH
) -> dict[str, Any]:
    """Add (or replace) the registry entry for ``onnx_path`` and write the registry atomically.

    The entry is computed from the files (sha256, bytes, opset, params, smoke flag of
    the metrics JSON) and the whole registry is checked against every file it names
    before anything is written, so a stale or half-released model never gets listed.
    """
    import onnx

    from . import atomicio
    from .errors import GateError
    from .metrics_schema import conv_params, registry_file_problems, sha256_file

    root = Path(path).resolve().parents[2]
    onnx_path = Path(onnx_path).resolve()
    try:
        rel = onnx_path.relative_to(root)
    except ValueError:
        raise UserInputError(f"{onnx_path}: a registered model must live inside {root}") from None
    metrics_rel = rel.with_suffix(".metrics.json")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
        metrics = json.loads((root / metrics_rel).read_text())
    except Exception as exc:  # protobuf DecodeError, OSError, JSONDecodeError, ...
        raise UserInputError(
            f"{onnx_path}: cannot register ({exc.__class__.__name__}: {exc})"
        ) from None
    entry = {
        "id": rel.stem,
        "onnx": rel.as_posix(),
        "sha256": sha256_file(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "opset": max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")),
        "params": conv_params(model),
        "license": license,
        "metrics": metrics_rel.as_posix(),
        "card": f"docs/ai/models/{rel.stem}.md",
        "smoke": bool(metrics.get("smoke", False)),
    }
    registry = load_registry(path)
    registry["models"] = [m for m in registry["models"] if m["id"] != entry["id"]] + [entry]
    if make_default or registry.get("default") is None:
        registry["default"] = entry["id"]
    problems = registry_file_problems(registry, root)
    if problems:
        raise GateError(f"{path}: not updated: " + "; ".join(problems))
    atomicio.write_json(path, registry)
    return entry
