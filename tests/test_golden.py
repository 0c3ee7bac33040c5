"""Golden vectors: the input formula, the file layout, and verification in two runtimes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sod_train.check.golden import (
    DEFAULT_TOLERANCE,
    default_golden_path,
    golden_input,
    load_golden,
    ort_runner,
    reference_runner,
    run_golden_with,
    sample_positions,
    tensor_sha256,
    verify_golden,
    write_golden,
)
from sod_train.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]


def tiny_model(weight_shift: float = 0.0) -> onnx.ModelProto:
    """Conv 3->1 k3 pad1 + Sigmoid with symbolic H, W; ``weight_shift`` perturbs one weight."""
    w = np.random.default_rng(0).standard_normal((1, 3, 3, 3)).astype(np.float32) * 0.3
    w[0, 1, 1, 1] += weight_shift
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["conv"], ["saliency_map"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.full(1, 0.1, np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def model_path(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save_model(tiny_model(), path)
    return path


@pytest.fixture
def golden(model_path) -> Path:
    return write_golden(model_path)


def test_input_follows_the_documented_formula_elementwise():
    x = golden_input(37, 53)
    assert x.shape == (1, 3, 37, 53) and x.dtype == np.float32
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for c, y, xx in [(0, 0, 0), (2, 5, 7), (1, 36, 52), (2, 20, 40)]:
        p = (xx * (c + 1) * 7 + y * (c + 2) * 13 + c * 31) % 256
        v = np.float32(p) / np.float32(255)
        assert x[0, c, y, xx] == (v - np.float32(mean[c])) / np.float32(std[c])


def test_documented_c_snippet_builds_the_identical_tensor(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc or gcc) on PATH: install gcc (apt-get install gcc)")
    doc = (REPO / "docs" / "golden.md").read_text()
    snippet = re.search(r"```c\n(.*?)```", doc, re.S).group(1)
    main = (
        "#include <stdio.h>\n#include <stdlib.h>\n"
        + snippet
        + "int main(int argc, char **argv) {\n"
        "    int H = atoi(argv[1]), W = atoi(argv[2]);\n"
        "    float *t = malloc(sizeof(float) * 3 * H * W);\n"
        "    sod_golden_input(H, W, t);\n"
        "    fwrite(t, sizeof(float), (size_t)3 * H * W, stdout);\n"
        "    return 0;\n}\n"
    )
    (tmp_path / "g.c").write_text(main)
    exe = tmp_path / "g"
    subprocess.run([compiler, "-std=c99", "-O2", "-o", str(exe), str(tmp_path / "g.c")], check=True)
    for h, w in [(37, 53), (64, 64), (256, 256)]:
        raw = subprocess.run([str(exe), str(h), str(w)], capture_output=True, check=True).stdout
        c_tensor = np.frombuffer(raw, dtype="<f4").reshape(1, 3, h, w)
        assert tensor_sha256(c_tensor) == tensor_sha256(golden_input(h, w))


def test_sample_positions_start_with_corners_and_stay_inside():
    positions = sample_positions(37, 53)
    assert positions[:4] == [(0, 0), (0, 52), (36, 0), (36, 52)]
    assert len(positions) == 64
    assert all(0 <= y < 37 and 0 <= x < 53 for y, x in positions)


def test_written_file_layout(model_path, golden):
    assert golden == default_golden_path(model_path) == model_path.with_name("tiny.golden.json")
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["tiny.golden.json", "tiny.onnx"]
    doc = load_golden(golden)
    assert [c["name"] for c in doc["cases"]] == ["64x64", "37x53", "256x256"]
    small, odd, big = doc["cases"]
    assert len(small["output"]) == 64 * 64 and len(odd["output"]) == 37 * 53
    assert "output" not in big and len(big["sample"]) == 64
    assert doc["tolerance"]["abs"] == DEFAULT_TOLERANCE
    assert doc["model"]["file"] == "tiny.onnx"
    assert odd["input_sha256"] == tensor_sha256(golden_input(37, 53))
    # values are stored exactly as float32 and the stats describe the same map
    out = ort_runner(model_path)(golden_input(37, 53))[0, 0]
    assert np.array_equal(np.asarray(odd["output"], np.float32).reshape(37, 53), out)
    assert odd["stats"]["max"] == pytest.approx(float(out.max()))
    assert golden.stat().st_size < 1_000_000


def test_verify_passes_on_the_same_model(model_path, golden):
    assert verify_golden(model_path) == []
    assert run_golden_with(ort_runner(model_path), golden) == []


def test_perturbed_weight_fails_on_values_and_sha(model_path, golden, tmp_path):
    onnx.save_model(tiny_model(weight_shift=0.5), model_path)
    problems = verify_golden(model_path, check_sha256=False)
    assert problems and all(p.startswith("case ") for p in problems)
    assert {p.split(":")[0] for p in problems} == {"case 64x64", "case 37x53", "case 256x256"}
    with_sha = verify_golden(model_path)
    assert "written for a different model file" in with_sha[0]


def test_tolerance_is_respected(model_path, golden):
    base = ort_runner(model_path)

    def shifted(delta: float):
        return lambda x: base(x) + np.float32(delta)

    assert run_golden_with(shifted(0.5 * DEFAULT_TOLERANCE), golden) == []
    problems = run_golden_with(shifted(3 * DEFAULT_TOLERANCE), golden)
    assert any("pixels differ by more than 0.0001" in p for p in problems)
    assert any("sampled pixels" in p and "256x256" in p for p in problems)


def test_runner_errors_and_wrong_shapes_become_problem_lines(golden):
    def broken(x):
        raise RuntimeError("kernel exploded")

    assert run_golden_with(broken, golden)[0] == "case 64x64: runtime error: kernel exploded"
    flat = run_golden_with(lambda x: np.zeros((1, 1, 8, 8), np.float32), golden)
    assert "output shape [1, 1, 8, 8], expected [1, 1, 64, 64]" in flat[0]


def test_onnx_reference_agrees_with_onnxruntime(model_path, golden):
    assert run_golden_with(reference_runner(model_path), golden) == []
    x = golden_input(37, 53)
    ref, ort = reference_runner(model_path)(x), ort_runner(model_path)(x)
    assert np.abs(ref - ort).max() < 1e-5


def test_malformed_golden_files_are_rejected(tmp_path, golden):
    bad = tmp_path / "bad.golden.json"
    bad.write_text("[1, 2")
    with pytest.raises(UserInputError, match="not valid JSON"):
        load_golden(bad)
    doc = json.loads(golden.read_text())
    doc["cases"][1]["output"] = doc["cases"][1]["output"][:-1]
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserInputError, match="malformed case 37x53"):
        load_golden(bad)
    doc = json.loads(golden.read_text())
    doc["format"] = "something-else"
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserInputError, match="format"):
        load_golden(bad)


def test_write_golden_refuses_to_overwrite_the_model_and_reports_bad_models(model_path, tmp_path):
    before = model_path.read_bytes()
    with pytest.raises(UserInputError, match="refusing"):
        write_golden(model_path, model_path)
    assert model_path.read_bytes() == before
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(UserInputError, match=r"broken\.onnx"):
        write_golden(broken)
    assert not default_golden_path(broken).exists()


def test_golden_written_from_a_temp_file_names_the_final_model(model_path, tmp_path):
    temp = tmp_path / ".x.onnx.123.tmp"
    temp.write_bytes(model_path.read_bytes())
    dest = write_golden(temp, tmp_path / "x.golden.json")
    assert load_golden(dest)["model"]["file"] == "x.onnx"
    temp.rename(tmp_path / "x.onnx")
    assert verify_golden(tmp_path / "x.onnx") == []
