"""Training augmentation: random crop + flip, optional scale and colour jitter, and
optionally a crop size drawn per batch (multi-scale training, :class:`CropMix`).

The transform objects are built once from the recipe (:meth:`TrainConfig.augments`) and
passed to the loop, so a crop or a jitter strength has one name from the CLI to here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sod_train.data.decode import DecodedSet


def scale_window(short: int, crop: int, strength: float, u: float) -> int:
    """Side of a scale-jittered square window: uniform over [crop*(1-s), crop*(1+s)].

    ``u`` is a uniform draw in [0, 1). The range is capped at ``short`` (the image's
    shorter side; crop + 32 for stored training images), so zooming out is limited
    to what the image holds.
    """
    lo = crop * (1 - strength)
    hi = min(crop * (1 + strength), short)
    return max(1, min(short, round(lo + u * (hi - lo))))


def resize_pair(img: torch.Tensor, mask: torch.Tensor, crop: int) -> tuple[torch.Tensor, ...]:
    """Resize one (uint8 image, uint8 mask) window to crop x crop: bilinear / nearest."""
    size = (crop, crop)
    img = F.interpolate(img[None].float(), size=size, mode="bilinear", align_corners=False)
    mask = F.interpolate(mask[None].float(), size=size, mode="nearest")
    return img[0].round().clamp(0, 255).to(torch.uint8), mask[0].to(torch.uint8)


def apply_colour_jitter(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation (in that order) on a uint8 batch -> float in [0, 1].

    ``factors`` [N, 3] holds each image's three factors; each step blends with black,
    the image's mean grey or its per-pixel grey, and clamps to [0, 1] (torchvision's
    ColorJitter maths, without its random order).
    """
    grey_weights = torch.tensor((0.299, 0.587, 0.114), device=images.device).view(1, 3, 1, 1)
    f = factors.to(images.device).view(-1, 3, 1, 1)
    x = (images.float() / 255.0 * f[:, 0:1]).clamp(0, 1)
    mean = (x * grey_weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = ((x - mean) * f[:, 1:2] + mean).clamp(0, 1)
    grey = (x * grey_weights).sum(1, keepdim=True)
    return ((x - grey) * f[:, 2:3] + grey).clamp(0, 1)


@dataclass(frozen=True)
class TrainAugment:
    """The training transform, built once per crop from the recipe (``TrainConfig.augments``).

    A random ``crop x crop`` window and a random horizontal flip, optionally scale and
    colour jitter, drawn from one seeded ``torch.Generator`` so runs (and resumed runs)
    are reproducible. Cropping and flipping run on whatever device holds the tensors.
    """

    crop: int
    scale_jitter: float = 0.0
    colour_jitter: float = 0.0

    def batches(
        self, data: DecodedSet, order: list[int], batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(image, float mask) batches over ``order``: random crop + flip, optional jitter.

        Images are uint8, or float in [0, 1] when colour jitter is on (feed either to
        :func:`sod_train.data.decode.normalize`). ``scale_jitter`` s takes a random
        square window of side in [crop*(1-s), crop*(1+s)] (see :func:`scale_window`) and
        resizes it to the crop; ``colour_jitter`` s draws brightness, contrast and saturation
        factors uniform in [1-s, 1+s] per image. All random numbers come from
        ``generator`` (on the CPU), per batch in a fixed order: crop/flip [N,3], then
        scale [N] if on, then colour [N,3] if on. So the sequence is the same whichever
        device holds the data, and with both strengths 0 it is the plain crop + flip one.
        """
        for start in range(0, len(order), batch_size):
            yield self.batch(data, order[start : start + batch_size], generator)

    def batch(
        self, data: DecodedSet, idx: list[int], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of the pairs ``idx``, drawing from ``generator`` as :meth:`batches` says."""
        draws = torch.rand(len(idx), 3, generator=generator).tolist()
        scales = [None] * len(idx)
        if self.scale_jitter:
            scales = torch.rand(len(idx), generator=generator).tolist()
        colours = torch.rand(len(idx), 3, generator=generator) if self.colour_jitter else None
        pairs = [
            self._one(data.images[i], data.masks[i], d, u)
            for i, d, u in zip(idx, draws, scales, strict=True)
        ]
        images = torch.stack([img for img, _ in pairs])
        if colours is not None:
            s = self.colour_jitter
            images = apply_colour_jitter(images, 1 - s + 2 * s * colours)
        return images, torch.stack([mask for _, mask in pairs]).float()

    def _one(
        self, img: torch.Tensor, mask: torch.Tensor, draws: list[float], scale_u: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One stored pair -> a random (scale-jittered when ``scale_u`` is given) crop + flip."""
        ry, rx, rflip = draws
        crop = side = self.crop
        if scale_u is not None:
            side = scale_window(min(img.shape[1:]), crop, self.scale_jitter, scale_u)
        top = int(ry * (img.shape[1] - side + 1))
        left = int(rx * (img.shape[2] - side + 1))
        img = img[:, top : top + side, left : left + side]
        mask = mask[:, top : top + side, left : left + side]
        if rflip < 0.5:
            img, mask = img.flip(-1), mask.flip(-1)
        if side != crop:
            img, mask = resize_pair(img, mask, crop)
        return img, mask


@dataclass(frozen=True)
class MixedSet:
    """The same training pairs stored once per crop of a :class:`CropMix` (same order)."""

    sets: tuple[DecodedSet, ...]

    def __len__(self) -> int:
        return len(self.sets[0])


@dataclass(frozen=True)
class CropMix:
    """Multi-scale training: every batch takes one crop size of several, drawn at random.

    Crop ``c`` is cut from the copy of the set stored at ``c`` + the margin, so every
    size sees the same field of view: a smaller crop shows the objects smaller. That is
    scale augmentation at the whole-picture level (what a host's frame size does to the
    working scale), and a batch of 128 costs about a third of one of 224. Each batch
    first draws its size from ``generator``, then the chosen transform draws as usual.
    """

    augments: tuple[TrainAugment, ...]

    def batches(
        self, data: MixedSet, order: list[int], batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(image, float mask) batches over ``order``, each at a crop drawn from the mix."""
        for start in range(0, len(order), batch_size):
            pick = int(torch.randint(len(self.augments), (1,), generator=generator))
            idx = order[start : start + batch_size]
            yield self.augments[pick].batch(data.sets[pick], idx, generator)
