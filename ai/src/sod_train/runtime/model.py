"""One object per saliency model: it opens, prepares, runs and maps (as rembg's sessions do).

``SaliencyModel.open(path | bytes, threads=...)`` reads the file (a bounded regular
file), validates it (:mod:`sod_train.runtime.modelfile`) and builds the one onnxruntime
session (:mod:`sod_train.runtime.session`). Every stage that runs a model goes through
it: ``run`` for a prepared tensor and ``map`` for a picture.

``map`` is the one picture -> map step, so what ``predict`` writes is what ``evaluate``
scores. Its protocol:

1. the ``uint8`` RGB picture is resized to ``size`` (N x N or (height, width); Pillow
   bilinear) unless ``size`` is None (native size), divided by 255 and ImageNet-normalised;
2. onnxruntime runs the model; the output must be finite and [1,1,h,w] at the input size;
3. the float32 map is resized back to the picture's size (Pillow bilinear on floats) and
   clipped to [0,1].

:func:`to_uint8` is the one 8-bit quantisation, ``rint(map * 255)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from PIL import Image

from sod_train.data.imageio import to_model_input
from sod_train.errors import UserInputError
from sod_train.guards import MAX_PIXELS, MAX_SIDE
from sod_train.runtime.modelfile import (
    model_problems,
    parameter_count,
    read_model,
    recorded_working_size,
)
from sod_train.runtime.session import create_session, run_timed, session_io

BYTES_LABEL = "<model bytes>"


def to_uint8(saliency: np.ndarray) -> np.ndarray:
    """The one 8-bit quantisation of a map in [0,1]: ``rint(clip(map, 0, 1) * 255)``."""
    return np.rint(np.clip(saliency, 0.0, 1.0) * 255.0).astype(np.uint8)


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) of an H x W picture rescaled so its short side is ``short_side`` (aspect kept)."""
    scale = short_side / min(height, width)
    size = max(1, round(height * scale)), max(1, round(width * scale))
    # A long thin picture at a large short side is terabytes: refuse past the run-size range.
    if max(size) > MAX_SIDE or size[0] * size[1] > MAX_PIXELS:
        raise UserInputError(
            f"short side {short_side} makes this {width}x{height} picture {size[1]}x{size[0]}, "
            f"over the run-size range (sides up to {MAX_SIDE}, {MAX_PIXELS} pixels)"
        )
    return size


def prepare(
    rgb: np.ndarray, size: int | tuple[int, int] | None = None, short_side: int | None = None
) -> np.ndarray:
    """Step 1 of :meth:`SaliencyModel.map`: the model input for a ``uint8`` HxWx3 picture.

    ``size`` None keeps the picture's size; ``short_side`` S rescales it so its short
    side is S, aspect kept. Separate so that several models can share one input.
    """
    if short_side is not None:
        size = short_side_size(*rgb.shape[:2], short_side)
    return to_model_input(rgb, size)


def pad_to_multiple(image: np.ndarray, multiple: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """``image`` edge-replicated after its last row and column (``axes``: the row and
    column axes) to a multiple of ``multiple``; as is when it already is one. Networks
    that halve the picture three times (the anchors) need H and W multiples of 8."""
    widths = [(0, 0)] * image.ndim
    for axis in axes:
        widths[axis] = (0, -image.shape[axis] % multiple)
    if not any(after for _, after in widths):
        return image
    return np.pad(image, widths, mode="edge")


def resize_map(saliency: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 map resized to height x width (Pillow bilinear on floats); as is if equal."""
    if saliency.shape == (height, width):
        return saliency
    resized = Image.fromarray(saliency.astype(np.float32, copy=False)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


@dataclass
class SaliencyModel:
    """An opened, validated model and its onnxruntime session.

    ``label`` names the model in every error (its path, or ``<model bytes>``); ``data``
    are the exact bytes onnxruntime loaded, ``proto`` the parsed graph.
    """

    label: str
    data: bytes
    proto: onnx.ModelProto
    session: Any
    input_name: str
    input_shape: list[Any]

    @classmethod
    def open(
        cls,
        source: str | os.PathLike[str] | bytes,
        threads: int | None = None,
        label: str | None = None,
    ) -> SaliencyModel:
        """Read (if a path), validate and load a model; UserInputError naming it if impossible.

        ``threads`` None keeps onnxruntime's default (all physical cores).
        """
        if isinstance(source, bytes):
            name = label or BYTES_LABEL
            try:
                proto = onnx.load_model_from_string(source)
            except Exception as exc:  # protobuf DecodeError and friends
                raise UserInputError(f"{name}: cannot load: not an ONNX model ({exc})") from None
            data = source
        else:
            name = label or str(source)
            data, proto = read_model(source)
        problems = model_problems(proto)
        if problems:
            raise UserInputError(f"{name}: cannot load the model: {'; '.join(problems)}")
        try:
            session = create_session(data, threads)
            input_name, shape, out_type = session_io(session)
        except UserInputError as exc:
            raise UserInputError(f"{name}: cannot load the model: {exc}") from None
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise UserInputError(
                f"{name}: cannot load the model: expected one input [1,3,H,W], got {shape}"
            )
        if out_type != "tensor(float)":
            raise UserInputError(
                f"{name}: cannot load the model: output is {out_type}, expected tensor(float)"
            )
        return cls(name, data, proto, session, input_name, shape)

    @property
    def path(self) -> Path | None:
        """The file it was read from, or None for bytes."""
        return None if self.label == BYTES_LABEL else Path(self.label)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(height, width) if the input's spatial dims are fixed, else None."""
        height, width = self.input_shape[2:]
        if isinstance(height, int) and isinstance(width, int):
            return height, width
        return None

    @property
    def working_size(self) -> int | None:
        """T if the graph normalises its own scale (it records T), else None."""
        return recorded_working_size(self.proto)

    @property
    def parameter_count(self) -> int:
        """Conv/ConvTranspose weights and biases (:func:`modelfile.parameter_count`)."""
        return parameter_count(self.proto)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for the prepared tensor ``x``, as float32.

        Failures, a run past the deadline (ModelTimeout) and a non-float output raise
        UserInputError without the file name; the caller adds it.
        """
        return self.run_timed(x)[0]

    def run_timed(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """:meth:`run` and the seconds onnxruntime spent in it (for ``bench``)."""
        out, seconds = run_timed(self.session, self.input_name, x)
        out = np.asarray(out)
        if out.dtype.kind != "f":
            raise UserInputError(f"model output is {out.dtype} data, not float")
        return out.astype(np.float32, copy=False), seconds

    def map(
        self,
        rgb: np.ndarray,
        size: int | tuple[int, int] | None = None,
        short_side: int | None = None,
    ) -> np.ndarray:
        """The saliency map of a ``uint8`` HxWx3 picture: float32 HxW in [0,1] at its size.

        The module's protocol; ``size`` None runs at the picture's own size, and
        ``short_side`` S (instead of ``size``) rescales the picture so its short side is S,
        aspect kept, as a host gets a frame of that height.
        """
        return self.map_input(prepare(rgb, size, short_side), *rgb.shape[:2])

    def map_input(self, x: np.ndarray, height: int, width: int, pad_to: int = 1) -> np.ndarray:
        """Steps 2-3 of :meth:`map` for an input :func:`prepare` made of an H x W picture.

        ``pad_to`` N > 1 runs the input edge-padded right and bottom to a multiple of N
        and crops the map back (:func:`pad_to_multiple`), for models that need it.
        """
        padded = pad_to_multiple(x, pad_to, axes=(2, 3))
        out = self.run(padded)
        expected = (1, 1, *padded.shape[2:])
        if out.shape != expected:
            raise UserInputError(
                f"model output has shape {list(out.shape)}, expected {list(expected)}"
            )
        out = out[:, :, : x.shape[2], : x.shape[3]]
        # min and max are NaN if any value is, and an infinity is one of them: two cheap
        # passes instead of a full-size mask; the count only once something is wrong.
        low, high = (out.min(), out.max()) if out.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high)):
            bad = int(out.size - np.count_nonzero(np.isfinite(out)))
            raise UserInputError(
                f"model output has {bad:,} of {out.size:,} values not finite (NaN or infinite)"
            )
        if out.shape[2:] == (height, width) and low >= 0.0 and high <= 1.0:
            return out[0, 0]  # nothing to resize or clip: no copy
        return np.clip(resize_map(out[0, 0], height, width), 0.0, 1.0)
