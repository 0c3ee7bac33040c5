"""``sod-train evaluate``: protocol, JSON output, --record merging, and clean failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image

from sod_train.cli.main import main
from sod_train.data import pairs
from sod_train.evaluate.evaluate import RECORDED_KEYS
from sod_train.evaluate.sod_metrics import METRIC_KEYS, SODMetrics

REPO = Path(__file__).resolve().parents[1]
MINI = REPO.parent / "shared" / "data" / "duts-te-mini"
N_PAIRS = 10
WEIGHTS = np.array([0.9, -0.6, 0.4], dtype=np.float32)  # 1x1 conv on the normalised RGB
BIAS = np.float32(0.2)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first pairs of the shared DUTS-TE sample, copied into a DUTS layout."""
    if not MINI.is_dir():
        pytest.skip(f"{MINI} not present")
    root = tmp_path_factory.mktemp("mini")
    for sub in ("DUTS-TE-Image", "DUTS-TE-Mask"):
        (root / sub).mkdir()
    for mask in sorted((MINI / "DUTS-TE-Mask").glob("*.png"))[:N_PAIRS]:
        shutil.copy(mask, root / "DUTS-TE-Mask" / mask.name)
        shutil.copy(MINI / "DUTS-TE-Image" / f"{mask.stem}.jpg", root / "DUTS-TE-Image")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed 1x1 Conv (3 -> 1) + Sigmoid with the host contract (any H, W)."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["saliency_map"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], WEIGHTS.tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [float(BIAS)]),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(proto, path)
    return path


def expected_metrics(root: Path, size: int | None) -> dict[str, float]:
    """The documented protocol, written out with numpy instead of onnxruntime."""
    metrics = SODMetrics()
    for mask_path in sorted((root / "DUTS-TE-Mask").glob("*.png")):
        image = Image.open(root / "DUTS-TE-Image" / f"{mask_path.stem}.jpg").convert("RGB")
        gt = np.asarray(Image.open(mask_path).convert("L"))
        if size is not None:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        x = (np.asarray(image, dtype=np.float32) / 255 - MEAN) / STD
        saliency = (1 / (1 + np.exp(-(x @ WEIGHTS + BIAS)))).astype(np.float32)
        if size is not None:
            back = Image.fromarray(saliency).resize(gt.shape[::-1], Image.Resampling.BILINEAR)
            saliency = np.asarray(back)
        metrics.step(np.rint(np.clip(saliency, 0, 1) * 255).astype(np.uint8), gt)
    return metrics.get_results()


def run(*args: str | Path):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert len(lines) == 1 or "bad file(s)" in lines[0], result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr


def test_resized_run_follows_the_protocol(data, model, tmp_path):
    out = tmp_path / "result.json"
    result = run(model, "--data", data, "--size", "64", "--json", out, "--quiet", "--threads", "1")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert list(doc) == [
        "name",
        "n",
        "size",
        "protocol",
        "digest",
        "metrics",
        "seconds",
        "img_per_s",
    ]
    assert (doc["name"], doc["n"], doc["size"]) == ("DUTS-TE", N_PAIRS, 64)
    assert "64x64" in doc["protocol"] and "\n" not in doc["protocol"]
    files = sorted(p for sub in ("DUTS-TE-Image", "DUTS-TE-Mask") for p in (data / sub).iterdir())
    assert doc["digest"] == pairs.content_digest(data, files)
    assert list(doc["metrics"]) == list(METRIC_KEYS)
    expected = expected_metrics(data, 64)
    for key in METRIC_KEYS:
        assert doc["metrics"][key] == pytest.approx(expected[key], abs=1e-4), key
    # The table on stdout shows every metric.
    assert all(key in result.stdout for key in METRIC_KEYS)


def test_native_run_skips_the_resize(data, model):
    result = run(model, "--data", data, "--native", "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # '-' prints only the JSON
    assert doc["size"] == "native" and "native size" in doc["protocol"]
    expected = expected_metrics(data, None)
    for key in METRIC_KEYS:
        assert doc["metrics"][key] == pytest.approx(expected[key], abs=1e-4), key
    resized = expected_metrics(data, 64)
    assert any(abs(expected[k] - resized[k]) > 1e-3 for k in METRIC_KEYS)  # the modes differ


def test_record_merges_into_a_metrics_json(data, model, tmp_path):
    metrics_json = tmp_path / "x.metrics.json"
    other = {"n": 5, "size": 256, "protocol": "p", "digest": "0" * 64, "metrics": {"MAE": 0.1}}
    original = {
        "schema_version": 1,
        "model_id": "x",
        "evaluations": {"ECSSD": other},
        "gate": {"passed": True},
    }
    metrics_json.write_text(json.dumps(original))
    for _ in range(2):  # recording twice replaces the entry in place
        result = run(model, "--data", data, "--size", "32", "--record", metrics_json, "--quiet")
        assert result.exit_code == 0, result.output
        doc = json.loads(metrics_json.read_text())
        assert list(doc) == list(original)
        assert doc["gate"] == original["gate"] and doc["model_id"] == "x"
        assert list(doc["evaluations"]) == ["ECSSD", "DUTS-TE"]
        assert doc["evaluations"]["ECSSD"] == other
        entry = doc["evaluations"]["DUTS-TE"]
        assert tuple(entry) == RECORDED_KEYS and entry["size"] == 32 and entry["n"] == N_PAIRS
    schema = pytest.importorskip("sod_train.release.schema")
    pytest.importorskip("jsonschema")
    assert schema.validate_evaluations({"DUTS-TE": entry}) == []


def test_record_and_name_options(data, model, tmp_path):
    metrics_json = tmp_path / "m.json"
    metrics_json.write_text('{"model_id": "m"}')
    args = ("--size", "32", "--record", metrics_json, "--name", "DUTS-TE-mini", "--quiet")
    assert run(model, "--data", data, *args).exit_code == 0
    doc = json.loads(metrics_json.read_text())
    assert list(doc) == ["model_id", "evaluations"] and list(doc["evaluations"]) == ["DUTS-TE-mini"]
    missing = run(model, "--data", data, "--record", tmp_path / "nope.json", "--quiet")
    assert_one_line_error(missing, "nope.json")


def test_images_masks_layout_takes_the_folder_name(data, model, tmp_path):
    root = tmp_path / "MySet"
    shutil.copytree(data / "DUTS-TE-Image", root / "images")
    shutil.copytree(data / "DUTS-TE-Mask", root / "masks")
    result = run(model, "--data", root, "--size", "32", "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "MySet"


def test_bad_folder_is_exit_2_one_line(model, tmp_path):
    assert_one_line_error(run(model, "--data", tmp_path, "--quiet"), "no data-set layout")
    assert_one_line_error(run(model, "--data", tmp_path / "missing", "--quiet"), "not a folder")


def test_corrupt_image_is_exit_2_naming_the_file(data, model, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(data, root)
    images = sorted((root / "DUTS-TE-Image").iterdir())
    images[1].write_bytes(b"not a jpeg at all")
    result = run(model, "--data", root, "--quiet")
    assert_one_line_error(result, images[1].name)
    # A valid header with truncated pixel data is only found when decoding.
    images[1].write_bytes((data / "DUTS-TE-Image" / images[1].name).read_bytes()[:2000])
    assert_one_line_error(run(model, "--data", root, "--quiet"), images[1].name)


def test_unreadable_model_and_bad_options_are_exit_2(data, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage")
    assert_one_line_error(run(junk, "--data", data, "--quiet"), "junk.onnx")
    assert_one_line_error(run(tmp_path / "none.onnx", "--data", data, "--quiet"), "none.onnx")
    both = run(junk, "--data", data, "--native", "--size", "64")
    assert both.exit_code == 2 and "--native" in both.stderr


def test_rgb_masks_count_as_grey_but_16_bit_masks_are_refused(data, model, tmp_path):
    root = tmp_path / "rgb"
    shutil.copytree(data, root)
    first = sorted((root / "DUTS-TE-Mask").iterdir())[0]
    grey = Image.open(first).convert("L")
    reference = run(model, "--data", data, "--size", "32", "--json", "-", "--quiet")
    grey.convert("RGB").save(first)  # same mask, stored as RGB
    as_rgb = run(model, "--data", root, "--size", "32", "--json", "-", "--quiet")
    assert as_rgb.exit_code == 0, as_rgb.output
    assert json.loads(as_rgb.stdout)["metrics"] == json.loads(reference.stdout)["metrics"]
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(first)
    assert_one_line_error(run(model, "--data", root, "--quiet"), first.name, "16-bit")
