"""Load any picture a user may hand us as 8-bit RGB, and turn it into model input.

Pillow decodes the file; EXIF orientation is applied so the result looks the way
viewers show it. Every mode becomes ``uint8`` RGB by one documented rule:

* ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ...: Pillow's own conversion.
* ``I;16*`` (16-bit grey): scaled 0..65535 -> 0..255 (not clipped, as Pillow would).
* ``I`` (32-bit int): taken as 8-bit if its maximum is <= 255, else as 16-bit and
  scaled like ``I;16`` (values outside 0..65535 are clipped).
* ``F`` (32-bit float): taken as 0..1 if its maximum is <= 1, else as 0..255.
* modes with alpha (``LA``, ``PA``, ``RGBA``, a palette with transparency, ...): the
  colour is composited over black, so fully transparent pixels become black.

Every picture is opened by :func:`open_image`: only a regular file (a FIFO or a device
is refused, never waited on), and only up to :func:`max_image_pixels` declared pixels.
A header declaring more (a decompression bomb) is refused like any other bad file, in
one line naming it, before a pixel is decoded. That limit replaces Pillow's own, so
Pillow's ``DecompressionBombWarning`` is silenced while the header is read rather than
printed as a raw warning.

Pillow's other warnings about a file (``Corrupt EXIF data``, a truncated metadata
block) are never printed raw either: this module is the one picture reader, and it
ignores Pillow's ``UserWarning`` for the whole process (a filter on Pillow's own
modules, so it is thread-safe and hides nothing else). A picture whose EXIF block is
corrupt is read as it is stored, without orientation.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sod_train.contract import IMAGENET_MEAN, IMAGENET_STD
from sod_train.errors import UserInputError, first_line
from sod_train.guards import open_regular


def max_image_pixels() -> int | None:
    """The pixel limit in force: Pillow's ``Image.MAX_IMAGE_PIXELS`` (None: no limit).

    That is Pillow's warning threshold, 89.5 MP by default (Pillow itself errors only at
    twice it): :func:`open_image` refuses everything above it with a clean message.
    """
    return Image.MAX_IMAGE_PIXELS or None


# The picture extensions every folder walk accepts (pairs, predict, frame folders).
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# See the module doc: a corrupt metadata block is not worth a raw warning line.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)

_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_DECODE_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,  # truncated data, unreadable file
    SyntaxError,  # some Pillow plugins report broken headers this way
    ValueError,
    EOFError,
)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 with rounding."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to ``uint8`` HxWx3 RGB (rules in the module doc)."""
    mode = img.mode
    if mode.startswith("I;16"):
        return _gray_to_rgb(_scale_16bit(np.asarray(img)))
    if mode == "I":
        values = np.asarray(img)
        if values.size and values.max() > 255:
            return _gray_to_rgb(_scale_16bit(values))
        return _gray_to_rgb(np.clip(values, 0, 255).astype(np.uint8))
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float32))
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        return _gray_to_rgb(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:4]
        return ((rgba[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    return np.asarray(img if mode == "RGB" else img.convert("RGB"), dtype=np.uint8)


def _too_many_pixels(path: str | Path, pixels: int, size: str = "") -> UserInputError:
    limit = max_image_pixels()
    return UserInputError(
        f"{path}: refused, too many pixels: {size}{pixels:,}, the limit is "
        f"{limit or 0:,} (a decompression bomb?)"
    )


@contextlib.contextmanager
def _checked(fh: BinaryIO, label: str | Path, what: str) -> Iterator[Image.Image]:
    """Pillow's header read of ``fh``, every refusal a UserInputError ``"label: problem"``."""
    try:
        with warnings.catch_warnings():
            # The refusal below says it better; Pillow's warning would be a raw line.
            # (catch_warnings is process-wide: concurrent callers all set this one
            # filter, so a race can only leave it set, which changes nothing.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fh)
    except UnidentifiedImageError:
        raise UserInputError(
            f"{label}: cannot decode {what} (not an image format Pillow reads)"
        ) from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(label, int(found.group(1)) if found else 0) from None
    except _DECODE_ERRORS as exc:
        raise UserInputError(f"{label}: cannot decode {what} ({first_line(exc)})") from None
    with img:
        width, height = img.size
        limit = max_image_pixels()
        if limit is not None and width * height > limit:
            raise _too_many_pixels(label, width * height, f"{width}x{height} = ")
        yield img


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str], what: str = "image") -> Iterator[Image.Image]:
    """Open ``path`` with Pillow (header only) after the checks in the module doc.

    Yields the lazily-loaded image; every refusal (not a regular file, unreadable, not
    an image, more than max_image_pixels()) is a UserInputError ``"path: problem"``.
    Errors while the caller decodes pixels are the caller's to report.
    """
    path = Path(path)
    with open_regular(path, what) as fh, _checked(fh, path, what) as img:
        yield img


def _rgb(img: Image.Image, label: str | Path) -> np.ndarray:
    """Decode an opened picture to EXIF-oriented ``uint8`` HxWx3 RGB."""
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return pil_to_rgb(img)
    except _DECODE_ERRORS as exc:
        raise UserInputError(f"{label}: cannot decode image ({first_line(exc)})") from None


def load_rgb(path: str | os.PathLike[str]) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` to EXIF-oriented ``uint8`` HxWx3 RGB and its (width, height).

    The size is the oriented one, i.e. the size an output for this picture must have.
    Anything that cannot be decoded (unknown format, truncated data, a decompression
    bomb, a missing file, a FIFO) raises UserInputError naming the file.
    """
    path = Path(path)
    with open_image(path) as img:
        rgb = _rgb(img, path)
    height, width = rgb.shape[:2]
    return rgb, (width, height)


def rgb_from_bytes(data: bytes, label: str) -> np.ndarray:
    """:func:`load_rgb` for picture bytes (stdin): the same rules, errors named ``label``."""
    with _checked(io.BytesIO(data), label, "image") as img:
        return _rgb(img, label)


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of ``uint8`` RGB to height x width."""
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def to_model_input(rgb: np.ndarray, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """``uint8`` HxWx3 RGB -> float32 [1,3,H,W], ImageNet-normalised, as a model expects.

    ``size`` is N (N x N) or (height, width) to resize to first (bilinear), or None to
    keep the picture's own size.
    """
    if size is not None:
        height, width = (size, size) if isinstance(size, int) else size
        rgb = resize_rgb(rgb, height, width)
    x = (rgb.astype(np.float32) / 255.0 - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
