"""``sod-train evaluate``: the standard SOD metrics of an ONNX model on a data-set folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train.guards import MAX_SQUARE, MAX_THREADS, check_output_file


@click.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with <NAME>-Image/ + <NAME>-Mask/ (e.g. DUTS-TE) or images/ + masks/.",
)
@click.option(
    "--size",
    type=click.IntRange(1, MAX_SQUARE),
    default=256,
    show_default=True,
    help="Run the model at SIZE x SIZE; the map is resized back to the mask.",
)
@click.option("--native", is_flag=True, help="Run the model at each image's own size instead.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write the full result as JSON to this file ('-' for stdout, no table).",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Store the result in this metrics JSON under evaluations.<data-set name>.",
)
@click.option("--name", help="Data-set name to report and record (default: from the folder).")
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="onnxruntime intra-op threads [default: all cores].",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def evaluate(
    ctx: click.Context,
    model: Path,
    data_dir: Path,
    size: int,
    native: bool,
    json_out: Path | None,
    record: Path | None,
    name: str | None,
    threads: int | None,
    quiet: bool,
) -> None:
    """Evaluate MODEL.onnx on the image/mask pairs in --data (MAE, F, S, E, wF, IoU).

    Protocol: RGB resized to SIZE x SIZE (bilinear), ImageNet normalisation, the model,
    map resized back to the mask's size (bilinear), quantised to uint8, compared with
    the mask thresholded at 128. See docs/evaluate.md.
    """
    from sod_train.evaluate.evaluate import (
        evaluate_model,
        format_table,
        read_record,
        record_evaluation,
        tune_allocator,
        write_result,
    )

    if native and ctx.get_parameter_source("size") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--size and --native exclude each other")
    writes = []  # everything this run writes, checked before the evaluation starts
    if json_out is not None and str(json_out) != "-":
        check_output_file(json_out, "the --json result")
        writes.append(("--json", json_out))
    if record is not None:
        read_record(record)  # exists, is a JSON object: --record updates an existing file
        check_output_file(record, "the --record metrics JSON")
        writes.append(("--record", record))
    tune_allocator()
    result = evaluate_model(model, data_dir, size, native, threads, quiet, name, writes)
    if json_out is not None and str(json_out) == "-":
        click.echo(json.dumps(result, indent=2))
    else:
        if json_out is not None:
            write_result(json_out, result)
        click.echo(format_table(result))
    if record is not None:
        record_evaluation(record, result)
        if not quiet:
            click.echo(f"recorded as evaluations.{result['name']} in {record}", err=True)
