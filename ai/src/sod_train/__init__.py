"""sod-train: DUTS-TR -> tiny, verified ONNX salient-object-detection model.

The Python API (docs/python.md) is imported on first use, so ``import sod_train`` stays
free: ``sod_train.open_model()``, ``sod_train.evaluate_folder(...)``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Saliency", "evaluate_folder", "open_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sod_train.api import saliency

        return getattr(saliency, name)
    raise AttributeError(f"module 'sod_train' has no attribute {name!r}")
