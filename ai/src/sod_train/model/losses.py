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


def saliency_loss(
    logits: torch.Tensor, target: torch.Tensor, kind: str = "bce+dice", per_image: bool = False
) -> torch.Tensor:
    """BCE (with logits) plus a region term: ``bce+dice`` (default) or ``bce+iou``.

    Returns the batch mean, or with ``per_image`` one loss per image.
    """
    logits = logits.float()
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
