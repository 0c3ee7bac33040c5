"""The Python API: open a model, then map, mask or cut out pictures, and evaluate a folder.

The same names and rules as the command line, without click (``sod_train.open_model``,
``sod_train.evaluate_folder``; docs/python.md). A picture is a Pillow image of any mode
or a ``uint8`` numpy array (HxW grey, HxWx3 RGB or HxWx4 RGBA); everything runs through
the one model object (:class:`sod_train.runtime.model.SaliencyModel`) and the one
picture -> map step that ``predict`` and ``evaluate`` use, so results are identical.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sod_train.data.imageio import pil_to_rgb
from sod_train.errors import UserInputError
from sod_train.guards import MAX_SQUARE
from sod_train.predict import render
from sod_train.release import registry
from sod_train.runtime.model import SaliencyModel, to_uint8

Picture = Image.Image | np.ndarray
DEFAULT_SIZE = 256  # models that do not normalise their own scale run at 256 x 256


def as_rgb(picture: Picture) -> np.ndarray:
    """``uint8`` HxWx3 RGB of a Pillow image (any mode) or a uint8 numpy array."""
    if isinstance(picture, Image.Image):
        _check_pixels(picture.width, picture.height)
        return pil_to_rgb(picture)
    array = np.asarray(picture)
    if array.dtype != np.uint8:
        raise UserInputError(f"a numpy picture must be uint8, not {array.dtype}")
    if array.ndim in (2, 3):
        _check_pixels(array.shape[1], array.shape[0])
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return pil_to_rgb(Image.fromarray(array))  # RGBA: composited over black, as files
    raise UserInputError(f"a numpy picture must be HxW, HxWx3 or HxWx4, not {array.shape}")


def _check_pixels(width: int, height: int) -> None:
    """A picture of no pixels, or more than files may have (Pillow's bomb limit), is refused
    before it is copied: a 0x0 array crashed in Pillow, a huge strided view ran out of memory."""
    limit = Image.MAX_IMAGE_PIXELS
    if width < 1 or height < 1 or (limit is not None and width * height > limit):
        raise UserInputError(
            f"a picture must be at least 1x1 and at most {limit} pixels, not {width}x{height}"
        )


class Saliency:
    """One opened model and the pictures it makes (like rembg's sessions).

    ``size`` None runs a model that normalises its own scale at the picture's native size
    (as a host does) and any other model at 256 x 256; an int runs at size x size.
    """

    def __init__(self, model: SaliencyModel, size: int | None = None) -> None:
        self.model = model
        self.size = size

    def _run_size(self) -> int | tuple[int, int] | None:
        if self.model.fixed_size is not None:
            return self.model.fixed_size
        if self.size is not None:
            return self.size
        return None if self.model.working_size is not None else DEFAULT_SIZE

    def map(self, picture: Picture) -> np.ndarray:
        """The saliency map: float32 HxW in [0, 1] at the picture's size."""
        return self.model.map(as_rgb(picture), self._run_size())

    def mask(self, picture: Picture, threshold: float | None = None) -> Image.Image:
        """The map as an 8-bit grey picture; with ``threshold`` a binary 0/255 mask
        (``predict --format mask [--threshold T]``)."""
        return render.mask(to_uint8(self.map(picture)), threshold)

    def cutout(
        self,
        picture: Picture,
        threshold: float = render.DEFAULT_THRESHOLD,
        soft: bool = False,
        bg_color: tuple[int, int, int, int] | None = None,
    ) -> Image.Image:
        """The subject cut out as RGBA (``predict --format cutout``): alpha 255 where the
        map is at or above ``threshold``; ``soft`` uses the map as alpha; ``bg_color``
        (R, G, B, A) puts it over a colour."""
        rgb = as_rgb(picture)
        saliency = to_uint8(self.model.map(rgb, self._run_size()))
        return render.cutout(rgb, saliency, threshold, soft, bg_color)


def _check_side(value: object, name: str) -> None:
    """``size`` / ``short_side`` as the CLI takes them: an int in 1..MAX_SQUARE (else a
    0 crashed Pillow, 10**9 ran out of memory and a float failed to unpack)."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 1 <= value <= MAX_SQUARE
    ):
        raise UserInputError(f"{name} must be an int in 1..{MAX_SQUARE}, not {value!r}")


def open_model(
    path: str | os.PathLike[str] | None = None, threads: int | None = None, size: int | None = None
) -> Saliency:
    """Open ``path``, or the registry's default model (the shipped one) when None.

    ``threads``: onnxruntime threads (None: all cores). Errors are
    :class:`sod_train.errors.UserInputError` with a one-line message naming the file.
    """
    _check_side(size, "size")
    if path is None:
        path = registry.default_model_path(registry.REGISTRY_PATH)
    return Saliency(SaliencyModel.open(path, threads), size)


def evaluate_folder(
    data: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    size: int = 256,
    short_side: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """``sod-train evaluate`` on one data folder: the result dict (``metrics``, ``n``,
    ``curves``, ...), as ``evaluate --json`` writes it. ``model`` None: the default model.
    """
    from sod_train.evaluate.evaluate import evaluate_sources, make_sources

    _check_side(size, "size")
    _check_side(short_side, "short_side")
    path = Path(model) if model is not None else registry.default_model_path()
    sides = (short_side,) if short_side is not None else ()
    (evaluation,) = evaluate_sources(
        make_sources([path]), data, size, threads=threads, quiet=True, short_sides=sides
    )
    return evaluation.result
