"""``sod-train reproduce``: re-run a model's recorded build and compare the bytes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train.errors import GateError
from sod_train.stdio import echo_block


@click.command("reproduce")
@click.argument("metrics", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--duts-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the training data is here [default: the recorded --duts-root].",
)
@click.option(
    "--record",
    is_flag=True,
    help="Write the verdict into METRICS as build.reproduced.",
)
@click.option("--keep", is_flag=True, help="Keep the worktree and what it made (path printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="Hide the re-run's own output.")
def reproduce(
    metrics: Path, duts_root: Path | None, record: bool, keep: bool, as_json: bool, quiet: bool
) -> None:
    """Re-run METRICS' build.command at its commit in a fresh git worktree; compare sha256.

    Exit 0 if the new file is byte-identical, 1 if not. A release takes as long as its
    training (about an hour on 2 cores); the quickstart demo a minute.
    """
    from sod_train import atomicio
    from sod_train.guards import check_output_file, read_json_object
    from sod_train.release.reproduce import reproduce as rerun
    from sod_train.release.reproduce import reproduced_text

    if record:
        check_output_file(metrics, "the metrics JSON")
    result = rerun(metrics, duts_root, quiet, keep)
    if record:
        doc = read_json_object(metrics, "the metrics JSON")
        doc.setdefault("build", {})["reproduced"] = reproduced_text(result)
        atomicio.write_json(metrics, doc)
    if as_json:
        echo_block(json.dumps(result, indent=2))
    else:
        verdict = "same sha256" if result["same"] else "DIFFERENT sha256"
        echo_block(f"{verdict}: expected {result['expected']}, got {result['got']}")
    if not result["same"]:
        raise GateError(f"{metrics}: the re-run at {result['commit'][:12]} made different bytes")
