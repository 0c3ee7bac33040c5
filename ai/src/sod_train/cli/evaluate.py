"""``sod-train evaluate``: the standard SOD metrics of ONNX models or saved maps on a data set."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sod_train import progress
from sod_train.evaluate.sod_metrics import METRIC_KEYS
from sod_train.guards import MAX_SQUARE, MAX_THREADS, check_output_file


def source_options(command: Callable) -> Callable:
    """MODELS, --pred-dir and the run options of every command that scores them on --data.

    Shared by ``evaluate`` and ``report``; :func:`sources_from` checks them.
    """
    options = [
        click.argument("models", nargs=-1, type=click.Path(path_type=Path, dir_okay=False)),
        click.option(
            "--data",
            "data_dir",
            required=True,
            type=click.Path(path_type=Path),
            help="Folder with <NAME>-Image/ + <NAME>-Mask/ (e.g. DUTS-TE) or images/ + masks/.",
        ),
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
    ctx: click.Context, models: tuple[Path, ...], pred_dirs: tuple[Path, ...], native: bool
) -> list[Any]:
    """The models and saved-map folders to score; a usage error if none or if contradictory."""
    from sod_train.evaluate.evaluate import make_sources

    if not models and not pred_dirs:
        raise click.UsageError("give an ONNX MODEL or --pred-dir DIR (or several)")
    if native and ctx.get_parameter_source("size") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--size and --native exclude each other")
    return make_sources(models, pred_dirs)


@click.command("evaluate")
@source_options
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write the full result (with curves) as JSON to this file ('-' for stdout, no "
    "table); keyed by model when there are several.",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Store the result in this metrics JSON under evaluations.<data-set name> "
    "(one ONNX model only).",
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
@click.pass_context
def evaluate(
    ctx: click.Context,
    models: tuple[Path, ...],
    data_dir: Path,
    pred_dirs: tuple[Path, ...],
    size: int,
    native: bool,
    json_out: Path | None,
    record: Path | None,
    name: str | None,
    per_image: Path | None,
    worst: int | None,
    by: str,
    threads: int | None,
    quiet: bool,
) -> None:
    """Evaluate MODELS (.onnx) and/or --pred-dir maps on the pairs in --data (MAE, F, S, E,
    wF, IoU); several give one side-by-side table.

    Protocol: RGB resized to SIZE x SIZE (bilinear), ImageNet normalisation, the model,
    map resized back to the mask's size (bilinear), quantised to uint8, compared with
    the mask thresholded at 128. See docs/evaluate.md.
    """
    from sod_train.evaluate.evaluate import (
        evaluate_sources,
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

    sources = sources_from(ctx, models, pred_dirs, native)
    from_cli = click.core.ParameterSource.COMMANDLINE
    if record is not None and (len(models) != 1 or pred_dirs):
        raise click.UsageError("--record stores one ONNX model's result: give exactly one MODEL")
    if ctx.get_parameter_source("by") is from_cli and worst is None:
        raise click.UsageError("--by ranks --worst: give --worst N too")
    writes = []  # everything this run writes, checked before the evaluation starts
    if json_out is not None and str(json_out) != "-":
        check_output_file(json_out, "the --json result")
        writes.append(("--json", json_out))
    if per_image is not None:
        check_output_file(per_image, "the --per-image scores")
        writes.append(("--per-image", per_image))
    if record is not None:
        read_record(record)  # exists, is a JSON object: --record updates an existing file
        check_output_file(record, "the --record metrics JSON")
        writes.append(("--record", record))
    tune_allocator()
    evaluations = evaluate_sources(sources, data_dir, size, native, threads, quiet, name, writes)
    ranked = {}
    if worst is not None:
        for ev in evaluations:
            ranked[ev.source.label] = worst_images(ev, by, worst)
            ev.result["worst"] = {
                "by": by,
                "images": [{"image": stem, by: score} for stem, score in ranked[ev.source.label]],
            }
    if len(evaluations) == 1:
        doc = evaluations[0].result
        table = format_table(doc)
    else:
        doc = {ev.source.label: ev.result for ev in evaluations}
        table = format_side_by_side(evaluations)
    if per_image is not None:
        write_per_image(per_image, evaluations)
    if json_out is not None and str(json_out) == "-":
        click.echo(json.dumps(doc, indent=2))
    else:
        if json_out is not None:
            write_result(json_out, doc)
        click.echo(table)
        for ev in evaluations:
            if ev.source.label in ranked:
                click.echo(format_worst(ev, by, ranked[ev.source.label]))
    if record is not None:
        record_evaluation(record, evaluations[0].result)
        name = evaluations[0].result["name"]
        progress.note(f"recorded as evaluations.{name} in {record}", quiet)
    if per_image is not None:
        progress.note(f"per-image scores in {per_image}", quiet)
