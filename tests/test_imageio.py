"""imageio: every picture a user may have becomes oriented 8-bit RGB, or one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sod_train.data.imageio import load_rgb, pil_to_rgb, to_model_input
from sod_train.errors import UserInputError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _left_red_right_blue(width: int = 40, height: int = 20) -> Image.Image:
    img = Image.new("RGB", (width, height), BLUE)
    img.paste(Image.new("RGB", (width // 2, height), RED), (0, 0))
    return img


def test_exif_orientation_6_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored picture must be turned 90 degrees clockwise for display
    _left_red_right_blue().save(path, exif=exif.tobytes(), quality=95)

    rgb, size = load_rgb(path)

    assert size == (20, 40)
    assert rgb.shape == (40, 20, 3)
    # the stored left (red) half ends up on top after a clockwise turn
    assert rgb[5, 10, 0] > 200 and rgb[5, 10, 2] < 60
    assert rgb[35, 10, 2] > 200 and rgb[35, 10, 0] < 60


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")

    rgb, size = load_rgb(path)

    assert size == (3, 1)
    assert rgb.dtype == np.uint8
    assert rgb[0, :, 0].tolist() == [0, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize(
    ("img", "expected"),
    [
        (Image.new("L", (2, 2), 77), (77, 77, 77)),
        (Image.new("1", (2, 2), 1), (255, 255, 255)),
        (Image.new("LA", (2, 2), (200, 255)), (200, 200, 200)),
        (Image.new("RGBA", (2, 2), (10, 200, 30, 255)), (10, 200, 30)),
        (Image.new("RGBA", (2, 2), (10, 200, 30, 0)), (0, 0, 0)),  # over black
        (Image.new("RGBA", (2, 2), (200, 100, 50, 128)), (100, 50, 25)),
        (Image.new("CMYK", (2, 2), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.fromarray(np.full((2, 2), 1000, dtype=np.int32)), (4, 4, 4)),  # I, 16-bit range
        (Image.fromarray(np.full((2, 2), 90, dtype=np.int32)), (90, 90, 90)),  # I, 8-bit range
        (Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32)), (128, 128, 128)),  # F, 0..1
        (Image.fromarray(np.full((2, 2), 200.0, dtype=np.float32)), (200, 200, 200)),  # F, 0..255
    ],
    ids=[
        "L",
        "1",
        "LA",
        "RGBA-opaque",
        "RGBA-clear",
        "RGBA-half",
        "CMYK",
        "I16",
        "I8",
        "F01",
        "F255",
    ],
)
def test_every_mode_becomes_8bit_rgb(img, expected):
    rgb = pil_to_rgb(img)
    assert rgb.dtype == np.uint8
    assert rgb.shape == (2, 2, 3)
    assert tuple(int(v) for v in rgb[1, 1]) == expected


def test_palette_transparency_composited_over_black(tmp_path):
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.save(path, transparency=0)

    rgb, _ = load_rgb(path)

    assert rgb[0, 0].tolist() == [0, 0, 0]  # transparent red -> black
    assert rgb[0, 1].tolist() == [0, 255, 0]


@pytest.mark.parametrize("content", [b"", b"definitely not a picture", "truncated"])
def test_undecodable_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.jpg"
    if content == "truncated":
        good = tmp_path / "good.jpg"
        Image.effect_noise((64, 64), 50).convert("RGB").save(good)
        content = good.read_bytes()[:400]
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=r"broken\.jpg"):
        load_rgb(path)


def test_missing_file_and_folder_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        load_rgb(tmp_path / "nope.png")
    with pytest.raises(UserInputError, match="folder"):
        load_rgb(tmp_path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px > 2 x limit: an error
    with pytest.raises(UserInputError, match=r"bomb\.png.*too many pixels"):
        load_rgb(path)


def test_model_input_is_imagenet_normalised_nchw():
    rgb = np.zeros((6, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 255

    x = to_model_input(rgb)

    assert x.dtype == np.float32 and x.shape == (1, 3, 6, 10)
    assert x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(x[0, :, 0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225])


def test_model_input_resizes_to_square_or_height_width():
    rgb = np.full((30, 50, 3), 128, dtype=np.uint8)
    assert to_model_input(rgb, 16).shape == (1, 3, 16, 16)
    assert to_model_input(rgb, (8, 24)).shape == (1, 3, 8, 24)
    # a flat picture stays flat through the resize
    np.testing.assert_allclose(
        to_model_input(rgb, 16)[0, 0], (128 / 255 - 0.485) / 0.229, rtol=1e-5
    )
