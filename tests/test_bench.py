"""`sod-train bench`: report layout, ratios, failing sizes, graph-counted MACs (not timings)."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from sod_train.cli.main import main
from sod_train.errors import UserInputError
from sod_train.evaluate.bench import count_macs, parse_size
from sod_train.runtime.modelfile import parameter_count


def _model(nodes, inits, out_shape=(1, 1, "H", "W")):
    graph = helper.make_graph(
        nodes,
        "bench-test",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(np.full(shape, 0.1, np.float32), name) for name, shape in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(any-size model, model that fails unless H and W are multiples of 8)."""
    folder = tmp_path_factory.mktemp("models")
    tiny = _model(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["saliency_map"]),
        ],
        [("w", (1, 3, 3, 3))],
    )
    mult8 = _model(
        [
            helper.make_node("Conv", ["input", "w"], ["y"]),
            helper.make_node("MaxPool", ["y"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("ConvTranspose", ["p", "u"], ["up"], strides=[8, 8]),
            helper.make_node("Add", ["y", "up"], ["s"]),
            helper.make_node("Sigmoid", ["s"], ["saliency_map"]),
        ],
        [("w", (1, 3, 1, 1)), ("u", (1, 1, 8, 8))],
    )
    onnx.save(tiny, folder / "tiny.onnx")
    onnx.save(mult8, folder / "mult8.onnx")
    return folder / "tiny.onnx", folder / "mult8.onnx"


def _bench(*args):
    result = CliRunner().invoke(main, ["bench", *map(str, args), "--runs", "2", "--warmup", "1"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_json_report_structure_ratios_and_failing_size(models):
    tiny, mult8 = models

    result = _bench(tiny, mult8, "--sizes", "16,12x20", "--threads", "1,2", "--json", "--quiet")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"machine", "settings", "models", "results"}
    assert {"cpu", "cores", "onnxruntime"} <= set(report["machine"])
    assert [m["model"] for m in report["models"]] == ["tiny.onnx", "mult8.onnx"]
    assert report["models"][0]["params"] == 27
    assert report["models"][1]["params"] == 3 + 64
    assert report["models"][1]["params_ratio"] == round(67 / 27, 3)
    assert report["models"][0]["bytes"] == tiny.stat().st_size
    # every model x size x threads, grouped by size then threads
    keys = [(r["size"], r["threads"], r["model"]) for r in report["results"]]
    assert keys == [
        (size, threads, model)
        for size in ("16", "12x20")
        for threads in (1, 2)
        for model in ("tiny.onnx", "mult8.onnx")
    ]
    for row in report["results"]:
        first = next(
            r
            for r in report["results"]
            if (r["size"], r["threads"], r["model"]) == (row["size"], row["threads"], "tiny.onnx")
        )
        if row["model"] == "tiny.onnx" or row["size"] == "16":
            assert row["status"] == "ok"
            assert 0 < row["median_ms"] <= row["p90_ms"]
            assert row["ratio"] == round(row["median_ms"] / first["median_ms"], 3)
            assert row["gmac_per_s"] == round(row["macs"] / row["median_ms"] / 1e6, 3)
        else:  # the multiple-of-8 model at 12x20
            assert row["status"] == "fails"
            assert row["error"] and row["median_ms"] is None and row["ratio"] is None
    tiny_16 = report["results"][0]
    assert (tiny_16["height"], tiny_16["width"], tiny_16["macs"]) == (16, 16, 16 * 16 * 27)


def test_table_shows_ratio_column_and_fails(models):
    tiny, mult8 = models

    result = _bench(tiny, mult8, "--sizes", "16,12", "--threads", "1", "--quiet")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| size"))
    assert "x first" in header and "median ms" in header and "GMAC/s" in header
    rows = [line for line in lines if line.startswith("| 12 (12x12)")]
    assert len(rows) == 2
    assert "| 1.00 |" in rows[0]  # the first model is its own reference
    assert "fails" in rows[1]
    assert any(line.startswith("mult8.onnx fails at 12x12") for line in lines)


def test_bad_arguments_are_exit_2(models, tmp_path):
    tiny, _ = models
    assert _bench(tiny, "--sizes", "big").exit_code == 2
    assert _bench(tiny, "--threads", "0").exit_code == 2
    missing = _bench(tmp_path / "none.onnx", "--sizes", "8")
    assert missing.exit_code == 2 and "none.onnx" in missing.stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256", (256, 256)),
        ("720p", (720, 1280)),
        ("1080p", (1080, 1920)),
        ("480p", (480, 854)),
        ("540x960", (540, 960)),
    ],
)
def test_size_names(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "axb", "12x", "-5"])
def test_bad_size_names(text):
    with pytest.raises(UserInputError):
        parse_size(text)


def test_macs_of_conv_grouped_conv_and_conv_transpose_follow_the_formula():
    h = w = 8
    model = _model(
        [
            # 3 -> 4 channels, k3, pad 1: output 4 x 8 x 8
            helper.make_node("Conv", ["input", "w1"], ["a"], pads=[1, 1, 1, 1]),
            # 4 -> 4 channels in 2 groups, k3, pad 1: output 4 x 8 x 8
            helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], group=2),
            # 4 -> 2 channels, k2 stride 2: input 4 x 8 x 8, output 2 x 16 x 16
            helper.make_node("ConvTranspose", ["b", "w3"], ["c"], strides=[2, 2]),
            helper.make_node("Conv", ["c", "w4"], ["saliency_map"]),  # 2 -> 1, k1
        ],
        [("w1", (4, 3, 3, 3)), ("w2", (4, 2, 3, 3)), ("w3", (4, 2, 2, 2)), ("w4", (1, 2, 1, 1))],
        out_shape=(1, 1, "H2", "W2"),
    )
    conv1 = (4 * h * w) * 3 * 3 * 3  # out elements x Cin/group x kH x kW
    conv2 = (4 * h * w) * (4 // 2) * 3 * 3
    convt = (4 * h * w) * 2 * 2 * 2  # in elements x Cout/group x kH x kW
    conv4 = (1 * 2 * h * 2 * w) * 2 * 1 * 1

    assert count_macs(model, h, w) == conv1 + conv2 + convt + conv4
    assert parameter_count(model) == 4 * 27 + 4 * 18 + 4 * 8 + 2


def test_macs_of_matmul():
    model = _model(
        [
            helper.make_node("MatMul", ["input", "m"], ["x"]),  # [1,3,H,W] @ [W,5]
            helper.make_node("ReduceMean", ["x"], ["saliency_map"], axes=[1]),
        ],
        [("m", (12, 5))],
        out_shape=(1, 1, "H", 5),
    )
    assert count_macs(model, 7, 12) == math.prod((1, 3, 7, 5)) * 12


def test_macs_of_an_exported_any_size_unet_match_pytorch_hooks():
    """The crop ops (Shape/Gather/Slice) must not stop the MAC count of our own models."""
    import torch

    from sod_train.export.export import fold_batchnorm, to_onnx
    from sod_train.model.unet import TinyUNet

    model = fold_batchnorm(TinyUNet())
    counted = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.ConvTranspose2d):
            k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
            counted.append(inputs[0].numel() * k)
        elif isinstance(module, torch.nn.Conv2d):
            counted.append(output.numel() * module.weight[0].numel())

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    expected = sum(counted)  # before export, whose tracing runs the hooks again
    assert count_macs(to_onnx(model), 64, 64) == expected


def test_macs_are_counted_through_the_lite_family_add_fusion(tmp_path):
    """Shape inference cannot see through crop + Add; the counter still counts every conv."""
    import torch

    from sod_train.evaluate.bench import count_macs
    from sod_train.export.export import fold_batchnorm, to_onnx
    from sod_train.model.unet import UNetConfig, build_model

    model = fold_batchnorm(build_model(UNetConfig((8, 12, 16), (1, 2), arch="lite")).eval())
    proto = to_onnx(model)  # before the hooks: export runs the model too
    expected = 0

    def hook(m, inputs, out):
        nonlocal expected
        if isinstance(m, torch.nn.ConvTranspose2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            expected += inputs[0].numel() * m.out_channels * k
        else:
            expected += out.numel() * m.in_channels // m.groups * m.kernel_size[0] ** 2

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) and not any(
            m is s for s in model.sides
        ):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 48))
    assert count_macs(proto, 64, 48) == expected


def test_record_writes_cost_into_the_metrics_json(models, tmp_path):
    tiny, mult8 = models
    metrics = tmp_path / "m.metrics.json"
    metrics.write_text(json.dumps({"model_id": "m", "keep": [1, 2]}))
    result = _bench(tiny, mult8, "--sizes", "16,12x20", "--threads", "1", "--record", metrics)
    assert result.exit_code == 0, result.output
    doc = json.loads(metrics.read_text())
    assert doc["keep"] == [1, 2]  # everything else kept
    cost = doc["cost"]
    assert f"`sod-train bench {tiny} {mult8} --sizes 16,12x20 --threads 1" in cost["note"]
    assert "cores" in cost["note"] and "onnxruntime" in cost["note"]  # the machine is named
    assert cost["models"]["tiny.onnx"]["params"] == 27
    assert cost["models"]["tiny.onnx"]["gmac_256"] == round(256 * 256 * 27 / 1e9, 4)
    assert set(cost["models"]["tiny.onnx"]) >= {"ms_16_1t", "ms_12x20_1t"}
    assert "ms_12x20_1t" not in cost["models"]["mult8.onnx"]  # it fails there: no figure
    missing = _bench(tiny, "--sizes", "16", "--record", tmp_path / "absent.json")
    assert missing.exit_code == 2 and "absent.json" in missing.output
    onto_model = _bench(tiny, "--sizes", "16", "--record", tiny)
    assert onto_model.exit_code == 2
