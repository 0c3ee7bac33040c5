"""Run a saliency model on one video frame: the ONE place that does, re-pointed at merge.

:func:`frame_map` is built on :class:`sod_train.runtime.model.SaliencyModel` (`map_input`) and
:func:`sod_train.data.imageio.to_model_input` (x / 255, ImageNet mean/std from
:mod:`sod_train.contract`, planar NCHW), at the frame's native size, as the host runs it.
The statistics follow the host: ``saliency_mean`` is the double-precision mean of the
float32 map (the host sums sequentially; numpy sums pairwise, a difference below 1e-12).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from sod_train.data.imageio import to_model_input
from sod_train.errors import UserInputError
from sod_train.runtime.model import SaliencyModel


@lru_cache(maxsize=1)
def _input_table() -> np.ndarray:
    """float32 [3, 256]: the model input :func:`to_model_input` gives each 8-bit value.

    Built by to_model_input itself (the one authority), so a lookup is the same float32
    value for a fraction of the per-pixel arithmetic.
    """
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    return to_model_input(ramp)[0, :, 0, :].copy()


def model_input(rgb: np.ndarray) -> np.ndarray:
    """float32 [1, 3, H, W] model input of uint8 HxWx3 RGB; equals to_model_input(rgb)."""
    table = _input_table()
    height, width = rgb.shape[:2]
    x = np.empty((1, 3, height, width), dtype=np.float32)
    for c in range(3):
        x[0, c] = table[c][rgb[:, :, c]]
    return x


def load_model(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """The model for :func:`frame_map` (an onnxruntime session; UserInputError naming it)."""
    return SaliencyModel.open(path, threads)


def frame_map(model: Any, rgb: np.ndarray) -> np.ndarray:
    """float32 HxW saliency map of uint8 HxWx3 ``rgb`` at its native size.

    UserInputError (without a file name; the caller adds it) if the run fails, the output
    is not [1,1,H,W] or not finite.
    """
    return model.map_input(model_input(rgb), *rgb.shape[:2])


def map_stats(saliency: np.ndarray) -> tuple[float, float]:
    """(saliency_mean, saliency_var) of a map, in float64 (population variance)."""
    mean = float(np.mean(saliency, dtype=np.float64))
    var = float(np.var(saliency, dtype=np.float64))
    return mean, var


class Smoother:
    """Exponential moving average of maps: ``s_t = (1 - alpha) * m_t + alpha * s_(t-1)``.

    ``alpha`` is the weight kept from the past: 0 is off (every map as the model gave it),
    0.5 halves a one-frame flicker. ``s_0 = m_0``. Computed in float32.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise UserInputError(f"--smooth {alpha}: must be in [0, 1) (0 is off)")
        self.alpha = np.float32(alpha)
        self.state: np.ndarray | None = None

    def __call__(self, saliency: np.ndarray) -> np.ndarray:
        if self.alpha == 0 or self.state is None or self.state.shape != saliency.shape:
            self.state = saliency
        else:
            self.state = (np.float32(1.0) - self.alpha) * saliency + self.alpha * self.state
        return self.state
