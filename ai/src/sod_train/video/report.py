"""The video section of a report: saliency_mean over time, a filmstrip, stability figures.

:func:`video_section` is the ONE builder of that section; two commands use it:

* ``sod-train video CLIP --report OUT.html`` (:func:`write_report`): one model, one clip;
* ``sod-train report MODELS --video CLIP [--video-masks DIR]`` (:func:`run_clips`): every
  model on every clip, one section per clip, with the ground truth's stability figures
  when masks are given.

The page around the sections is :func:`sod_train.evaluate.report.html_page`, the report's
one page shell. ``evaluate/`` comes before ``video/`` in the stage order
(docs/architecture.md), so it never imports this module: ``build_report`` takes the video
sections as pre-rendered HTML from the caller (the CLI), and a video-only page is written
here (:func:`write_sections`).

A section is an HTML fragment: inline SVG plot, data-URI thumbnails, no script, no
network, no matplotlib. The figures are those of ``sod-train video --json`` for the same
clip, model and options, because each model runs through the same
:func:`sod_train.video.pipeline.process_video`; every number in the stability table also
carries its full-precision value in ``data-value``. The filmstrip keeps at most
``FILMSTRIP`` frames, evenly spaced, in constant memory even when the frame count is
unknown (every other kept frame is dropped when the strip fills, and the stride doubles).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from sod_train import atomicio
from sod_train.errors import UserInputError, first_line
from sod_train.evaluate.evaluate import load_mask
from sod_train.evaluate.report import data_uri, html_page
from sod_train.video.colour import DEFAULT_MATRIX, DEFAULT_RANGE
from sod_train.video.outputs import map_to_uint8
from sod_train.video.source import PICTURE_SUFFIXES, RAW_SUFFIXES, open_video
from sod_train.video.stability import Stability

if TYPE_CHECKING:
    from sod_train.video.pipeline import VideoResult
    from sod_train.video.source import Video

FILMSTRIP = 8
THUMB_HEIGHT = 96
PLOT_W, PLOT_H = 720, 180
COLOURS = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f")
MASK_THRESHOLD = 128  # a mask pixel is object above this (as evaluate and evaluate-video)
TRUTH = "ground truth"


def _thumb(array: np.ndarray) -> str:
    img = Image.fromarray(array)
    width = max(1, round(img.width * THUMB_HEIGHT / img.height))
    return data_uri(img.resize((width, THUMB_HEIGHT), Image.Resampling.BILINEAR), "JPEG")


class ReportCollector:
    """Keeps the filmstrip's thumbnails and the saliency_mean series while frames stream.

    ``keep_frames`` False keeps only the maps (a second model on the same clip: its frames
    are the first model's, chosen by the same rule, so the same indices).
    """

    def __init__(self, length: int | None, slots: int = FILMSTRIP, keep_frames: bool = True):
        self.slots = slots
        self.keep_frames = keep_frames
        self.wanted = (
            set(np.linspace(0, length - 1, min(slots, length)).round().astype(int).tolist())
            if length
            else None
        )
        self.stride = 1
        self.strip: list[tuple[int, str | None, str]] = []
        self.means: list[float] = []

    def add(self, index: int, rgb: np.ndarray, saliency: np.ndarray, mean: float) -> None:
        self.means.append(mean)
        keep = index in self.wanted if self.wanted is not None else index % self.stride == 0
        if not keep:
            return
        frame = _thumb(rgb) if self.keep_frames else None
        self.strip.append((index, frame, _thumb(map_to_uint8(saliency))))
        if self.wanted is None and len(self.strip) >= 2 * self.slots:
            self.strip = self.strip[::2]
            self.stride *= 2

    def filmstrip(self) -> list[tuple[int, str | None, str]]:
        if len(self.strip) <= self.slots:
            return self.strip
        step = len(self.strip) / self.slots
        return [self.strip[int(i * step)] for i in range(self.slots)]


@dataclass
class ModelRun:
    """One model on one clip: its label, ``process_video``'s result and the collector."""

    label: str
    result: VideoResult
    collector: ReportCollector


def plot_svg(series: dict[str, list[float]], label: str = "saliency_mean") -> str:
    """An inline SVG line plot of each series against the frame index (one y scale)."""
    series = {name: values for name, values in series.items() if values}
    if not series:
        return "<p>no frames</p>"
    every = [v for values in series.values() for v in values]
    low, high = min(every), max(every)
    span = (high - low) or 1.0
    n = max(len(values) for values in series.values())
    pad = 36
    lines, legend = [], []
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        xs = [pad + (PLOT_W - pad - 8) * (i / max(1, n - 1)) for i in range(len(values))]
        ys = [PLOT_H - 20 - (PLOT_H - 30) * ((v - low) / span) for v in values]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'data-series="{html.escape(name)}" points="{points}"/>'
        )
        legend.append(
            f'<text x="{PLOT_W - 8}" y="{14 + 13 * k}" font-size="11" text-anchor="end" '
            f'fill="{colour}">{html.escape(name)}</text>'
        )
    return (
        f'<svg width="{PLOT_W}" height="{PLOT_H}" role="img" aria-label="{label} per frame">'
        f'<rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>{"".join(lines)}'
        f'<text x="2" y="14" font-size="11">{high:.4f}</text>'
        f'<text x="2" y="{PLOT_H - 22}" font-size="11">{low:.4f}</text>'
        f'<text x="{PLOT_W // 2}" y="{PLOT_H - 4}" font-size="11">frame (0..{n - 1})'
        f" - {label}</text>{''.join(legend)}</svg>"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "<td>n/a</td>"
    return f'<td data-value="{float(value)!r}">{value:.4f}</td>'


def stability_table(figures: dict[str, dict[str, Any]]) -> str:
    """Rows: one per source (each model, the ground truth); columns: the stability figures."""
    head = "<tr><th></th><th>IoU mean</th><th>IoU p5</th><th>mean |change|</th></tr>"
    rows = "".join(
        f'<tr data-source="{html.escape(name)}"><th>{html.escape(name)}</th>'
        f"{_cell(f.get('iou_mean'))}{_cell(f.get('iou_p5'))}{_cell(f.get('mean_change'))}</tr>"
        for name, f in figures.items()
    )
    return f'<table class="stability">{head}{rows}</table>'


def video_section(
    title: str, note: str, runs: Sequence[ModelRun], truth: dict[str, Any] | None = None
) -> str:
    """The HTML fragment of one clip: plot (a line per model), filmstrip (each frame over
    every model's map) and the stability table (a row per model, and the ground truth's
    when ``truth`` is given)."""
    strips = [run.collector.filmstrip() for run in runs]
    cells = []
    for k, (index, frame, _) in enumerate(strips[0] if strips else []):
        maps = "".join(
            f'<img src="{strip[k][2]}" alt="map {index} ({html.escape(run.label)})">'
            for run, strip in zip(runs, strips, strict=True)
        )
        cells.append(
            f'<figure><img src="{frame}" alt="frame {index}">{maps}'
            f"<figcaption>frame {index}</figcaption></figure>"
        )
    figures = {run.label: run.result.stability for run in runs}
    if truth is not None:
        figures[TRUTH] = truth
    truth_note = (
        " The ground truth's row is the same figures on its masks (binarised at "
        f"&gt; {MASK_THRESHOLD}): an object that moves lowers it too, so flicker is the "
        "model's shortfall against it, not its distance from 1."
        if truth is not None
        else ""
    )
    order = ", ".join(html.escape(run.label) for run in runs)
    return (
        f'<section class="video"><h2>{html.escape(title)}</h2>'
        f'<p class="note">{html.escape(note)}</p>'
        f"<h3>saliency_mean over time</h3>{plot_svg({r.label: r.collector.means for r in runs})}"
        f'<h3>Filmstrip (frame, then the map of {order})</h3><div class="strip">'
        f"{''.join(cells)}</div>"
        "<h3>Temporal stability</h3>"
        "<p>IoU between consecutive maps binarised at 0.5 (two empty maps: 1), its 5th "
        "percentile, and the mean absolute frame-to-frame change of saliency_mean."
        f"{truth_note}</p>"
        f"{stability_table(figures)}</section>"
    )


def _describe(video: Video, result: VideoResult) -> str:
    return (
        f"{video.describe()}; {len(result.rows)} frames at {result.fps:.1f} fps; "
        f"YUV matrix {video.matrix}, range {video.value_range}"
    )


def write_report(
    dest: Path, video: Video, model_path: Path, result: VideoResult, collector: ReportCollector
) -> None:
    """``sod-train video --report``: a self-contained page with the one clip's section."""
    section = video_section(
        f"{video.path.name} with {model_path.name}",
        _describe(video, result),
        [ModelRun("model", result, collector)],
    )
    page = html_page(f"sod-train video: {video.path.name}", section)
    atomicio.write_bytes(dest, page.encode("utf-8"))


# --------------------------------------------------------------------------- report --video


@dataclass
class Clip:
    """A clip for ``sod-train report --video`` and its mask folder (None: no ground truth);
    ``masks`` are the folder's pictures, sorted by name, paired with the frames in order."""

    path: Path
    mask_dir: Path | None = None
    masks: list[Path] = field(default_factory=list)


def list_masks(folder: Path) -> list[Path]:
    """The pictures of a mask folder, sorted by name (as a folder of frames is read)."""
    if not folder.is_dir():
        raise UserInputError(f"{folder}: not a folder of masks")
    try:
        masks = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES)
    except OSError as exc:
        raise UserInputError(f"{folder}: cannot list the folder ({first_line(exc)})") from None
    if not masks:
        raise UserInputError(f"{folder}: no masks in the folder ({' '.join(PICTURE_SUFFIXES)})")
    return masks


def _count_problem(clip: Clip, frames: int, capped: bool) -> str | None:
    have = len(clip.masks)
    if have == frames or (capped and have > frames):
        return None
    return f"{clip.mask_dir}: {have} masks for {frames} frames of {clip.path}"


def check_clips(
    videos: Sequence[Path],
    mask_dirs: Sequence[Path] = (),
    max_frames: int | None = None,
    matrix: str = DEFAULT_MATRIX,
    value_range: str = DEFAULT_RANGE,
) -> list[Clip]:
    """Open every clip and list every mask folder before any model runs (UserInputError
    naming the file: unreadable, no frames, a count of masks that cannot match).

    The i-th mask folder goes with the i-th clip; later clips have none.
    """
    if len(mask_dirs) > len(videos):
        raise UserInputError(
            f"{mask_dirs[len(videos)]}: {len(mask_dirs)} --video-masks for {len(videos)} "
            "--video (the i-th mask folder goes with the i-th clip)"
        )
    clips = []
    for i, path in enumerate(videos):
        if path.suffix.lower() in RAW_SUFFIXES:
            raise UserInputError(
                f"{path}: raw YUV has no header and `sod-train report` takes no --pix-fmt; "
                "wrap it in y4m or run `sod-train video --size WxH --pix-fmt F --report`"
            )
        with open_video(path, matrix, value_range) as video:
            length = video.length
        clip = Clip(path)
        if i < len(mask_dirs):
            clip.mask_dir = mask_dirs[i]
            clip.masks = list_masks(mask_dirs[i])
            if length:  # else (a container that does not say) checked once it has run
                capped = max_frames is not None and max_frames < length
                problem = _count_problem(clip, max_frames if capped else length, capped)
                if problem:
                    raise UserInputError(problem)
        clips.append(clip)
    return clips


def truth_stability(clip: Clip, frames: int, size: tuple[int, int]) -> dict[str, Any]:
    """The stability figures of the first ``frames`` masks (binarised at > 128), each
    checked against the frame size ``(width, height)``."""
    stability = Stability()
    for path in clip.masks[:frames]:
        mask = load_mask(path)
        if mask.shape != (size[1], size[0]):
            raise UserInputError(
                f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the frames of {clip.path} "
                f"are {size[0]}x{size[1]}"
            )
        stability.step(mask > MASK_THRESHOLD)
    return stability.get_results()


@dataclass
class ClipReport:
    """One clip's section (HTML) and its figures (JSON-ready)."""

    html: str
    doc: dict[str, Any]


def run_clips(
    clips: Sequence[Clip],
    models: Sequence[tuple[str, Path]],
    threads: int | None = None,
    max_frames: int | None = None,
    matrix: str = DEFAULT_MATRIX,
    value_range: str = DEFAULT_RANGE,
    quiet: bool = False,
) -> list[ClipReport]:
    """Every ``(label, path)`` model on every clip through ``process_video`` (at the
    frame's native size, as ``sod-train video``), one :func:`video_section` per clip."""
    from sod_train.video.pipeline import Outputs, process_video
    from sod_train.video.run import load_model

    sessions = [(label, path, load_model(path, threads)) for label, path in models]
    reports = []
    for clip in clips:
        runs: list[ModelRun] = []
        for label, path, session in sessions:
            with open_video(clip.path, matrix, value_range) as video:
                length = video.length
                if length and max_frames:
                    length = min(length, max_frames)
                collector = ReportCollector(length, keep_frames=not runs)
                result = process_video(
                    video, session, path, Outputs(), 0.0, max_frames, quiet, collector=collector
                )
                note = video.describe()
                size = (video.width, video.height)
                # stopped by max_frames (not at the clip's end): later masks go unused
                capped = len(result.rows) == max_frames and video.length != max_frames
            if not result.rows:
                raise UserInputError(f"{clip.path}: the clip has no frames")
            runs.append(ModelRun(label, result, collector))
        frames = len(runs[0].result.rows)
        truth = None
        if clip.mask_dir is not None:
            problem = _count_problem(clip, frames, capped)
            if problem:
                raise UserInputError(problem)
            truth = truth_stability(clip, frames, size)
        note += f"; {frames} frames, each model at the frame's native size"
        if capped:
            note += f" (the first {frames})"
        if clip.mask_dir is not None:
            note += f"; masks {clip.mask_dir}"
        reports.append(
            ClipReport(
                video_section(clip.path.name, note, runs, truth),
                {
                    "video": str(clip.path),
                    "masks": None if clip.mask_dir is None else str(clip.mask_dir),
                    "frames": frames,
                    "models": {
                        run.label: {
                            "model": str(path),
                            "saliency_mean": float(np.mean(run.collector.means)),
                            "stability": run.result.stability,
                        }
                        for run, (_, path, _) in zip(runs, sessions, strict=True)
                    },
                    TRUTH: truth,
                },
            )
        )
    return reports


def write_sections(dest: Path, title: str, sections: Sequence[str]) -> None:
    """A video-only report page: the report's page shell around ``sections``."""
    atomicio.write_bytes(dest, html_page(title, "".join(sections)).encode("utf-8"))
