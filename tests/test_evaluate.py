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
from test_sod_metrics import _reference_curves

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
        pytest.skip(f"needs {MINI} (100 real DUTS-TE pairs); see README 'Test data'")
    root = tmp_path_factory.mktemp("mini")
    for sub in ("DUTS-TE-Image", "DUTS-TE-Mask"):
        (root / sub).mkdir()
    for mask in sorted((MINI / "DUTS-TE-Mask").glob("*.png"))[:N_PAIRS]:
        shutil.copy(mask, root / "DUTS-TE-Mask" / mask.name)
        shutil.copy(MINI / "DUTS-TE-Image" / f"{mask.stem}.jpg", root / "DUTS-TE-Image")
    return root


def build_model(
    path: Path,
    weights: np.ndarray = WEIGHTS,
    bias: float = BIAS,
    head: tuple[list[onnx.NodeProto], list[onnx.TensorProto]] = ([], []),
) -> Path:
    """A fixed 1x1 Conv (3 -> 1) + Sigmoid with the host contract (any H, W); ``head``
    (nodes from ``logit`` to ``head_out``, and their weights) goes between the two."""
    nodes, tensors = head
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["logit"]),
            *nodes,
            helper.make_node("Sigmoid", ["head_out" if nodes else "logit"], ["saliency_map"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], weights.tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [float(bias)]),
            *tensors,
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


def expected_maps(
    root: Path, size: int | None, weights: np.ndarray = WEIGHTS, bias: float = BIAS
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, map, mask) per pair: the documented protocol, with numpy, not onnxruntime."""
    out = []
    for mask_path in sorted((root / "DUTS-TE-Mask").glob("*.png")):
        image = Image.open(root / "DUTS-TE-Image" / f"{mask_path.stem}.jpg").convert("RGB")
        gt = np.asarray(Image.open(mask_path).convert("L"))
        if size is not None:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        x = (np.asarray(image, dtype=np.float32) / 255 - MEAN) / STD
        saliency = (1 / (1 + np.exp(-(x @ weights + bias)))).astype(np.float32)
        if size is not None:
            back = Image.fromarray(saliency).resize(gt.shape[::-1], Image.Resampling.BILINEAR)
            saliency = np.asarray(back)
        out.append((mask_path.stem, np.rint(np.clip(saliency, 0, 1) * 255).astype(np.uint8), gt))
    return out


def expected_metrics(root: Path, size: int | None) -> dict[str, float]:
    """The nine metrics of :func:`expected_maps`."""
    metrics = SODMetrics()
    for _, pred, gt in expected_maps(root, size):
        metrics.step(pred, gt)
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
        "source",
        "curves",
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
    schema = pytest.importorskip(
        "sod_train.release.schema", reason="needs jsonschema: pip install -e '.[test]'"
    )
    pytest.importorskip(
        "jsonschema", reason="jsonschema is in the test extra: pip install -e '.[test]'"
    )
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


# ------------------------------------------------- curves, per image, worst, pred dirs


def _psm_curves(maps: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """PySODMetrics' PR, F and E arrays for these maps, reversed to threshold 0..255."""
    return _reference_curves([(pred, gt) for _, pred, gt in maps])


def test_json_curves_equal_pysodmetrics_arrays(data, model):
    result = run(model, "--data", data, "--size", "64", "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    curves = json.loads(result.stdout)["curves"]
    assert curves["thresholds"] == list(range(256))
    reference = _psm_curves(expected_maps(data, 64))
    for key, values in reference.items():
        assert len(curves[key]) == 256
        np.testing.assert_allclose(curves[key], values, atol=2e-6, err_msg=key)  # 6 decimals
    doc = json.loads(result.stdout)
    assert doc["metrics"]["maxF"] == pytest.approx(max(curves["fmeasure"]), abs=2e-6)
    assert doc["source"] == {"kind": "onnx", "path": str(model)}


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_per_image_scores_equal_single_image_runs(data, model, tmp_path, suffix):
    out = tmp_path / f"scores{suffix}"
    result = run(model, "--data", data, "--size", "64", "--per-image", out, "--quiet")
    assert result.exit_code == 0, result.output
    if suffix == ".json":
        rows = json.loads(out.read_text())
    else:
        import csv

        with out.open(newline="") as fh:
            rows = [
                {k: v if k in ("model", "image") else float(v) for k, v in row.items()}
                for row in csv.DictReader(fh)
            ]
    maps = expected_maps(data, 64)
    assert [row["image"] for row in rows] == [stem for stem, _, _ in maps]
    for row, (_, pred, gt) in zip(rows, maps, strict=True):
        assert list(row) == ["model", "image", *METRIC_KEYS] and row["model"] == "tiny"
        single = SODMetrics()
        single.step(pred, gt)
        for key, value in single.get_results().items():
            assert row[key] == pytest.approx(value, abs=1e-5), (row["image"], key)


def test_worst_lists_the_worst_images_by_the_chosen_metric(data, model):
    maps = expected_maps(data, 64)

    def per_image(key: str) -> dict[str, float]:
        out = {}
        for stem, pred, gt in maps:
            single = SODMetrics()
            single.step(pred, gt)
            out[stem] = single.get_results()[key]
        return out

    for by, worst_is_high in (("MAE", True), ("Sm", False)):
        args = ("--size", "64", "--worst", "3", "--json", "-", "--quiet")
        result = run(model, "--data", data, *args, "--by", by)
        assert result.exit_code == 0, result.output
        listed = json.loads(result.stdout)["worst"]
        assert listed["by"] == by
        scores = per_image(by)
        expected = sorted(scores, key=scores.get, reverse=worst_is_high)[:3]
        assert [item["image"] for item in listed["images"]] == expected
    table = run(model, "--data", data, "--size", "64", "--worst", "2", "--quiet")
    assert "2 worst by MAE (lower is better)" in table.stdout
    assert len(table.stdout.strip().splitlines()) == 3 + 1 + 2
    assert run(model, "--data", data, "--by", "Sm", "--quiet").exit_code == 2  # --by needs --worst


def _predict(model: Path, data: Path, out: Path) -> None:
    args = ["predict", str(data / "DUTS-TE-Image"), "--model", str(model), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--native", "--quiet"])
    assert result.exit_code == 0, result.output


def test_pred_dir_equals_scoring_the_model_on_predicts_maps(data, model, tmp_path):
    maps = tmp_path / "maps"
    _predict(model, data, maps)
    direct = run(model, "--data", data, "--native", "--json", "-", "--quiet")
    saved = run("--data", data, "--pred-dir", maps, "--json", "-", "--quiet")
    assert direct.exit_code == 0 and saved.exit_code == 0, saved.output
    a, b = json.loads(direct.stdout), json.loads(saved.stdout)
    assert a["metrics"] == b["metrics"] and a["curves"] == b["curves"]
    assert a["digest"] == b["digest"] and b["size"] == "maps" and "saved" in b["protocol"]
    assert b["source"] == {"kind": "maps", "path": str(maps)}
    # The <stem>.png layout (PySODEvalToolkit's) scores the same.
    plain = tmp_path / "plain"
    plain.mkdir()
    for png in maps.glob("*.jpg.mask.png"):
        shutil.copy(png, plain / png.name.replace(".jpg.mask.png", ".png"))
    again = run("--data", data, "--pred-dir", plain, "--json", "-", "--quiet")
    assert json.loads(again.stdout)["metrics"] == a["metrics"]


def test_bad_pred_dir_maps_are_one_line_errors_naming_the_file(data, model, tmp_path):
    maps = tmp_path / "maps"
    _predict(model, data, maps)
    first = sorted(maps.glob("*.png"))[0]
    stem = first.name.split(".")[0]
    moved = first.rename(tmp_path / first.name)
    assert_one_line_error(run("--data", data, "--pred-dir", maps, "--quiet"), f"{stem}.png")
    Image.open(moved).resize((17, 9)).save(first)
    assert_one_line_error(run("--data", data, "--pred-dir", maps, "--quiet"), first.name, "17x9")
    Image.fromarray(np.zeros((4, 4), np.uint16) + 300).resize(Image.open(moved).size).save(first)
    assert_one_line_error(run("--data", data, "--pred-dir", maps, "--quiet"), first.name, "8-bit")
    shutil.copy(moved, first)
    shutil.copy(moved, maps / f"{stem}.png")  # both names: ambiguous
    assert_one_line_error(run("--data", data, "--pred-dir", maps, "--quiet"), "ambiguous")
    assert_one_line_error(run("--data", data, "--pred-dir", tmp_path / "no", "--quiet"), "no")
    nothing = run("--data", data, "--quiet")
    assert nothing.exit_code == 2 and "--pred-dir" in nothing.stderr


def test_several_models_give_one_side_by_side_table(data, model, tmp_path):
    other = build_model(tmp_path / "other.onnx", WEIGHTS[::-1].copy(), -0.3)
    maps = tmp_path / "maps"
    _predict(model, data, maps)
    out = tmp_path / "all.json"
    args = ("--native", "--json", out, "--quiet", "--per-image", tmp_path / "all.csv")
    result = run(model, other, "--data", data, "--pred-dir", maps, *args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"DUTS-TE: n={N_PAIRS}" and lines[1].split()[:2] == ["model", "maxF"]
    assert [line.split()[0] for line in lines[2:]] == ["tiny", "other", "maps"]
    doc = json.loads(out.read_text())
    assert list(doc) == ["tiny", "other", "maps"]
    for label, path in (("tiny", model), ("other", other)):
        single = json.loads(run(path, "--data", data, "--native", "--json", "-", "--quiet").stdout)
        assert doc[label]["metrics"] == single["metrics"]
        row = next(line for line in lines if line.startswith(label))
        assert row.split()[1:10] == [f"{single['metrics'][k]:.4f}" for k in METRIC_KEYS]
    assert doc["maps"]["metrics"] == doc["tiny"]["metrics"]
    assert doc["tiny"]["metrics"] != doc["other"]["metrics"]
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 1 + 3 * N_PAIRS
    # One --record per model, or none; the same model twice is refused.
    record = tmp_path / "m.json"
    record.write_text("{}")
    assert run(model, other, "--data", data, "--record", record).exit_code == 2
    assert run(model, other, "--data", data, "--record", record, "--record", record).exit_code == 2
    assert_one_line_error(run(model, model, "--data", data, "--quiet"), "given twice")


def test_one_record_per_model_stores_each_models_rows(data, model, tmp_path):
    """Several models measured in one run are each recorded in their own metrics JSON, one
    entry per --short-side, with the numbers of that model (not the other's)."""
    other = build_model(tmp_path / "other.onnx", WEIGHTS[::-1].copy(), -0.3)
    records = {model: tmp_path / "tiny.json", other: tmp_path / "other.json"}
    for path in records.values():
        path.write_text(json.dumps({"model_id": path.stem}))
    sides = ("--short-side", "24", "--short-side", "40")
    record_args = [arg for path in records.values() for arg in ("--record", path)]
    result = run(model, other, "--data", data, *sides, *record_args, "--quiet")
    assert result.exit_code == 0, result.output
    recorded = {}
    for onnx_path, path in records.items():
        doc = json.loads(path.read_text())
        assert doc["model_id"] == path.stem
        assert list(doc["evaluations"]) == ["DUTS-TE@24", "DUTS-TE@40"]
        alone = run(onnx_path, "--data", data, "--short-side", "40", "--json", "-", "--quiet")
        recorded[path.stem] = doc["evaluations"]["DUTS-TE@40"]["metrics"]
        assert recorded[path.stem] == json.loads(alone.stdout)["metrics"]
    assert recorded["tiny"] != recorded["other"]


def test_outputs_may_not_overwrite_a_saved_map(data, model, tmp_path):
    maps = tmp_path / "maps"
    _predict(model, data, maps)
    target = sorted(maps.glob("*.png"))[0]
    before = target.read_bytes()
    result = run("--data", data, "--pred-dir", maps, "--per-image", target, "--quiet")
    assert_one_line_error(result, "refusing to overwrite a saved map")
    assert target.read_bytes() == before


@pytest.mark.parametrize("size", ["96", "37"])
def test_predict_at_a_size_writes_exactly_the_maps_evaluate_scores(data, model, tmp_path, size):
    """One picture -> map step (SaliencyModel.map, then to_uint8): `predict --size N`
    writes what `evaluate --size N` scores, image by image, not just on average."""
    maps = tmp_path / "maps"
    args = ["--out", str(maps), "--model", str(model), "--size", size, "--quiet"]
    done = CliRunner().invoke(main, ["predict", str(data / "DUTS-TE-Image"), *args])
    assert done.exit_code == 0, done.output
    direct, saved = tmp_path / "direct.json", tmp_path / "saved.json"
    a = run(model, "--data", data, "--size", size, "--per-image", direct, "--quiet")
    b = run("--data", data, "--pred-dir", maps, "--per-image", saved, "--quiet")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    rows_a = {row["image"]: row for row in json.loads(direct.read_text())}
    rows_b = {row["image"]: row for row in json.loads(saved.read_text())}
    assert rows_a.keys() == rows_b.keys() and len(rows_a) > 1
    for stem, row in rows_a.items():
        assert {k: v for k, v in row.items() if k != "model"} == {
            k: v for k, v in rows_b[stem].items() if k != "model"
        }, stem


def build_even_only_model(path: Path) -> Path:
    """:func:`build_model` plus a pooled-and-upsampled branch added back at full size:
    like the anchors (which need multiples of 8), it fails unless H and W are even."""
    nodes = [
        helper.make_node("AveragePool", ["logit"], ["half"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("ConvTranspose", ["half", "up"], ["back"], strides=[2, 2]),
        helper.make_node("Add", ["logit", "back"], ["head_out"]),
    ]
    up = helper.make_tensor("up", TensorProto.FLOAT, [1, 1, 2, 2], [0.5] * 4)
    return build_model(path, head=(nodes, [up]))


def test_pad_to_runs_models_that_need_multiples_and_crops_the_map_back(data, model, tmp_path):
    """--pad-to N edge-pads the input to multiples of N and crops the map back: a pointwise
    model scores exactly what it scores unpadded (so the crop is exact, not a resize), and
    a model that needs even sizes, refused at an odd size without it, runs with it."""
    sides = ("--short-side", "25", "--short-side", "32")
    plain = json.loads(run(model, "--data", data, *sides, "--json", "-", "--quiet").stdout)
    padded_run = run(model, "--data", data, *sides, "--pad-to", "8", "--json", "-", "--quiet")
    padded = json.loads(padded_run.stdout)
    for label in plain:
        assert padded[label]["metrics"] == plain[label]["metrics"]
        assert "multiple of 8, map cropped back" in padded[label]["protocol"]
        assert "multiple of" not in plain[label]["protocol"]

    even_only = build_even_only_model(tmp_path / "even_only.onnx")
    assert_one_line_error(run(even_only, "--data", data, "--short-side", "25", "--quiet"), "25")
    fixed = run(even_only, "--data", data, "--short-side", "25", "--pad-to", "2", "--json", "-")
    assert fixed.exit_code == 0, fixed.output
    result = json.loads(fixed.stdout)
    assert result["n"] == N_PAIRS and result["metrics"] != plain["tiny@25"]["metrics"]
    assert run(model, "--data", data, "--pad-to", "0").exit_code == 2


def test_pad_to_multiple_replicates_the_last_row_and_column():
    from sod_train.runtime.model import pad_to_multiple

    image = np.arange(2 * 5 * 7, dtype=np.float32).reshape(1, 2, 5, 7)
    padded = pad_to_multiple(image, 4, axes=(2, 3))
    assert padded.shape == (1, 2, 8, 8)
    assert np.array_equal(padded[:, :, :5, :7], image)
    assert np.array_equal(padded[:, :, 7, :7], image[:, :, 4, :])
    assert np.array_equal(padded[:, :, :5, 7], image[:, :, :, 6])
    assert pad_to_multiple(image, 1, axes=(2, 3)) is image
    hwc = np.zeros((8, 16, 3), np.uint8)
    assert pad_to_multiple(hwc, 8) is hwc  # already a multiple: no copy
