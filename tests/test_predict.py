"""`sod-train predict`: odd pictures in, one correctly sized PNG out each, inputs never harmed."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, features

from sod_train.cli.main import main
from sod_train.predict import predict as predict_mod
from sod_train.release import registry


def _save_model(path, nodes, inits):
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Conv 3->1 k3 pad1 + Sigmoid: runs at any size, output size == input size."""
    weight = np.random.default_rng(0).standard_normal((1, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["saliency_map"]),
    ]
    return _save_model(tmp_path_factory.mktemp("m") / "tiny.onnx", nodes, {"w": weight})


@pytest.fixture(scope="module")
def mult8_model(tmp_path_factory):
    """Like the anchor v1: fails unless H and W are multiples of 8 (pool 8, un-pool 8, add)."""
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["y"]),
        helper.make_node("MaxPool", ["y"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("ConvTranspose", ["p", "u"], ["up"], strides=[8, 8]),
        helper.make_node("Add", ["y", "up"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["saliency_map"]),
    ]
    inits = {
        "w": np.full((1, 3, 1, 1), 0.1, np.float32),
        "u": np.full((1, 1, 8, 8), 0.1, np.float32),
    }
    return _save_model(tmp_path_factory.mktemp("m") / "mult8.onnx", nodes, inits)


def _run(*args):
    result = CliRunner().invoke(main, ["predict", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _odd_pictures(folder):
    """One picture of every awkward kind; returns {file name: expected output (w, h)}."""
    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (200, 30, 30)).save(folder / "rotated.jpg", exif=exif.tobytes())
    Image.new("L", (33, 17), 90).save(folder / "grey.png")
    Image.new("RGBA", (21, 13), (0, 200, 0, 128)).save(folder / "alpha.png")
    palette = Image.new("P", (15, 9), 1)
    palette.putpalette([0, 0, 0, 250, 250, 0] + [0] * 762)
    palette.save(folder / "palette.png", transparency=0)
    Image.fromarray(np.full((11, 7), 40000, np.uint16)).save(folder / "deep16.png")
    Image.new("RGB", (1, 1), (1, 2, 3)).save(folder / "one.png")
    Image.new("RGB", (30, 20), (9, 9, 200)).save(folder / "pic.bmp")
    expected = {
        "rotated.jpg": (20, 40),
        "grey.png": (33, 17),
        "alpha.png": (21, 13),
        "palette.png": (15, 9),
        "deep16.png": (7, 11),
        "one.png": (1, 1),
        "pic.bmp": (30, 20),
    }
    if features.check("webp"):
        Image.new("RGB", (26, 14), (5, 100, 5)).save(folder / "pic.webp")
        expected["pic.webp"] = (26, 14)
    return expected


@pytest.mark.parametrize(("fmt", "mode"), [("mask", "L"), ("cutout", "RGBA"), ("overlay", "RGB")])
def test_odd_pictures_each_get_a_png_of_their_size(tmp_path, tiny_model, fmt, mode):
    expected = _odd_pictures(tmp_path / "in")

    result = _run(
        "--model",
        tiny_model,
        tmp_path / "in",
        "--out",
        tmp_path / "out",
        "--format",
        fmt,
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{name}.{fmt}.png" for name in expected)
    for name, size in expected.items():
        with Image.open(tmp_path / "out" / f"{name}.{fmt}.png") as out:
            assert out.format == "PNG"
            assert (out.mode, out.size) == (mode, size), name


def test_cutout_alpha_and_overlay_follow_the_map(tmp_path, tiny_model):
    picture = tmp_path / "in" / "p.png"
    picture.parent.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 200, (24, 32, 3), np.uint8)).save(picture)
    runs = {"mask": [], "cutout": [], "overlay": [], "soft": ["--format", "cutout", "--soft"]}
    for name, extra in runs.items():
        out = tmp_path / name
        args = extra or ["--format", name]
        assert _run("--model", tiny_model, picture, "--out", out, *args, "--quiet").exit_code == 0
    mask = np.asarray(Image.open(tmp_path / "mask" / "p.png.mask.png"))
    cutout = np.asarray(Image.open(tmp_path / "cutout" / "p.png.cutout.png"))
    soft = np.asarray(Image.open(tmp_path / "soft" / "p.png.cutout.png"))
    overlay = np.asarray(Image.open(tmp_path / "overlay" / "p.png.overlay.png")).astype(int)
    rgb = np.asarray(Image.open(picture)).astype(int)
    assert mask.std() > 0  # a real map, not a constant
    assert (mask > 128).any() and (mask < 128).any()
    salient = mask >= 128  # the default threshold 0.5
    np.testing.assert_array_equal(soft[..., 3], mask)  # --soft: the map is the alpha
    np.testing.assert_array_equal(cutout[..., 3], np.where(salient, 255, 0))  # hard by default
    np.testing.assert_array_equal(cutout[..., :3], rgb)
    np.testing.assert_array_equal(soft[..., :3], rgb)
    # Overlay: the subject keeps its colours, the background is grey at 35 % brightness;
    # the outline (one colour, on the edge pixels only) covers the rest.
    grey = np.rint((rgb @ [0.299, 0.587, 0.114]) * 0.35)
    expected = np.where(salient[..., None], rgb, grey[..., None])
    differs = (np.abs(overlay - expected) > 1).any(axis=2)
    edge = salient != np.pad(salient, 1, mode="edge")[1:-1, 2:]  # pixel beside a change
    edge |= salient != np.pad(salient, 1, mode="edge")[2:, 1:-1]
    assert differs.any()  # there is an outline
    assert len({tuple(c) for c in overlay[differs]}) == 1
    near = edge | np.roll(edge, 1, 0) | np.roll(edge, 1, 1)  # the outline straddles edges
    assert not (differs & ~near).any()


def test_large_picture_runs_and_keeps_its_size(tmp_path, tiny_model):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 2000), (120, 60, 30)).save(big)

    result = _run("--model", tiny_model, big, "--out", tmp_path / "o", "--quiet")

    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "o" / "big.jpg.mask.png") as out:
        assert out.size == (3000, 2000)


def test_corrupt_file_is_reported_skipped_and_exit_1(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.png")
    (src / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.new("RGB", (9, 9)).save(src / "c.png")

    result = _run("--model", tiny_model, src, "--out", tmp_path / "o")

    assert result.exit_code == 1
    assert "b.jpg" in result.stderr
    assert "1 of 3" in result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "a.png.mask.png",
        "c.png.mask.png",
    ]
    assert not list((tmp_path / "o").glob(".*"))  # no temp files left behind


def test_folders_recurse_keep_structure_and_filter_extensions(tmp_path, tiny_model):
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.jpg")
    Image.new("RGB", (8, 8)).save(src / "a.png")  # same stem: must not collide
    Image.new("RGB", (8, 8)).save(src / "sub" / "deeper" / "UPPER.JPG", format="JPEG")
    Image.new("RGB", (8, 8)).save(src / ".hidden" / "x.png")
    Image.new("RGB", (8, 8)).save(src / "._a.png")
    (src / "notes.txt").write_text("not a picture")

    result = _run("--model", tiny_model, src, "--out", tmp_path / "o", "--quiet")

    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path / "o")) for p in (tmp_path / "o").rglob("*.png"))
    assert written == ["a.jpg.mask.png", "a.png.mask.png", "sub/deeper/UPPER.JPG.mask.png"]


def test_out_equal_to_input_folder_never_touches_inputs(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(src / "a.png")
    Image.new("RGB", (8, 8), (4, 5, 6)).save(src / "b.jpg")
    before = {p.name: _digest(p) for p in src.iterdir()}

    for _ in range(2):  # the second run must not take the first run's outputs as inputs
        assert _run("--model", tiny_model, src, "--out", src, "--quiet").exit_code == 0

    assert {p.name: _digest(p) for p in src.iterdir() if p.name in before} == before
    assert sorted(p.name for p in src.iterdir()) == [
        "a.png",
        "a.png.mask.png",
        "b.jpg",
        "b.jpg.mask.png",
    ]


def test_output_that_would_replace_an_input_is_refused(tmp_path, tiny_model):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png.mask.png")  # a user's file, given as input
    before = _digest(tmp_path / "a.png.mask.png")

    result = _run(
        "--model", tiny_model, tmp_path / "a.png", tmp_path / "a.png.mask.png", "--out", tmp_path
    )

    assert result.exit_code == 2
    assert "overwrite an input" in result.stderr
    assert _digest(tmp_path / "a.png.mask.png") == before


def test_two_inputs_mapping_to_one_output_are_refused(tmp_path, tiny_model):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / sub / "a.png")

    result = _run(
        "--model",
        tiny_model,
        tmp_path / "x" / "a.png",
        tmp_path / "y" / "a.png",
        "--out",
        tmp_path / "o",
    )

    assert result.exit_code == 2
    assert "both be written" in result.stderr
    assert not (tmp_path / "o").exists()


def test_native_runs_at_picture_size(tmp_path, mult8_model):
    Image.new("RGB", (16, 16)).save(tmp_path / "ok.png")
    Image.new("RGB", (12, 12)).save(tmp_path / "odd.png")

    resized = _run(
        "--model",
        mult8_model,
        tmp_path / "ok.png",
        tmp_path / "odd.png",
        "--out",
        tmp_path / "r",
        "--size",
        "16",
        "--quiet",
    )
    native = _run(
        "--model",
        mult8_model,
        tmp_path / "ok.png",
        tmp_path / "odd.png",
        "--out",
        tmp_path / "n",
        "--native",
        "--quiet",
    )

    assert resized.exit_code == 0  # both run at 16x16
    assert native.exit_code == 1  # 12x12 reaches the model as 12x12, which it cannot take
    assert "odd.png" in native.stderr and "12x12" in native.stderr
    assert (tmp_path / "n" / "ok.png.mask.png").is_file()
    assert Image.open(tmp_path / "r" / "odd.png.mask.png").size == (12, 12)


def test_native_refuses_huge_pictures(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(predict_mod, "MAX_NATIVE_PIXELS", 50)
    Image.new("RGB", (10, 10)).save(tmp_path / "big.png")

    result = _run("--model", tiny_model, tmp_path / "big.png", "--out", tmp_path / "o", "--native")

    assert result.exit_code == 1
    assert "big.png" in result.stderr and "--native" in result.stderr


def test_size_and_native_together_are_a_usage_error(tmp_path, tiny_model):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    result = _run(
        "--model",
        tiny_model,
        tmp_path / "a.png",
        "--out",
        tmp_path / "o",
        "--size",
        "64",
        "--native",
    )
    assert result.exit_code == 2


def test_no_default_model_is_a_clear_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_PATH", tmp_path / "model" / "tiny" / "registry.json")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")

    result = _run(tmp_path / "a.png", "--out", tmp_path / "o")

    assert result.exit_code == 2
    assert "no default model" in result.stderr and "--model" in result.stderr
    assert "Traceback" not in result.output


def test_default_model_comes_from_the_registry(tmp_path, tiny_model, monkeypatch):
    tiny_dir = tmp_path / "model" / "tiny"
    tiny_dir.mkdir(parents=True)
    (tiny_dir / "m.onnx").write_bytes(tiny_model.read_bytes())
    entry = {  # a schema-valid entry: the registry is validated before it is used
        "id": "m",
        "onnx": "model/tiny/m.onnx",
        "sha256": "0" * 64,
        "bytes": 1,
        "opset": 17,
        "params": 1,
        "license": "test",
        "metrics": "model/tiny/m.metrics.json",
        "card": "docs/ai/models/m.md",
        "smoke": False,
    }
    (tiny_dir / "registry.json").write_text(
        json.dumps({"schema_version": 1, "default": "m", "models": [entry]})
    )
    monkeypatch.setattr(registry, "REGISTRY_PATH", tiny_dir / "registry.json")
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")

    result = _run(tmp_path / "a.png", "--out", tmp_path / "o", "--quiet")

    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o" / "a.png.mask.png").size == (8, 6)


def test_missing_input_and_bad_model_are_exit_2(tmp_path, tiny_model):
    missing = _run("--model", tiny_model, tmp_path / "nope.jpg", "--out", tmp_path / "o")
    assert missing.exit_code == 2 and "nope.jpg" in missing.stderr

    (tmp_path / "bad.onnx").write_bytes(b"junk")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    bad = _run("--model", tmp_path / "bad.onnx", tmp_path / "a.png", "--out", tmp_path / "o")
    assert bad.exit_code == 2 and "bad.onnx" in bad.stderr
