"""Where per-frame results go, each written atomically: nothing is left at an output path
unless the whole video was processed.

* :class:`CsvSink` streams rows into a temp file renamed at the end;
* :class:`MapsSink` writes grey PNGs into a hidden temp folder next to ``--maps`` and moves
  them in at the end;
* :class:`OverlaySink` streams the picture with its map beside it (or over it) to a y4m
  (4:4:4, BT.709 limited range) or, through PyAV, to mp4 / mkv (H.264, yuv420p: a browser
  plays it) or webm (VP9).
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from sod_train import atomicio
from sod_train.errors import UserInputError, first_line
from sod_train.video.colour import Planes, rgb_to_yuv444
from sod_train.video.source import fps_fraction, import_av
from sod_train.video.y4m import y4m_frame, y4m_header

CSV_FIELDS = ("frame", "pts", "saliency_mean", "saliency_var", "ms")
OVERLAY_STYLES = ("beside", "over")
AV_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
OVERLAY_SUFFIXES = (".y4m", *AV_CONTAINERS)
H264_CODECS = ("libx264", "h264", "libopenh264", "mpeg4")  # first one FFmpeg can encode


def map_to_uint8(saliency: np.ndarray) -> np.ndarray:
    """A [0, 1] map as 8-bit grey: rint(clip(map, 0, 1) * 255), as evaluate quantises."""
    return np.rint(np.clip(saliency, 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay_picture(rgb: np.ndarray, saliency: np.ndarray, style: str) -> np.ndarray:
    """``beside``: picture | grey map; ``over``: the picture dimmed where the map is low."""
    if style == "beside":
        grey = np.repeat(map_to_uint8(saliency)[:, :, None], 3, axis=2)
        return np.concatenate([rgb, grey], axis=1)
    weight = 0.25 + 0.75 * np.clip(saliency, 0.0, 1.0)[:, :, None]
    return np.rint(rgb * weight).astype(np.uint8)


class CsvSink:
    """One CSV row per frame, streamed to a temp file that becomes ``dest`` on success."""

    def __init__(self, stack: contextlib.ExitStack, dest: Path | None, stream: IO[str] | None):
        handle = stack.enter_context(atomicio.atomic_open(dest, "w")) if dest else stream
        self.writer = csv.writer(handle, lineterminator="\n") if handle else None
        if self.writer:
            self.writer.writerow(CSV_FIELDS)

    def write(self, row: dict[str, Any]) -> None:
        if self.writer:
            self.writer.writerow([_cell(row[key]) for key in CSV_FIELDS])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class MapsSink:
    """Grey PNG per frame (``frame_000000.png``, ...) moved into ``dest`` on success."""

    def __init__(self, stack: contextlib.ExitStack, dest: Path) -> None:
        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        stack.callback(shutil.rmtree, self.tmp, True)
        self.names: list[str] = []

    def write(self, index: int, saliency: np.ndarray) -> None:
        name = f"frame_{index:06d}.png"
        Image.fromarray(map_to_uint8(saliency), mode="L").save(self.tmp / name)
        self.names.append(name)

    def commit(self) -> None:
        self.dest.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            os.replace(self.tmp / name, self.dest / name)


class _Y4MWriter:
    def __init__(self, stack: contextlib.ExitStack, dest: Path, fps: float | None) -> None:
        self.fh = stack.enter_context(atomicio.atomic_open(dest, "wb"))
        self.fps = fps_fraction(fps)
        self.started = False

    def write(self, rgb: np.ndarray) -> None:
        if not self.started:
            self.fh.write(y4m_header(rgb.shape[1], rgb.shape[0], self.fps, "444"))
            self.started = True
        self.fh.write(y4m_frame(Planes(*rgb_to_yuv444(rgb))))

    def close(self) -> None:
        pass


def pick_codec(av: Any, suffix: str) -> str:
    """The encoder for ``suffix``: VP9 for webm, else the first H.264 (mpeg4 as a fallback)."""
    wanted = ("libvpx-vp9", "libvpx") if suffix == ".webm" else H264_CODECS
    for name in wanted:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # av raises UnknownCodecError / ValueError for missing encoders
            continue
        return name
    raise UserInputError(f"this PyAV build has no encoder for {suffix} ({', '.join(wanted)})")


class _AVWriter:
    """Encode RGB frames through PyAV into a temp file renamed onto ``dest`` on success."""

    def __init__(self, stack: contextlib.ExitStack, dest: Path, fps: float | None) -> None:
        self.av = import_av()
        self.suffix = dest.suffix.lower()
        self.codec = pick_codec(self.av, self.suffix)
        self.tmp = stack.enter_context(atomicio.atomic_path(dest))
        self.fps = fps_fraction(fps)
        self.container: Any = None
        self.stream: Any = None
        self.dest = dest

    def _open(self, width: int, height: int) -> None:
        try:
            self.container = self.av.open(
                str(self.tmp), mode="w", format=AV_CONTAINERS[self.suffix]
            )
            self.stream = self.container.add_stream(self.codec, rate=self.fps)
            self.stream.width, self.stream.height = width, height
            self.stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                self.stream.options = {"crf": "20", "preset": "veryfast"}
        except Exception as exc:
            raise UserInputError(
                f"{self.dest}: cannot start the video ({first_line(exc)})"
            ) from None

    def write(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        pad_h, pad_w = height % 2, width % 2  # yuv420p needs even sizes
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if self.container is None:
            self._open(rgb.shape[1], rgb.shape[0])
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()

    def abort(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()


class OverlaySink:
    """The picture with its map, frame by frame, into a y4m or a PyAV container."""

    def __init__(
        self, stack: contextlib.ExitStack, dest: Path, style: str, fps: float | None
    ) -> None:
        suffix = dest.suffix.lower()
        if suffix not in OVERLAY_SUFFIXES:
            raise UserInputError(f"{dest}: --overlay must end in {', '.join(OVERLAY_SUFFIXES)}")
        if style not in OVERLAY_STYLES:
            raise UserInputError(f"--overlay-style {style}: choose {', '.join(OVERLAY_STYLES)}")
        self.style = style
        self.writer: _Y4MWriter | _AVWriter = (
            _Y4MWriter(stack, dest, fps) if suffix == ".y4m" else _AVWriter(stack, dest, fps)
        )
        if isinstance(self.writer, _AVWriter):
            stack.push(self._abort_on_error)

    def _abort_on_error(self, exc_type: Any, *rest: Any) -> bool:
        if exc_type is not None and isinstance(self.writer, _AVWriter):
            self.writer.abort()
        return False

    def write(self, rgb: np.ndarray, saliency: np.ndarray) -> None:
        self.writer.write(overlay_picture(rgb, saliency, self.style))

    def close(self) -> None:
        self.writer.close()
