"""Run a saliency model on one video frame: the ONE place that does, re-pointed at merge.

:func:`frame_map` is built on :class:`sod_train.runtime.model.SaliencyModel` (`map_input`) and
:func:`sod_train.data.imageio.to_model_input` (x / 255, ImageNet mean/std from
:mod:`sod_train.contract`, planar NCHW), at the frame's native size, as the host runs it.
:func:`frame_input` makes the same input straight from a frame's YUV planes
(:func:`planes_input`, no RGB picture on the way), equal to it bit for bit.
The statistics follow the host: ``saliency_mean`` is the double-precision mean of the
float32 map (the host sums sequentially; numpy sums pairwise, a difference below 1e-12).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from sod_train.contract import IMAGENET_MEAN, IMAGENET_STD
from sod_train.data.imageio import to_model_input
from sod_train.errors import UserInputError
from sod_train.runtime.model import SaliencyModel
from sod_train.video.colour import Planes, level_bands
from sod_train.video.source import Frame

F32 = np.float32


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


@lru_cache(maxsize=1)
def _normalisation() -> tuple[np.ndarray, np.ndarray] | None:
    """ImageNet (mean, std) as float32 [3,1,1] if ``(code / 255 - mean) / std`` in float32
    gives exactly :func:`_input_table`'s value for every 8-bit code of every channel, else
    None (then the table is used). Checked on all 256 codes, the whole domain, so the
    arithmetic (three cheap passes) is to_model_input's values, not a copy of its formula.
    """
    mean = np.array(IMAGENET_MEAN, dtype=F32)[:, None, None]
    std = np.array(IMAGENET_STD, dtype=F32)[:, None, None]
    codes = np.repeat(np.arange(256, dtype=F32)[None, None, :], 3, axis=0)
    values = _normalise_codes(codes, mean, std)[:, 0, :]
    exact = np.array_equal(values.view(np.uint32), _input_table().view(np.uint32))
    return (mean, std) if exact else None


def _normalise_codes(codes: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """In place: float32 codes 0..255 (3 x ...) -> ``(code / 255 - mean) / std``."""
    codes /= F32(255.0)
    codes -= mean
    codes /= std
    return codes


def planes_input(
    planes: Planes, matrix: str, value_range: str, out: np.ndarray | None = None
) -> np.ndarray:
    """float32 [1, 3, H, W] model input of a YUV frame, written into ``out`` when given.

    Equals ``model_input(yuv_to_rgb(planes, matrix, value_range))`` bit for bit: the
    colour steps (:func:`~sod_train.video.colour.level_bands`) leave each band's RGB8
    codes as float32, planar, and the band is normalised in place while it is in cache.
    """
    height, width = planes.size
    if out is None:
        out = np.empty((1, 3, height, width), dtype=F32)
    norm = _normalisation()
    for band in level_bands(planes, matrix, value_range, out=out[0]):
        if norm is not None:
            _normalise_codes(band, *norm)
        else:  # to_model_input's values by lookup (slower)
            for c, table in enumerate(_input_table()):
                band[c] = table.take(band[c].astype(np.intp))
    return out


def frame_input(frame: Frame, out: np.ndarray | None = None) -> np.ndarray:
    """The model input of a frame: from its YUV planes when it has them, else its RGB."""
    if frame.planes is not None:
        return planes_input(frame.planes, frame.matrix, frame.value_range, out)
    return model_input(frame.rgb)


def load_model(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """The model for :func:`frame_map` (an onnxruntime session; UserInputError naming it)."""
    return SaliencyModel.open(path, threads)


def frame_map(model: Any, rgb: np.ndarray) -> np.ndarray:
    """float32 HxW saliency map of uint8 HxWx3 ``rgb`` at its native size.

    UserInputError (without a file name; the caller adds it) if the run fails, the output
    is not [1,1,H,W] or not finite.
    """
    return input_map(model, model_input(rgb))


def input_map(model: Any, x: np.ndarray) -> np.ndarray:
    """float32 HxW saliency map of a [1, 3, H, W] model input (:func:`frame_input`)."""
    return model.map_input(x, *x.shape[2:])


def map_stats(saliency: np.ndarray) -> tuple[float, float]:
    """(saliency_mean, saliency_var) of a map, in float64 (population variance).

    Exactly ``np.mean(saliency, dtype=float64)`` and ``np.var(saliency, dtype=float64)``;
    the variance by :func:`_variance`, a few times cheaper.
    """
    mean = float(np.mean(saliency, dtype=np.float64))
    return mean, _variance(saliency, mean)


_LEAF = 1 << 15  # float64 values per span of _squared_deviations: 256 KiB, in L2 cache


def _squared_deviations(flat: np.ndarray, mean: float) -> float:
    """The float64 sum of ``(flat - mean) ** 2``, added in numpy's pairwise order.

    numpy sums a contiguous float64 array pairwise: it splits n values at
    ``n // 2 - (n // 2) % 8`` until a span is small. Splitting the same way down to spans of
    at most ``_LEAF`` values and letting numpy sum each span gives the same tree, so the
    same bits as ``np.var``'s sum over a whole-frame float64 temporary, but each span's
    deviations are computed, squared and added while they are in cache.
    """

    def span(start: int, n: int) -> float:
        if n <= _LEAF:
            d = np.subtract(flat[start : start + n], mean, dtype=np.float64)
            np.multiply(d, d, out=d)
            return float(np.add.reduce(d))
        half = n // 2
        half -= half % 8
        return span(start, half) + span(start + half, n - half)

    return span(0, flat.size)


@lru_cache(maxsize=1)
def _pairwise_matches_numpy() -> bool:
    """Whether :func:`_squared_deviations` / n is ``np.var`` bit for bit on this numpy
    (checked once on a float32 map of several spans; else ``np.var`` is used)."""
    sample = np.random.default_rng(0).random((97, 1013), dtype=np.float32)
    for data in (sample, sample[:1, :1], sample**4):
        mean = float(np.mean(data, dtype=np.float64))
        if _squared_deviations(data.reshape(-1), mean) / data.size != float(
            np.var(data, dtype=np.float64)
        ):
            return False
    return True


def _variance(saliency: np.ndarray, mean: float) -> float:
    """``np.var(saliency, dtype=float64)`` given its mean (the same float64 value)."""
    if saliency.size == 0 or not saliency.flags.c_contiguous or not _pairwise_matches_numpy():
        return float(np.var(saliency, dtype=np.float64))
    return _squared_deviations(saliency.reshape(-1), mean) / saliency.size


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
