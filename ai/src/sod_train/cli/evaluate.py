"""``sod-train evaluate``: the standard SOD metrics of ONNX models or saved maps on a data set."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sod_train import progress
from sod_train.evaluate.sod_metrics import METRIC_KEYS
from sod_train.guards import MAX_SQUARE, MAX_THREADS, check_output_file
from sod_train.stdio import echo_block

DATA_HELP = "Folder with <NAME>-Image/ + <NAME>-Mask/ (e.g. DUTS-TE) or images/ + masks/."


def source_options(
    command: Callable | None = None, *, several_data: bool = False, data_required: bool = True
) -> Callable:
    """MODELS, --pred-dir and the run options of every command that scores them on --data.

    Shared by ``evaluate`` (``several_data``: --data repeatable, or --data-root) and
    ``report`` (one --data; not ``data_required`` there, the command checks it since a
    video-only report needs none); :func:`sources_from` checks them.
    """
    if command is None:
        return lambda cmd: source_options(
            cmd, several_data=several_data, data_required=data_required
        )
    if several_data:
        data = click.option(
            "--data",
            "data_dirs",
            multiple=True,
            type=click.Path(path_type=Path),
            help=f"{DATA_HELP} Repeatable: one row per method x data set.",
        )
    else:
        data = click.option(
            "--data",
            "data_dir",
            required=data_required,
            type=click.Path(path_type=Path),
            help=DATA_HELP,
        )
    options = [
        click.argument("models", nargs=-1, type=click.Path(path_type=Path, dir_okay=False)),
        data,
        click.option(
            "--pred-dir",
            "pred_dirs",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Score saved maps as a model: <stem>.png (or predict's <image>.mask.png), "
            "8-bit grey at the mask size. Repeatable; combines with MODELS.",
        ),
        click.option(
            "--size",
            type=click.IntRange(1, MAX_SQUARE),
            default=256,
            show_default=True,
            help="Run the models at SIZE x SIZE; the map is resized back to the mask.",
        ),
        click.option("--native", is_flag=True, help="Run the models at each image's own size."),
        click.option("--name", help="Data-set name to report (default: from the folder)."),
        click.option(
            "--threads",
            type=click.IntRange(1, MAX_THREADS),
            help="onnxruntime intra-op threads [default: all cores].",
        ),
        click.option("--quiet", is_flag=True, help="No progress bar or notes."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def sources_from(
    ctx: click.Context,
    models: tuple[Path, ...],
    pred_dirs: tuple[Path, ...],
    native: bool,
    pred_root: Path | None = None,
) -> list[Any]:
    """The models and saved-map folders to score; a usage error if none or if contradictory."""
    from sod_train.evaluate.evaluate import make_sources

    if not models and not pred_dirs and pred_root is None:
        raise click.UsageError("give an ONNX MODEL, --pred-dir DIR or --pred-root ROOT")
    if native and ctx.get_parameter_source("size") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--size and --native exclude each other")
    return make_sources(models, pred_dirs)


@click.command("evaluate")
@source_options(several_data=True)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Score every data set folder inside this one (each a --data layout); "
    "combines with --data.",
)
@click.option(
    "--pred-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Saved maps laid out <ROOT>/<method>/<dataset>/: every method folder is scored "
    "on every data set, named by the method folder.",
)
@click.option(
    "--table",
    "table_format",
    type=click.Choice(["text", "md", "latex", "csv"]),
    help="Print one row per method x data set in this format (md and latex: best per data "
    "set in bold) [default: text; one data set without --table: the classic table].",
)
@click.option(
    "--out",
    "table_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the --table (default md) to this file instead of stdout (atomically).",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write PR, F-measure and E-measure curves to this folder: <dataset>.png and "
    ".svg, one figure per data set with every method (needs matplotlib).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write the full result (with curves) as JSON to this file ('-' for stdout, no "
    "table); keyed by model when there are several.",
)
@click.option(
    "--record",
    "records",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Store the result in this metrics JSON under evaluations.<data-set name> (with "
    "--short-side, one entry <data-set name>@S per S). Repeatable: one per ONNX model, in "
    "the order of MODELS, so several models measured in one run are each recorded.",
)
@click.option(
    "--per-image",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write every image's nine scores here: CSV, or JSON if it ends in .json.",
)
@click.option(
    "--worst",
    type=click.IntRange(1),
    help="List the N worst images (per model) by --by.",
)
@click.option(
    "--by",
    type=click.Choice(METRIC_KEYS),
    default="MAE",
    show_default=True,
    help="Metric that ranks --worst (MAE: highest is worst; the others: lowest).",
)
@click.option(
    "--short-side",
    "short_sides",
    multiple=True,
    type=click.IntRange(1, MAX_SQUARE),
    help="Rescale each picture so its short side is S (aspect kept) and run the model at "
    "that size, as a host runs a frame of height S; repeatable, one row per S "
    "(recorded as evaluations.<data set>@S). Replaces --size/--native.",
)
@click.option(
    "--pad-to",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Run every model on its input edge-padded right and bottom to a multiple of N, "
    "and crop the map back: the anchors need 8 at sizes like short side 720 (recorded in "
    "the protocol).",
)
@click.pass_context
def evaluate(
    ctx: click.Context,
    models: tuple[Path, ...],
    data_dirs: tuple[Path, ...],
    data_root: Path | None,
    pred_root: Path | None,
    table_format: str | None,
    table_out: Path | None,
    plots_dir: Path | None,
    pred_dirs: tuple[Path, ...],
    size: int,
    native: bool,
    json_out: Path | None,
    records: tuple[Path, ...],
    name: str | None,
    per_image: Path | None,
    worst: int | None,
    by: str,
    threads: int | None,
    quiet: bool,
    short_sides: tuple[int, ...],
    pad_to: int,
) -> None:
    """Evaluate MODELS (.onnx), --pred-dir and --pred-root maps on the pairs of every --data
    set (MAE, F, S, E, wF, IoU); one row per method x data set.

    Protocol: RGB resized to SIZE x SIZE (bilinear), ImageNet normalisation, the model,
    map resized back to the mask's size (bilinear), quantised to uint8, compared with
    the mask thresholded at 128. See docs/evaluate.md.
    """
    from sod_train.evaluate import tables
    from sod_train.evaluate.evaluate import (
        format_side_by_side,
        format_table,
        format_worst,
        read_record,
        record_evaluation,
        tune_allocator,
        worst_images,
        write_per_image,
        write_result,
    )

    sources_from(ctx, models, pred_dirs, native, pred_root)
    from_cli = click.core.ParameterSource.COMMANDLINE
    if short_sides and (native or ctx.get_parameter_source("size") is from_cli):
        raise click.UsageError("--short-side replaces --size and --native; give one of them")
    if records and (len(records) != len(models) or pred_dirs or pred_root):
        raise click.UsageError(
            "--record stores ONNX models' results: give one --record per MODEL, in order, "
            "and no --pred-dir or --pred-root"
        )
    if len({os.path.realpath(path) for path in records}) != len(records):
        raise click.UsageError("--record: each model needs its own metrics JSON")
    if ctx.get_parameter_source("by") is from_cli and worst is None:
        raise click.UsageError("--by ranks --worst: give --worst N too")
    if table_out is not None and table_format in (None, "text"):
        table_format = table_format or "md"
    writes = []  # everything this run writes, checked before the evaluation starts
    if json_out is not None and str(json_out) != "-":
        check_output_file(json_out, "the --json result")
        writes.append(("--json", json_out))
    if per_image is not None:
        check_output_file(per_image, "the --per-image scores")
        writes.append(("--per-image", per_image))
    for record in records:
        read_record(record)  # exists, is a JSON object: --record updates an existing file
        check_output_file(record, "the --record metrics JSON")
        writes.append(("--record", record))
    if table_out is not None:
        check_output_file(table_out, "the --out table")
        writes.append(("--out", table_out))
    datasets = tables.find_datasets(data_dirs, data_root)  # after the output checks
    several = len(datasets) > 1
    if several:
        for option, value in (("--name", name), ("--record", records), ("--per-image", per_image)):
            if value:
                raise click.UsageError(f"{option} works on one data set; give one --data")
    elif name is not None:
        datasets = [tables.DataSet(datasets[0].path, name)]
    if plots_dir is not None:
        from sod_train.evaluate.plots import require_matplotlib

        require_matplotlib()
        for path in tables.plot_paths(plots_dir, datasets):
            check_output_file(path, "a --plots figure")
            writes.append(("--plots", path))
    tune_allocator()
    grid = tables.evaluate_grid(
        models,
        pred_dirs,
        pred_root,
        datasets,
        size,
        native,
        threads,
        quiet,
        writes,
        short_sides,
        pad_to,
    )
    evaluations = [ev for g in grid for ev in g.evaluations]
    ranked = {}
    if worst is not None:
        for g in grid:
            for ev in g.evaluations:
                ranked[id(ev)] = worst_images(ev, by, worst)
                ev.result["worst"] = {
                    "by": by,
                    "images": [{"image": stem, by: score} for stem, score in ranked[id(ev)]],
                }
    rows = tables.grid_rows(grid)
    if several:
        doc = tables.grid_json(grid)
        table = tables.render_table(rows, table_format or "text")
    elif len(evaluations) == 1 and not pred_root:
        doc = evaluations[0].result
        table = format_table(doc)
    else:
        doc = {ev.source.label: ev.result for ev in evaluations}
        table = format_side_by_side(evaluations)
    if table_format is not None and not several:
        table = tables.render_table(rows, table_format)
    if per_image is not None:
        write_per_image(per_image, evaluations)
    if table_out is not None:
        tables.write_table(table_out, table)
    if plots_dir is not None:
        written = tables.write_plots(plots_dir, grid)
        progress.note(f"{len(written)} figures in {plots_dir}", quiet)
    if json_out is not None and str(json_out) == "-":
        echo_block(json.dumps(doc, indent=2))
    else:
        if json_out is not None:
            write_result(json_out, doc)
        if table_out is None:
            echo_block(table.rstrip("\n"))
        else:
            progress.note(f"{table_format} table in {table_out}", quiet)
        for g in grid:
            for ev in g.evaluations:
                if id(ev) in ranked:
                    shown = f"{g.dataset.name} / " if several else ""
                    echo_block(shown + format_worst(ev, by, ranked[id(ev)]))
    # Each model's results (one, or one per --short-side) go to its own --record.
    record_of = dict(zip(models, records, strict=False))
    for ev in evaluations:
        if ev.source.path in record_of:
            record = record_of[ev.source.path]
            record_evaluation(record, ev.result)
            progress.note(f"recorded as evaluations.{ev.result['name']} in {record}", quiet)
    if per_image is not None:
        progress.note(f"per-image scores in {per_image}", quiet)
