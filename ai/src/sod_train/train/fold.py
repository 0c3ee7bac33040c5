"""Validation-fold IoU of any ONNX model, with the anchor's exact protocol.

The fold: sorted pairs, ``random.Random(seed).shuffle``, the first
max(64, round(fraction * n)) pairs (528 of DUTS-TR's 10,553 at seed 42, 5 %).
Each image: shorter side -> crop (bilinear; mask nearest), centre crop, ImageNet
normalisation, threshold 0.5, IoU per image with +1e-6 smoothing; reported as the
per-image mean and as the anchor's mean of per-batch (32) means. This is how our
models and the anchors are compared on the same data by the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sod_train import atomicio, progress
from sod_train.data.decode import DecodedSet, decode_pairs, normalize
from sod_train.data.pairs import raise_if_problems, scan_pairs, split_scan
from sod_train.errors import GateError, UserInputError
from sod_train.guards import (
    read_json_object,
)
from sod_train.model.losses import iou_at_half
from sod_train.runtime.model import SaliencyModel

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


def fold_iou(model: SaliencyModel, val: DecodedSet, quiet: bool = True) -> dict:
    """IoU at 0.5 of ``model`` on the decoded fold ``val``."""
    ious = []
    with progress.Bar(range(len(val)), label="fold IoU", quiet=quiet) as bar:
        for i in bar:
            x = normalize(val.images[i][None]).numpy()
            try:  # the one way to run a model: any failure, a deadline, a non-float output
                prob = model.run(x)
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
