"""YUV -> 8-bit RGB exactly as the host computes it, plus the two standard matrices.

Every step, in IEEE float32 (what the host's C code does on x86-64 and arm64), for a
sample of bit depth 8 (10-bit: see below):

1. **Chroma upsampling**, nearest neighbour: the chroma sample of pixel (i, j) is
   ``U[i >> sy][j >> sx]``, with ``sx = 1`` for 4:2:0 and 4:2:2, ``sy = 1`` for 4:2:0.
2. **Normalise** (limited range): ``y' = ((float)Y - 16) * (1.0f / 219.0f)``,
   ``u = ((float)Cb - 128) * (1.0f / 224.0f)``, ``v = ((float)Cr - 128) * (1.0f / 224.0f)``.
   The divisions are multiplications by the float32 reciprocal, as in the host.
   Full range: ``y' = Y * (1.0f / 255.0f)``, ``u = (Cb - 128) * (1.0f / 255.0f)``, same for v.
3. **Matrix** (each product rounded to float32, sums left to right, no fused multiply-add):
   ``R = y' + kr * v``, ``G = (y' - kgu * u) - kgv * v``, ``B = y' + kb * u``, with
   ``host`` (kr, kgu, kgv, kb) = (1.28033, 0.21482, 0.38059, 2.12798): the analog Y'UV
   BT.709 coefficients the host applies to digital Cb/Cr; ``bt709`` = (1.5748, 0.1873,
   0.4681, 1.8556); ``bt601`` = (1.402, 0.344136, 0.714136, 1.772).
4. **Clamp** each of R, G, B to [0, 1].
5. **Round** to 8 bits: ``(uint8_t)(x * 255.0f + 0.5f)``: float32 multiply, float32 add,
   then truncation; i.e. round half up, computed in float32.

A C host matches bit for bit when it computes in ``float`` (not double) with the
constants written as float literals and contraction off (``-ffp-contract=off``; an FMA
for ``y' + kr * v`` can change a result by one step).

**10-bit** (``C420p10`` and friends, little-endian 16-bit containers; 12-bit alike): with
``host`` each sample is first reduced to 8 bits as the host's shared YUV helper does (its
saliency extractor itself takes 8-bit only), ``(min(s, 1023) + 2) >> 2`` (which can give
256; the clamp absorbs it), then steps 2-5 run unchanged. ``bt709``/``bt601`` keep
the 10 bits: offsets and scales are multiplied by 4 (``(Y - 64) * (1.0f / 876.0f)``, ...).

Implementation: :func:`level_bands` runs steps 2-5 as elementwise float32 numpy
operations (IEEE arithmetic, each operation rounded, no fusion) on bands of
``BAND_ROWS`` rows, with the chroma terms broadcast over their 2x2 (or 2x1) blocks
instead of an upsampled copy. The result is planar, so the model input
(:func:`sod_train.video.run.planes_input`) is made from it without an RGB picture;
:func:`yuv_to_rgb` interleaves it into RGB8. No lookup tables: a numpy gather costs as
much as some twenty elementwise passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sod_train.errors import UserInputError

MATRICES: dict[str, tuple[float, float, float, float]] = {
    "host": (1.28033, 0.21482, 0.38059, 2.12798),
    "bt709": (1.5748, 0.1873, 0.4681, 1.8556),
    "bt601": (1.402, 0.344136, 0.714136, 1.772),
}
RANGES = ("limited", "full")
DEFAULT_MATRIX = "host"
DEFAULT_RANGE = "limited"
F32 = np.float32
BAND_ROWS = 64  # rows per band: measured fastest at 1080p (16: +25%, whole frame: +40%)


@dataclass(frozen=True)
class Planes:
    """Planar YUV samples of one frame: Y (HxW) and Cb, Cr at the chroma size.

    ``depth`` is the bit depth (8 or 10); samples are uint8 or uint16. ``u`` and ``v``
    None means grey (mono): every chroma sample is the neutral value.
    """

    y: np.ndarray
    u: np.ndarray | None
    v: np.ndarray | None
    depth: int = 8

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the picture."""
        return int(self.y.shape[0]), int(self.y.shape[1])


def _check(matrix: str, value_range: str) -> None:
    if matrix not in MATRICES:
        raise UserInputError(f"unknown YUV matrix '{matrix}' (choose {', '.join(MATRICES)})")
    if value_range not in RANGES:
        raise UserInputError(f"unknown range '{value_range}' (choose {', '.join(RANGES)})")


def _reduce(samples: np.ndarray, matrix: str, depth: int) -> tuple[np.ndarray, int]:
    """Samples deeper than 8 bits clamped to the depth's maximum (a 16-bit container can
    hold more) and, for ``host``, reduced to 8 bits as the host's shared YUV helper does
    (round half up, may give 256); the samples and their depth from then on."""
    if depth == 8:
        return samples, 8
    samples = np.minimum(samples, (1 << depth) - 1)
    if matrix == "host":
        shift = depth - 8
        return (samples + (1 << (shift - 1))) >> shift, 8
    return samples, depth


def _normalise(
    samples: np.ndarray, luma: bool, value_range: str, depth: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Step 2 in float32: ``((float)s - offset) * (1.0f / span)`` (offset 0 for full-range luma)."""
    scale = 1 << (depth - 8)
    if value_range == "limited":
        offset, span = (16 * scale, 219 * scale) if luma else (128 * scale, 224 * scale)
    else:
        offset, span = (0 if luma else 1 << (depth - 1)), (1 << depth) - 1
    out = np.subtract(samples, F32(offset), out=out, dtype=F32)
    out *= F32(1.0) / F32(span)
    return out


def upsample(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour chroma upsampling: out[i, j] = plane[i >> sy, j >> sx]."""
    ch, cw = plane.shape
    if (ch, cw) == (height, width):
        return plane
    rows = np.arange(height) >> (1 if ch < height else 0)
    cols = np.arange(width) >> (1 if cw < width else 0)
    return plane[rows[:, None], cols[None, :]]


def _blocks(planes: Planes) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """Y as a (ch, fy, W) view, Cb and Cr at chroma size, and the horizontal factor fx.

    Nearest-neighbour upsampling without a full-size copy: a chroma row, repeated fx times
    along the row (:func:`_spread`), broadcasts onto its fy rows of luma. A chroma plane
    that does not tile the picture exactly (odd sizes from a decoder: ceil-sized chroma)
    is upsampled and cropped first.
    """
    height, width = planes.size
    y, u, v = planes.y, planes.u, planes.v
    if u is None or v is None:
        return y[:, None, :], None, None, 1
    ch, cw = u.shape
    if height % ch or width % cw or height // ch > 2 or width // cw > 2:
        u = upsample(u, height, width)[:height, :width]
        v = upsample(v, height, width)[:height, :width]
        ch, cw = height, width
    return y.reshape(ch, height // ch, width), u, v, width // cw


def _spread(chroma: np.ndarray, fx: int) -> np.ndarray:
    """Chroma rows with every sample repeated fx (1 or 2) times, shaped (rows, 1, W).

    For fx = 2 a sample s times 257 (65537 for 16-bit containers) holds s in both of its
    halves, so viewing the products as samples repeats each one (any byte order).
    """
    if fx == 2:
        wide, factor = (np.uint16, 257) if chroma.dtype == np.uint8 else (np.uint32, 65537)
        chroma = (chroma.astype(wide) * wide(factor)).view(chroma.dtype)
    return chroma[:, None, :]


def level_bands(
    planes: Planes,
    matrix: str = DEFAULT_MATRIX,
    value_range: str = DEFAULT_RANGE,
    out: np.ndarray | None = None,
    rows: int = BAND_ROWS,
) -> Iterator[np.ndarray]:
    """Steps 1-5 of the module doc, planar, a band of about ``rows`` rows at a time.

    Fills ``out`` (float32 3xHxW, allocated when None) with the 8-bit R, G, B codes as
    floats, the integers 0..255 :func:`yuv_to_rgb` stores (``(uint8_t)`` of a value in
    [0.5, 255.5] is its floor), and yields each band's (3, rows, W) view once it is done,
    so a caller can carry on with it while it is still in cache. Every step is
    elementwise float32 numpy arithmetic, exactly the IEEE operations of the doc, on a
    band small enough to stay in cache: some twenty cheap passes and no lookups (one
    numpy gather over a frame costs as much as twenty passes).
    """
    _check(matrix, value_range)
    height, width = planes.size
    if out is None:
        out = np.empty((3, height, width), dtype=F32)
    y, u, v, fx = _blocks(planes)
    kr, kgu, kgv, kb = (F32(k) for k in MATRICES[matrix])
    if u is None or v is None:  # mono: neutral chroma
        neutral, depth = _reduce(np.full((1, 1, 1), 1 << (planes.depth - 1)), matrix, planes.depth)
        mono = _normalise(neutral, False, value_range, depth)
    fy = y.shape[1]
    step = max(1, rows // fy)
    for c0 in range(0, y.shape[0], step):
        c1 = min(y.shape[0], c0 + step)
        yb, depth = _reduce(y[c0:c1], matrix, planes.depth)
        if u is None or v is None:
            cu = cv = mono
        else:
            ub, _ = _reduce(_spread(u[c0:c1], fx), matrix, planes.depth)
            vb, _ = _reduce(_spread(v[c0:c1], fx), matrix, planes.depth)
            cu = _normalise(ub, False, value_range, depth)
            cv = _normalise(vb, False, value_range, depth)
        band = out[:, c0 * fy : c1 * fy]
        red, green, blue = (plane.reshape(yb.shape) for plane in band)
        luma = _normalise(yb, True, value_range, depth, out=green)  # G's plane holds y' first
        np.add(luma, kr * cv, out=red)  # R = y' + kr*v
        np.add(luma, kb * cu, out=blue)  # B = y' + kb*u
        green -= kgu * cu  # G = (y' - kgu*u) - kgv*v, in that order
        green -= kgv * cv
        # Steps 4-5: clamp, then (uint8_t)(x * 255.0f + 0.5f), i.e. the floor here.
        np.clip(band, F32(0.0), F32(1.0), out=band)
        band *= F32(255.0)
        band += F32(0.5)
        np.floor(band, out=band)
        yield band


def rgb_levels(
    planes: Planes,
    matrix: str = DEFAULT_MATRIX,
    value_range: str = DEFAULT_RANGE,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """float32 3xHxW: the R, G, B codes of :func:`level_bands` for the whole frame."""
    if out is None:
        out = np.empty((3, *planes.size), dtype=F32)
    for _ in level_bands(planes, matrix, value_range, out):
        pass
    return out


def yuv_to_rgb(
    planes: Planes, matrix: str = DEFAULT_MATRIX, value_range: str = DEFAULT_RANGE
) -> np.ndarray:
    """uint8 HxWx3 RGB of one YUV frame, by the steps of the module doc."""
    height, width = planes.size
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    codes = np.empty((3, min(height, BAND_ROWS), width), dtype=np.uint8)
    top = 0
    for band in level_bands(planes, matrix, value_range):
        # planar float -> planar uint8 (contiguous, fast), then one strided copy per channel
        rows = band.shape[1]
        np.copyto(codes[:, :rows], band, casting="unsafe")
        for c in range(3):
            rgb[top : top + rows, :, c] = codes[c, :rows]
        top += rows
    return rgb


def host_pixel(y: int, u: int, v: int) -> tuple[int, int, int]:
    """The host's conversion of one 8-bit limited-range pixel, written out scalar by scalar.

    A readable reference for tests and for C authors: each line is one float32 operation.
    """
    rcp219, rcp224 = F32(1.0) / F32(219.0), F32(1.0) / F32(224.0)
    yn = (F32(y) - F32(16.0)) * rcp219
    un = (F32(u) - F32(128.0)) * rcp224
    vn = (F32(v) - F32(128.0)) * rcp224
    r = yn + F32(1.28033) * vn
    g = (yn - F32(0.21482) * un) - F32(0.38059) * vn
    b = yn + F32(2.12798) * un

    def round8(x: np.float32) -> int:
        x = min(max(x, F32(0.0)), F32(1.0))
        return int(F32(F32(x * F32(255.0)) + F32(0.5)))

    return round8(r), round8(g), round8(b)


def rgb_to_yuv444(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-bit limited-range BT.709 Y'CbCr 4:4:4 of uint8 RGB (for writing y4m overlays)."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    cb = (b - luma) / 1.8556
    cr = (r - luma) / 1.5748

    def q(a: np.ndarray, offset: float, scale: float) -> np.ndarray:
        return np.clip(np.rint(a * scale + offset), 0, 255).astype(np.uint8)

    return q(luma, 16, 219), q(cb, 128, 224), q(cr, 128, 224)
