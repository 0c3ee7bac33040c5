"""A small, strict YUV4MPEG2 (y4m) reader and writer that streams one frame at a time.

Read: the header ``YUV4MPEG2`` followed by space-separated tags (``W`` width, ``H``
height, ``F`` rate ``n:d``, ``I`` interlacing, ``A`` pixel aspect ``n:d``, ``C`` colour
space, ``X`` extensions), then per frame ``FRAME`` (optionally with parameters) and the
planar samples Y, Cb, Cr. Supported colour spaces: ``420jpeg``, ``420paldv``,
``420mpeg2``, ``420`` (all 8-bit 4:2:0; the siting differs, nearest-neighbour ignores
it), ``422``, ``444``, ``mono``, and ``420p10``/``422p10``/``444p10``/``mono10`` (and
``p12``), stored little-endian in 16 bits. ``C`` absent means ``420jpeg``. ``F``, ``I``,
``A`` and unknown tags are read leniently: a malformed value is ignored, never fatal;
interlaced streams are read as whole frames, as the host does.

Refused, each a one-line :class:`~sod_train.errors.UserInputError` naming the file: no
``YUV4MPEG2`` magic, a header without ``W`` or ``H`` (or with non-numeric or out-of-range
ones), a size the chroma layout cannot hold (4:2:0 needs an even width and height, 4:2:2
an even width), 16-bit and unknown colour spaces, a stream with no frames, a frame that
does not start with ``FRAME`` and a truncated frame. Memory is one frame whatever the
file's length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sod_train.errors import UserInputError
from sod_train.guards import MAX_PIXELS, MAX_SIDE, open_regular
from sod_train.video.colour import Planes

MAGIC = b"YUV4MPEG2"
MAX_HEADER = 4096  # bytes of a stream or frame header line
# colour space tag -> (chroma subsampling (sx, sy) or None for mono, bit depth)
COLOURSPACES: dict[str, tuple[tuple[int, int] | None, int]] = {
    "420jpeg": ((1, 1), 8),
    "420paldv": ((1, 1), 8),
    "420mpeg2": ((1, 1), 8),
    "420": ((1, 1), 8),
    "422": ((1, 0), 8),
    "444": ((0, 0), 8),
    "mono": (None, 8),
    **{
        f"{name}p{d}": (sub, d)
        for name, sub in (("420", (1, 1)), ("422", (1, 0)), ("444", (0, 0)))
        for d in (10, 12)
    },
    "mono10": (None, 10),
    "mono12": (None, 12),
}
LAYOUT_NAMES = {(1, 1): "4:2:0", (1, 0): "4:2:2", (0, 0): "4:4:4", None: "mono"}


@dataclass(frozen=True)
class Layout:
    """Size and sample layout of a planar YUV stream (y4m or raw)."""

    width: int
    height: int
    subsampling: tuple[int, int] | None  # (sx, sy); None: mono (no chroma planes)
    depth: int = 8

    @property
    def name(self) -> str:
        bits = "" if self.depth == 8 else f" {self.depth}-bit"
        return LAYOUT_NAMES[self.subsampling] + bits

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(height, width) of each chroma plane (0, 0 for mono)."""
        if self.subsampling is None:
            return 0, 0
        sx, sy = self.subsampling
        return self.height >> sy, self.width >> sx

    @property
    def sample_bytes(self) -> int:
        return 1 if self.depth == 8 else 2

    @property
    def frame_bytes(self) -> int:
        ch, cw = self.chroma_size
        return (self.width * self.height + 2 * ch * cw) * self.sample_bytes

    def check(self, path: str | os.PathLike[str]) -> None:
        """UserInputError if the size is out of range or the chroma layout cannot hold it."""
        w, h = self.width, self.height
        if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE) or w * h > MAX_PIXELS:
            raise UserInputError(
                f"{path}: frame size {w}x{h} is outside 1..{MAX_SIDE} a side and "
                f"{MAX_PIXELS:,} pixels"
            )
        if self.subsampling is not None:
            sx, sy = self.subsampling
            if (sx and w % 2) or (sy and h % 2):
                need = "an even width and height" if sy else "an even width"
                raise UserInputError(f"{path}: {self.name} needs {need}, got {w}x{h}")

    def planes(self, data: bytes) -> Planes:
        """Split one frame's bytes into planes (no copy)."""
        dtype = np.uint8 if self.depth == 8 else np.dtype("<u2")
        samples = np.frombuffer(data, dtype=dtype)
        n = self.width * self.height
        y = samples[:n].reshape(self.height, self.width)
        if self.subsampling is None:
            return Planes(y, None, None, self.depth)
        ch, cw = self.chroma_size
        m = ch * cw
        u = samples[n : n + m].reshape(ch, cw)
        v = samples[n + m : n + 2 * m].reshape(ch, cw)
        return Planes(y, u, v, self.depth)


_DIGITS = re.compile(r"[0-9]{1,9}")


def _ratio(text: str) -> Fraction | None:
    """``n:d`` as a positive Fraction; None when malformed or zero (lenient)."""
    num, sep, den = text.partition(":")
    # ASCII digits only (``'²'.isdigit()`` is True but int() refuses it), and at most 9 of
    # them: a 400-digit rate overflowed float() later (lenient: ignored like any bad tag).
    if not sep or not _DIGITS.fullmatch(num) or not _DIGITS.fullmatch(den):
        return None
    if int(num) == 0 or int(den) == 0:
        return None
    return Fraction(int(num), int(den))


def _read_line(fh: BinaryIO, limit: int = MAX_HEADER) -> bytes:
    """Bytes up to and including the next newline, at most ``limit`` (b'' at end of file)."""
    return fh.readline(limit)


@dataclass(frozen=True)
class Y4MHeader:
    """What a y4m stream header says."""

    layout: Layout
    fps: Fraction | None
    interlace: str
    aspect: Fraction | None
    colourspace: str
    size: int  # bytes of the header line


def parse_header(line: bytes, path: str | os.PathLike[str]) -> Y4MHeader:
    """The stream header ``line`` (with its newline); UserInputError naming ``path``."""
    if not line.startswith(MAGIC + b" ") and line.rstrip(b"\n") != MAGIC:
        raise UserInputError(f"{path}: not a y4m file (it does not start with 'YUV4MPEG2 ')")
    if not line.endswith(b"\n"):
        raise UserInputError(f"{path}: y4m header is truncated or longer than {MAX_HEADER} bytes")
    try:
        text = line[len(MAGIC) : -1].decode("ascii")
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: y4m header is not ASCII text") from None
    tags: dict[str, str] = {}
    for token in text.split():
        tags.setdefault(token[0], token[1:])  # first occurrence wins; X may repeat
    missing = [name for key, name in (("W", "width (W)"), ("H", "height (H)")) if key not in tags]
    if missing:
        raise UserInputError(f"{path}: y4m header has no {' and no '.join(missing)}")
    for key in "WH":
        if not _DIGITS.fullmatch(tags[key]) or len(tags[key]) > 6:
            raise UserInputError(f"{path}: y4m header has a bad {key} '{tags[key][:20]}'")
    colourspace = tags.get("C", "420jpeg")
    if colourspace not in COLOURSPACES:
        if colourspace.endswith("p16") or colourspace == "mono16":
            raise UserInputError(
                f"{path}: y4m colour space C{colourspace} has 16-bit samples; only 8, 10 and "
                "12 bits are supported"
            )
        raise UserInputError(
            f"{path}: unknown or unsupported y4m colour space C{colourspace[:20]} (supported: "
            "420jpeg, 420paldv, 420mpeg2, 420, 422, 444, mono, and p10/p12 variants)"
        )
    subsampling, depth = COLOURSPACES[colourspace]
    layout = Layout(int(tags["W"]), int(tags["H"]), subsampling, depth)
    layout.check(path)
    return Y4MHeader(
        layout=layout,
        fps=_ratio(tags.get("F", "")),
        interlace=tags.get("I", "?")[:1] or "?",
        aspect=_ratio(tags.get("A", "")),
        colourspace=colourspace,
        size=len(line),
    )


class Y4MReader:
    """Stream the frames of a y4m file: ``for index, pts, planes in reader``.

    The header is read and checked on construction, so a bad file is refused before
    any work starts. ``pts`` is ``index / fps`` in seconds (None without a valid ``F``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.fh = open_regular(self.path, "the y4m video")
        try:
            self.header = parse_header(_read_line(self.fh), self.path)
        except BaseException:
            self.fh.close()
            raise
        self.layout = self.header.layout
        self.fps = float(self.header.fps) if self.header.fps else None
        payload = os.fstat(self.fh.fileno()).st_size - self.header.size
        step = len(b"FRAME\n") + self.layout.frame_bytes
        self.length = max(0, payload // step)  # exact unless frames carry parameters
        if payload <= 0:
            self.fh.close()
            raise UserInputError(f"{self.path}: the y4m file has no frames after its header")

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> Y4MReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, float | None, Planes]]:
        need = self.layout.frame_bytes
        index = 0
        while True:
            line = _read_line(self.fh)
            if not line:
                break
            if not line.endswith(b"\n") and b"FRAME".startswith(line[:5]):
                raise UserInputError(f"{self.path}: frame {index} is truncated (in its header)")
            if not line.startswith(b"FRAME") or not line.endswith(b"\n"):
                raise UserInputError(
                    f"{self.path}: frame {index} does not start with a 'FRAME' line "
                    "(a wrong frame size, or not a y4m stream)"
                )
            data = self.fh.read(need)
            if len(data) < need:
                raise UserInputError(
                    f"{self.path}: frame {index} is truncated ({len(data):,} of {need:,} bytes)"
                )
            pts = index / self.fps if self.fps else None
            yield index, pts, self.layout.planes(data)
            index += 1
        if index == 0:
            raise UserInputError(f"{self.path}: the y4m file has no frames after its header")


def y4m_header(width: int, height: int, fps: Fraction, colourspace: str = "444") -> bytes:
    """A y4m stream header line for writing."""
    return (
        f"YUV4MPEG2 W{width} H{height} F{fps.numerator}:{fps.denominator} Ip A1:1 C{colourspace}\n"
    ).encode("ascii")


def y4m_frame(planes: Planes) -> bytes:
    """One ``FRAME`` record (header line and samples) of planar 8/16-bit data."""
    parts = [b"FRAME\n", np.ascontiguousarray(planes.y).tobytes()]
    if planes.u is not None and planes.v is not None:
        parts += [
            np.ascontiguousarray(planes.u).tobytes(),
            np.ascontiguousarray(planes.v).tobytes(),
        ]
    return b"".join(parts)
