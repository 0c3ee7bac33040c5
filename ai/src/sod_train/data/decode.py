"""Decode a data set once into memory, then serve augmented batches from it.

Training images are stored resized so their shorter side is ``crop + 32`` (image
bilinear, mask nearest); each batch takes a random ``crop x crop`` window and a
random horizontal flip (optionally scale and colour jitter), drawn from one seeded
``torch.Generator`` so runs (and resumed runs) are reproducible. Validation images
are resized to ``crop`` on the shorter side and centre-cropped once, exactly like
the anchor's fold protocol.
Cropping, flipping and normalising happen on whatever device holds the tensors,
so on a GPU the whole augmentation pipeline runs there.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sod_train import progress
from sod_train.contract import IMAGENET_MEAN, IMAGENET_STD
from sod_train.data.pairs import Pair, mask_problem

TRAIN_MARGIN = 32  # training images keep crop + 32 pixels on the shorter side


def resize_short_side(img: Image.Image, short: int, resample: int) -> Image.Image:
    """Resize so the shorter side is ``short``, keeping aspect (torchvision's rounding)."""
    w, h = img.size
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    return img if size == (w, h) else img.resize(size, resample)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Centre ``size x size`` crop (torchvision's rounding of the offsets)."""
    w, h = img.size
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def decode_pair(
    pair: Pair, short: int, crop: int | None, allow_rgb: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair to (uint8 [3,H,W] image, uint8 [1,H,W] mask in {0,1}).

    Raises ValueError with a 'path: problem' message when a file is unusable.
    """
    image = _load(pair.image, "RGB")
    mask = _load(pair.mask, "L", check_mask=True, allow_rgb=allow_rgb)
    if image.size != mask.size:
        raise ValueError(f"{pair.mask}: size {mask.size} != image size {image.size}")
    image = resize_short_side(image, short, Image.BILINEAR)
    mask = resize_short_side(mask, short, Image.NEAREST)
    if crop is not None:
        image, mask = center_crop(image, crop), center_crop(mask, crop)
    img_arr = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()
    mask_arr = (np.asarray(mask, dtype=np.uint8) >= 128).astype(np.uint8)[None]
    return img_arr, mask_arr


def _load(path, mode: str, check_mask: bool = False, allow_rgb: bool = False) -> Image.Image:
    """Fully decode ``path`` and convert to ``mode``; ValueError naming the file if not."""
    try:
        with Image.open(path) as im:
            if check_mask and (problem := mask_problem(im, allow_rgb)):
                raise ValueError(f"{path}: {problem}")
            return im.convert(mode)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: cannot decode ({exc.__class__.__name__}: {exc})") from None


def _decode_or_problem(pair: Pair, short: int, crop: int | None, allow_rgb: bool):
    try:
        return decode_pair(pair, short, crop, allow_rgb)
    except ValueError as exc:
        return str(exc)


@dataclass
class DecodedSet:
    """Decoded pairs: lists of uint8 tensors (image [3,H,W], mask [1,H,W])."""

    pairs: list[Pair]
    images: list[torch.Tensor]
    masks: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.images)

    def rescaled(self, short: int) -> DecodedSet:
        """A copy whose shorter sides are ``short`` (image bilinear with antialias, mask nearest).

        Progressive resizing decodes once at the largest crop and serves the smaller
        crops' epochs from this copy, so the field of view stays the same.
        """
        images, masks = [], []
        for img, mask in zip(self.images, self.masks, strict=True):
            h, w = img.shape[1:]
            size = (int(short * h / w), short) if w <= h else (short, int(short * w / h))
            if size == (h, w):
                images.append(img)
                masks.append(mask)
                continue
            x = F.interpolate(img[None].float(), size, mode="bilinear", antialias=True)
            images.append(x[0].round().clamp(0, 255).to(torch.uint8))
            masks.append(F.interpolate(mask[None].float(), size, mode="nearest")[0].byte())
        return DecodedSet(self.pairs, images, masks)

    def to(self, device: torch.device) -> DecodedSet:
        return DecodedSet(
            self.pairs, [t.to(device) for t in self.images], [t.to(device) for t in self.masks]
        )


def decode_pairs(
    pairs: list[Pair],
    short: int,
    crop: int | None,
    workers: int,
    label: str,
    quiet: bool,
    allow_rgb: bool = False,
) -> tuple[DecodedSet, list[str]]:
    """Decode every pair (in ``workers`` processes if > 0); return the set and problems."""
    fn = partial(_decode_or_problem, short=short, crop=crop, allow_rgb=allow_rgb)
    good, images, masks, problems = [], [], [], []
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 0 else None
    try:
        results = pool.imap(fn, pairs, chunksize=16) if pool else map(fn, pairs)
        with progress.Bar(results, length=len(pairs), label=label, quiet=quiet) as bar:
            for pair, result in zip(pairs, bar, strict=True):
                if isinstance(result, str):
                    problems.append(result)
                    continue
                good.append(pair)
                images.append(torch.from_numpy(result[0]))
                masks.append(torch.from_numpy(result[1]))
    finally:
        if pool:
            pool.terminate()  # results are all consumed (or we are failing): stop workers now
    return DecodedSet(good, images, masks), problems


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """RGB [N,3,H,W], uint8 or float in [0, 1] -> float32 ImageNet-normalised (same device)."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1)
    unit = batch if batch.is_floating_point() else batch.float() / 255.0
    return (unit - mean) / std


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


def train_batches(
    data: DecodedSet,
    order: list[int],
    batch_size: int,
    crop: int,
    generator: torch.Generator,
    scale_jitter: float = 0.0,
    colour_jitter: float = 0.0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(image, float mask) batches over ``order``: random crop + flip, optional jitter.

    Images are uint8, or float in [0, 1] when colour jitter is on (feed either to
    :func:`normalize`). ``scale_jitter`` s takes a random square window of side
    in [crop*(1-s), crop*(1+s)] (see :func:`scale_window`) and resizes it to the
    crop; ``colour_jitter`` s draws brightness, contrast and saturation
    factors uniform in [1-s, 1+s] per image. All random numbers come from
    ``generator`` (on the CPU), per batch in a fixed order: crop/flip [N,3], then
    scale [N] if on, then colour [N,3] if on. So the sequence is the same whichever
    device holds the data, and with both strengths 0 it is the plain crop + flip one.
    """
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        draws = torch.rand(len(idx), 3, generator=generator).tolist()
        scales = [None] * len(idx)
        if scale_jitter:
            scales = torch.rand(len(idx), generator=generator).tolist()
        colours = torch.rand(len(idx), 3, generator=generator) if colour_jitter else None
        pairs = [
            _augment_one(data.images[i], data.masks[i], crop, d, u, scale_jitter)
            for i, d, u in zip(idx, draws, scales, strict=True)
        ]
        images = torch.stack([img for img, _ in pairs])
        if colours is not None:
            images = apply_colour_jitter(images, 1 - colour_jitter + 2 * colour_jitter * colours)
        yield images, torch.stack([mask for _, mask in pairs]).float()


def _augment_one(
    img: torch.Tensor,
    mask: torch.Tensor,
    crop: int,
    draws: list[float],
    scale_u: float | None,
    scale_jitter: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One stored pair -> a random (scale-jittered when ``scale_u`` is given) crop + flip."""
    ry, rx, rflip = draws
    side = crop
    if scale_u is not None:
        side = scale_window(min(img.shape[1:]), crop, scale_jitter, scale_u)
    top = int(ry * (img.shape[1] - side + 1))
    left = int(rx * (img.shape[2] - side + 1))
    img = img[:, top : top + side, left : left + side]
    mask = mask[:, top : top + side, left : left + side]
    if rflip < 0.5:
        img, mask = img.flip(-1), mask.flip(-1)
    if side != crop:
        img, mask = resize_pair(img, mask, crop)
    return img, mask
