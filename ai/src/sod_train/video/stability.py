"""Temporal stability (flicker) of a sequence of saliency maps, PySODMetrics-style.

Each metric is a small class: ``step(map)`` once per frame in order, ``get_results()`` at
the end. A map is a float array in [0, 1] or a boolean mask (ground truth, already
binarised); the same classes run on the ground truth, so motion of the object itself is
measured too and not mistaken for flicker.

* :class:`BinaryIoU`: IoU between consecutive maps binarised at ``map > 0.5`` (two empty
  maps agree perfectly: IoU 1); results ``iou_mean`` and ``iou_p5``, the 5th percentile
  (numpy's linear interpolation), i.e. the worst transitions.
* :class:`MeanChange`: mean absolute change of ``saliency_mean`` (the float64 mean of the
  map, a mask's foreground fraction) from one frame to the next: ``mean_change``.
* :class:`Stability` runs both.

A sequence of one frame has no transition: its figures are None.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
PERCENTILE = 5


def binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty."""
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return np.count_nonzero(a & b) / union


def _binarise(saliency: np.ndarray, threshold: float) -> np.ndarray:
    return saliency if saliency.dtype == bool else saliency > threshold


class BinaryIoU:
    """IoU of consecutive binarised maps: mean and 5th percentile over the transitions."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.previous: np.ndarray | None = None
        self.ious: list[float] = []

    def step(self, saliency: np.ndarray) -> None:
        mask = _binarise(saliency, self.threshold)
        if self.previous is not None:
            if mask.shape != self.previous.shape:
                raise ValueError(f"map of shape {mask.shape} after {self.previous.shape}")
            self.ious.append(binary_iou(self.previous, mask))
        self.previous = mask

    def get_results(self) -> dict[str, float | None]:
        if not self.ious:
            return {"iou_mean": None, "iou_p5": None}
        values = np.asarray(self.ious, dtype=np.float64)
        return {
            "iou_mean": float(values.mean()),
            "iou_p5": float(np.percentile(values, PERCENTILE)),
        }


class MeanChange:
    """Mean absolute frame-to-frame change of saliency_mean."""

    def __init__(self) -> None:
        self.previous: float | None = None
        self.changes: list[float] = []

    def step(self, saliency: np.ndarray | float) -> None:
        value = (
            float(saliency) if np.isscalar(saliency) else float(np.mean(saliency, dtype=np.float64))
        )
        if self.previous is not None:
            self.changes.append(abs(value - self.previous))
        self.previous = value

    def get_results(self) -> dict[str, float | None]:
        if not self.changes:
            return {"mean_change": None}
        return {"mean_change": float(np.mean(self.changes))}


class Stability:
    """:class:`BinaryIoU` and :class:`MeanChange` together."""

    KEYS = ("iou_mean", "iou_p5", "mean_change")

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.iou = BinaryIoU(threshold)
        self.change = MeanChange()

    def step(self, saliency: np.ndarray, mean: float | None = None) -> None:
        """One frame; ``mean`` is its saliency_mean if already computed."""
        self.iou.step(saliency)
        self.change.step(mean if mean is not None else saliency)

    def get_results(self) -> dict[str, float | None]:
        return {**self.iou.get_results(), **self.change.get_results()}


def average(results: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each key's mean over sequences (None values left out; None if all are)."""
    out: dict[str, float | None] = {}
    for key in Stability.KEYS:
        values = [r[key] for r in results if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
