"""Many data sets x many methods in one run: the grid, its tables and its curve figures.

What SOD toolkits (PySODEvalToolkit) give in one run: every method scored on every data
set, one row per (method, data set), as Markdown, LaTeX or CSV to paste into a paper,
and the PR, F-measure and E-measure curves as one figure per data set with every method.

Methods are ONNX models (named by file stem), ``--pred-dir`` folders (named by folder)
and the methods of a ``--pred-root`` laid out ``<root>/<method>/<dataset>/`` (named by
the method folder, never by the data set). Each data set is scored by
:func:`sod_train.evaluate.evaluate.evaluate_sources`, so the protocol is the one of a
single ``evaluate`` run.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sod_train import atomicio
from sod_train.contract import LOWER_IS_BETTER
from sod_train.data import pairs
from sod_train.errors import UserInputError
from sod_train.evaluate.evaluate import (
    Evaluation,
    Source,
    dataset_name,
    evaluate_sources,
    make_sources,
)
from sod_train.evaluate.sod_metrics import METRIC_KEYS

TABLE_FORMATS = ("text", "md", "latex", "csv")
PLOT_FORMATS = ("png", "svg")
DIGITS = 4  # shown in md, LaTeX and text (CSV keeps the result's 6)


@dataclass(frozen=True)
class DataSet:
    """One data folder to score and the name its rows and figure carry."""

    path: Path
    name: str


@dataclass
class GridResult:
    """One data set's evaluations, one per method, in method order."""

    dataset: DataSet
    evaluations: list[Evaluation]


def _layout_name(folder: Path) -> str:
    image_dir, _ = pairs.locate_layout(folder)
    return dataset_name(image_dir, folder)


def _has_layout(folder: Path) -> bool:
    try:
        pairs.locate_layout(folder)
    except UserInputError:
        return False
    return True


def find_datasets(data_dirs: Sequence[Path] = (), data_root: Path | None = None) -> list[DataSet]:
    """The data sets of ``data_dirs`` (in order), then every data set folder in ``data_root``.

    A data set folder holds ``<NAME>-Image/`` + ``<NAME>-Mask/`` (named NAME, e.g.
    DUTS-TE) or ``images/`` + ``masks/`` (named by the folder). Two sets with one name
    are told apart by their folder names; the same folder twice, a root with no set,
    or names that still clash are UserInputErrors.
    """
    folders = [Path(d) for d in data_dirs]
    if data_root is not None:
        root = Path(data_root)
        if not root.is_dir():
            raise UserInputError(f"{root}: --data-root is not a folder")
        found = [d for d in sorted(root.iterdir()) if d.is_dir() and _has_layout(d)]
        if not found:
            raise UserInputError(
                f"{root}: no data set in --data-root (each sub-folder needs <NAME>-Image/ + "
                "<NAME>-Mask/ or images/ + masks/)"
            )
        folders += found
    if not folders:
        raise UserInputError("no data set: give --data DIR (repeatable) or --data-root DIR")
    seen: dict[str, Path] = {}
    for folder in folders:
        key = str(folder.resolve())
        if key in seen:
            raise UserInputError(f"{folder}: data set given twice")
        seen[key] = folder
    names = [_layout_name(f) for f in folders]
    named = [
        DataSet(f, n if names.count(n) == 1 else f.resolve().name)
        for f, n in zip(folders, names, strict=True)
    ]
    final = [d.name for d in named]
    clash = sorted({n for n in final if final.count(n) > 1})
    if clash:
        raise UserInputError(
            f"several data sets are named {clash[0]}: rename a folder so each name is unique"
        )
    return named


def pred_root_methods(pred_root: Path, datasets: Sequence[DataSet]) -> dict[str, dict[str, Path]]:
    """``{method: {dataset name: folder}}`` of a ``<root>/<method>/<dataset>/`` tree.

    Every sub-folder of ``pred_root`` is a method; its maps for a data set are in the
    folder named like the data set (``DUTS-TE``) or like the data folder itself. A
    method without a folder for one of the data sets is a UserInputError listing every
    missing folder: a missing row is never dropped silently.
    """
    root = Path(pred_root)
    if not root.is_dir():
        raise UserInputError(f"{root}: --pred-root is not a folder")
    methods = [d for d in sorted(root.iterdir()) if d.is_dir()]
    if not methods:
        raise UserInputError(f"{root}: no method folders (expected <method>/<dataset>/)")
    found: dict[str, dict[str, Path]] = {}
    missing = []
    for method in methods:
        found[method.name] = {}
        for ds in datasets:
            options = [method / ds.name, method / ds.path.resolve().name]
            folder = next((o for o in options if o.is_dir()), None)
            if folder is None:
                missing.append(str(options[0]))
            else:
                found[method.name][ds.name] = folder
    if missing:
        raise UserInputError(
            f"{root}: no saved maps for {len(missing)} method x data set pair(s): "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else "")
        )
    return found


def grid_sources(
    models: Sequence[Path],
    pred_dirs: Sequence[Path],
    methods: dict[str, dict[str, Path]],
    dataset: DataSet,
) -> list[Source]:
    """The sources scored on ``dataset``: models, pred dirs, then the pred-root methods."""
    sources = make_sources(models, pred_dirs)
    sources += [Source(folders[dataset.name], "maps", m) for m, folders in methods.items()]
    labels = [s.label for s in sources]
    clash = sorted({label for label in labels if labels.count(label) > 1})
    if clash:
        raise UserInputError(f"two methods are named {clash[0]}: rename one (file or folder)")
    return sources


def evaluate_grid(
    models: Sequence[Path],
    pred_dirs: Sequence[Path],
    pred_root: Path | None,
    datasets: Sequence[DataSet],
    size: int = 256,
    native: bool = False,
    threads: int | None = None,
    quiet: bool = False,
    writes: Iterable[tuple[str, Path]] = (),
    short_sides: Sequence[int] = (),
    pad_to: int = 1,
) -> list[GridResult]:
    """Score every method on every data set (each set in one pass over its data).

    ``short_sides`` and ``pad_to``: as in :func:`sod_train.evaluate.evaluate.evaluate_sources`
    (a row per model and short side; the data set column keeps the set's own name).

    Every data set and method is checked (layouts, pred-root folders, names) before the
    first image is scored. ``writes``: outputs refused if they alias an input.
    """
    methods = pred_root_methods(pred_root, datasets) if pred_root is not None else {}
    plan = [(ds, grid_sources(models, pred_dirs, methods, ds)) for ds in datasets]
    writes = list(writes)
    return [
        GridResult(
            ds,
            evaluate_sources(
                sources,
                ds.path,
                size,
                native,
                threads,
                quiet,
                ds.name,
                writes,
                short_sides,
                pad_to=pad_to,
            ),
        )
        for ds, sources in plan
    ]


def grid_json(grid: Sequence[GridResult]) -> dict[str, dict[str, Any]]:
    """``{dataset: {method: result}}`` (each result as one ``evaluate`` gives it)."""
    return {g.dataset.name: {ev.source.label: ev.result for ev in g.evaluations} for g in grid}


def grid_rows(grid: Sequence[GridResult]) -> list[dict[str, Any]]:
    """One row per (method, data set), data set by data set: method, dataset, n, metrics."""
    return [
        {
            "method": ev.source.label,
            "dataset": g.dataset.name,
            "n": ev.result["n"],
            **{key: ev.result["metrics"][key] for key in METRIC_KEYS},
        }
        for g in grid
        for ev in g.evaluations
    ]


def _shown(value: float) -> str:
    return f"{value:.{DIGITS}f}"


def best_cells(rows: Sequence[dict[str, Any]]) -> set[tuple[int, str]]:
    """(row index, metric) of the best value per metric within each data set, as shown.

    Lower is better for :data:`sod_train.contract.LOWER_IS_BETTER` (MAE), higher for the
    rest; values equal at the shown precision are all best.
    """
    best: set[tuple[int, str]] = set()
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        idx = [i for i, row in enumerate(rows) if row["dataset"] == dataset]
        for key in METRIC_KEYS:
            shown = {i: float(_shown(rows[i][key])) for i in idx}
            target = (min if key in LOWER_IS_BETTER else max)(shown.values())
            best.update((i, key) for i, v in shown.items() if v == target)
    return best


def _arrow(key: str) -> str:
    return "down" if key in LOWER_IS_BETTER else "up"


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub Markdown table; the best value per metric and data set in bold."""
    best = best_cells(rows)
    arrows = {"up": "↑", "down": "↓"}
    head = ["method", "data set", "n", *(f"{k} {arrows[_arrow(k)]}" for k in METRIC_KEYS)]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- | ---: |" + " ---: |" * len(METRIC_KEYS)]
    for i, row in enumerate(rows):
        cells = [row["method"], row["dataset"], str(row["n"])]
        for key in METRIC_KEYS:
            text = _shown(row[key])
            cells.append(f"**{text}**" if (i, key) in best else text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX's text mode (names like ``sod_tiny_v1``)."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: LATEX_SPECIAL[m.group()], text)


def to_latex(rows: Sequence[dict[str, Any]]) -> str:
    """A ``tabular`` (no package needed) to paste into a paper; best per data set in
    ``\\textbf``, a rule between data sets."""
    best = best_cells(rows)
    head = ["Method", "Data set", "$n$"]
    head += [f"{latex_escape(k)} $\\{_arrow(k)}arrow$" for k in METRIC_KEYS]
    lines = [
        "% sod-train evaluate: best value per data set in bold; "
        + ", ".join(sorted(LOWER_IS_BETTER))
        + " lower is better, the others higher",
        "\\begin{tabular}{llr" + "r" * len(METRIC_KEYS) + "}",
        "\\hline",
        " & ".join(head) + " \\\\",
        "\\hline",
    ]
    previous = None
    for i, row in enumerate(rows):
        if previous is not None and row["dataset"] != previous:
            lines.append("\\hline")
        previous = row["dataset"]
        cells = [latex_escape(row["method"]), latex_escape(row["dataset"]), str(row["n"])]
        for key in METRIC_KEYS:
            text = _shown(row[key])
            cells.append(f"\\textbf{{{text}}}" if (i, key) in best else text)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with a header: method, dataset, n and the nine metrics (6 decimals, no bold)."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["method", "dataset", "n", *METRIC_KEYS], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_text(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width columns for the terminal (no markup)."""
    mw = max(6, *(len(r["method"]) for r in rows))
    dw = max(8, *(len(r["dataset"]) for r in rows))
    head = f"{'method':<{mw}}  {'data set':<{dw}}  {'n':>5}  " + "  ".join(
        f"{k:>6}" for k in METRIC_KEYS
    )
    lines = [head]
    for r in rows:
        values = "  ".join(f"{_shown(r[k]):>6}" for k in METRIC_KEYS)
        lines.append(f"{r['method']:<{mw}}  {r['dataset']:<{dw}}  {r['n']:>5}  {values}")
    return "\n".join(lines) + "\n"


def render_table(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """The rows as ``fmt``, one of :data:`TABLE_FORMATS`."""
    writers = {"text": to_text, "md": to_markdown, "latex": to_latex, "csv": to_csv}
    if fmt not in writers:
        raise UserInputError(f"--table {fmt}: expected one of {', '.join(TABLE_FORMATS)}")
    return writers[fmt](rows)


def write_table(path: Path, text: str) -> None:
    """The table file, atomically (nothing half-written if the run stops)."""
    atomicio.write_bytes(path, text.encode("utf-8"))


def plot_stem(dataset: str) -> str:
    """A safe file stem for a data set's figure (its name, odd characters as ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", dataset).lstrip(".") or "dataset"


def plot_paths(folder: Path, datasets: Sequence[DataSet]) -> list[Path]:
    """Every file ``--plots`` writes: ``<folder>/<dataset>.png`` and ``.svg``."""
    return [folder / f"{plot_stem(d.name)}.{ext}" for d in datasets for ext in PLOT_FORMATS]


def write_plots(folder: Path, grid: Sequence[GridResult]) -> list[Path]:
    """One figure per data set with every method (PR, F-measure, E-measure panels), as PNG
    and SVG; each file rendered, then written atomically. Returns the paths written."""
    from sod_train.evaluate.plots import curves_figure_bytes

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for g in grid:
        curves = {ev.source.label: ev.result["curves"] for ev in g.evaluations}
        title = f"{g.dataset.name} (n = {g.evaluations[0].result['n']})"
        for ext in PLOT_FORMATS:
            path = folder / f"{plot_stem(g.dataset.name)}.{ext}"
            atomicio.write_bytes(path, curves_figure_bytes(curves, ext, title))
            written.append(path)
    return written
