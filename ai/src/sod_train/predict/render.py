"""Turn a saliency map into the pictures people look at: mask, cut-out, overlay, side by side.

Every function takes the picture as ``uint8`` HxWx3 RGB and the model's map as ``uint8``
HxW (0..255, the picture's size) and returns a Pillow image of the picture's size
(side by side: the panels in a row). numpy and Pillow only: no torch, no click, so a
host that only renders never imports either.

A pixel is *salient at threshold T* when ``map / 255 >= T`` (:func:`salient`).

* **mask**: the 8-bit map (L), or with a threshold the binary mask (0 / 255).
* **cut-out**: the picture with alpha 255 where salient, 0 elsewhere (``soft``: the
  map as alpha), optionally composited over a background colour.
* **overlay**: the subject keeps its colours, the background is desaturated and dimmed
  to :data:`DIM` of its brightness, and the subject's outline is drawn in the colour of
  :data:`CONTOUR_COLOURS` farthest (in CIELAB) from the colours on both sides of it.
  Dimming does not depend on the subject's colour, so the subject stands out whatever
  its colour (a red tint vanished on red subjects).
* **side by side**: picture | map | overlay [| ground truth], :data:`GAP` pixels apart.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from sod_train.errors import UserInputError

DEFAULT_THRESHOLD = 0.5
DIM = 0.35  # overlay background brightness: luma x DIM (at most 89 of 255)
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
# Outline colours, in order of preference on a tie: bright and saturated, so each
# stands out on the dimmed (dark grey) background; of these, the one farthest from the
# subject's edge colours (CIELAB distance, close to what eyes see) is used.
CONTOUR_COLOURS = np.array(
    [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 255, 0)], dtype=np.float32
)
CONTOUR_PER_PIXELS = 100  # outline width: 1 pixel per 100 (or part) of the shorter side
GAP = 4  # pixels between side-by-side panels
GAP_COLOUR = (255, 255, 255)
MAX_COLOUR_SAMPLES = 20_000  # edge pixels looked at to choose the outline colour


def parse_color(text: str, what: str = "--bg-color") -> tuple[int, int, int, int]:
    """``"R,G,B"`` or ``"R,G,B,A"`` (integers 0..255) as (R, G, B, A); A defaults to 255.

    Anything else is a UserInputError naming ``what`` and the value, so a typo is one
    line and exit 2, never a traceback or a silently wrong colour.
    """
    parts = [part.strip() for part in text.split(",")]
    problem = f"{what} {text!r}: expected R,G,B or R,G,B,A, each an integer 0..255"
    if len(parts) not in (3, 4) or not all(part.isascii() and part.isdigit() for part in parts):
        raise UserInputError(problem)
    values = [int(part) for part in parts]
    if any(value > 255 for value in values):
        raise UserInputError(problem)
    if len(values) == 3:
        values.append(255)
    return values[0], values[1], values[2], values[3]


def threshold_cut(threshold: float) -> int:
    """The smallest 8-bit map value ``m`` with ``m / 255 >= threshold`` (256: none)."""
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise UserInputError(f"threshold {threshold} is outside 0..1")
    # The epsilon keeps e.g. 0.2 (51.000000000000004 x 255 in floats) at 51, not 52.
    return math.ceil(threshold * 255.0 - 1e-6)


def salient(saliency: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean HxW: where the map is at or above ``threshold`` (0..1)."""
    return saliency >= threshold_cut(threshold)


def mask(saliency: np.ndarray, threshold: float | None = None) -> Image.Image:
    """The map as 8-bit greyscale (L); with ``threshold`` the binary mask, 0 or 255."""
    if threshold is None:
        return Image.fromarray(np.ascontiguousarray(saliency, dtype=np.uint8))
    return Image.fromarray(salient(saliency, threshold).astype(np.uint8) * 255)


def cutout(
    rgb: np.ndarray,
    saliency: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    soft: bool = False,
    bg: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    """The subject cut out: RGBA, alpha 255 where salient at ``threshold`` and 0 elsewhere.

    ``soft`` uses the map itself as alpha (a soft edge, but the background shows through
    wherever the map is not 0). ``bg`` (R, G, B, A) puts the cut-out over that colour
    ("over" compositing): an opaque colour (A 255) gives an RGB picture, a translucent
    one an RGBA picture.
    """
    if soft:
        alpha = np.ascontiguousarray(saliency, dtype=np.uint8)
    else:
        alpha = salient(saliency, threshold).astype(np.uint8) * 255
    if bg is None:
        return Image.fromarray(np.dstack([rgb, alpha]))
    a = alpha.astype(np.float32)[..., None] / 255.0
    bg_a = bg[3] / 255.0
    bg_rgb = np.array(bg[:3], dtype=np.float32)
    out_a = a + bg_a * (1.0 - a)
    colour = rgb.astype(np.float32) * a + bg_rgb * (bg_a * (1.0 - a))
    # Un-premultiply; where nothing is left (both transparent) the colour is 0.
    colour = np.divide(colour, out_a, out=np.zeros_like(colour), where=out_a > 0)
    colour8 = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    if bg[3] == 255:
        return Image.fromarray(colour8)
    return Image.fromarray(np.dstack([colour8, np.rint(out_a[..., 0] * 255).astype(np.uint8)]))


def _shrink(region: np.ndarray, steps: int) -> np.ndarray:
    """Erode by ``steps`` pixels (4-neighbour); beyond the frame counts as the edge pixel.

    So a subject cut by the frame gets no outline along the frame: that is no edge of it.
    """
    out = region
    for _ in range(steps):
        p = np.pad(out, 1, mode="edge")
        out = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return out


def _grow(region: np.ndarray, steps: int) -> np.ndarray:
    """Dilate by ``steps`` pixels (4-neighbour), the frame handled as in :func:`_shrink`."""
    return ~_shrink(~region, steps)


def contour_width(height: int, width: int) -> int:
    """Outline width in pixels for a picture: visible on a thumbnail and on a photo."""
    return max(1, math.ceil(min(height, width) / CONTOUR_PER_PIXELS))


def contour(region: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The outline of ``region``, ``width`` pixels wide, straddling its edge.

    Returns (inner, outer): the outline's part inside the region and outside it.
    """
    inner_steps = (width + 1) // 2
    inner = region & ~_shrink(region, inner_steps)
    outer = _grow(region, width - inner_steps) & ~region
    return inner, outer


def _sample(pixels: np.ndarray) -> np.ndarray:
    step = max(1, len(pixels) // MAX_COLOUR_SAMPLES)
    return pixels[::step].astype(np.float32)


# sRGB (D65) -> CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
    dtype=np.float32,
)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """Nx3 sRGB (0..255) to CIELAB (L 0..100): distances there track seen differences.

    Plain RGB distance calls pale green and pure green far apart although a green line
    on a pale green subject is hard to see.
    """
    c = np.asarray(rgb, dtype=np.float32) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = (linear @ _RGB_TO_XYZ.T) / _WHITE
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    return np.stack(
        [116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])],
        axis=1,
    )


def contrast_colour(*sides: np.ndarray) -> tuple[int, int, int]:
    """The :data:`CONTOUR_COLOURS` entry that stands out most against every pixel set.

    Each of ``sides`` is an Nx3 array of the colours the outline runs along. A colour's
    score is its 10th-percentile CIELAB distance to a side's pixels (so it contrasts
    with most of them, not with their mean), the worst side counting; the best wins.
    """
    candidates = to_lab(CONTOUR_COLOURS)
    scores = np.full(len(CONTOUR_COLOURS), np.inf, dtype=np.float32)
    for pixels in sides:
        if not len(pixels):
            continue
        sample = to_lab(_sample(pixels))
        dist = np.linalg.norm(candidates[:, None, :] - sample[None, :, :], axis=2)
        scores = np.minimum(scores, np.percentile(dist, 10, axis=1))
    best = int(np.argmax(scores))  # first entry on a tie (all inf: no outline at all)
    r, g, b = (int(v) for v in CONTOUR_COLOURS[best])
    return r, g, b


def overlay(
    rgb: np.ndarray, saliency: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> Image.Image:
    """The picture (RGB) with the background greyed and dimmed and the subject outlined.

    Salient pixels (at ``threshold``) keep their colour; the others become their luma x
    :data:`DIM`; the outline (:func:`contour`, :func:`contour_width` wide) is drawn in
    :func:`contrast_colour` of the subject's and the dimmed background's edge pixels.
    """
    region = salient(saliency, threshold)
    dim = np.rint((rgb.astype(np.float32) @ LUMA) * DIM).astype(np.uint8)
    out = np.where(region[..., None], rgb, dim[..., None]).astype(np.uint8)
    inner, outer = contour(region, contour_width(*region.shape))
    if inner.any() or outer.any():
        colour = contrast_colour(rgb[inner], out[outer])
        out[inner | outer] = colour
    return Image.fromarray(out)


def _grey_rgb(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.uint8)[..., None], 3, axis=2)


def side_by_side(
    rgb: np.ndarray,
    saliency: np.ndarray,
    threshold: float | None = None,
    truth: np.ndarray | None = None,
) -> Image.Image:
    """picture | map | overlay [| ground truth] in one RGB row, :data:`GAP` pixels apart.

    The map panel is the soft map, or the binary mask when ``threshold`` is given; the
    overlay uses ``threshold`` (default :data:`DEFAULT_THRESHOLD`). ``truth`` is the
    ground-truth mask (``uint8`` HxW, the picture's size).
    """
    panels = [
        rgb,
        _grey_rgb(np.asarray(mask(saliency, threshold))),
        np.asarray(overlay(rgb, saliency, DEFAULT_THRESHOLD if threshold is None else threshold)),
    ]
    if truth is not None:
        if truth.shape != saliency.shape:
            raise UserInputError(
                f"ground-truth mask is {truth.shape[1]}x{truth.shape[0]}, "
                f"the picture {saliency.shape[1]}x{saliency.shape[0]}"
            )
        panels.append(_grey_rgb(truth))
    height, width = saliency.shape
    row = np.empty((height, len(panels) * (width + GAP) - GAP, 3), dtype=np.uint8)
    row[:] = GAP_COLOUR
    for i, panel in enumerate(panels):
        row[:, i * (width + GAP) : i * (width + GAP) + width] = panel
    return Image.fromarray(row)
