"""``sod-train bench``: CPU latency, params and MACs of ONNX models, side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .bench import format_table, parse_list, run_bench
from .errors import UserInputError


def _thread_counts(text: str) -> list[int]:
    try:
        counts = [int(item) for item in parse_list(text, "--threads")]
    except ValueError:
        counts = [0]
    if min(counts) < 1:
        raise UserInputError(f"--threads '{text}': expected positive integers, e.g. 1,2")
    return counts


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--sizes",
    default="256,720p,1080p",
    show_default=True,
    help="Comma-separated: N (N x N), Np (N x 16:9 width, e.g. 720p = 720x1280) or HxW.",
)
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated thread counts.")
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench(
    models: tuple[Path, ...],
    sizes: str,
    threads: str,
    runs: int,
    warmup: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Time MODEL.onnx... with onnxruntime on CPU at each size and thread count.

    Prints median and p90 latency, params, MACs per frame, file bytes and achieved
    GMAC/s, with ratios to the first model. A model that cannot run at a size is
    shown as 'fails'. The progress bar goes to stderr, so --json output stays clean.
    """
    size_list = parse_list(sizes, "--sizes")
    thread_list = _thread_counts(threads)
    rounds = len(size_list) * len(thread_list)
    with click.progressbar(length=rounds, label="bench", hidden=quiet, file=sys.stderr) as bar:
        report = run_bench(
            list(models), size_list, thread_list, runs, warmup, tick=lambda: bar.update(1)
        )
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    else:
        click.echo(format_table(report))
