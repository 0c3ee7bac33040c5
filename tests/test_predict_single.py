"""`sod-train predict INPUT OUTPUT`: one picture, stdin/stdout, thresholds, views, refusals."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from sod_train.cli.main import main
from sod_train.predict import render

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def red_model(tmp_path_factory) -> Path:
    """saliency = sigmoid(2 x normalised red): red pixels salient, the map smooth in red."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["c"]),
            helper.make_node("Sigmoid", ["c"], ["saliency_map"]),
        ],
        "red",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [
            numpy_helper.from_array(np.array([2, 0, 0], np.float32).reshape(1, 3, 1, 1), "w"),
            numpy_helper.from_array(np.zeros(1, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("m") / "red.onnx"
    onnx.save(model, path)
    return path


def _picture(path: Path, size=(40, 30)) -> Path:
    """A red disc on a red-to-black ramp: a map with every level, and a clear subject."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = (xx * 255 // max(1, width - 1)).astype(np.uint8)
    rgb[..., 1] = 40
    disc = (yy - height / 2) ** 2 + (xx - width / 3) ** 2 <= (min(size) / 4) ** 2
    rgb[disc] = (240, 30, 30)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _run(*args, input=None):
    result = CliRunner().invoke(main, ["predict", *map(str, args)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def _one_error_line(result, *words):
    """Exit 2 and exactly one line on stderr, ``error: ...`` with every word."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout_bytes == b""
    return lines[0]


def _png(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return np.asarray(img)


def test_file_to_file_with_the_shipped_default_model(tmp_path):
    src = _picture(tmp_path / "in.png", (48, 36))

    result = _run(src, tmp_path / "out.png")

    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b""  # notes go to stderr only
    assert "wrote mask 48x36 PNG to" in result.stderr
    with Image.open(tmp_path / "out.png") as out:
        assert (out.format, out.mode, out.size) == ("PNG", "L", (48, 36))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize(("fmt", "mode"), [("mask", "L"), ("cutout", "RGBA"), ("overlay", "RGB")])
def test_stdin_to_file_and_file_to_stdout_match_file_to_file(tmp_path, red_model, fmt, mode):
    src = _picture(tmp_path / "in.png")
    args = ["--model", red_model, "--format", fmt, "--native"]

    assert _run(src, tmp_path / "f.png", *args, "--quiet").exit_code == 0
    piped_in = _run("-", tmp_path / "s.png", *args, "--quiet", input=src.read_bytes())
    piped_out = _run(src, "-", *args)

    assert piped_in.exit_code == 0 and piped_out.exit_code == 0, piped_in.output
    expected = (tmp_path / "f.png").read_bytes()
    assert (tmp_path / "s.png").read_bytes() == expected
    assert piped_out.stdout_bytes == expected  # the PNG and nothing else on stdout
    assert "wrote" in piped_out.stderr
    assert _png(expected).shape[:2] == (30, 40)
    assert Image.open(io.BytesIO(expected)).mode == mode


def test_a_real_pipe_carries_the_png_and_quiet_is_silent(tmp_path, red_model):
    src = _picture(tmp_path / "in.png")
    _run(src, tmp_path / "f.png", "--model", red_model, "--format", "cutout", "--quiet")
    code = "import sys; from sod_train.cli.main import main; sys.argv[0] = 'sod-train'; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO / "ai" / "src")}
    args = [sys.executable, "-c", code, "predict", "-", "-", "--model", str(red_model)]

    loud = subprocess.run(
        [*args, "--format", "cutout"],
        input=src.read_bytes(),
        capture_output=True,
        env=env,
        timeout=120,
    )
    quiet = subprocess.run(
        [*args, "--format", "cutout", "--quiet"],
        input=src.read_bytes(),
        capture_output=True,
        env=env,
        timeout=120,
    )

    assert loud.returncode == 0 and quiet.returncode == 0, loud.stderr.decode()
    assert loud.stdout == quiet.stdout == (tmp_path / "f.png").read_bytes()
    assert b"wrote cutout 40x30 PNG to stdout" in loud.stderr
    assert quiet.stderr == b""


def test_threshold_gives_a_binary_mask_cut_where_the_map_is(tmp_path, red_model):
    src = _picture(tmp_path / "in.png")
    assert (
        _run(src, tmp_path / "soft.png", "--model", red_model, "--native", "--quiet").exit_code == 0
    )
    soft = np.asarray(Image.open(tmp_path / "soft.png"))
    assert len(np.unique(soft)) > 20  # a real ramp of levels to cut

    for threshold in ("0.3", "0.5", "0.9"):
        out = tmp_path / f"t{threshold}.png"
        args = ["--model", red_model, "--native", "--threshold", threshold, "--quiet"]
        assert _run(src, out, *args).exit_code == 0
        binary = np.asarray(Image.open(out))
        assert set(np.unique(binary)) == {0, 255}
        np.testing.assert_array_equal(binary == 255, soft / 255.0 >= float(threshold) - 1e-9)


def test_cutout_alpha_hard_at_the_threshold_or_soft(tmp_path, red_model):
    src = _picture(tmp_path / "in.png")
    base = ["--model", red_model, "--native", "--quiet"]
    _run(src, tmp_path / "map.png", *base)
    _run(src, tmp_path / "hard.png", *base, "--format", "cutout")
    _run(src, tmp_path / "t.png", *base, "--format", "cutout", "--threshold", "0.8")
    _run(src, tmp_path / "soft.png", *base, "--format", "cutout", "--soft")
    soft_map = np.asarray(Image.open(tmp_path / "map.png"))
    rgb = np.asarray(Image.open(src))

    hard = np.asarray(Image.open(tmp_path / "hard.png"))
    at_08 = np.asarray(Image.open(tmp_path / "t.png"))
    soft = np.asarray(Image.open(tmp_path / "soft.png"))
    np.testing.assert_array_equal(hard[..., 3], np.where(soft_map >= 128, 255, 0))
    np.testing.assert_array_equal(at_08[..., 3], np.where(soft_map >= 204, 255, 0))
    np.testing.assert_array_equal(soft[..., 3], soft_map)
    for out in (hard, at_08, soft):
        np.testing.assert_array_equal(out[..., :3], rgb)
    assert (at_08[..., 3] == 255).sum() < (hard[..., 3] == 255).sum()


def test_bg_color_puts_the_subject_on_a_colour(tmp_path, red_model):
    src = _picture(tmp_path / "in.png")
    base = ["--model", red_model, "--native", "--quiet", "--format", "cutout"]
    _run(src, tmp_path / "map.png", "--model", red_model, "--native", "--quiet")
    assert _run(src, tmp_path / "o.png", *base, "--bg-color", "0,128,255").exit_code == 0
    assert _run(src, tmp_path / "a.png", *base, "--bg-color", "0,128,255,64").exit_code == 0
    salient = np.asarray(Image.open(tmp_path / "map.png")) >= 128
    rgb = np.asarray(Image.open(src))

    with Image.open(tmp_path / "o.png") as opaque, Image.open(tmp_path / "a.png") as clear:
        assert (opaque.mode, clear.mode) == ("RGB", "RGBA")
        opaque, clear = np.asarray(opaque), np.asarray(clear)
    assert salient.any() and (~salient).any()
    np.testing.assert_array_equal(opaque[salient], rgb[salient])
    assert (opaque[~salient] == (0, 128, 255)).all()
    assert (clear[~salient] == (0, 128, 255, 64)).all()
    assert (clear[salient][:, 3] == 255).all()


def test_overlay_through_the_cli_dims_the_background(tmp_path, red_model):
    src = _picture(tmp_path / "in.png")
    base = ["--model", red_model, "--native", "--quiet"]
    _run(src, tmp_path / "map.png", *base)
    assert _run(src, tmp_path / "ov.png", *base, "--format", "overlay").exit_code == 0
    salient = np.asarray(Image.open(tmp_path / "map.png")) >= 128
    out = np.asarray(Image.open(tmp_path / "ov.png")).astype(int)
    rgb = np.asarray(Image.open(src)).astype(int)

    far = ~render._grow(salient, 3)
    inner = render._shrink(salient, 3)
    assert (out[far] == out[far][:, :1]).all()  # grey
    assert out[far].max() <= 90  # dimmed
    np.testing.assert_array_equal(out[inner], rgb[inner])  # the subject as it is


@pytest.mark.parametrize("with_masks", [False, True])
def test_side_by_side_file_has_three_or_four_panels(tmp_path, red_model, with_masks):
    src = _picture(tmp_path / "pics" / "cat.jpg")
    masks = tmp_path / "gt"
    masks.mkdir()
    truth = np.zeros((30, 40), np.uint8)
    truth[5:20, 5:25] = 255
    Image.fromarray(truth).save(masks / "cat.png")
    extra = ["--masks", masks] if with_masks else []

    result = _run(
        src, tmp_path / "v.png", "--model", red_model, "--view", "side-by-side", *extra, "--quiet"
    )

    assert result.exit_code == 0, result.output
    panels = 4 if with_masks else 3
    row = np.asarray(Image.open(tmp_path / "v.png"))
    assert row.shape == (30, panels * 40 + (panels - 1) * render.GAP, 3)
    np.testing.assert_array_equal(row[:, :40], np.asarray(Image.open(src)))
    if with_masks:
        np.testing.assert_array_equal(row[:, -40:, 0], truth)


def test_side_by_side_folder_matches_masks_by_stem_and_refuses_a_missing_one(tmp_path, red_model):
    pics, masks = tmp_path / "Image", tmp_path / "Mask"
    for name in ("a", "sub/b", "c"):
        _picture(pics / f"{name}.jpg")
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (40, 30), 255).save(masks / f"{name}.png")
    (masks / "c.png").unlink()
    args = ["--model", red_model, "--view", "side-by-side", "--masks", masks, "--quiet"]

    missing = _run(pics, "--out", tmp_path / "o", *args)
    _one_error_line(missing, str(pics / "c.jpg"), "no ground-truth mask c.*", str(masks))
    assert not (tmp_path / "o").exists()  # refused before any work

    Image.new("L", (40, 30), 0).save(masks / "c.png")
    done = _run(pics, "--out", tmp_path / "o", *args)
    assert done.exit_code == 0, done.output
    written = sorted(str(p.relative_to(tmp_path / "o")) for p in (tmp_path / "o").rglob("*.png"))
    assert written == [
        "a.jpg.side-by-side.png",
        "c.jpg.side-by-side.png",
        "sub/b.jpg.side-by-side.png",
    ]
    with Image.open(tmp_path / "o" / "c.jpg.side-by-side.png") as row:
        assert row.size == (4 * 40 + 3 * render.GAP, 30)
        assert np.asarray(row)[:, -40:].max() == 0  # c's own (black) mask, not another's
    again = _run(pics, "--out", pics, *args)  # earlier side-by-sides are never inputs
    assert again.exit_code == 0 and _run(pics, "--out", pics, *args).exit_code == 0
    assert not list(pics.rglob("*.side-by-side.png.side-by-side.png"))


def test_non_image_stdin_is_one_line_exit_2(tmp_path, red_model):
    junk = _run("-", tmp_path / "o.png", "--model", red_model, input=b"this is not a picture")
    _one_error_line(junk, "<stdin>", "cannot decode image")
    empty = _run("-", tmp_path / "o.png", "--model", red_model, input=b"")
    _one_error_line(empty, "<stdin>", "empty")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("colour", ["300,0,0", "1,2", "red", "1,2,3,4,5", "-1,0,0"])
def test_bad_colour_is_one_line_exit_2(tmp_path, red_model, colour):
    src = _picture(tmp_path / "in.png")
    result = _run(
        src, tmp_path / "o.png", "--model", red_model, "--format", "cutout", "--bg-color", colour
    )
    _one_error_line(result, "--bg-color", repr(colour))
    assert not (tmp_path / "o.png").exists()


def test_output_equal_to_input_is_refused_and_the_input_kept(tmp_path, red_model):
    src = _picture(tmp_path / "in.png")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    (tmp_path / "link.png").symlink_to(src)

    for dest in (src, tmp_path / "link.png"):
        result = _run(src, dest, "--model", red_model)
        _one_error_line(result, str(dest), "refusing to overwrite the input picture")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["IN"], ["got 1 path(s) and no --out"]),
        (["IN", "IN", "O"], ["got 3 path(s)"]),
        (["IN", "o.jpg"], ["o.jpg", "must be a .png"]),
        (["IN", "O", "--bg-color", "1,2,3"], ["--bg-color applies to --format cutout"]),
        (["IN", "O", "--soft"], ["--soft applies to --format cutout"]),
        (["IN", "O", "--format", "cutout", "--soft", "--threshold", "0.5"], ["drop --threshold"]),
        (["IN", "O", "--view", "side-by-side", "--format", "overlay"], ["exclude each other"]),
        (["IN", "O", "--masks", "M"], ["applies to --view side-by-side"]),
        (["-", "O", "--view", "side-by-side", "--masks", "M"], ["--masks needs a named INPUT"]),
        (["IN", "O", "--view", "side-by-side", "--masks", "IN"], ["is not a folder"]),
        (["DIR", "O"], ["is a folder", "--out DIR"]),
        (["missing.png", "O"], ["missing.png: no such file"]),
        (["-", "a.png", "--out", "OUT"], ["- (stdin) works only"]),
        (["IN", "DIR2/x.png"], ["cannot write the PNG", "is a file, not a folder"]),
    ],
)
def test_options_that_cannot_apply_are_one_line_exit_2(tmp_path, red_model, args, words):
    src = _picture(tmp_path / "in.png")
    (tmp_path / "d").mkdir()
    (tmp_path / "M").mkdir()
    (tmp_path / "afile").write_text("x")
    subs = {
        "IN": src,
        "O": tmp_path / "o.png",
        "o.jpg": tmp_path / "o.jpg",
        "M": tmp_path / "M",
        "DIR": tmp_path / "d",
        "OUT": tmp_path / "out",
        "missing.png": tmp_path / "missing.png",
        "DIR2/x.png": tmp_path / "afile" / "x.png",
    }
    result = _run(*[subs.get(a, a) for a in args], "--model", red_model, input=b"")
    _one_error_line(result, *[str(subs.get(w, w)) for w in words])
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "out").exists()


def test_folder_mode_notes_go_to_stderr_and_quiet_silences_them(tmp_path, red_model):
    src = _picture(tmp_path / "in" / "a.png")
    loud = _run(src, "--out", tmp_path / "o", "--model", red_model)
    quiet = _run(src, "--out", tmp_path / "q", "--model", red_model, "--quiet")
    assert loud.exit_code == quiet.exit_code == 0
    assert loud.stdout == "" and "wrote 1 mask PNG(s)" in loud.stderr
    assert quiet.stdout == "" and quiet.stderr == ""


def test_a_wrong_size_or_ambiguous_ground_truth_is_one_line_exit_2(tmp_path, red_model):
    src = _picture(tmp_path / "in" / "cat.jpg")
    masks = tmp_path / "gt"
    masks.mkdir()
    Image.new("L", (10, 10), 255).save(masks / "cat.png")
    args = ["--model", red_model, "--view", "side-by-side", "--masks", masks]

    wrong = _run(src, tmp_path / "v.png", *args)
    _one_error_line(wrong, str(masks / "cat.png"), "ground-truth mask is 10x10, the picture 40x30")

    Image.new("L", (40, 30), 255).save(masks / "cat.bmp")
    twice = _run(src, tmp_path / "v.png", *args)
    _one_error_line(twice, str(src), "ambiguous", "cat.bmp and cat.png")
    assert not (tmp_path / "v.png").exists()
