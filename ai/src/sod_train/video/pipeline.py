"""``sod-train video``: one saliency map per frame, streamed, with per-frame statistics.

For each frame of a :class:`~sod_train.video.source.Video`: the model's map at the
frame's native size (:func:`sod_train.video.run.frame_input` and
:func:`~sod_train.video.run.input_map`), optionally smoothed over time
(:class:`~sod_train.video.run.Smoother`), its ``saliency_mean`` / ``saliency_var`` and the
time taken (decode, colour conversion, model and statistics), then every requested output
(:mod:`sod_train.video.outputs`) and the stability figures
(:mod:`sod_train.video.stability`).

Three stages overlap (:func:`pipeline`): a worker thread reads and converts frame n+2
into one of a fixed set of input buffers, another runs the model on frame n+1, while
this thread smooths, measures and writes frame n (numpy and onnxruntime release the GIL,
so on two cores the model's run hides the rest). Queues of ``prefetch`` frames between
them keep memory at a few frames (plus the smoother's state and a report's thumbnails)
whatever the video's length; rows, maps and errors are those of the plain
one-frame-at-a-time loop (``prefetch`` 0), in the same order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from sod_train import atomicio, progress
from sod_train.errors import UserInputError
from sod_train.hashing import file_sha256
from sod_train.stdio import is_stdio, write_stdout
from sod_train.video.outputs import CsvSink, MapsSink, OverlaySink
from sod_train.video.run import Smoother, frame_input, input_map, map_stats
from sod_train.video.source import Frame, Video
from sod_train.video.stability import Stability

if TYPE_CHECKING:
    from sod_train.video.report import ReportCollector

PREFETCH = 1  # frames queued between stages (0: no worker threads, one stage at a time)
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
    """A frame, its model input (or map, once run) and the seconds spent on it so far."""

    frame: Frame
    x: np.ndarray
    seconds: float
    pooled: bool = False  # x is one of the pipeline's Buffers


class Ahead:
    """Iterate ``source`` in a worker thread, ``ahead`` items in advance (0: inline).

    The items come out in order; an exception in the worker is raised in the consumer at
    that item's turn, as the inline loop would raise it. Every wait in the worker and the
    consumer also watches ``stop``, shared by the stages of one pipeline, so setting it
    (:meth:`close`) ends them all even when one waits on another.
    """

    _END = object()

    def __init__(self, source: Iterator[Any], ahead: int, stop: threading.Event, name: str):
        self.source, self.stop = source, stop
        self.ready: queue.Queue[Any] = queue.Queue(maxsize=max(1, ahead))
        self.thread: threading.Thread | None = None
        if ahead > 0:
            self.thread = threading.Thread(target=self._work, name=name, daemon=True)
            self.thread.start()

    def close(self) -> None:
        """Stop (the worker finishes the item in hand) and wait for the worker."""
        self.stop.set()
        if self.thread is not None:
            with contextlib.suppress(queue.Empty):
                while True:  # unblock a worker waiting to hand over
                    self.ready.get_nowait()
            self.thread.join()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.ready.put(item, timeout=_POLL)
                return True
        return False

    def _work(self) -> None:
        try:
            for item in self.source:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[Any]:
        if self.thread is None:
            yield from self.source
            return
        while True:
            try:
                item = self.ready.get(timeout=_POLL)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Buffers:
    """At most ``count`` reusable model-input buffers: taken by the reading stage, handed
    back by the model stage once onnxruntime is done with them (constant memory)."""

    def __init__(self, count: int, stop: threading.Event) -> None:
        self.free: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self.spare, self.stop = count, stop

    def take(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A buffer of ``shape`` (waits for one to come back); None once stopped."""
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
            self.spare += 1  # another size: drop it, allocate anew
        return None

    def give(self, buffer: np.ndarray) -> None:
        self.free.put(buffer)


def prepared(
    frames: Iterator[Frame], need_rgb: bool, buffers: Buffers | None = None
) -> Iterator[Prepared]:
    """Stage 1: read each frame, make its model input (into one of ``buffers`` when
    given), and its RGB picture too when an output needs one."""
    while True:
        tick = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            return
        read = time.perf_counter() - tick
        out = None
        if buffers is not None and frame.planes is not None:
            out = buffers.take((1, 3, *frame.planes.size))  # waiting is not the frame's time
            if out is None:  # stopped
                return
        tick = time.perf_counter()
        x = frame_input(frame, out)
        if need_rgb:
            _ = frame.rgb  # converted here, off the model's thread
        seconds = read + time.perf_counter() - tick
        yield Prepared(frame, x, seconds, pooled=out is not None)


def mapped(
    items: Iterable[Prepared], model: Any, model_path: Path, buffers: Buffers | None = None
) -> Iterator[Prepared]:
    """Stage 2: the model's map of each prepared frame (``x`` becomes the map)."""
    for item in items:
        tick = time.perf_counter()
        try:
            saliency = input_map(model, item.x)
        except UserInputError as exc:
            raise UserInputError(f"{model_path}: frame {item.frame.index}: {exc}") from None
        if buffers is not None and item.pooled:
            buffers.give(item.x)
        yield Prepared(item.frame, saliency, item.seconds + time.perf_counter() - tick)


@contextlib.contextmanager
def pipeline(
    frames: Iterator[Frame], model: Any, model_path: Path, need_rgb: bool, ahead: int = PREFETCH
) -> Iterator[Iterator[Prepared]]:
    """Frames with their maps, in order: reading and converting, the model, and the
    caller's statistics and outputs run as three stages, overlapped when ``ahead`` > 0
    (two worker threads, ``ahead`` items queued between stages, ``ahead + 2`` input
    buffers). Leaving the context stops the workers."""
    stop = threading.Event()
    buffers = Buffers(ahead + 2, stop)  # inline (ahead 0) uses one, again and again
    first = Ahead(prepared(frames, need_rgb, buffers), ahead, stop, "sod-train-video-read")
    second = Ahead(mapped(first, model, model_path, buffers), ahead, stop, "sod-train-video-model")
    try:
        yield iter(second)
    finally:
        second.close()
        first.close()


def process_video(
    video: Video,
    model: Any,
    model_path: Path,
    outputs: Outputs,
    smooth: float = 0.0,
    max_frames: int | None = None,
    quiet: bool = False,
    prefetch: int = PREFETCH,
    collector: ReportCollector | None = None,
) -> VideoResult:
    """Run the model on every frame of ``video`` and write ``outputs`` (all or nothing).

    With ``prefetch`` > 0 reading and converting, the model, and the statistics and
    outputs of successive frames overlap (:func:`pipeline`); 0 runs them one after another.
    ``collector`` (made here when ``outputs.report`` asks for a page) keeps the series and
    filmstrip of a report's video section (``sod-train report --video`` passes its own).
    """
    from sod_train.video.report import ReportCollector, write_report

    smoother = Smoother(smooth)
    stability = Stability()
    result = VideoResult()
    length = min(video.length, max_frames) if video.length and max_frames else video.length
    if collector is None and outputs.report:
        collector = ReportCollector(length)
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
            pipeline(frames, model, model_path, need_rgb, prefetch) as items,
        ):
            for item in items:
                tick = time.perf_counter()
                frame = item.frame
                saliency = smoother(item.x)
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
        if outputs.json and is_stdio(outputs.json):
            doc = json_document(video, model_path, smooth, result)
            write_stdout(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        elif outputs.json:
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
