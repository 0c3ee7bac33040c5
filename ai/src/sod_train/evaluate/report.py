"""``sod-train report``: one self-contained static HTML page comparing models on a data set.

The page holds the metrics table, the PR / F-measure / E-measure curves, the training
curves of any metrics JSON given, a grid (image | GT | one map per model) of the worst,
the best and a seeded random sample of images, and every image's scores in a table that
sorts on a click. Everything is inline: figures and thumbnails are data URIs, the
script is a few lines in the page, so it opens from disk with no network.

:func:`html_page` is the one page shell (style, title) of every report page. Sections
from later stages come in pre-rendered: ``build_report(..., sections=...)`` appends the
HTML fragments a callable returns once the data evaluation is done. ``evaluate/`` comes
before ``video/`` in the stage order, so it never imports ``video/``; the CLI hands it
the video sections of ``sod-train report --video`` (built by
``sod_train.video.report.video_section``, the same builder as ``sod-train video --report``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sod_train import atomicio, progress
from sod_train.contract import LOWER_IS_BETTER
from sod_train.errors import UserInputError, joined
from sod_train.evaluate.evaluate import (
    DEFAULT_BY,
    Evaluation,
    Scorer,
    Source,
    evaluate_sources,
    load_pair,
    scan_dataset,
)
from sod_train.evaluate.plots import curves_png, require_matplotlib
from sod_train.evaluate.sod_metrics import METRIC_KEYS
from sod_train.guards import read_json_object, refuse_aliases

THUMB = 160  # thumbnail height in pixels


def read_history(path: Path) -> list[dict[str, Any]]:
    """``training.history`` (or a top-level ``history``) of a metrics JSON, checked."""
    from sod_train.evaluate.curves import history_problems

    doc = read_json_object(path, "the metrics JSON")
    training = doc.get("training")
    where = "training.history" if isinstance(training, dict) else "history"
    history = training.get("history") if isinstance(training, dict) else doc.get("history")
    if history is None:
        raise UserInputError(f"{path}: no training.history (a list of epoch objects)")
    problems = history_problems(history, where)
    if problems:
        raise UserInputError(f"{path}: bad training history: {joined(problems, 1)}")
    return history


def rank_images(evaluations: list[Evaluation], by: str) -> list[tuple[str, float]]:
    """Every image with the mean of ``by`` over the sources, worst first."""
    stems = [stem for stem, _ in evaluations[0].per_image]
    means = np.mean([[s[by] for _, s in ev.per_image] for ev in evaluations], axis=0)
    order = sorted(range(len(stems)), key=lambda i: means[i], reverse=by in LOWER_IS_BETTER)
    return [(stems[i], float(means[i])) for i in order]


def pick_images(ranked: list[tuple[str, float]], n: int, seed: int) -> dict[str, list[str]]:
    """``n`` worst, ``n`` best and ``n`` random others (seeded ``random.Random(seed)``)."""
    worst = [stem for stem, _ in ranked[:n]]
    best = [stem for stem, _ in ranked[::-1][:n] if stem not in worst]
    rest = sorted(stem for stem, _ in ranked if stem not in worst and stem not in best)
    sample = random.Random(seed).sample(rest, min(n, len(rest)))
    return {"worst": worst, "best": best, "random": sample}


def data_uri(img: Image.Image, fmt: str = "PNG") -> str:
    """``img`` as a base64 data URI (PNG, or JPEG for photos)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _thumb(array: np.ndarray, photo: bool = False) -> str:
    img = Image.fromarray(array)
    width = max(1, round(img.width * THUMB / img.height))
    img = img.resize((width, THUMB), Image.Resampling.BILINEAR)
    return data_uri(img, "JPEG" if photo else "PNG")


def thumbnails(
    sources: list[Source],
    data_dir: str | Path,
    stems: Iterable[str],
    size: int | None,
    threads: int | None,
) -> dict[str, list[str]]:
    """Per stem: data URIs of the image, the GT and each source's map, in that order.

    The maps are made again for these few images (same protocol as the evaluation), so
    the evaluation never holds every map in memory.
    """
    wanted = set(stems)
    scorers = [Scorer(source, size, threads) for source in sources]
    out = {}
    for pair in scan_dataset(data_dir).pairs:
        if pair.stem not in wanted:
            continue
        rgb, mask = load_pair(pair, need_rgb=True)
        cells = [_thumb(rgb, photo=True), _thumb(mask)]
        cells += [_thumb(scorer.map_for(pair, rgb, mask.shape)) for scorer in scorers]
        out[pair.stem] = cells
    return out


def _metrics_table(evaluations: list[Evaluation]) -> str:
    """The nine metrics per model; the best value of each column in bold."""
    head = "".join(
        f"<th>{key}{' &darr;' if key in LOWER_IS_BETTER else ''}</th>" for key in METRIC_KEYS
    )
    best = {}
    for key in METRIC_KEYS:
        values = [ev.result["metrics"][key] for ev in evaluations]
        best[key] = min(values) if key in LOWER_IS_BETTER else max(values)
    rows = []
    for ev in evaluations:
        cells = []
        for key in METRIC_KEYS:
            value = ev.result["metrics"][key]
            text = f"{value:.4f}"
            cells.append(
                f"<td><b>{text}</b></td>"
                if value == best[key] and len(evaluations) > 1
                else f"<td>{text}</td>"
            )
        size = ev.result["size"]
        rows.append(
            f"<tr><th>{html.escape(ev.source.label)}</th>{''.join(cells)}"
            f"<td>{html.escape(str(size))}</td></tr>"
        )
    return (
        f'<table class="metrics"><tr><th>model</th>{head}<th>size</th></tr>{"".join(rows)}</table>'
    )


def _grid(
    title: str,
    stems: list[str],
    cells: dict[str, list[str]],
    labels: list[str],
    scores: dict[str, float],
    by: str,
) -> str:
    """One section of the image grid: image | GT | model A | model B ..."""
    if not stems:
        return ""
    head = "".join(f"<th>{html.escape(label)}</th>" for label in ["image", "GT", *labels])
    rows = []
    for stem in stems:
        imgs = "".join(f'<td><img src="{uri}" alt=""></td>' for uri in cells[stem])
        caption = f"{html.escape(stem)}<br>{by} {scores[stem]:.4f}"
        rows.append(f'<tr><td class="stem">{caption}</td>{imgs}</tr>')
    return (
        f"<h3>{html.escape(title)}</h3>"
        f'<table class="grid"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
    )


SCRIPT = """
const data = JSON.parse(document.getElementById('per-image-data').textContent);
const table = document.getElementById('per-image');
const cols = ['image', 'model', ...data.metrics];
let order = {col: data.by, up: !data.lowerIsBetter.includes(data.by)};
function render() {
  const k = order.col, s = order.up ? 1 : -1;
  data.rows.sort((a, b) => (a[k] < b[k] ? -s : a[k] > b[k] ? s : 0));
  const head = '<tr>' + cols.map(c => '<th data-col="' + c + '">' + c +
    (c === k ? (order.up ? ' &#9650;' : ' &#9660;') : '') + '</th>').join('') + '</tr>';
  const esc = t => String(t).replace(/[&<>"]/g, ch => '&#' + ch.charCodeAt(0) + ';');
  const body = data.rows.map(r => '<tr>' + cols.map(c =>
    '<td>' + (typeof r[c] === 'number' ? r[c].toFixed(4) : esc(r[c])) + '</td>').join('') +
    '</tr>').join('');
  table.innerHTML = head + body;
  table.dataset.rows = data.rows.length;
  table.dataset.sorted = k;
}
table.addEventListener('click', e => {
  const col = e.target.closest('th') && e.target.closest('th').dataset.col;
  if (!col) return;
  order = {col, up: order.col === col ? !order.up : true};
  render();
});
render();
"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
table.grid td, table.grid th { padding: 2px; text-align: center; }
table.grid img { height: 80px; display: block; }
td.stem { font-size: 11px; max-width: 12em; word-break: break-all; text-align: left; }
#per-image th { cursor: pointer; background: #eee; }
#per-image td:first-child, #per-image td:nth-child(2) { text-align: left; }
img.figure { max-width: 100%; }
.note { color: #666; }
section.video { margin-top: 2em; }
.strip { display: flex; flex-wrap: wrap; gap: 6px; }
.strip figure { margin: 0; display: flex; flex-direction: column; gap: 2px; }
.strip figcaption { font-size: 11px; text-align: center; }
"""


def _json_for_script(obj: Any) -> str:
    """JSON safe inside a <script> element (no '</script>' or '<!--' can appear)."""
    return json.dumps(obj, allow_nan=False).replace("<", "\\u003c")


def render_html(
    evaluations: list[Evaluation],
    picks: dict[str, list[str]],
    cells: dict[str, list[str]],
    scores: dict[str, float],
    by: str,
    curves_uri: str,
    training: list[tuple[str, str]],
    seed: int,
    sections: Sequence[str] = (),
) -> str:
    """The whole page as one string; ``sections`` (HTML fragments) go at its end."""
    first = evaluations[0].result
    labels = [ev.source.label for ev in evaluations]
    sources = "".join(
        f"<li><b>{html.escape(ev.source.label)}</b>: {html.escape(ev.source.kind)} "
        f"<code>{html.escape(str(ev.source.path))}</code>, "
        f"{html.escape(ev.result['protocol'])}</li>"
        for ev in evaluations
    )
    rows = [
        {"image": stem, "model": ev.source.label, **scores_}
        for ev in evaluations
        for stem, scores_ in ev.per_image
    ]
    data = {
        "metrics": list(METRIC_KEYS),
        "by": by,
        "lowerIsBetter": sorted(LOWER_IS_BETTER),
        "rows": rows,
    }
    better = "lower" if by in LOWER_IS_BETTER else "higher"
    grids = "".join(
        _grid(title, picks[key], cells, labels, scores, by)
        for key, title in (
            ("worst", f"Worst {len(picks['worst'])} by mean {by} over the models"),
            ("best", f"Best {len(picks['best'])}"),
            ("random", f"Random {len(picks['random'])} of the others (seed {seed})"),
        )
    )
    train = (
        "".join(
            f'<h3>{html.escape(name)}</h3><img class="figure" src="{uri}" alt="training curves">'
            for name, uri in training
        )
        or '<p class="note">No metrics JSON given (<code>--metrics FILE</code>).</p>'
    )
    title = f"SOD report: {first['name']} (n={first['n']})"
    body = f"""<p class="note">Data digest <code>{html.escape(first["digest"])}</code>.
Metrics follow PySODMetrics; MAE (&darr;) is lower-is-better, the others higher-is-better.</p>
<ul>{sources}</ul>
<h2>Metrics</h2>
{_metrics_table(evaluations)}
<h2>Curves</h2>
<img class="figure" src="{curves_uri}" alt="PR, F-measure and E-measure curves">
<h2>Training curves</h2>
{train}
<h2>Images</h2>
<p class="note">Ranked by {by} ({better} is better), averaged over the models.</p>
{grids}
<h2>Per-image scores</h2>
<p class="note">Click a column to sort.</p>
<table id="per-image"><tr><td>(needs JavaScript)</td></tr></table>
<script type="application/json" id="per-image-data">{_json_for_script(data)}</script>
<script>{SCRIPT}</script>
{"".join(sections)}"""
    return html_page(title, body)


def html_page(title: str, body: str) -> str:
    """The one page shell of every report page: ``body`` under an ``<h1>`` of ``title``."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def build_report(
    sources: list[Source],
    data_dir: str | Path,
    out: str | Path,
    metrics_files: Iterable[str | Path] = (),
    n: int = 6,
    seed: int = 0,
    by: str = DEFAULT_BY,
    size: int = 256,
    native: bool = False,
    threads: int | None = None,
    quiet: bool = False,
    name: str | None = None,
    sections: Callable[[], Sequence[str]] | None = None,
) -> list[Evaluation]:
    """Evaluate ``sources`` on ``data_dir`` and write the report page to ``out`` atomically.

    Refused before any work: matplotlib missing, a bad metrics JSON, and an ``out`` that
    is a model, a data file, a saved map or a metrics JSON. ``sections``, called after
    the evaluation (so a bad data folder is refused before it runs), returns HTML
    fragments appended to the page (a later stage's: the video sections). Returns the
    evaluations.
    """
    require_matplotlib()
    if by not in METRIC_KEYS:
        raise UserInputError(f"--by {by}: not a metric (one of {', '.join(METRIC_KEYS)})")
    out = Path(out)
    metrics_files = [Path(p) for p in metrics_files]
    refuse_aliases([("the metrics JSON", p) for p in metrics_files], [("the report", out)])
    histories = [(p, read_history(p)) for p in metrics_files]
    evaluations = evaluate_sources(
        sources, data_dir, size, native, threads, quiet, name, [("the report", out)]
    )
    progress.note("drawing the report", quiet)
    ranked = rank_images(evaluations, by)
    scores = dict(ranked)
    picks = pick_images(ranked, n, seed)
    chosen = [stem for group in picks.values() for stem in group]
    cells = thumbnails(sources, data_dir, chosen, None if native else size, threads)
    png = curves_png({ev.source.label: ev.result["curves"] for ev in evaluations})
    from sod_train.evaluate.curves import render_training_curves

    training = []
    for path, history in histories:
        uri = "data:image/png;base64," + base64.b64encode(render_training_curves(history)).decode()
        training.append((path.name, uri))
    page = render_html(
        evaluations,
        picks,
        cells,
        scores,
        by,
        "data:image/png;base64," + base64.b64encode(png).decode(),
        training,
        seed,
        sections() if sections is not None else (),
    )
    with atomicio.atomic_open(out, "w") as fh:
        fh.write(page)
    return evaluations
