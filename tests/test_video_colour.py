"""YUV -> RGB8: hand-computed values, the host's scalar formula, and (with a C compiler)
every one of the 2^24 8-bit (Y, Cb, Cr) triples against the host's C arithmetic."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from sod_train.errors import UserInputError
from sod_train.video.colour import MATRICES, Planes, host_pixel, upsample, yuv_to_rgb


def one(y: int, u: int, v: int, matrix: str = "host", value_range: str = "limited") -> tuple:
    planes = Planes(np.array([[y]], np.uint8), np.array([[u]], np.uint8), np.array([[v]], np.uint8))
    return tuple(int(c) for c in yuv_to_rgb(planes, matrix, value_range)[0, 0])


# (Y, Cb, Cr) -> RGB worked out by hand from the formulas of docs/video.md, e.g. host
# (100, 50, 200): y' = 84/219 = 0.38356, u = -78/224 = -0.34821, v = 72/224 = 0.32143;
# R = 0.38356 + 1.28033 * 0.32143 = 0.79510 -> 202.75 + 0.5 -> 203;
# G = 0.38356 + 0.21482 * 0.34821 - 0.38059 * 0.32143 = 0.33603 -> 86; B < 0 -> 0.
HAND = [
    ("host", "limited", (16, 128, 128), (0, 0, 0)),
    ("host", "limited", (235, 128, 128), (255, 255, 255)),
    ("host", "limited", (126, 128, 128), (128, 128, 128)),  # 110/219*255 = 128.08
    ("host", "limited", (100, 50, 200), (203, 86, 0)),
    # y' = -16/219 = -0.07306, v = 127/224 = 0.56696: R = 0.65284 -> 166.47 + 0.5 -> 166
    ("host", "limited", (0, 0, 255), (166, 0, 0)),
    ("bt709", "limited", (100, 50, 200), (227, 76, 0)),
    ("bt601", "limited", (100, 50, 200), (213, 70, 0)),
    ("host", "full", (100, 50, 200), (192, 89, 0)),
    ("bt709", "limited", (235, 128, 128), (255, 255, 255)),
    ("bt601", "full", (0, 128, 128), (0, 0, 0)),
]


@pytest.mark.parametrize(("matrix", "value_range", "yuv", "rgb"), HAND)
def test_hand_computed_values(matrix, value_range, yuv, rgb):
    assert one(*yuv, matrix, value_range) == rgb


def test_clamping_of_out_of_range_codes():
    # (255, 255, 0): y' = 239/219 = 1.0913, u = v magnitude 127/224, -128/224 = -0.5714
    # R = 1.0913 + 1.28033 * -0.5714 = 0.3597 -> 92; G = 1.0913 - 0.1218 + 0.2175 > 1 -> 255;
    # B = 1.0913 + 2.12798 * 0.5670 > 1 -> 255.
    assert one(255, 255, 0) == (92, 255, 255)


def test_matches_the_scalar_host_formula_on_a_grid_of_codes():
    codes = np.arange(0, 256, 15, dtype=np.uint8)
    y, u, v = (a.reshape(1, -1) for a in np.meshgrid(codes, codes, codes, indexing="ij"))
    rgb = yuv_to_rgb(Planes(y, u, v))[0]
    expected = [
        host_pixel(int(a), int(b), int(c)) for a, b, c in zip(y[0], u[0], v[0], strict=True)
    ]
    assert [tuple(map(int, p)) for p in rgb] == expected


C_HOST = r"""
#include <stdio.h>
#include <stdint.h>
static uint8_t q(float x) { if (x < 0.0f) x = 0.0f; else if (x > 1.0f) x = 1.0f;
                            return (uint8_t)(x * 255.0f + 0.5f); }
int main(void) {
  static uint8_t out[3 * 256 * 256 * 256]; size_t k = 0;
  for (int y = 0; y < 256; y++) for (int u = 0; u < 256; u++) for (int v = 0; v < 256; v++) {
    float yn = ((float)y - 16.0f) * (1.0f / 219.0f);
    float un = ((float)u - 128.0f) * (1.0f / 224.0f);
    float vn = ((float)v - 128.0f) * (1.0f / 224.0f);
    out[k++] = q(yn + 1.28033f * vn);
    out[k++] = q(yn - 0.21482f * un - 0.38059f * vn);
    out[k++] = q(yn + 2.12798f * un);
  }
  fwrite(out, 1, sizeof out, stdout); return 0; }
"""


@pytest.mark.skipif(
    shutil.which("cc") is None, reason="no C compiler: apt-get install gcc (.ci/run does)"
)
def test_every_8bit_triple_matches_c_float_arithmetic(tmp_path):
    src = tmp_path / "host.c"
    src.write_text(C_HOST)
    exe = tmp_path / "host"
    subprocess.run(["cc", "-O1", "-ffp-contract=off", str(src), "-o", str(exe)], check=True)
    c = np.frombuffer(subprocess.run([str(exe)], capture_output=True, check=True).stdout, np.uint8)
    y, u, v = np.meshgrid(*(np.arange(256, dtype=np.uint8),) * 3, indexing="ij")
    rgb = yuv_to_rgb(Planes(y.reshape(4096, 4096), u.reshape(4096, 4096), v.reshape(4096, 4096)))
    assert np.array_equal(rgb.reshape(-1), c)


def test_nearest_neighbour_chroma_420_and_422():
    y = np.full((4, 4), 126, np.uint8)
    u = np.array([[128, 255], [0, 128]], np.uint8)
    v = np.full((2, 2), 128, np.uint8)
    rgb = yuv_to_rgb(Planes(y, u, v))
    blue = rgb[:, :, 2]
    # each chroma sample covers its 2x2 block
    assert (blue[:2, :2] == 128).all() and (blue[:2, 2:] == 255).all() and (blue[2:, :2] == 0).all()
    rgb422 = yuv_to_rgb(Planes(y, np.repeat(u, 2, axis=0), np.repeat(v, 2, axis=0)))
    assert np.array_equal(rgb422, rgb)
    assert np.array_equal(upsample(u, 4, 4)[::2, ::2], u)


def test_ceil_sized_chroma_of_odd_pictures():
    y = np.full((3, 5), 126, np.uint8)
    u = np.array([[0, 128, 255], [255, 128, 0]], np.uint8)
    rgb = yuv_to_rgb(Planes(y, u, np.full((2, 3), 128, np.uint8)))
    assert rgb.shape == (3, 5, 3)
    assert (
        rgb[2, 4, 2]
        == yuv_to_rgb(Planes(y[:1, :1], u[1:, 2:], np.full((1, 1), 128, np.uint8)))[0, 0, 2]
    )


def test_10bit_host_reduces_to_8bit_like_the_host():
    rng = np.random.default_rng(3)
    y8, u8, v8 = rng.integers(0, 256, (6, 8), np.uint8), *rng.integers(0, 256, (2, 3, 4), np.uint8)
    rgb8 = yuv_to_rgb(Planes(y8, u8, v8))
    # (4s + r + 2) >> 2 = s for r in {0, 1}: the 10-bit samples reduce to the 8-bit ones
    wide = [(a.astype(np.uint16) << 2) + 1 for a in (y8, u8, v8)]
    assert np.array_equal(yuv_to_rgb(Planes(*wide, depth=10)), rgb8)
    # 1023 reduces to 256 and clamps to white; out-of-range containers clamp to 1023
    white = Planes(
        np.array([[1023, 65535]], "<u2"), np.array([[512]], "<u2"), np.array([[512]], "<u2"), 10
    )
    assert (yuv_to_rgb(white) == 255).all()


def test_10bit_bt709_keeps_precision_host_reduces_first():
    # Y = 73 (10-bit): bt709 (73 - 64) / 876 * 255 = 2.62 -> 3; the host first reduces it to
    # (73 + 2) >> 2 = 18, and (18 - 16) / 219 * 255 = 2.33 -> 2.
    planes = Planes(np.array([[73]], "<u2"), np.array([[512]], "<u2"), np.array([[512]], "<u2"), 10)
    assert tuple(map(int, yuv_to_rgb(planes, "bt709")[0, 0])) == (3, 3, 3)
    assert tuple(map(int, yuv_to_rgb(planes, "host")[0, 0])) == (2, 2, 2)


def test_mono_is_grey():
    rgb = yuv_to_rgb(Planes(np.array([[16, 126, 235]], np.uint8), None, None))
    assert rgb.tolist() == [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]


def test_unknown_matrix_or_range_is_a_user_error():
    planes = Planes(np.zeros((2, 2), np.uint8), None, None)
    with pytest.raises(UserInputError, match="matrix"):
        yuv_to_rgb(planes, "bt2020")
    with pytest.raises(UserInputError, match="range"):
        yuv_to_rgb(planes, "host", "studio")


def documented_steps(y, u, v, matrix: str, value_range: str) -> np.ndarray:
    """docs/video.md steps 1-5 written directly in float32 numpy (4:4:4 input)."""
    f = np.float32
    kr, kgu, kgv, kb = (f(k) for k in MATRICES[matrix])
    if value_range == "limited":
        yn = (y.astype(f) - f(16)) * (f(1) / f(219))
        un, vn = ((c.astype(f) - f(128)) * (f(1) / f(224)) for c in (u, v))
    else:
        yn = y.astype(f) * (f(1) / f(255))
        un, vn = ((c.astype(f) - f(128)) * (f(1) / f(255)) for c in (u, v))
    rgb = [yn + kr * vn, (yn - kgu * un) - kgv * vn, yn + kb * un]
    return np.stack(
        [(np.clip(c, f(0), f(1)) * f(255) + f(0.5)).astype(np.uint8) for c in rgb], axis=-1
    )


@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("value_range", ["limited", "full"])
def test_lookup_tables_equal_the_documented_float32_steps(matrix, value_range):
    rng = np.random.default_rng(7)
    y, u, v = rng.integers(0, 256, (3, 64, 96), dtype=np.uint8)
    got = yuv_to_rgb(Planes(y, u, v), matrix, value_range)
    assert np.array_equal(got, documented_steps(y, u, v, matrix, value_range))
    # 4:2:0: the same after nearest-neighbour upsampling of the chroma
    cu, cv = u[::2, ::2], v[::2, ::2]
    up = [np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) for c in (cu, cv)]
    got420 = yuv_to_rgb(Planes(y, cu, cv), matrix, value_range)
    assert np.array_equal(got420, documented_steps(y, *up, matrix, value_range))
