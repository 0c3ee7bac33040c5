"""Release commands: ``sod-train diff`` (regression gate between two metrics files),
``sod-train card`` (Markdown model card) and ``sod-train register`` (registry entry).
None of them imports torch or onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train.errors import GateError, joined
from sod_train.release.registry import REGISTRY_PATH
from sod_train.stdio import echo_block

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("diff")
@click.argument("old", type=_FILE)
@click.argument("new", type=_FILE)
@click.option(
    "--max-drop",
    type=click.FloatRange(0, 1),
    default=0.005,
    show_default=True,
    help="Largest allowed absolute drop of a quality metric (rise, for MAE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--quiet", is_flag=True, help="Print no report; the exit code (and an error line) only."
)
def diff(old: Path, new: Path, max_drop: float, as_json: bool, quiet: bool) -> None:
    """Compare OLD and NEW metrics JSON side by side; exit 1 if NEW regresses.

    NEW regresses when a quality metric drops (MAE: rises) by more than --max-drop, a data
    set evaluated in OLD is missing, the host contract changed, NEW fails its training gate
    while OLD passed, or either file breaks the metrics schema. Exit 2: a file is unreadable.
    """
    from sod_train.release.diff import diff_files, format_report

    if quiet and as_json:
        raise click.UsageError("--quiet prints no report: give --json or --quiet, not both")
    report = diff_files(old, new, max_drop)
    if as_json:
        echo_block(json.dumps(report.to_json(), indent=2))
    elif not quiet:
        echo_block(format_report(report))
    if not report.passed:
        raise GateError(f"{new} regresses against {old}: {joined(report.failures, 1)}")


@click.command("card")
@click.argument("metrics", type=_FILE)
@click.option(
    "--out",
    type=_FILE,
    default=None,
    help="Markdown file to write [default: the registry's card path, else docs/ai/models/<id>.md]. "
    "The training-curves image <id>.curves.png goes beside it.",
)
@click.option(
    "--registry",
    type=_FILE,
    default=REGISTRY_PATH,
    show_default="model/tiny/registry.json in the checkout",
    help="Registry that supplies the weights licence and the exported parameter count.",
)
@click.option(
    "--anchor-metrics",
    "anchors",
    type=_FILE,
    multiple=True,
    help="JSON with an 'evaluations' section of a reference model to show beside ours "
    "(repeatable) [default: every benchmarks/anchors/*.json, and the released models "
    "registered before this one].",
)
@click.option("--no-anchors", is_flag=True, help="Show no reference models at all.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"card": path, "curves": path or null} as JSON instead of "wrote" lines.',
)
def card(
    metrics: Path,
    out: Path | None,
    registry: Path,
    anchors: tuple[Path, ...],
    no_anchors: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Render the Markdown model card and its training-curves image for METRICS
    (a <stem>.metrics.json). With no options it regenerates the committed card.

    The image needs matplotlib (pip install -e ".[report]"); without it the card is
    still written, an existing image is kept, and a note says so.
    """
    from sod_train.errors import UserInputError
    from sod_train.release.card import write_card

    if no_anchors and anchors:
        raise UserInputError("--no-anchors and --anchor-metrics contradict each other")
    chosen = () if no_anchors else (anchors or None)
    written = write_card(metrics, out, registry, chosen, quiet=quiet or as_json)
    if as_json:
        paths = {"card": written.card, "curves": written.curves}
        echo_block(json.dumps({k: str(v) if v else None for k, v in paths.items()}, indent=2))
    elif not quiet:
        for path in (written.curves, written.card):
            if path is not None:
                echo_block(f"wrote {path}")


@click.command("register")
@click.argument("model", type=_FILE)
@click.option(
    "--license",
    "license_",
    default="BSD-2-Clause-Patent",
    show_default=True,
    help="Licence of the weights.",
)
@click.option("--default", "make_default", is_flag=True, help="Make it the default model.")
@click.option(
    "--registry",
    type=_FILE,
    default=REGISTRY_PATH,
    show_default="model/tiny/registry.json in the checkout",
    help="Registry JSON to add the entry to.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new registry entry as JSON.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def register(
    model: Path, license_: str, make_default: bool, registry: Path, as_json: bool, quiet: bool
) -> None:
    """Add MODEL (with its metrics JSON and card already in place) to the registry."""
    from sod_train.release.registry import register_model

    entry = register_model(model, license_, make_default, registry)
    if as_json:
        echo_block(json.dumps(entry, indent=2))
    elif not quiet:
        echo_block(
            f"registered {entry['id']} ({entry['params']:,} params, "
            f"sha256 {entry['sha256'][:12]}...)"
        )
