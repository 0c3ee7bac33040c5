"""``sod-train report``: one static HTML page comparing models (or saved maps) on a data set."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train import progress
from sod_train.cli.evaluate import source_options, sources_from
from sod_train.evaluate.sod_metrics import METRIC_KEYS
from sod_train.guards import check_output_file
from sod_train.stdio import echo_block


@click.command("report")
@source_options
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The HTML page to write (self-contained: images are embedded).",
)
@click.option(
    "--metrics",
    "metrics_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A metrics JSON whose training.history to plot. Repeatable.",
)
@click.option(
    "--n",
    "count",
    type=click.IntRange(0, 100),
    default=6,
    show_default=True,
    help="Images in each of the worst, best and random grids.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
@click.option(
    "--by",
    type=click.Choice(METRIC_KEYS),
    default="MAE",
    show_default=True,
    help="Metric that ranks the worst and best images (mean over the models).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the page's path, the data set and every model's metrics as JSON.",
)
@click.pass_context
def report(
    ctx: click.Context,
    models: tuple[Path, ...],
    data_dir: Path,
    pred_dirs: tuple[Path, ...],
    out: Path,
    metrics_files: tuple[Path, ...],
    count: int,
    seed: int,
    by: str,
    size: int,
    native: bool,
    name: str | None,
    threads: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write one static HTML page on MODELS (.onnx) and/or --pred-dir maps on --data:
    metrics, curves, training curves, worst/best/random images, sortable per-image scores.

    Needs matplotlib (pip install -e ".[report]"). See docs/evaluate.md.
    """
    from sod_train.evaluate.evaluate import tune_allocator
    from sod_train.evaluate.plots import require_matplotlib
    from sod_train.evaluate.report import build_report

    require_matplotlib()
    sources = sources_from(ctx, models, pred_dirs, native)
    check_output_file(out, "the report")
    tune_allocator()
    evaluations = build_report(
        sources, data_dir, out, metrics_files, count, seed, by, size, native, threads, quiet, name
    )
    if as_json:
        first = evaluations[0].result
        doc = {"out": str(out), "data": first["name"], "n": first["n"]}
        doc["models"] = {ev.source.label: ev.result["metrics"] for ev in evaluations}
        echo_block(json.dumps(doc, indent=2))
    else:
        progress.note(f"report written to {out}", quiet)
