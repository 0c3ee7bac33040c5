"""Segmentation losses on logits; every term is computed per image, then averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - Dice, one value per image."""
    dims = (1, 2, 3)
    inter = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return 1 - (2 * inter + smooth) / (total + smooth)


def soft_iou_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft IoU (Jaccard), one value per image."""
    dims = (1, 2, 3)
    inter = (prob * target).sum(dims)
    union = prob.sum(dims) + target.sum(dims) - inter
    return 1 - (inter + smooth) / (union + smooth)


def boundary_weights(target: torch.Tensor) -> torch.Tensor:
    """F3Net's pixel weights: 1 + 5 x |local mean of the mask - mask|.

    Pixels near a boundary (where the mask differs from its neighbourhood) weigh up to
    6x. The window is about 9 % of the shorter side (F3Net has 31 px at 352; this gives
    33), odd and at least 3, so the weighting means the same at every crop and on the
    small side outputs. Unlike F3Net's zero padding, the mean is over the pixels inside
    the picture only, so an object touching the picture's border is not weighted there.
    """
    k = 2 * max(1, round(0.045 * min(target.shape[2:]))) + 1
    local = F.avg_pool2d(target, k, stride=1, padding=k // 2, count_include_pad=False)
    return 1 + 5 * (local - target).abs()


def structure_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """F3Net's structure loss, one value per image: weighted BCE + weighted soft IoU.

    Both terms weigh pixels by :func:`boundary_weights`, so hard pixels near object
    edges count more; the IoU term scores the whole map, which pulls the background
    towards 0 (lower MAE) more than per-pixel BCE alone.
    """
    weight = boundary_weights(target)
    dims = (1, 2, 3)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    wbce = (weight * bce).sum(dims) / weight.sum(dims)
    prob = torch.sigmoid(logits)
    inter = (weight * prob * target).sum(dims)
    union = (weight * (prob + target)).sum(dims)
    return wbce + 1 - (inter + 1) / (union - inter + 1)


def saliency_loss(
    logits: torch.Tensor, target: torch.Tensor, kind: str = "bce+dice", per_image: bool = False
) -> torch.Tensor:
    """BCE (with logits) plus a region term: ``bce+dice`` (default), ``bce+iou``, or
    ``structure`` (both terms boundary-weighted, :func:`structure_loss`).

    Returns the batch mean, or with ``per_image`` one loss per image.
    """
    logits = logits.float()
    if kind == "structure":
        loss = structure_loss(logits, target)
        return loss if per_image else loss.mean()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2, 3))
    prob = torch.sigmoid(logits)
    if kind == "bce+dice":
        loss = bce + soft_dice_loss(prob, target)
    elif kind == "bce+iou":
        loss = bce + soft_iou_loss(prob, target)
    else:
        raise ValueError(f"unknown loss '{kind}'")
    return loss if per_image else loss.mean()


@torch.no_grad()
def iou_at_half(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-image IoU of ``prob > 0.5`` against the binary target (anchor's +1e-6 smoothing)."""
    pred = (prob > 0.5).float()
    dims = (1, 2, 3)
    inter = (pred * target).sum(dims)
    union = pred.sum(dims) + target.sum(dims) - inter
    return (inter + eps) / (union + eps)
