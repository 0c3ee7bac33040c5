"""``sod-train video``: one saliency map per frame, streamed, with per-frame statistics.

For each frame of a :class:`~sod_train.video.source.Video`: the model's map at the
frame's native size (:func:`sod_train.video.run.frame_input` and
:func:`~sod_train.video.run.input_map`), optionally smoothed over time
(:class:`~sod_train.video.run.Smoother`), its ``saliency_mean`` / ``saliency_var`` and the
time taken (decode, colour conversion, model and statistics), then every requested output
(:mod:`sod_train.video.outputs`) and the stability figures
(:mod:`sod_train.video.stability`).

Reading and converting frame n+1 overlaps the model's run on frame n: a worker thread
(:class:`Prefetch`) decodes and converts up to ``prefetch`` frames ahead into a fixed set
of input buffers (numpy and onnxruntime release the GIL), and hands them over in order.
Memory is a few frames (plus the smoother's state and a report's thumbnails) whatever
the video's length; rows, maps and errors are those of the plain one-frame-at-a-time loop.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from sod_train import atomicio, progress
from sod_train.errors import UserInputError
from sod_train.hashing import file_sha256
from sod_train.video.outputs import CsvSink, MapsSink, OverlaySink
from sod_train.video.run import Smoother, frame_input, input_map, map_stats
from sod_train.video.source import Frame, Video
from sod_train.video.stability import Stability

PREFETCH = 1  # frames converted ahead of the model (0: no worker thread)
_POLL = 0.05  # seconds between the worker's looks at its stop flag while it waits


@dataclass
class Outputs:
    """What to write; None: not requested. ``csv_stream`` receives the CSV when no file is."""

    csv: Path | None = None
    json: Path | None = None
    maps: Path | None = None
    overlay: Path | None = None
    overlay_style: str = "beside"
    report: Path | None = None
    csv_stream: IO[str] | None = None


@dataclass
class VideoResult:
    """Every frame's row, the stability figures and how fast it ran."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    stability: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return len(self.rows) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Prepared:
    """A frame, its model input and the seconds spent reading and converting it."""

    frame: Frame
    x: np.ndarray
    seconds: float


class Prefetch:
    """Frames with their model inputs, read and converted ``ahead`` frames in advance.

    ``ahead`` 0 does the work inline, when the consumer asks; otherwise one worker thread
    does it, ``ahead`` ready frames wait in a queue and inputs are written into at most
    ``ahead + 2`` buffers that the consumer hands back with :meth:`release` (the model is
    done with it). An error in the worker is raised in the consumer at that frame's turn,
    as the inline loop would raise it. Use it as a context: leaving stops the worker.
    """

    _END = object()

    def __init__(self, frames: Iterator[Frame], need_rgb: bool, ahead: int = PREFETCH) -> None:
        self.frames, self.need_rgb, self.ahead = frames, need_rgb, ahead
        self.free: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self.spare = ahead + 2  # buffers still to be allocated
        self.ready: queue.Queue[Any] = queue.Queue(maxsize=max(1, ahead))
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if ahead > 0:
            self.thread = threading.Thread(
                target=self._work, name="sod-train-video-prefetch", daemon=True
            )
            self.thread.start()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker (it finishes the frame in hand) and wait for it."""
        self.stop.set()
        if self.thread is not None:
            with contextlib.suppress(queue.Empty):
                while True:  # unblock a worker waiting to hand over
                    self.ready.get_nowait()
            self.thread.join()

    def release(self, x: np.ndarray) -> None:
        """Hand an input back for reuse once the model has run on it."""
        if self.thread is not None:
            self.free.put(x)

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A free input buffer of ``shape``; None once stopped."""
        while not self.stop.is_set():
            try:
                buffer = self.free.get(timeout=_POLL if self.spare == 0 else 0)
            except queue.Empty:
                if self.spare == 0:
                    continue
                self.spare -= 1
                return np.empty(shape, dtype=np.float32)
            if buffer.shape == shape:
                return buffer
            self.spare += 1  # a frame of another size: drop the buffer, allocate anew
        return None

    def _prepare(self, out: np.ndarray | None = None) -> Prepared | None:
        """The next frame and its input (None at the end)."""
        tick = time.perf_counter()
        frame = next(self.frames, None)
        if frame is None:
            return None
        if out is None and self.thread is not None and frame.planes is not None:
            out = self._buffer((1, 3, *frame.planes.size))
            if out is None:
                return None
        x = frame_input(frame, out)
        if self.need_rgb:
            _ = frame.rgb  # converted here, off the model's thread
        return Prepared(frame, x, time.perf_counter() - tick)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.ready.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                item = self._prepare()
                if not self._put(self._END if item is None else item) or item is None:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[Prepared]:
        while True:
            item = self._prepare() if self.thread is None else self.ready.get()
            if item is None or item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def process_video(
    video: Video,
    model: Any,
    model_path: Path,
    outputs: Outputs,
    smooth: float = 0.0,
    max_frames: int | None = None,
    quiet: bool = False,
    prefetch: int = PREFETCH,
) -> VideoResult:
    """Run the model on every frame of ``video`` and write ``outputs`` (all or nothing).

    ``prefetch`` frames are read and converted ahead in a worker thread (0: none).
    """
    from sod_train.video.report import ReportCollector, write_report

    smoother = Smoother(smooth)
    stability = Stability()
    result = VideoResult()
    length = min(video.length, max_frames) if video.length and max_frames else video.length
    collector = ReportCollector(length) if outputs.report else None
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        csv_sink = CsvSink(stack, outputs.csv, outputs.csv_stream)
        maps = MapsSink(stack, outputs.maps) if outputs.maps else None
        overlay = (
            OverlaySink(stack, outputs.overlay, outputs.overlay_style, video.fps)
            if outputs.overlay
            else None
        )
        frames = video.frames()
        if max_frames is not None:
            frames = itertools.islice(frames, max_frames)
        need_rgb = bool(overlay or collector)

        def rate(_: object) -> str:
            spent = time.perf_counter() - started
            return f"{len(result.rows) / spent:.1f} fps" if spent > 0 else ""

        label = f"video {video.path.name}"
        with (
            progress.Bar(length=length, label=label, quiet=quiet, show=rate) as bar,
            Prefetch(frames, need_rgb, prefetch) as prepared,
        ):
            for item in prepared:
                tick = time.perf_counter()
                frame = item.frame
                try:
                    saliency = smoother(input_map(model, item.x))
                except UserInputError as exc:
                    raise UserInputError(f"{model_path}: frame {frame.index}: {exc}") from None
                prepared.release(item.x)
                mean, var = map_stats(saliency)
                row = {
                    "frame": frame.index,
                    "pts": frame.pts,
                    "saliency_mean": mean,
                    "saliency_var": var,
                    "ms": round((item.seconds + time.perf_counter() - tick) * 1000.0, 3),
                }
                stability.step(saliency, mean)
                csv_sink.write(row)
                if maps:
                    maps.write(frame.index, saliency)
                if overlay:
                    overlay.write(frame.rgb, saliency)
                if collector:
                    collector.add(frame.index, frame.rgb, saliency, mean)
                result.rows.append(row)
                bar.update(1)
        result.seconds = time.perf_counter() - started
        result.stability = stability.get_results()
        if overlay:
            overlay.close()
        if maps:
            maps.commit()
        if outputs.json:
            atomicio.write_json(outputs.json, json_document(video, model_path, smooth, result))
        if outputs.report and collector:
            write_report(outputs.report, video, model_path, result, collector)
    return result


def json_document(
    video: Video, model_path: Path, smooth: float, result: VideoResult
) -> dict[str, Any]:
    """The ``--json`` document: input, model, options, stability and one row per frame."""
    return {
        "input": str(video.path),
        "kind": video.kind,
        "width": video.width,
        "height": video.height,
        "fps": video.fps,
        "model": str(model_path),
        "model_sha256": file_sha256(model_path),
        "yuv_matrix": video.matrix,
        "range": video.value_range,
        "smooth": smooth,
        "frames": len(result.rows),
        "seconds": round(result.seconds, 3),
        "stability": result.stability,
        "rows": result.rows,
    }


def summary(video: Video, result: VideoResult) -> str:
    """One line for stderr: frames, speed, the mean saliency and the stability figures."""
    rows = result.rows
    mean = sum(r["saliency_mean"] for r in rows) / len(rows) if rows else 0.0
    st = result.stability

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"{len(rows)} frames of {video.width}x{video.height} at {result.fps:.1f} fps; "
        f"saliency_mean {mean:.4f}; consecutive IoU mean {fmt(st.get('iou_mean'))}, "
        f"p5 {fmt(st.get('iou_p5'))}; mean |change| {fmt(st.get('mean_change'))}"
    )
