"""``sod-train bench``: CPU latency, params and MACs of ONNX models, side by side."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from sod_train import progress
from sod_train.errors import UserInputError
from sod_train.evaluate.bench import format_table, parse_list, parse_size, run_bench
from sod_train.guards import (
    MAX_LIST,
    MAX_PIXELS,
    MAX_RUNS,
    MAX_SIDE,
    MAX_THREADS,
    MAX_WARMUP,
    check_output_file,
    read_json_object,
    refuse_aliases,
)
from sod_train.stdio import echo_block


def _thread_counts(text: str) -> list[int]:
    items = parse_list(text, "--threads")
    try:
        counts = [int(item) for item in items if len(item) <= 6]
    except ValueError:
        counts = []
    if len(counts) != len(items) or not all(1 <= n <= MAX_THREADS for n in counts):
        raise UserInputError(
            f"--threads '{text[:60]}': expected integers 1 to {MAX_THREADS}, e.g. 1,2"
        )
    return counts


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--sizes",
    default="256,720p,1080p",
    show_default=True,
    help="Comma-separated: N (N x N), Np (N x 16:9 width, e.g. 720p = 720x1280), HxW or 4k; "
    f"1 to {MAX_LIST} sizes, each side 1 to {MAX_SIDE}, at most {MAX_PIXELS:,} pixels.",
)
@click.option(
    "--threads",
    default="1,2",
    show_default=True,
    help=f"Comma-separated thread counts: 1 to {MAX_LIST} counts, each 1 to {MAX_THREADS}.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, MAX_RUNS),
    default=20,
    show_default=True,
    help="Timed runs per model, size and thread count.",
)
@click.option(
    "--warmup",
    type=click.IntRange(0, MAX_WARMUP),
    default=3,
    show_default=True,
    help="Untimed runs first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result as `cost` (params, GMAC, median ms per cell, command, machine) "
    "into this existing metrics JSON.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench(
    models: tuple[Path, ...],
    sizes: str,
    threads: str,
    runs: int,
    warmup: int,
    as_json: bool,
    record: Path | None,
    quiet: bool,
) -> None:
    """Time MODEL.onnx... (1 to 16 models) with onnxruntime on CPU at each size and thread count.

    Prints median and p90 latency, params, MACs per frame, file bytes and achieved
    GMAC/s, with ratios to the first model. A model that cannot run at a size is
    shown as 'fails'. The progress bar goes to stderr, so --json output stays clean.
    """
    size_list = parse_list(sizes, "--sizes")
    for name in size_list:
        parse_size(name)  # every size in range before any model is read
    thread_list = _thread_counts(threads)
    if len(models) > MAX_LIST:
        raise UserInputError(f"{len(models)} models: bench compares 1 to {MAX_LIST}")
    if record is not None:  # before any timing: an existing JSON object, writable, no model
        check_output_file(record, "the --record metrics JSON")
        read_json_object(record, "the --record metrics JSON")
        refuse_aliases([("a model", m) for m in models], [("--record", record)])
    rounds = len(size_list) * len(thread_list)
    with progress.Bar(length=rounds, label="bench", quiet=quiet) as bar:
        report = run_bench(
            list(models), size_list, thread_list, runs, warmup, tick=lambda: bar.update(1)
        )
    if record is not None:
        from sod_train import atomicio
        from sod_train.evaluate.bench import cost_record

        doc = read_json_object(record, "the --record metrics JSON")
        options = ["--sizes", sizes, "--threads", threads, "--runs", str(runs)]
        command = shlex.join(
            ["sod-train", "bench", *map(str, models), *options, "--warmup", str(warmup)]
        )
        doc["cost"] = cost_record(report, command)
        atomicio.write_json(record, doc)
    if as_json:
        echo_block(json.dumps(report, indent=2, allow_nan=False))
    else:
        echo_block(format_table(report))
