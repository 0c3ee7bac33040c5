"""Decode a data set once into memory (augmentation: :mod:`sod_train.data.augment`).

Training images are stored resized so their shorter side is ``crop + 32`` (image
bilinear, mask nearest). Validation images are resized to ``crop`` on the shorter side
and centre-cropped once, exactly like the anchor's fold protocol.
"""

from __future__ import annotations

import multiprocessing
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
