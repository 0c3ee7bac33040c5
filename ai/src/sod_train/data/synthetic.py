"""A small synthetic data set in the DUTS layout, for the demo and the tests.

Each image is a noisy, textured background with one or two smooth blobs of a
distinct colour; the mask marks the blobs. It is trivially learnable, which is
the point: a pipeline run on it proves the plumbing, not the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 RGB image, uint8 0/255 mask) pair."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(rng.integers(1, 3)):
        cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
        ry, rx = rng.uniform(0.12, 0.3) * height, rng.uniform(0.12, 0.3) * width
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    background = rng.uniform(40, 120, size=3) + rng.normal(0, 18, size=(height, width, 3))
    stripes = 20 * np.sin(xx / rng.uniform(3, 9))[..., None]
    foreground = rng.uniform(150, 255, size=3) + rng.normal(0, 10, size=(height, width, 3))
    image = np.where(mask[..., None], foreground, background + stripes)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def make_synthetic_duts(
    root: str | Path,
    n: int = 96,
    size: tuple[int, int] = (72, 96),
    seed: int = 0,
    name: str = "DUTS-TR",
) -> Path:
    """Write ``n`` pairs as ``root/<name>-Image/*.jpg`` + ``root/<name>-Mask/*.png``.

    Sizes vary a little around ``size`` (H, W) so the loaders see odd shapes.
    Returns ``root``.
    """
    root = Path(root)
    image_dir, mask_dir = root / f"{name}-Image", root / f"{name}-Mask"
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h = size[0] + int(rng.integers(-8, 9))
        w = size[1] + int(rng.integers(-8, 9))
        image, mask = make_pair(rng, h, w)
        Image.fromarray(image).save(image_dir / f"synthetic_{i:05d}.jpg", quality=92)
        Image.fromarray(mask).save(mask_dir / f"synthetic_{i:05d}.png")
    return root
