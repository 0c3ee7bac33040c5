"""``sod-train video``: one saliency map per frame, streamed, with per-frame statistics.

For each frame of a :class:`~sod_train.video.source.Video`: the model's map at the
frame's native size (:func:`sod_train.video.run.frame_map`), optionally smoothed over time
(:class:`~sod_train.video.run.Smoother`), its ``saliency_mean`` / ``saliency_var`` and the
time taken (decode, colour conversion, model and statistics), then every requested output
(:mod:`sod_train.video.outputs`) and the stability figures
(:mod:`sod_train.video.stability`). Memory is one frame (plus the smoother's state and
a report's thumbnails) whatever the video's length.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sod_train import atomicio, progress
from sod_train.errors import UserInputError
from sod_train.hashing import file_sha256
from sod_train.video.outputs import CsvSink, MapsSink, OverlaySink
from sod_train.video.run import Smoother, frame_map, map_stats
from sod_train.video.source import Video
from sod_train.video.stability import Stability


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


def process_video(
    video: Video,
    model: Any,
    model_path: Path,
    outputs: Outputs,
    smooth: float = 0.0,
    max_frames: int | None = None,
    quiet: bool = False,
) -> VideoResult:
    """Run the model on every frame of ``video`` and write ``outputs`` (all or nothing)."""
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

        def rate(_: object) -> str:
            spent = time.perf_counter() - started
            return f"{len(result.rows) / spent:.1f} fps" if spent > 0 else ""

        label = f"video {video.path.name}"
        with progress.Bar(length=length, label=label, quiet=quiet, show=rate) as bar:
            while max_frames is None or len(result.rows) < max_frames:
                tick = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                try:
                    saliency = smoother(frame_map(model, frame.rgb))
                except UserInputError as exc:
                    raise UserInputError(f"{model_path}: frame {frame.index}: {exc}") from None
                mean, var = map_stats(saliency)
                row = {
                    "frame": frame.index,
                    "pts": frame.pts,
                    "saliency_mean": mean,
                    "saliency_var": var,
                    "ms": round((time.perf_counter() - tick) * 1000.0, 3),
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
