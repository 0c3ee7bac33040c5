"""Standard salient-object-detection metrics in pure numpy, matching PySODMetrics.

Inputs follow PySODMetrics (and the MATLAB toolboxes it mirrors): ``pred`` is a
uint8 saliency map (0..255), ``gt`` a uint8 mask binarised at ``gt > 128``. Each
prediction is min-max stretched to [0, 1] first (MATLAB ``mapminmax``), unless it
is constant, in which case it is only divided by 255.

Metrics (one class each, ``step(pred, gt)`` per image, ``get_results()`` at the end;
``per_image()`` gives each image's scores as if it were a data set of one, and the
threshold-swept ones also give ``curves()``: data-set mean arrays indexed by threshold
t = 0..255, i.e. PySODMetrics' arrays reversed, since it stores them from t = 255 down):

* :class:`MAE` - mean absolute error between the [0, 1] map and the binary mask.
* :class:`Fmeasure` - F-beta (beta^2 = 0.3) swept over the 256 thresholds of the
  map quantised to uint8 (max and mean of the data-set mean curve), plus the
  adaptive F-beta at threshold ``min(2 * mean(map), 1)``.
* :class:`Smeasure` - structure measure, alpha = 0.5 (object + region terms).
* :class:`Emeasure` - enhanced-alignment measure over the same 256 thresholds
  (mean and max of the data-set mean curve).
* :class:`WeightedFmeasure` - weighted F-measure (Margolin et al., beta = 1): an
  exact Euclidean distance transform with nearest-pixel indices and a 7x7,
  sigma 5 Gaussian (zero padding), both implemented here.
* :class:`IoU` - intersection over union of ``map > 0.5`` and the mask (0 when both
  are empty).

:class:`SODMetrics` runs all of them and returns the flat dict used in the metrics
JSON. Per image, the map is reduced once to a 256-bin histogram per mask class
(and per S-measure quadrant), so every threshold sweep costs O(256), not O(pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sod_train.contract import QUALITY_METRICS

EPS = np.spacing(1.0)  # MATLAB's eps, as in the reference implementations
F_BETA2 = 0.3
S_ALPHA = 0.5
WF_BETA = 1.0
GT_THRESHOLD = 128
METRIC_KEYS = QUALITY_METRICS  # the contract's list, in its order
CURVE_KEYS = ("precision", "recall", "fmeasure", "emeasure")


# --------------------------------------------------------------------------- helpers


def distance_transform(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Euclidean distance from every pixel to the nearest True pixel of ``mask``.

    Returns ``(distance, row, col)``: the distance (float64) and the coordinates of
    that nearest True pixel. Equidistant candidates resolve to the smallest column,
    then the smallest row, which is what ``scipy.ndimage.distance_transform_edt(~mask,
    return_indices=True)`` returns. Separable: a column pass finds the nearest True
    pixel in each column, then each row takes the best of those column candidates
    (:func:`_lower_envelope`).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError("distance_transform needs a 2-D mask with at least one True pixel")
    height, width = mask.shape
    above, below = _column_neighbours(mask)  # (width, height): column-major
    columns = np.flatnonzero(mask.any(axis=0))  # only these columns hold candidates
    rows = np.arange(height, dtype=np.int32)
    vertical = np.minimum(rows - above.take(columns, axis=0), below.take(columns, axis=0) - rows)
    vertical = vertical.T.astype(np.float64)  # (height, n)
    col = columns.astype(np.int32).take(_lower_envelope(vertical * vertical, columns, width))
    flat = col * height + rows[:, None]
    up, down = above.ravel().take(flat), below.ravel().take(flat)
    rows = rows[:, None]
    near_row = up + ((rows - up) > (down - rows)) * (down - up)  # ties: the upper pixel
    dx, dy = np.arange(width, dtype=np.int32) - col, rows - near_row
    return np.sqrt(dx * dx + dy * dy), near_row, col


def _column_neighbours(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column and row, shape (width, height): the row of the nearest True pixel at or
    above, and at or below, in the same column (far outside the image where there is none).

    Built as runs over the column-major pixels: a True pixel's row is "above" from itself
    to the next True pixel (or the column's end), and "below" from just after the previous
    True pixel (or the column's start) to itself.
    """
    height, width = mask.shape
    far = np.int32(4 * height + 4)
    pos = np.flatnonzero(mask.T)  # column-major positions of the True pixels
    row = (pos % height).astype(np.int32)
    edges = np.arange(width) * height  # column starts
    at = np.searchsorted(pos, edges)
    starts = np.insert(pos, at, edges)
    above = np.repeat(np.insert(row, at, -far), np.diff(starts, append=height * width))
    ends = np.insert(pos + 1, at[1:], edges[1:])  # run ends; a column's tail runs to its end
    below = np.repeat(np.insert(row, at[1:], far), np.diff(ends, prepend=0))
    tail = height * width - (ends[-1] if ends.size else 0)
    below = np.concatenate([below, np.full(tail, far, dtype=np.int32)])
    return above.reshape(width, height), below.reshape(width, height)


def _lower_envelope(cost: np.ndarray, columns: np.ndarray, width: int) -> np.ndarray:
    """For each row r and x in [0, width): the index k minimising
    ``cost[r, k] + (x - columns[k])^2``, the smallest k on ties.

    Each candidate is the parabola ``x^2 - 2 c x + (cost + c^2)``; the winners form the
    lower convex hull of the points ``(c, cost + c^2)``. The hull is found for all rows
    at once by rounds of parallel removal: a point on or above the segment joining two
    other points of its row can never be the leftmost minimiser, so every such point is
    dropped. The first rounds test fixed neighbours on the dense arrays; then the
    survivors are kept in a linked list, runs of removed points are spliced out and only
    the points next to a removal are tested again. Finally each survivor owns the x from
    the first integer past its crossing with its left neighbour up to the next one's.
    """
    height, n = cost.shape
    focus = columns.astype(np.float64)
    offset = cost + focus * focus
    removed = np.zeros((height, n), dtype=bool)
    for a, b in ((1, 1), (1, 2), (2, 1)):  # test k against k - a and k + b
        if a + b < n:
            left, mid, right = offset[:, : n - a - b], offset[:, a : n - b], offset[:, a + b :]
            fl, fm, fr = focus[: n - a - b], focus[a : n - b], focus[a + b :]
            removed[:, a : n - b] |= (mid - left) * (fr - fl) >= (right - left) * (fm - fl)
    # Survivors, row-major: their neighbours are the adjacent entries of the same row.
    flat = np.flatnonzero(~removed.ravel())
    row = flat // n
    k = flat - row * n
    off, foc = offset.ravel().take(flat), focus.take(k)
    size = flat.size
    prev, nxt = np.arange(-1, size - 1), np.arange(1, size + 1)
    row_start = np.flatnonzero(row[1:] != row[:-1]) + 1
    prev[0], nxt[-1] = -1, -1
    prev[row_start], nxt[row_start - 1] = -1, -1
    inner = (prev[1:-1] >= 0) & (nxt[1:-1] >= 0)
    cp, xp = off[:-2], foc[:-2]
    above_segment = (off[1:-1] - cp) * (foc[2:] - xp) >= (off[2:] - cp) * (foc[1:-1] - xp)
    gone = np.flatnonzero(inner & above_segment) + 1
    dead = np.zeros(size, dtype=bool)
    while gone.size:
        dead[gone] = True
        left = prev.take(gone[~dead.take(prev.take(gone))])  # run starts' left neighbours
        right = nxt.take(gone[~dead.take(nxt.take(gone))])  # run ends' right neighbours
        nxt[left], prev[right] = right, left
        test = np.stack([left, right], axis=1).reshape(-1)  # sorted, maybe repeated
        test = test[np.append(True, test[1:] != test[:-1])]
        p, q = prev.take(test), nxt.take(test)
        keep = (p >= 0) & (q >= 0)
        test, p, q = test[keep], p[keep], q[keep]
        cp, xp = off.take(p), foc.take(p)
        on_or_above = (off.take(test) - cp) * (foc.take(q) - xp) >= (off.take(q) - cp) * (
            foc.take(test) - xp
        )
        gone = test[on_or_above]
    alive = np.flatnonzero(~dead)
    p = prev.take(alive)
    first = p < 0
    p[first] = alive[first]  # a row's first survivor wins from x = 0
    with np.errstate(invalid="ignore"):  # 0/0 for the first survivors, replaced below
        start2 = (off.take(alive) - off.take(p)) / (foc.take(alive) - foc.take(p))
    first_x = np.floor(start2 * 0.5)
    first_x[first] = -1
    np.clip(first_x + 1, 0, width, out=first_x)  # first integer x strictly after the start
    # Survivors are in row order with non-decreasing first x: each owns the pixels up to
    # the next one's first x (a later survivor with the same first x takes them all).
    starts = row.take(alive) * width + first_x.astype(np.intp)
    owner = np.repeat(k.take(alive).astype(np.int32), np.diff(starts, append=height * width))
    return owner.reshape(height, width)


def gaussian_kernel_1d(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', [size size], sigma)`` (normalised).

    The 2-D kernel is ``np.outer(k, k)``; MATLAB's cut of values below eps * max
    never applies for the 7x7, sigma 5 kernel used here.
    """
    half = (size - 1) / 2
    x = np.arange(-half, half + 1)
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def convolve_separable(image: np.ndarray, k_rows: np.ndarray, k_cols: np.ndarray) -> np.ndarray:
    """2-D convolution with ``np.outer(k_rows, k_cols)``, zero padding, output the same size.

    Equals ``scipy.ndimage.convolve(image, np.outer(k_rows, k_cols), mode="constant",
    cval=0)`` for odd kernel lengths.
    """
    out = _convolve_axis(np.asarray(image, dtype=np.float64), np.asarray(k_rows), axis=0)
    return _convolve_axis(out, np.asarray(k_cols), axis=1)


def _convolve_axis(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    size = kernel.size
    if size % 2 != 1:
        raise ValueError("kernel length must be odd")
    half = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(image, pad)
    length = image.shape[axis]
    out = np.zeros_like(image)
    for i, weight in enumerate(kernel[::-1]):  # convolution flips the kernel
        window = [slice(None), slice(None)]
        window[axis] = slice(i, i + length)
        out += weight * padded[tuple(window)]
    return out


def _safe_divide(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den with 0 wherever den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _f_beta(tp: np.ndarray, fp: np.ndarray, fg: int, beta2: float) -> np.ndarray:
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, fg)
    return _safe_divide((1 + beta2) * precision * recall, beta2 * precision + recall)


# ------------------------------------------------------------------ per-image data


@dataclass(frozen=True)
class Pair:
    """One (prediction, ground truth) pair reduced to what the metrics need.

    ``lut[v]`` is the [0, 1] value of raw prediction level v after the min-max
    stretch (bit-identical to stretching the image), so histograms over raw levels
    stand in for the float map. ``hist[q, g, v]``: pixels in S-measure quadrant q
    (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) with mask g and level v.
    """

    pred: np.ndarray
    gt: np.ndarray
    lut: np.ndarray
    hist: np.ndarray
    split: tuple[int, int]

    @property
    def size(self) -> int:
        return self.gt.size

    @property
    def fg(self) -> int:
        return int(self.hist[:, 1].sum())

    @cached_property
    def levels(self) -> np.ndarray:
        """(2, 256): pixel counts per raw level for background (0) and foreground (1)."""
        return self.hist.sum(axis=0)

    @cached_property
    def norm(self) -> np.ndarray:
        """The stretched float64 map, materialised on first use."""
        return self.lut.take(self.pred)

    @cached_property
    def quantised_levels(self) -> np.ndarray:
        """(2, 256) counts per level of ``uint8(norm * 255)``, the threshold sweep's input."""
        q = (self.lut * 255).astype(np.uint8)
        return np.stack([np.bincount(q, weights=c, minlength=256) for c in self.levels])

    def counts_at(self, selected: np.ndarray) -> tuple[int, int]:
        """(TP, FP): foreground and background pixels whose level is ``selected``."""
        return int(self.levels[1][selected].sum()), int(self.levels[0][selected].sum())

    def sweep(self) -> tuple[np.ndarray, np.ndarray]:
        """TP and FP for ``quantised >= t``, t = 0..255."""
        tp = np.cumsum(self.quantised_levels[1][::-1])[::-1]
        fp = np.cumsum(self.quantised_levels[0][::-1])[::-1]
        return tp, fp


def prepare(pred: np.ndarray, gt: np.ndarray) -> Pair:
    """Validate a uint8 (pred, gt) pair and reduce it to a :class:`Pair`."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.dtype != np.uint8 or gt.dtype != np.uint8:
        raise TypeError(f"pred and gt must be uint8, got {pred.dtype} and {gt.dtype}")
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be the same 2-D shape")
    if pred.size == 0:
        raise ValueError("empty image")
    mask = gt > GT_THRESHOLD
    lut = np.arange(256) / 255
    lo, hi = lut[pred.min()], lut[pred.max()]
    if hi != lo:
        lut = (lut - lo) / (hi - lo)
    split = _centroid_split(mask)
    code = pred.astype(np.intp) + mask * 256
    code[split[0] :, :] += 1024
    code[:, split[1] :] += 512
    hist = np.bincount(code.ravel(), minlength=1024 * 2).reshape(4, 2, 256)
    return Pair(pred, mask, lut, hist, split)


def _centroid_split(mask: np.ndarray) -> tuple[int, int]:
    """S-measure split point: the rounded foreground centroid plus one (MATLAB 1-based)."""
    height, width = mask.shape
    count = int(mask.sum())
    if count == 0:
        cy, cx = np.round(height / 2), np.round(width / 2)
    else:
        cy = np.round(np.dot(mask.sum(axis=1), np.arange(height)) / count)
        cx = np.round(np.dot(mask.sum(axis=0), np.arange(width)) / count)
    return int(cy) + 1, int(cx) + 1


# --------------------------------------------------------------------------- metrics


class _Metric:
    """Base: ``step`` validates a raw pair; ``update`` takes a prepared :class:`Pair`."""

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: uint8 prediction (0..255) and uint8 mask (foreground > 128)."""
        self.update(prepare(pred, gt))

    def update(self, pair: Pair) -> None:
        raise NotImplementedError

    def get_results(self) -> dict[str, float]:
        raise NotImplementedError

    def per_image(self) -> list[dict[str, float]]:
        """Per image, in the order added: the same keys as :meth:`get_results`."""
        raise NotImplementedError

    def curves(self) -> dict[str, np.ndarray]:
        """Data-set mean curves over thresholds 0..255 (none for scalar metrics)."""
        return {}


class _Scalar(_Metric):
    """A metric that is the mean over images of one value per image, named ``key``."""

    key = ""

    def __init__(self) -> None:
        self.values: list[float] = []

    def get_results(self) -> dict[str, float]:
        return {self.key: _mean(self.values)}

    def per_image(self) -> list[dict[str, float]]:
        return [{self.key: float(value)} for value in self.values]


def _mean(values: list[float]) -> float:
    if not values:
        raise ValueError("no images were added")
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def _mean_curve(curves: list[np.ndarray]) -> np.ndarray:
    if not curves:
        raise ValueError("no images were added")
    return np.mean(np.asarray(curves, dtype=np.float64), axis=0)


class MAE(_Scalar):
    """Mean absolute error between the stretched map and the binary mask."""

    key = "MAE"

    def update(self, pair: Pair) -> None:
        bg, fg = pair.levels
        self.values.append(float((bg @ pair.lut + fg @ (1 - pair.lut)) / pair.size))


class Fmeasure(_Metric):
    """F-beta over 256 thresholds (curve averaged over images) and adaptive F-beta."""

    def __init__(self, beta2: float = F_BETA2) -> None:
        self.beta2 = beta2
        self.f_curves: list[np.ndarray] = []
        self.precisions: list[np.ndarray] = []
        self.recalls: list[np.ndarray] = []
        self.adaptive: list[float] = []

    def update(self, pair: Pair) -> None:
        tp, fp = pair.sweep()
        self.precisions.append(_safe_divide(tp, tp + fp))
        self.recalls.append(_safe_divide(tp, pair.fg))
        self.f_curves.append(_f_beta(tp, fp, pair.fg, self.beta2))
        threshold = min(2 * float(np.mean(pair.norm)), 1.0)
        tp1, fp1 = pair.counts_at(pair.lut >= threshold)
        self.adaptive.append(float(_f_beta(tp1, fp1, pair.fg, self.beta2)))

    def get_results(self) -> dict[str, float]:
        curve = _mean_curve(self.f_curves)
        return {
            "maxF": float(curve.max()),
            "meanF": float(curve.mean()),
            "adpF": _mean(self.adaptive),
        }

    def per_image(self) -> list[dict[str, float]]:
        return [
            {"maxF": float(curve.max()), "meanF": float(curve.mean()), "adpF": adaptive}
            for curve, adaptive in zip(self.f_curves, self.adaptive, strict=True)
        ]

    def curves(self) -> dict[str, np.ndarray]:
        """``precision`` and ``recall`` (the PR curve) and ``fmeasure``, each averaged
        over images per threshold, as PySODMetrics does (so F is not computed from the
        mean P and R)."""
        return {
            "precision": _mean_curve(self.precisions),
            "recall": _mean_curve(self.recalls),
            "fmeasure": _mean_curve(self.f_curves),
        }


class Emeasure(_Metric):
    """Enhanced-alignment measure over 256 thresholds (curve averaged over images)."""

    def __init__(self) -> None:
        self.e_curves: list[np.ndarray] = []

    def update(self, pair: Pair) -> None:
        tp, fp = pair.sweep()
        size, fg = pair.size, pair.fg
        positive = tp + fp
        if fg == 0:
            enhanced = (size - positive).astype(np.float64)
        elif fg == size:
            enhanced = positive.astype(np.float64)
        else:
            fn = fg - tp
            tn = size - positive - fn
            pred_fg, pred_bg = 1 - positive / size, -positive / size
            gt_fg, gt_bg = 1 - fg / size, -fg / size
            enhanced = np.zeros(256)
            for count, a, b in (
                (tp, pred_fg, gt_fg),
                (fp, pred_fg, gt_bg),
                (fn, pred_bg, gt_fg),
                (tn, pred_bg, gt_bg),
            ):
                align = 2 * a * b / (a * a + b * b + EPS)
                enhanced += (align + 1) ** 2 / 4 * count
        self.e_curves.append(enhanced / (size - 1 + EPS))

    def get_results(self) -> dict[str, float]:
        curve = _mean_curve(self.e_curves)
        return {"meanEm": float(curve.mean()), "maxEm": float(curve.max())}

    def per_image(self) -> list[dict[str, float]]:
        return [{"meanEm": float(c.mean()), "maxEm": float(c.max())} for c in self.e_curves]

    def curves(self) -> dict[str, np.ndarray]:
        return {"emeasure": _mean_curve(self.e_curves)}


class IoU(_Scalar):
    """Intersection over union of ``map > 0.5`` and the mask; 0 when both are empty."""

    key = "IoU"

    def update(self, pair: Pair) -> None:
        tp, fp = pair.counts_at(pair.lut > 0.5)
        self.values.append(float(_safe_divide(tp, pair.fg + fp)))


class Smeasure(_Scalar):
    """Structure measure: alpha * object score + (1 - alpha) * region score."""

    key = "Sm"

    def __init__(self, alpha: float = S_ALPHA) -> None:
        super().__init__()
        self.alpha = alpha

    def update(self, pair: Pair) -> None:
        y = pair.fg / pair.size
        bg, fg = pair.levels
        if pair.fg == 0:
            score = 1 - float(bg @ pair.lut) / pair.size
        elif pair.fg == pair.size:
            score = float(fg @ pair.lut) / pair.size
        else:
            obj = y * _object_score(pair.lut, fg) + (1 - y) * _object_score(1 - pair.lut, bg)
            score = max(0.0, self.alpha * obj + (1 - self.alpha) * _region_score(pair))
        self.values.append(score)


def _object_score(values: np.ndarray, counts: np.ndarray) -> float:
    """2 * mean / (mean^2 + 1 + std + eps) of the levels ``values`` weighted by ``counts``."""
    n = counts.sum()
    mean = float(counts @ values) / n
    std = np.sqrt(float(counts @ (values - mean) ** 2) / (n - 1)) if n > 1 else 0.0
    return 2 * mean / (mean * mean + 1 + std + EPS)


def _region_score(pair: Pair) -> float:
    """Area-weighted SSIM of the four quadrants around the foreground centroid.

    An empty quadrant (centroid on the last row or column) contributes 0; the
    reference implementations produce NaN there.
    """
    height, width = pair.gt.shape
    cy, cx = pair.split
    blocks = (
        (slice(0, cy), slice(0, cx)),
        (slice(0, cy), slice(cx, width)),
        (slice(cy, height), slice(0, cx)),
        (slice(cy, height), slice(cx, width)),
    )
    area = height * width
    weights = [cx * cy / area, cy * (width - cx) / area, (height - cy) * cx / area]
    weights.append(1 - sum(weights))
    total = 0.0
    for q, (block, weight) in enumerate(zip(blocks, weights, strict=True)):
        bg, fg = pair.hist[q]
        if bg.sum() + fg.sum():
            total += weight * _ssim(pair, block, bg, fg)
    return total


def _ssim(pair: Pair, block: tuple[slice, slice], bg: np.ndarray, fg: np.ndarray) -> float:
    """The S-measure's SSIM of one quadrant, from its level histograms."""
    lut = pair.lut
    n_fg, n_bg = fg.sum(), bg.sum()
    n = n_fg + n_bg
    counts = fg + bg
    x = float(counts @ lut) / n
    y = n_fg / n
    den = n - 1 + EPS
    if n_fg == 0 or n_bg == 0:
        # Constant mask: the score is 1 if the map's variance is exactly zero, else 0.
        # That zero depends on how the float mean rounds, so take it the same way.
        levels = np.flatnonzero(counts)
        if levels.size == 1:
            return 1.0 if np.mean(pair.norm[block]) == lut[levels[0]] else 0.0
        return 0.0
    dev = lut - x
    sigma_x = float(counts @ dev**2) / den
    sigma_y = (n_fg * (1 - y) ** 2 + n_bg * y * y) / den
    sigma_xy = ((1 - y) * float(fg @ dev) - y * float(bg @ dev)) / den
    alpha = 4 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x + sigma_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


class WeightedFmeasure(_Scalar):
    """Weighted F-measure (Margolin et al. 2014): errors spread by a Gaussian near the
    mask and weighted up with the distance from it; 0 for an empty mask."""

    key = "wF"

    def __init__(self, beta: float = WF_BETA) -> None:
        super().__init__()
        self.beta = beta
        self._kernel = gaussian_kernel_1d(7, 5.0)

    def update(self, pair: Pair) -> None:
        self.values.append(0.0 if pair.fg == 0 else self._score(pair.norm, pair.gt))

    def _score(self, norm: np.ndarray, gt: np.ndarray) -> float:
        error = np.abs(norm - gt)
        dist, near_row, near_col = distance_transform(gt)
        # The blur is only read at foreground pixels: work on their bounding box plus
        # the kernel radius (outside the image the padding is zero, as in the reference).
        radius = self._kernel.size // 2
        rows, cols = np.flatnonzero(gt.any(axis=1)), np.flatnonzero(gt.any(axis=0))
        box = (
            slice(max(rows[0] - radius, 0), rows[-1] + radius + 1),
            slice(max(cols[0] - radius, 0), cols[-1] + radius + 1),
        )
        # Background pixels take the error of their nearest foreground pixel, then blur.
        spread = error.take(near_row[box] * gt.shape[1] + near_col[box])
        blurred = convolve_separable(spread, self._kernel, self._kernel)
        fg = gt[box]
        fg_error_sum = float(np.sum(np.minimum(blurred, error[box]) * fg))
        fg_count = int(np.count_nonzero(fg))
        bg_weight = 2 - np.exp(np.log(0.5) / 5 * dist)  # distance is 0 on the foreground
        fp_w = float(np.sum(error * ~gt * bg_weight))
        tp_w = fg_count - fg_error_sum
        recall = 1 - fg_error_sum / fg_count
        precision = tp_w / (tp_w + fp_w + EPS)
        return (1 + self.beta) * recall * precision / (recall + self.beta * precision + EPS)


class SODMetrics:
    """All metrics of the benchmark table; ``get_results`` gives :data:`METRIC_KEYS`."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = [
            Fmeasure(),
            WeightedFmeasure(),
            Smeasure(),
            Emeasure(),
            MAE(),
            IoU(),
        ]
        self.n = 0

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: uint8 prediction (0..255) and uint8 mask (foreground > 128)."""
        pair = prepare(pred, gt)
        for metric in self.metrics:
            metric.update(pair)
        self.n += 1

    def get_results(self) -> dict[str, float]:
        """Data-set means, keyed and ordered as :data:`METRIC_KEYS`."""
        merged: dict[str, float] = {}
        for metric in self.metrics:
            merged.update(metric.get_results())
        return {key: merged[key] for key in METRIC_KEYS}

    def per_image(self) -> list[dict[str, float]]:
        """Every image's nine scores, in the order added, keyed as :data:`METRIC_KEYS`.

        Each equals what a data set of that one image scores (so ``maxF`` is the max of
        the image's own F curve, not its share of the data-set maximum).
        """
        rows: list[dict[str, float]] = [{} for _ in range(self.n)]
        for metric in self.metrics:
            for row, scores in zip(rows, metric.per_image(), strict=True):
                row.update(scores)
        return [{key: row[key] for key in METRIC_KEYS} for row in rows]

    def curves(self) -> dict[str, np.ndarray]:
        """The data-set mean curves of :data:`CURVE_KEYS`, indexed by threshold 0..255."""
        merged: dict[str, np.ndarray] = {}
        for metric in self.metrics:
            merged.update(metric.curves())
        return {key: merged[key] for key in CURVE_KEYS}
