"""predict's rendering (sod_train.predict.render): numpy + Pillow, no model needed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sod_train.errors import UserInputError
from sod_train.predict import render


def _disc(height: int = 60, width: int = 80, radius: int = 18) -> np.ndarray:
    """A boolean disc in the middle of a height x width frame."""
    yy, xx = np.mgrid[:height, :width]
    return (yy - height / 2) ** 2 + (xx - width / 2) ** 2 <= radius**2


def _picture(subject, background, region) -> np.ndarray:
    rgb = np.empty((*region.shape, 3), np.uint8)
    rgb[:] = background
    rgb[region] = subject
    return rgb


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ [0.299, 0.587, 0.114]


def test_rendering_imports_neither_torch_nor_click():
    code = (
        "import sys, sod_train.predict.render, sod_train.predict.predict; "
        "print('torch' in sys.modules, 'click' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("255,128,0", (255, 128, 0, 255)),
        (" 1, 2 ,3 ,4", (1, 2, 3, 4)),
        ("0,0,0,0", (0, 0, 0, 0)),
    ],
)
def test_parse_color_accepts_rgb_and_rgba(text, expected):
    assert render.parse_color(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "256,0,0",
        "-1,0,0",
        "1,2",
        "1,2,3,4,5",
        "a,b,c",
        "",
        "1.5,2,3",
        "1,,3",
        "#ff0000",
        "1,2,\u00b2",
    ],
)
def test_parse_color_refuses_anything_else_in_one_line(text):
    with pytest.raises(UserInputError, match="--bg-color") as info:
        render.parse_color(text)
    assert "\n" not in str(info.value) and "0..255" in str(info.value)


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.3, 0.5, 0.77, 1.0])
def test_threshold_is_map_over_255_at_or_above_t(threshold):
    values = np.arange(256, dtype=np.uint8)[None, :]
    binary = np.asarray(render.mask(values, threshold))
    assert set(np.unique(binary)) <= {0, 255}
    np.testing.assert_array_equal(binary[0] == 255, values[0] / 255.0 >= threshold - 1e-9)


def test_mask_without_threshold_is_the_map_itself():
    values = np.random.default_rng(0).integers(0, 256, (5, 7), np.uint8)
    out = render.mask(values)
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), values)


def test_cutout_hard_alpha_by_default_soft_on_request():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), np.uint8)
    values = np.linspace(0, 255, 24).astype(np.uint8).reshape(4, 6)

    hard = np.asarray(render.cutout(rgb, values, 0.4))
    soft = np.asarray(render.cutout(rgb, values, soft=True))

    np.testing.assert_array_equal(hard[..., 3], np.where(values / 255 >= 0.4, 255, 0))
    np.testing.assert_array_equal(soft[..., 3], values)
    np.testing.assert_array_equal(hard[..., :3], rgb)
    np.testing.assert_array_equal(soft[..., :3], rgb)


def test_cutout_over_an_opaque_colour_is_rgb_subject_or_colour():
    region = _disc(20, 30, 6)
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), np.uint8)
    values = np.where(region, 230, 10).astype(np.uint8)

    out = render.cutout(rgb, values, bg=(10, 200, 30, 255))

    assert out.mode == "RGB"
    pixels = np.asarray(out)
    np.testing.assert_array_equal(pixels[region], rgb[region])
    assert (pixels[~region] == (10, 200, 30)).all()


def test_cutout_soft_over_a_translucent_colour_composites_over():
    rgb = np.full((1, 3, 3), 200, np.uint8)
    values = np.array([[0, 51, 255]], np.uint8)  # alpha 0, 0.2, 1

    out = render.cutout(rgb, values, soft=True, bg=(0, 0, 100, 102))  # bg alpha 0.4

    assert out.mode == "RGBA"
    pixels = np.asarray(out).astype(int)
    a, bg_a = values[0] / 255.0, 0.4
    out_a = a + bg_a * (1 - a)
    np.testing.assert_allclose(pixels[0, :, 3], out_a * 255, atol=1)
    expected_blue = (200 * a + 100 * bg_a * (1 - a)) / out_a
    np.testing.assert_allclose(pixels[0, :, 2], expected_blue, atol=1)
    np.testing.assert_allclose(pixels[0, :, 0], 200 * a / out_a, atol=1)
    assert tuple(pixels[0, 0]) == (0, 0, 100, 102)  # nothing salient: the colour alone
    assert tuple(pixels[0, 2]) == (200, 200, 200, 255)  # fully salient: the picture


@pytest.mark.parametrize(
    ("subject", "background"),
    [
        ((220, 30, 30), (200, 45, 40)),  # red on red: a red tint showed nothing here
        ((230, 120, 20), (210, 60, 20)),  # orange on red
        ((30, 200, 40), (40, 170, 60)),  # green on green
    ],
    ids=["red-on-red", "orange-on-red", "green-on-green"],
)
def test_overlay_shows_the_subject_whatever_its_colour(subject, background):
    region = _disc()
    rgb = _picture(subject, background, region)
    values = np.where(region, 240, 15).astype(np.uint8)

    out = np.asarray(render.overlay(rgb, values)).astype(int)

    width = render.contour_width(*region.shape)
    inside = render._shrink(region, width + 1)  # well inside: no outline there
    outside = ~render._grow(region, width + 1)
    dimmed = np.rint(_luma(rgb) * render.DIM)[..., None]
    line = (out != np.where(region[..., None], rgb, dimmed)).any(axis=2)  # the outline
    assert line.any() and not (line & (inside | outside)).any()
    # The subject keeps its colours; the background turns grey at 35 % of its brightness.
    assert (out[inside] == subject).all()
    bg = out[outside]
    assert (bg == bg[:, :1]).all()  # grey: no colour left
    assert np.allclose(bg[:, 0], _luma(rgb)[outside] * render.DIM, atol=1)
    # So subject and background are far apart even where the picture has them alike.
    input_gap = np.abs(np.subtract(subject, background)).sum()
    output_gap = np.abs(out[inside].mean(0) - bg.mean(0)).sum()
    assert output_gap > max(150, 2 * input_gap)
    # The outline is one colour far from the subject and from the dimmed background.
    colours = {tuple(c) for c in out[line]}
    assert len(colours) == 1
    (colour,) = colours
    assert np.linalg.norm(np.subtract(colour, subject)) > 250
    assert np.linalg.norm(np.subtract(colour, bg.mean(0))) > 200
    # and it runs all round the subject: every boundary pixel of the disc is covered
    boundary = region & ~render._shrink(region, 1)
    assert (out[boundary] == colour).all()


def test_overlay_outline_colour_follows_the_subject():
    region = _disc()
    values = np.where(region, 255, 0).astype(np.uint8)
    picked = {}
    for name, subject in {"red": (230, 20, 20), "green": (20, 220, 20)}.items():
        out = np.asarray(render.overlay(_picture(subject, (128, 128, 128), region), values))
        picked[name] = tuple(out[region & ~render._shrink(region, 1)][0])
        assert np.linalg.norm(np.subtract(picked[name], subject)) > 250
    assert picked["red"] != picked["green"]


def test_overlay_edge_cases_nothing_or_everything_salient():
    rgb = np.random.default_rng(3).integers(0, 256, (9, 11, 3), np.uint8)
    none = np.asarray(render.overlay(rgb, np.zeros((9, 11), np.uint8)))
    every = np.asarray(render.overlay(rgb, np.full((9, 11), 255, np.uint8)))
    np.testing.assert_array_equal(every, rgb)  # no outline along the frame
    assert (none == none[..., :1]).all() and none.max() <= 90  # all dimmed grey
    one = np.asarray(render.overlay(rgb[:1, :1], np.full((1, 1), 255, np.uint8)))
    assert one.shape == (1, 1, 3)


def test_contour_width_grows_with_the_picture():
    assert render.contour_width(1, 1) == 1
    assert render.contour_width(256, 4000) == 3
    assert render.contour_width(4000, 6000) == 40


@pytest.mark.parametrize("with_truth", [False, True])
def test_side_by_side_layout(with_truth):
    height, width = 30, 40
    region = _disc(height, width, 9)
    rgb = _picture((250, 10, 10), (20, 20, 200), region)
    values = np.where(region, 200, 30).astype(np.uint8)
    truth = np.where(_disc(height, width, 8), 255, 0).astype(np.uint8) if with_truth else None

    row = np.asarray(render.side_by_side(rgb, values, None, truth))

    panels = 4 if with_truth else 3
    assert row.shape == (height, panels * width + (panels - 1) * render.GAP, 3)
    step = width + render.GAP
    cut = [row[:, i * step : i * step + width] for i in range(panels)]
    np.testing.assert_array_equal(cut[0], rgb)
    np.testing.assert_array_equal(cut[1], np.repeat(values[..., None], 3, axis=2))
    np.testing.assert_array_equal(cut[2], np.asarray(render.overlay(rgb, values)))
    assert (row[:, width:step] == render.GAP_COLOUR).all()
    if with_truth:
        np.testing.assert_array_equal(cut[3][..., 0], truth)


def test_side_by_side_threshold_shows_the_binary_mask_and_refuses_a_wrong_truth():
    values = np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5)
    rgb = np.zeros((5, 5, 3), np.uint8)
    row = np.asarray(render.side_by_side(rgb, values, 0.5))
    np.testing.assert_array_equal(
        row[:, 5 + render.GAP : 10 + render.GAP, 0], (values >= 128) * 255
    )
    with pytest.raises(UserInputError, match="ground-truth mask is 4x5"):
        render.side_by_side(rgb, values, None, np.zeros((5, 4), np.uint8))
