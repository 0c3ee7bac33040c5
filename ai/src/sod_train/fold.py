"""Validation-fold IoU of any ONNX model, with the anchor's exact protocol.

The fold: sorted pairs, ``random.Random(seed).shuffle``, the first
max(64, round(fraction * n)) pairs (528 of DUTS-TR's 10,553 at seed 42, 5 %).
Each image: shorter side -> crop (bilinear; mask nearest), centre crop, ImageNet
normalisation, threshold 0.5, IoU per image with +1e-6 smoothing; reported as the
per-image mean and as the anchor's mean of per-batch (32) means. This is how our
models and the anchors are compared on the same data by the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import onnxruntime as ort
import torch

from . import atomicio, modelio
from .dataset import DecodedSet, decode_pairs, normalize
from .errors import GateError, UserInputError
from .guards import MAX_CROP, MAX_WORKERS, check_output_file, read_json_object, refuse_aliases
from .losses import iou_at_half
from .pairs import raise_if_problems, scan_pairs, split_scan
from .predict import load_session

BATCH = 32


def load_fold(
    root: str | Path,
    crop: int = 256,
    seed: int = 42,
    val_fraction: float = 0.05,
    workers: int = 0,
    quiet: bool = True,
    convert_rgb_masks: bool = False,
    skip_bad: bool = False,
) -> DecodedSet:
    """The seed's validation fold of ``root``, decoded and centre-cropped once."""
    scan = scan_pairs(root, allow_rgb=convert_rgb_masks)
    _, val_pairs = split_scan(scan, val_fraction, seed)
    val, problems = decode_pairs(
        val_pairs, crop, crop, workers, "decode fold", quiet, convert_rgb_masks
    )
    raise_if_problems(scan.problems + problems, Path(root), skip_bad)
    return val


def fold_iou(session: ort.InferenceSession, val: DecodedSet, quiet: bool = True) -> dict:
    """IoU at 0.5 of the model in ``session`` on the decoded fold ``val``."""
    ious = []
    with click.progressbar(range(len(val)), label="fold IoU", hidden=quiet) as bar:
        for i in bar:
            x = normalize(val.images[i][None]).numpy()
            try:  # the one way to run a model: any failure, a deadline, a non-float output
                prob = modelio.run(session, x)
            except UserInputError as exc:
                raise GateError(f"model failed on the fold ({exc})") from None
            iou = iou_at_half(torch.from_numpy(prob), val.masks[i][None].float())
            ious.append(float(iou[0]))
    batch_means = [float(np.mean(ious[s : s + BATCH])) for s in range(0, len(ious), BATCH)]
    return {"n": len(ious), "iou": float(np.mean(ious)), "iou_batch": float(np.mean(batch_means))}


def record_fold_iou(path: Path, result: dict) -> None:
    """Set ``fold_iou`` in the JSON object at ``path`` (created if absent), atomically."""
    doc = read_json_object(path, "the --record JSON") if path.exists() else {}
    doc["fold_iou"] = result
    atomicio.write_json(path, doc)


@click.command("fold-iou")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--duts-root", required=True, type=click.Path(path_type=Path))
@click.option("--crop-size", type=click.IntRange(8, MAX_CROP), default=256, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
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
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store the result as `fold_iou` in this metrics JSON (one model only).",
)
@click.option("--quiet", is_flag=True)
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
    quiet: bool,
) -> None:
    """Validation-fold IoU (anchor protocol) of one or more ONNX MODELS, side by side."""
    if record and len(models) != 1:
        raise click.UsageError("--record takes exactly one model")
    if record:  # checked before any work: writable, a JSON object, not one of the models
        check_output_file(record, "the --record JSON")
        if record.exists():
            read_json_object(record, "the --record JSON")
        refuse_aliases([("the model", m) for m in models], [("--record", record)])
    sessions = [(m, load_session(m)) for m in models]  # a bad model fails before decoding
    val = load_fold(
        duts_root, crop_size, seed, val_fraction, workers, quiet, convert_rgb_masks, skip_bad
    )
    results = [
        {
            "model": m.name,
            "crop": crop_size,
            "seed": seed,
            "val_fraction": val_fraction,
            **fold_iou(session, val, quiet),
        }
        for m, session in sessions
    ]
    if record:
        record_fold_iou(record, {k: v for k, v in results[0].items() if k != "model"})
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"{'model':40s} {'n':>5s} {'IoU (per image)':>16s} {'IoU (per batch)':>16s}")
    for r in results:
        click.echo(f"{r['model']:40s} {r['n']:5d} {r['iou']:16.4f} {r['iou_batch']:16.4f}")
