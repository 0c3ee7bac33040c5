"""``sod-train check``: verify an ONNX file against the host contract.

Prints one ``PASS``/``FAIL``/``SKIP name: detail`` line per check and a summary,
or with ``--json`` one JSON object. Exit 0 when every check passes, 1 when any
fails, 2 when the file cannot be read as ONNX.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train.errors import GateError
from sod_train.stdio import echo, echo_block


@click.command("check")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=True))
@click.option(
    "--allowlist",
    "allowlist_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Op allowlist file (default: op_allowlist.txt at the repository root).",
)
@click.option(
    "--max-mb",
    type=click.FloatRange(0, 2048, min_open=True),
    default=50.0,
    show_default=True,
    help="File size cap in MiB (2048 is protobuf's limit).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option(
    "--video-vectors",
    is_flag=True,
    help="Also verify the video conformance vectors (model/tiny/video_vectors/).",
)
@click.option(
    "--quiet", is_flag=True, help="Print no check lines; the exit code (and an error line) only."
)
def check(
    model: Path,
    allowlist_path: Path | None,
    max_mb: float,
    as_json: bool,
    video_vectors: bool,
    quiet: bool,
) -> None:
    """Verify MODEL.onnx: contract, opset, allowlist, runtime at odd sizes, golden vectors."""
    from sod_train.check.check import check_model

    if quiet and as_json:
        raise click.UsageError("--quiet prints no report: give --json or --quiet, not both")
    report = check_model(model, allowlist_path, max_bytes=int(max_mb * 2**20))
    if video_vectors:
        from sod_train.video.vectors import video_vector_checks

        for verdict in video_vector_checks(model):
            report.add(*verdict)
    if as_json:
        echo_block(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        for item in report.checks:
            status = "SKIP" if item.skipped else ("PASS" if item.passed else "FAIL")
            echo(f"{status} {item.name}: {item.detail}")  # one line, whatever a name holds
        total = len(report.checks)
        if report.passed:
            skipped = sum(c.skipped for c in report.checks)
            note = f" ({skipped} skipped)" if skipped else ""
            echo(f"OK: {model} meets the host contract, all {total} checks passed{note}")
    if not report.passed:
        names = ", ".join(c.name for c in report.failed)
        raise GateError(
            f"{model}: {len(report.failed)} of {len(report.checks)} checks failed: {names}"
        )
