"""The video section of a report: saliency_mean over time, a filmstrip, stability figures.

:func:`video_section` returns an HTML fragment (inline SVG plot, data-URI thumbnails, no
script, no network), which ``sod-train video --report OUT.html`` wraps in a page
(:func:`write_report`). No matplotlib needed. The filmstrip keeps at most
``FILMSTRIP`` frames, evenly spaced, in constant memory even when the frame count is
unknown (every other kept frame is dropped when the strip fills, and the stride doubles).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from sod_train import atomicio
from sod_train.evaluate.report import data_uri
from sod_train.video.outputs import map_to_uint8

if TYPE_CHECKING:
    from sod_train.video.pipeline import VideoResult
    from sod_train.video.source import Video

FILMSTRIP = 8
THUMB_HEIGHT = 96
PLOT_W, PLOT_H = 720, 180


def _thumb(array: np.ndarray) -> str:
    img = Image.fromarray(array)
    width = max(1, round(img.width * THUMB_HEIGHT / img.height))
    return data_uri(img.resize((width, THUMB_HEIGHT), Image.Resampling.BILINEAR), "JPEG")


class ReportCollector:
    """Keeps the filmstrip's thumbnails and the saliency_mean series while frames stream."""

    def __init__(self, length: int | None, slots: int = FILMSTRIP) -> None:
        self.slots = slots
        self.wanted = (
            set(np.linspace(0, length - 1, min(slots, length)).round().astype(int).tolist())
            if length
            else None
        )
        self.stride = 1
        self.strip: list[tuple[int, str, str]] = []
        self.means: list[float] = []

    def add(self, index: int, rgb: np.ndarray, saliency: np.ndarray, mean: float) -> None:
        self.means.append(mean)
        keep = index in self.wanted if self.wanted is not None else index % self.stride == 0
        if not keep:
            return
        self.strip.append((index, _thumb(rgb), _thumb(map_to_uint8(saliency))))
        if self.wanted is None and len(self.strip) >= 2 * self.slots:
            self.strip = self.strip[::2]
            self.stride *= 2

    def filmstrip(self) -> list[tuple[int, str, str]]:
        if len(self.strip) <= self.slots:
            return self.strip
        step = len(self.strip) / self.slots
        return [self.strip[int(i * step)] for i in range(self.slots)]


def plot_svg(values: list[float], label: str = "saliency_mean") -> str:
    """An inline SVG line plot of ``values`` against the frame index."""
    if not values:
        return "<p>no frames</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    n = len(values)
    pad = 36
    xs = [pad + (PLOT_W - pad - 8) * (i / max(1, n - 1)) for i in range(n)]
    ys = [PLOT_H - 20 - (PLOT_H - 30) * ((v - low) / span) for v in values]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<svg width="{PLOT_W}" height="{PLOT_H}" role="img" aria-label="{label} per frame">'
        f'<rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{points}"/>'
        f'<text x="2" y="14" font-size="11">{high:.4f}</text>'
        f'<text x="2" y="{PLOT_H - 22}" font-size="11">{low:.4f}</text>'
        f'<text x="{PLOT_W // 2}" y="{PLOT_H - 4}" font-size="11">frame (0..{n - 1})'
        f" - {label}</text></svg>"
    )


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def stability_table(figures: dict[str, dict[str, Any]]) -> str:
    """Rows: one per source (model, ground truth); columns: the stability figures."""
    head = "<tr><th></th><th>IoU mean</th><th>IoU p5</th><th>mean |change|</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(f.get('iou_mean'))}</td>"
        f"<td>{_fmt(f.get('iou_p5'))}</td><td>{_fmt(f.get('mean_change'))}</td></tr>"
        for name, f in figures.items()
    )
    return f"<table>{head}{rows}</table>"


def video_section(
    title: str,
    means: list[float],
    strip: list[tuple[int, str, str]],
    figures: dict[str, dict[str, Any]],
) -> str:
    """The HTML fragment: plot, filmstrip (frame over map), stability table."""
    cells = "".join(
        f'<figure><img src="{frame}" alt="frame {i}"><img src="{smap}" alt="map {i}">'
        f"<figcaption>frame {i}</figcaption></figure>"
        for i, frame, smap in strip
    )
    return (
        f"<section class='video'><h2>{html.escape(title)}</h2>"
        f"<h3>saliency_mean over time</h3>{plot_svg(means)}"
        f"<h3>Filmstrip (frame, map)</h3><div class='strip'>{cells}</div>"
        "<h3>Temporal stability</h3>"
        "<p>IoU between consecutive maps binarised at 0.5 (two empty maps: 1), its 5th "
        "percentile, and the mean absolute frame-to-frame change of saliency_mean.</p>"
        f"{stability_table(figures)}</section>"
    )


STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    ".strip{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;display:flex;"
    "flex-direction:column;gap:2px}figcaption{font-size:11px}"
)


def write_report(
    dest: Path, video: Video, model_path: Path, result: VideoResult, collector: ReportCollector
) -> None:
    """A self-contained HTML page with the video section for one run."""
    section = video_section(
        f"{video.path.name} with {model_path.name}",
        collector.means,
        collector.filmstrip(),
        {"model": result.stability},
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>sod-train video: {html.escape(video.path.name)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<p>{html.escape(video.describe())}; {len(result.rows)} frames at "
        f"{result.fps:.1f} fps; YUV matrix {video.matrix}, range {video.value_range}</p>"
        f"{section}</body></html>\n"
    )
    atomicio.write_bytes(dest, page.encode("utf-8"))
