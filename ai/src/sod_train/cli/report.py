"""``sod-train report``: one static HTML page comparing models (or saved maps) on a data set."""

from __future__ import annotations

from pathlib import Path

import click

from sod_train.evaluate.sod_metrics import METRIC_KEYS
from sod_train.guards import MAX_SQUARE, MAX_THREADS, check_output_file


@click.command("report")
@click.argument("models", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with <NAME>-Image/ + <NAME>-Mask/ (e.g. DUTS-TE) or images/ + masks/.",
)
@click.option(
    "--pred-dir",
    "pred_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Saved maps to include as a model (see evaluate --pred-dir). Repeatable.",
)
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
    "--size",
    type=click.IntRange(1, MAX_SQUARE),
    default=256,
    show_default=True,
    help="Run the models at SIZE x SIZE; the map is resized back to the mask.",
)
@click.option("--native", is_flag=True, help="Run the models at each image's own size.")
@click.option("--name", help="Data-set name for the page (default: from the folder).")
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="onnxruntime intra-op threads [default: all cores].",
)
@click.option("--quiet", is_flag=True, help="No progress bar or notes.")
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
) -> None:
    """Write one static HTML page on MODELS (.onnx) and/or --pred-dir maps on --data:
    metrics, curves, training curves, worst/best/random images, sortable per-image scores.

    Needs matplotlib (pip install -e ".[report]"). See docs/evaluate.md.
    """
    from sod_train.evaluate.evaluate import make_sources, tune_allocator
    from sod_train.evaluate.plots import require_matplotlib
    from sod_train.evaluate.report import build_report

    require_matplotlib()
    if not models and not pred_dirs:
        raise click.UsageError("give an ONNX MODEL or --pred-dir DIR (or several)")
    if native and ctx.get_parameter_source("size") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--size and --native exclude each other")
    check_output_file(out, "the report")
    sources = make_sources(models, pred_dirs)
    tune_allocator()
    build_report(
        sources, data_dir, out, metrics_files, count, seed, by, size, native, threads, quiet, name
    )
    if not quiet:
        click.echo(f"report written to {out}", err=True)
