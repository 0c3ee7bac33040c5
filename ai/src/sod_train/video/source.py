"""Every kind of video input, streamed one frame at a time as RGB8 (and its YUV planes).

:func:`open_video` picks the reader from the input:

* a folder: its pictures (``.png .jpg .jpeg .bmp .tif .tiff .webp``), sorted by name,
  read by :func:`sod_train.data.imageio.load_rgb`; every frame must have the first one's size;
* a file starting with ``YUV4MPEG2`` (or named ``.y4m``): :class:`~sod_train.video.y4m.Y4MReader`;
* ``.yuv`` / ``.raw`` (or any file given ``--size``): raw planar YUV with ``--size WxH`` and
  ``--pix-fmt`` (``yuv420p``, ``yuv422p``, ``yuv444p``, ``gray``, and ``*10le`` variants);
* anything else (mp4, mkv, webm, mov, ...): decoded by PyAV (the ``video`` extra), whose
  YUV planes go through the same conversion as a y4m file's.

YUV frames become RGB by :func:`sod_train.video.colour.yuv_to_rgb` with the chosen matrix
and range; memory stays one frame whatever the input's length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sod_train.data.imageio import load_rgb
from sod_train.errors import UserInputError, first_line
from sod_train.guards import open_regular, require_regular_file
from sod_train.video.colour import DEFAULT_MATRIX, DEFAULT_RANGE, Planes, yuv_to_rgb
from sod_train.video.y4m import MAGIC, Layout, Y4MReader

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
RAW_SUFFIXES = (".yuv", ".raw")
# --pix-fmt of raw input -> (subsampling, depth), FFmpeg's names
PIX_FMTS: dict[str, tuple[tuple[int, int] | None, int]] = {
    "yuv420p": ((1, 1), 8),
    "yuv422p": ((1, 0), 8),
    "yuv444p": ((0, 0), 8),
    "gray": (None, 8),
    "yuv420p10le": ((1, 1), 10),
    "yuv422p10le": ((1, 0), 10),
    "yuv444p10le": ((0, 0), 10),
    "gray10le": (None, 10),
}
# PyAV frame formats read as they are; any other is converted to yuv420p by FFmpeg first.
AV_FORMATS: dict[str, tuple[tuple[int, int] | None, int]] = {
    "yuv420p": ((1, 1), 8),
    "yuvj420p": ((1, 1), 8),
    "yuv422p": ((1, 0), 8),
    "yuvj422p": ((1, 0), 8),
    "yuv444p": ((0, 0), 8),
    "yuvj444p": ((0, 0), 8),
    "gray": (None, 8),
    "yuv420p10le": ((1, 1), 10),
    "yuv422p10le": ((1, 0), 10),
    "yuv444p10le": ((0, 0), 10),
}
INSTALL_HINT = "pip install 'sod-train[video]'"
DEFAULT_FPS = 25.0  # frame rate of an overlay written from a folder (frames have no clock)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index, time in seconds (None if unknown) and YUV planes with
    their conversion, or an RGB8 ``picture`` read as such (a folder's frames).

    :attr:`rgb` is converted on first use only: the model's input is made from the planes
    directly (:func:`sod_train.video.run.frame_input`), so a run that writes no picture
    never builds one.
    """

    index: int
    pts: float | None
    planes: Planes | None = None
    matrix: str = DEFAULT_MATRIX
    value_range: str = DEFAULT_RANGE
    picture: np.ndarray | None = None

    @cached_property
    def rgb(self) -> np.ndarray:
        """uint8 HxWx3 RGB of the frame (:func:`~sod_train.video.colour.yuv_to_rgb`)."""
        if self.picture is not None:
            return self.picture
        assert self.planes is not None
        return yuv_to_rgb(self.planes, self.matrix, self.value_range)


class Video:
    """An opened input: ``kind``, ``width``, ``height``, ``fps`` (None if unknown),
    ``length`` (frame count, None if unknown) and :meth:`frames`. Use it as a context."""

    kind = "video"
    width = height = 0
    fps: float | None = None
    length: int | None = None

    def __init__(self, path: Path, matrix: str, value_range: str) -> None:
        self.path, self.matrix, self.value_range = path, matrix, value_range

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the input (files, decoders)."""

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _frame(self, index: int, pts: float | None, planes: Planes) -> Frame:
        return Frame(index, pts, planes, self.matrix, self.value_range)

    def describe(self) -> str:
        rate = f", {self.fps:g} fps" if self.fps else ""
        count = f", {self.length} frames" if self.length is not None else ""
        return f"{self.path} ({self.kind} {self.width}x{self.height}{rate}{count})"


class Y4MVideo(Video):
    def __init__(self, path: Path, matrix: str, value_range: str) -> None:
        super().__init__(path, matrix, value_range)
        self.reader = Y4MReader(path)
        layout = self.reader.layout
        self.kind = f"y4m {layout.name}"
        self.width, self.height = layout.width, layout.height
        self.fps, self.length = self.reader.fps, self.reader.length

    def close(self) -> None:
        self.reader.close()

    def frames(self) -> Iterator[Frame]:
        for index, pts, planes in self.reader:
            yield self._frame(index, pts, planes)


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (width, height); UserInputError if malformed."""
    width, sep, height = text.lower().partition("x")
    digits = (width + height).isascii() and width.isdigit() and height.isdigit()
    if not sep or not digits or len(width + height) > 12:  # ASCII: int() refuses '²'
        raise UserInputError(f"--size '{text}': expected WIDTHxHEIGHT, e.g. 1920x1080")
    return int(width), int(height)


class RawVideo(Video):
    """Headerless planar YUV: the frame size must divide the file's size exactly."""

    def __init__(
        self,
        path: Path,
        matrix: str,
        value_range: str,
        size: str | None,
        pix_fmt: str | None,
        fps: float | None,
    ) -> None:
        super().__init__(path, matrix, value_range)
        if size is None or pix_fmt is None:
            raise UserInputError(
                f"{path}: raw YUV has no header; give --size WxH and --pix-fmt "
                f"({', '.join(PIX_FMTS)})"
            )
        if pix_fmt not in PIX_FMTS:
            raise UserInputError(f"--pix-fmt '{pix_fmt}': choose one of {', '.join(PIX_FMTS)}")
        width, height = parse_size(size)
        subsampling, depth = PIX_FMTS[pix_fmt]
        self.layout = Layout(width, height, subsampling, depth)
        self.layout.check(path)
        total = require_regular_file(path, "the raw YUV video").st_size
        step = self.layout.frame_bytes
        if total == 0:
            raise UserInputError(f"{path}: the raw YUV file is empty (no frames)")
        if total % step:
            raise UserInputError(
                f"{path}: {total:,} bytes is not a whole number of {width}x{height} {pix_fmt} "
                f"frames ({step:,} bytes each; the last frame is truncated, or --size/--pix-fmt "
                "are wrong)"
            )
        self.kind = f"raw {pix_fmt}"
        self.width, self.height, self.length, self.fps = width, height, total // step, fps
        self.fh = open_regular(path, "the raw YUV video")

    def close(self) -> None:
        self.fh.close()

    def frames(self) -> Iterator[Frame]:
        step = self.layout.frame_bytes
        for index in range(self.length or 0):
            data = self.fh.read(step)
            if len(data) < step:  # the file shrank while we read it
                raise UserInputError(f"{self.path}: frame {index} is truncated")
            pts = index / self.fps if self.fps else None
            yield self._frame(index, pts, self.layout.planes(data))


class FolderVideo(Video):
    """The pictures of a folder, sorted by name; every one must have the first one's size."""

    def __init__(self, path: Path, fps: float | None) -> None:
        super().__init__(path, DEFAULT_MATRIX, DEFAULT_RANGE)
        try:
            entries = sorted(p for p in path.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES)
        except OSError as exc:
            raise UserInputError(f"{path}: cannot list the folder ({first_line(exc)})") from None
        if not entries:
            raise UserInputError(
                f"{path}: no pictures in the folder ({' '.join(PICTURE_SUFFIXES)})"
            )
        self.entries = entries
        _, (self.width, self.height) = load_rgb(entries[0])
        self.kind, self.length, self.fps = "folder of pictures", len(entries), fps

    def frames(self) -> Iterator[Frame]:
        for index, entry in enumerate(self.entries):
            rgb, (width, height) = load_rgb(entry)
            if (width, height) != (self.width, self.height):
                raise UserInputError(
                    f"{entry}: is {width}x{height}, but the first frame is "
                    f"{self.width}x{self.height}; a video's frames share one size"
                )
            yield Frame(index, index / self.fps if self.fps else None, picture=rgb)


def import_av() -> Any:
    """PyAV, or UserInputError saying how to install it."""
    try:
        import av
    except ImportError:
        raise UserInputError(
            f"reading mp4/mkv/webm needs PyAV, which is not installed: {INSTALL_HINT}"
        ) from None
    return av


def av_planes(frame: Any) -> Planes:
    """The YUV planes of a decoded PyAV frame (converted to yuv420p when not planar YUV)."""
    fmt = frame.format.name
    if fmt not in AV_FORMATS:
        frame = frame.reformat(format="yuv420p")
        fmt = "yuv420p"
    subsampling, depth = AV_FORMATS[fmt]
    dtype = np.dtype(np.uint8 if depth == 8 else "<u2")
    arrays = []
    for plane in frame.planes:
        row = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        arrays.append(row[:, : plane.width * dtype.itemsize].view(dtype))
    if subsampling is None:
        return Planes(arrays[0], None, None, depth)
    return Planes(arrays[0], arrays[1], arrays[2], depth)


class AVVideo(Video):
    """A container file (mp4, mkv, webm, ...) decoded by PyAV; its first video stream."""

    def __init__(self, path: Path, matrix: str, value_range: str) -> None:
        super().__init__(path, matrix, value_range)
        av = import_av()
        require_regular_file(path, "the video")
        try:
            self.container = av.open(str(path), mode="r")
        except Exception as exc:  # av.error.* (InvalidDataError, ...), OSError
            raise UserInputError(f"{path}: cannot open the video ({first_line(exc)})") from None
        streams = self.container.streams.video
        if not streams:
            self.container.close()
            raise UserInputError(f"{path}: the file has no video stream")
        self.stream = streams[0]
        self.stream.thread_type = "AUTO"
        ctx = self.stream.codec_context
        self.width, self.height = int(ctx.width), int(ctx.height)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.length = int(self.stream.frames) or None
        self.kind = f"{self.container.format.name.split(',')[0]} {ctx.name}"
        Layout(self.width, self.height, None).check(path)  # the run-size limits

    def close(self) -> None:
        self.container.close()

    def frames(self) -> Iterator[Frame]:
        index = 0
        decoded = self.container.decode(self.stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except Exception as exc:  # av.error.*: a corrupt packet
                raise UserInputError(
                    f"{self.path}: cannot decode frame {index} ({first_line(exc)})"
                ) from None
            pts = float(frame.time) if frame.time is not None else None
            yield self._frame(index, pts, av_planes(frame))
            index += 1
        if index == 0:
            raise UserInputError(f"{self.path}: the video stream has no frames")


def _starts_with_magic(path: Path) -> bool:
    try:
        with open_regular(path, "the video") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except UserInputError:
        return False


def open_video(
    path: str | os.PathLike[str],
    matrix: str = DEFAULT_MATRIX,
    value_range: str = DEFAULT_RANGE,
    size: str | None = None,
    pix_fmt: str | None = None,
    fps: float | None = None,
) -> Video:
    """The reader for ``path`` (rules in the module doc); UserInputError naming it if none fits."""
    path = Path(path)
    if path.is_dir():
        return FolderVideo(path, fps)
    require_regular_file(path, "the video")
    suffix = path.suffix.lower()
    if _starts_with_magic(path) or suffix == ".y4m":
        if size is not None or pix_fmt is not None:
            raise UserInputError(
                f"{path}: a y4m file says its size and format; drop --size/--pix-fmt"
            )
        return Y4MVideo(path, matrix, value_range)
    if suffix in RAW_SUFFIXES or size is not None or pix_fmt is not None:
        return RawVideo(path, matrix, value_range, size, pix_fmt, fps)
    if suffix in PICTURE_SUFFIXES:
        raise UserInputError(f"{path}: a single picture, not a video; use `sod-train predict`")
    return AVVideo(path, matrix, value_range)


def fps_fraction(fps: float | None) -> Fraction:
    """A frame rate as a small fraction for writers (DEFAULT_FPS when unknown)."""
    return Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
