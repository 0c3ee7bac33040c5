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

Implementation: 8-bit frames look the result up in tables that hold exactly the float32
results of steps 2-5 (R by (Cr, Y), B by (Cb, Y), G by (Cb, Cr, Y): 16 MiB, built once);
deeper frames run steps 2-5 on per-sample float32 tables. Both give the arithmetic above.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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


@lru_cache(maxsize=16)
def _tables(
    matrix: str, value_range: str, depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample float32 tables: y', kr*v, kgu*u, kgv*v, kb*u (steps 2-3 of the doc)."""
    # 8-bit: one entry per code; deeper: every 16-bit container value (above the depth's
    # maximum clamped to it), so no sample can index outside a table.
    codes = np.minimum(np.arange(1 << (8 if depth == 8 else 16), dtype=np.int64), (1 << depth) - 1)
    if matrix == "host" and depth > 8:
        # The host reduces high bit depth to 8 bits first (round half up, may give 256).
        shift = depth - 8
        codes = (codes + (1 << (shift - 1))) >> shift
        depth = 8
    scale = 1 << (depth - 8)
    samples = codes.astype(F32)
    if value_range == "limited":
        luma = (samples - F32(16 * scale)) * (F32(1.0) / F32(219 * scale))
        chroma = (samples - F32(128 * scale)) * (F32(1.0) / F32(224 * scale))
    else:
        top = F32((1 << depth) - 1)
        luma = samples * (F32(1.0) / top)
        chroma = (samples - F32(1 << (depth - 1))) * (F32(1.0) / top)
    kr, kgu, kgv, kb = (F32(k) for k in MATRICES[matrix])
    return luma, kr * chroma, kgu * chroma, kgv * chroma, kb * chroma


def upsample(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour chroma upsampling: out[i, j] = plane[i >> sy, j >> sx]."""
    ch, cw = plane.shape
    if (ch, cw) == (height, width):
        return plane
    rows = np.arange(height) >> (1 if ch < height else 0)
    cols = np.arange(width) >> (1 if cw < width else 0)
    return plane[rows[:, None], cols[None, :]]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Steps 4-5: clamp to [0, 1], then (uint8)(x * 255.0f + 0.5f) in float32 (in place)."""
    np.clip(x, F32(0.0), F32(1.0), out=x)
    x *= F32(255.0)
    x += F32(0.5)
    return x.astype(np.uint8)


@lru_cache(maxsize=4)
def _luts8(matrix: str, value_range: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-bit lookup tables of the float32 steps' results, indexed chroma first so the
    pixels of one chroma sample read neighbouring entries: R[v << 8 | y], B[u << 8 | y],
    G[u << 16 | v << 8 | y] (16 MiB, built once per matrix and range in about 0.3 s).
    """
    luma, rv, gu, gv, bu = (t[:256] for t in _tables(matrix, value_range, 8))
    lut_r = _to_uint8(rv[:, None] + luma[None, :]).ravel()
    lut_b = _to_uint8(bu[:, None] + luma[None, :]).ravel()
    lut_g = np.empty(1 << 24, dtype=np.uint8)
    for u in range(256):  # (y' - kgu*u) - kgv*v, in that order, for every v and y
        lut_g[u << 16 : (u + 1) << 16] = _to_uint8((luma - gu[u])[None, :] - gv[:, None]).ravel()
    return lut_r, lut_b, lut_g


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
    """A chroma-size array repeated fx times along rows, shaped (ch, 1, W) to broadcast."""
    return (np.repeat(chroma, fx, axis=1) if fx > 1 else chroma)[:, None, :]


def yuv_to_rgb(
    planes: Planes, matrix: str = DEFAULT_MATRIX, value_range: str = DEFAULT_RANGE
) -> np.ndarray:
    """uint8 HxWx3 RGB of one YUV frame, by the steps of the module doc."""
    _check(matrix, value_range)
    luma_t, rv_t, gu_t, gv_t, bu_t = _tables(matrix, value_range, planes.depth)
    height, width = planes.size
    y, u, v, fx = _blocks(planes)
    if u is None or v is None:  # mono: neutral chroma
        u = v = np.full((1, 1), 1 << (planes.depth - 1), dtype=np.uint16)
    out = np.empty((height, width, 3), dtype=np.uint8)
    if planes.depth == 8:
        # Table indices built at chroma size, then spread: (chroma << 8) | y.
        lut_r, lut_b, lut_g = _luts8(matrix, value_range)
        u32, v32 = u.astype(np.uint32) << 8, v.astype(np.uint32) << 8
        out[:, :, 0] = lut_r.take(_spread(v32, fx) | y).reshape(height, width)
        out[:, :, 2] = lut_b.take(_spread(u32, fx) | y).reshape(height, width)
        out[:, :, 1] = lut_g.take(_spread((u32 << 8) | v32, fx) | y).reshape(height, width)
        return out
    luma = luma_t.take(y)
    out[:, :, 0] = _to_uint8(luma + _spread(rv_t.take(v), fx)).reshape(height, width)
    out[:, :, 2] = _to_uint8(luma + _spread(bu_t.take(u), fx)).reshape(height, width)
    luma -= _spread(gu_t.take(u), fx)
    luma -= _spread(gv_t.take(v), fx)
    out[:, :, 1] = _to_uint8(luma).reshape(height, width)
    return out


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
