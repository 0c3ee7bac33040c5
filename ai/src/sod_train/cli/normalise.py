"""``sod-train normalise``: put the scale normaliser around a shipped ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train import progress
from sod_train.check.allowlist import DEFAULT_ALLOWLIST
from sod_train.export.normaliser import MAX_WORKING_SIZE, MIN_WORKING_SIZE
from sod_train.stdio import echo_block


@click.command("normalise")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The wrapped ONNX file; its golden vectors and metrics JSON go next to it.",
)
@click.option(
    "--working-size",
    required=True,
    type=click.IntRange(MIN_WORKING_SIZE, MAX_WORKING_SIZE),
    help="T: the graph area-averages any frame by an integer k so its short side lands "
    "near T, runs the network there and maps back to H x W.",
)
@click.option(
    "--metrics",
    "metrics_in",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The source's metrics JSON [default: SOURCE with .metrics.json].",
)
@click.option(
    "--metrics-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The new metrics JSON [default: OUTPUT with .metrics.json].",
)
@click.option(
    "--allowlist",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Op allowlist [default: the repository's op_allowlist.txt].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new metrics JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No note on stderr.")
def normalise(
    source: Path,
    output: Path,
    working_size: int,
    metrics_in: Path | None,
    metrics_out: Path | None,
    allowlist: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Wrap SOURCE (a contract-conforming ONNX model) in the scale normaliser.

    The network's bytes are kept; the result passes every rule of `check` and parity
    against the normaliser's reference before anything is written. Measurements of the
    old graph are dropped from the metrics: evaluate the new file again.
    """
    from sod_train.export.wrap import wrap_release

    metrics = wrap_release(
        source, output, working_size, metrics_in, metrics_out, allowlist or DEFAULT_ALLOWLIST
    )
    if as_json:
        echo_block(json.dumps(metrics, indent=2))
    if not quiet:
        sha = metrics["onnx"]["sha256"]
        progress.note(f"wrote {output} (working size {working_size}, sha256 {sha[:12]}…)")
