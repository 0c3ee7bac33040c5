"""``sod-train fold-iou``: the command over :mod:`sod_train.train.fold`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sod_train.guards import (
    MAX_CROP,
    MAX_SQUARE,
    MAX_THREADS,
    MAX_WORKERS,
    check_output_file,
    read_json_object,
    refuse_aliases,
)
from sod_train.runtime.model import SaliencyModel
from sod_train.stdio import echo_block
from sod_train.train.fold import fold_iou, load_fold, record_fold_iou


@click.command("fold-iou")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--duts-root",
    required=True,
    type=click.Path(path_type=Path),
    help="DUTS-TR folder (DUTS-TR-Image/ + DUTS-TR-Mask/, or images/ + masks/).",
)
@click.option(
    "--crop-size",
    type=click.IntRange(8, MAX_CROP),
    default=256,
    show_default=True,
    help="Validation crop: shorter side resized to it, then a centre crop.",
)
@click.option("--seed", default=42, show_default=True, help="Seed of the fold's shuffle.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Share of the sorted, shuffled pairs in the fold (at least 64).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, MAX_WORKERS),
    default=0,
    show_default=True,
    help="Processes used to decode the fold.",
)
@click.option(
    "--convert-rgb-masks", is_flag=True, help="Accept RGB masks (luminance), as the anchor did."
)
@click.option("--skip-bad", is_flag=True, help="Skip bad pairs instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as a JSON list.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store the result as `fold_iou` in this metrics JSON (one model only).",
)
@click.option(
    "--short-side",
    "short_sides",
    multiple=True,
    type=click.IntRange(1, MAX_SQUARE),
    help="Instead of the anchor's 256 crop protocol: score the whole fold pictures "
    "rescaled so their short side is S (aspect kept), as a host runs a frame of height S, "
    "with every SOD metric; repeatable, one row per model and S.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="onnxruntime intra-op threads [default: all cores].",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def fold_iou_cmd(
    models: tuple[Path, ...],
    duts_root: Path,
    crop_size: int,
    seed: int,
    val_fraction: float,
    workers: int,
    convert_rgb_masks: bool,
    skip_bad: bool,
    as_json: bool,
    record: Path | None,
    short_sides: tuple[int, ...],
    threads: int | None,
    quiet: bool,
) -> None:
    """Validation-fold IoU (anchor protocol) of one or more ONNX MODELS, side by side.

    With --short-side, the fold's whole pictures at the host's frame sizes instead.
    """
    if short_sides:
        _fold_at_short_sides(
            models, duts_root, seed, val_fraction, short_sides, threads, as_json, quiet
        )
        return
    if record and len(models) != 1:
        raise click.UsageError("--record takes exactly one model")
    if record:  # checked before any work: writable, a JSON object, not one of the models
        check_output_file(record, "the --record JSON")
        if record.exists():
            read_json_object(record, "the --record JSON")
        refuse_aliases([("the model", m) for m in models], [("--record", record)])
    opened = [
        (m, SaliencyModel.open(m, threads)) for m in models
    ]  # a bad model fails before decoding
    val = load_fold(
        duts_root, crop_size, seed, val_fraction, workers, quiet, convert_rgb_masks, skip_bad
    )
    results = [
        {
            "model": m.name,
            "crop": crop_size,
            "seed": seed,
            "val_fraction": val_fraction,
            **fold_iou(model, val, quiet),
        }
        for m, model in opened
    ]
    if record:
        record_fold_iou(record, {k: v for k, v in results[0].items() if k != "model"})
    if as_json:
        echo_block(json.dumps(results, indent=2))
        return
    echo_block(f"{'model':40s} {'n':>5s} {'IoU (per image)':>16s} {'IoU (per batch)':>16s}")
    for r in results:
        echo_block(f"{r['model']:40s} {r['n']:5d} {r['iou']:16.4f} {r['iou_batch']:16.4f}")


def _fold_at_short_sides(
    models: tuple[Path, ...],
    duts_root: Path,
    seed: int,
    val_fraction: float,
    short_sides: tuple[int, ...],
    threads: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """``fold-iou --short-side``: the evaluate protocol on the fold, one row per model and S."""
    from sod_train.evaluate.evaluate import (
        evaluate_sources,
        format_side_by_side,
        make_sources,
        tune_allocator,
    )

    tune_allocator()
    evaluations = evaluate_sources(
        make_sources(models),
        duts_root,
        threads=threads,
        quiet=quiet,
        short_sides=short_sides,
        fold=(seed, val_fraction),
    )
    if as_json:
        doc = {ev.source.label: ev.result for ev in evaluations}
        echo_block(json.dumps(doc, indent=2))
        return
    echo_block(format_side_by_side(evaluations))
