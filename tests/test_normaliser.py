"""The scale normaliser: any frame size in, exactly [1,1,H,W] out, the network at T."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from conftest import REPO
from sod_train.check.allowlist import DEFAULT_ALLOWLIST, iter_nodes, load_allowlist
from sod_train.check.check import check_model
from sod_train.cli.main import main
from sod_train.errors import UserInputError
from sod_train.export.normaliser import (
    add_normaliser,
    recorded_working_size,
    reference_map,
    scale_factor,
    working_shape,
)
from sod_train.runtime.model import SaliencyModel

V1 = REPO / "model/tiny/sod_tiny_v1.onnx"
SMOKE = REPO / "model/tiny/sod_tiny_smoke_cpu_v0.onnx"
T = 224

# The host's C loader allowlist (libvmaf op_allowlist.c), as ../shared/anchor/README.md
# lists it: everything we allow must be in it.
HOST_OPS = set(
    [
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Concat",
        "Slice",
        "Gather",
        "Cast",
        "Shape",
        "Expand",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Neg",
        "Abs",
        "Sqrt",
        "Pow",
        "Exp",
        "Log",
        "Clip",
        "Min",
        "Max",
        "Sum",
        "Mean",
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Gemm",
        "MatMul",
        "Conv",
        "ConvTranspose",
        "MaxPool",
        "AveragePool",
        "Resize",
        "BatchNormalization",
        "LayerNormalization",
        "InstanceNormalization",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "Elu",
        "Selu",
        "Softplus",
        "Softsign",
        "Gelu",
        "Erf",
        "HardSigmoid",
        "HardSwish",
        "PRelu",
        "Dropout",
        "QuantizeLinear",
        "DequantizeLinear",
        "Constant",
        "ConstantOfShape",
        "Pad",
        "Reciprocal",
        "ReduceProd",
        "GatherND",
        "ScatterND",
        "BitShift",
        "Loop",
        "If",
    ]
)


@pytest.fixture(scope="module")
def inner() -> SaliencyModel:
    return SaliencyModel.open(V1, threads=2)


@pytest.fixture(scope="module")
def wrapped() -> SaliencyModel:
    return SaliencyModel.open(add_normaliser(onnx.load(V1), T).SerializeToString(), threads=2)


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, h, w), dtype=np.float32)


@pytest.mark.parametrize(
    "hw", [(1, 1), (7, 13), (1079, 1919), (1081, 1923), (2160, 3840), (4320, 7680)]
)
def test_output_shape_is_exactly_the_inputs(wrapped, hw):
    out = wrapped.run(_frame(*hw))
    assert out.shape == (1, 1, *hw)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "hw",
    [
        (1, 1),
        (7, 13),
        (335, 337),
        (481, 653),
        (720, 1280),
        (1080, 1920),
        (1080, 1923),
        (1081, 1920),
        (1081, 1923),
    ],
)
def test_graph_matches_the_numpy_reference(inner, wrapped, hw):
    """Including the border rows and columns when H or W is not a multiple of k: each of
    the graph's two padding branches (rows, columns) taken and skipped, alone and together
    (k = 3 at 720x1280, where only the width is padded; k = 5 at 1080/1081 x 1920/1923)."""
    x = _frame(*hw, seed=hw[0])
    np.testing.assert_allclose(wrapped.run(x), reference_map(inner.run, x, T), atol=1e-5)


def test_k_times_upscaled_copy_gives_the_same_map(wrapped):
    """A picture and its 3x pixel-replicated copy: the normaliser averages the copy back
    to the picture (k = 3 at short side 672), so the maps agree at the picture's pixels."""
    h, w = 224, 288
    assert scale_factor(h, w, T) == 1 and scale_factor(3 * h, 3 * w, T) == 3
    yy, xx = np.mgrid[0:h, 0:w]
    blob = ((yy - 100) ** 2 + (xx - 150) ** 2 < 60**2).astype(np.float32)
    picture = np.stack([blob * 2.0 - 1.0, -blob, blob * 1.5 - 0.5])[None].astype(np.float32)
    picture += _frame(h, w, seed=3) * 0.2
    upscaled = np.repeat(np.repeat(picture, 3, axis=2), 3, axis=3)
    small = wrapped.run(picture)[0, 0]
    big = wrapped.run(upscaled)[0, 0]
    assert big.shape == (3 * h, 3 * w)
    np.testing.assert_allclose(big[::3, ::3], small, atol=1e-4)
    np.testing.assert_allclose(big[2::3, 1::3], small, atol=1e-4)  # every pixel of a block


def test_working_shape_stays_near_t():
    for short in range(1, 6000, 7):
        k = scale_factor(short, short + 100, T)
        h, _ = working_shape(short, short + 100, T)
        assert k >= 1 and h == -(-short // k)
        if short >= 1.5 * T:
            assert 0.7 * T <= short / k <= 1.34 * T, (short, k)


def test_wrapping_is_deterministic_and_recorded():
    model = onnx.load(V1)
    first = add_normaliser(model, T).SerializeToString()
    assert first == add_normaliser(onnx.load(V1), T).SerializeToString()
    assert recorded_working_size(onnx.load_from_string(first)) == T
    assert recorded_working_size(model) is None
    assert add_normaliser(model, 0).SerializeToString() == model.SerializeToString()


def test_refuses_a_second_normaliser_and_a_model_off_the_contract():
    once = add_normaliser(onnx.load(V1), T)
    with pytest.raises(UserInputError, match="already normalises"):
        add_normaliser(once, T)
    renamed = onnx.load(V1)
    renamed.graph.output[0].name = "probability"
    renamed.graph.node[-1].output[0] = "probability"
    with pytest.raises(UserInputError, match="not the contract"):
        add_normaliser(renamed, T)


def test_ops_are_allowed_here_and_on_the_host_and_never_resize():
    ours = load_allowlist(DEFAULT_ALLOWLIST)
    assert ours <= HOST_OPS
    assert not {"Resize", "Upsample"} & ours
    used = {node.op_type for _, node in iter_nodes(add_normaliser(onnx.load(V1), T).graph)}
    assert {"If", "Pad", "ReduceMean", "Transpose"} <= used  # the If branches are walked too
    assert used <= ours and "Resize" not in used


def _executed_ops(model: onnx.ModelProto, hw: tuple[int, int]) -> set[str]:
    """The op types onnxruntime ran for one input of size hw (its profiler's node events)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = 4
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        session.run(None, {"input": _frame(*hw)})
        trace = json.loads(Path(session.end_profiling()).read_text())
    return {e["args"]["op_name"] for e in trace if e.get("cat") == "Node" and "args" in e}


def test_the_frame_is_copied_by_pad_only_when_a_side_is_not_a_multiple_of_k():
    """Pad copies its whole input even when it adds nothing: at 450x900 (k = 2, both sides
    even) no Pad runs; a Pad runs as soon as either side needs padding."""
    model = add_normaliser(onnx.load(SMOKE), T)
    assert scale_factor(450, 900, T) == 2
    assert "Pad" not in _executed_ops(model, (450, 900))
    for hw in [(451, 900), (450, 901), (451, 901)]:
        assert "Pad" in _executed_ops(model, hw), hw


def test_anchor_contract_test_passes(wrapped):
    """What the anchor project's own contract test asks: names, rank 4, sizes 64, 256 and
    192x320, values in [0,1], and a map that depends on the content."""
    assert wrapped.input_name == "input"
    assert [o.name for o in wrapped.session.get_outputs()] == ["saliency_map"]
    assert len(wrapped.input_shape) == 4
    for h, w in [(64, 64), (256, 256), (192, 320)]:
        a, b = wrapped.run(_frame(h, w, 1)), wrapped.run(_frame(h, w, 2))
        assert a.shape == (1, 1, h, w) and a.min() >= 0 and a.max() <= 1
        assert not np.array_equal(a, b)


def test_normalise_command_writes_a_checked_release(tmp_path):
    out = tmp_path / "smoke_ws.onnx"
    result = CliRunner().invoke(
        main, ["normalise", str(SMOKE), "--output", str(out), "--working-size", "128", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert check_model(out).passed
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["onnx"]["working_size"] == 128 and metrics["config"]["working_size"] == 128
    assert {"If", "Pad", "ReduceMean"} <= set(metrics["onnx"]["ops"])  # inside the If too
    assert metrics["derived_from"]["model_id"] == "sod_tiny_smoke_cpu_v0"
    assert "evaluations" not in metrics and {"257x263", "257x293"} <= set(
        metrics["onnx"]["parity_max_abs_diff"]
    )
    inner = SaliencyModel.open(SMOKE)
    wrapped = SaliencyModel.open(out)
    x = _frame(97, 131)  # k = 1: the network's own map, unchanged
    np.testing.assert_array_equal(wrapped.run(x), inner.run(x))
    again = CliRunner().invoke(
        main,
        ["normalise", str(out), "--output", str(tmp_path / "twice.onnx"), "--working-size", "128"],
    )
    assert again.exit_code == 2 and "already normalises" in again.output
    assert not (tmp_path / "twice.onnx").exists()


def test_normalise_refuses_a_missing_metrics_json_and_writing_over_its_source(tmp_path):
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(SMOKE.read_bytes())
    missing = CliRunner().invoke(
        main, ["normalise", str(lone), "--output", str(tmp_path / "o.onnx"), "--working-size", "64"]
    )
    assert missing.exit_code == 2 and "lone.metrics.json" in missing.output
    assert not (tmp_path / "o.onnx").exists()
    over = CliRunner().invoke(
        main, ["normalise", str(SMOKE), "--output", str(SMOKE), "--working-size", "64"]
    )
    assert over.exit_code == 2
