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
    for entry in registry.get("models", []):
        if entry["id"] == wanted:
            return entry
    raise UserInputError(f"{path}: no model with id '{wanted}'")


def default_model_path(path: Path = REGISTRY_PATH) -> Path:
    """Absolute path of the default shipped ONNX model."""
    entry = model_entry(None, path)
    return (Path(path).resolve().parents[2] / entry["onnx"]).resolve()
