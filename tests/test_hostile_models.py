"""Hostile inputs, class 4 (and the model half of class 2): malformed ONNX that parses.

Every command that opens a model goes through one loader (sod_train.runtime.modelfile), which turns
a model it cannot run into one exit-2 line naming the file; ``check`` reports the same
problems as FAIL lines (exit 1). Never a traceback, never a huge allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from hostile import (
    Snapshot,
    bad_utf8_bytes,
    build_model,
    cli,
    data_folder,
    endless_loop_model,
    external_data_model,
    png_bytes,
    refused,
    save,
    string_constant_model,
    string_output_model,
    weightless_conv_model,
)
from onnx import TensorProto, helper

from sod_train.errors import UserInputError
from sod_train.runtime.model import SaliencyModel
from sod_train.runtime.modelfile import model_problems


def _utf8(folder: Path) -> Path:
    path = folder / "badname.onnx"
    path.write_bytes(bad_utf8_bytes(build_model()))
    return path


def _node_utf8(folder: Path) -> Path:
    path = folder / "badnode.onnx"
    path.write_bytes(bad_utf8_bytes(build_model(), b"conv"))  # an internal tensor name
    return path


def _two_inputs(folder: Path) -> Path:
    model = build_model()
    model.graph.input.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1]))
    return save(model, folder / "two.onnx")


def _no_output(folder: Path) -> Path:
    model = build_model()
    del model.graph.output[:]
    return save(model, folder / "noout.onnx")


def _int_input(folder: Path) -> Path:
    model = build_model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    return save(model, folder / "intin.onnx")


def _sequence_output(folder: Path) -> Path:
    model = build_model()
    out = model.graph.output[0]
    out.type.Clear()
    out.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    return save(model, folder / "seqout.onnx")


def _double_output(folder: Path) -> Path:
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["conv"], ["s"]),
        helper.make_node("Cast", ["s"], ["saliency_map"], to=TensorProto.DOUBLE),
    ]
    return save(build_model(nodes, out_type=TensorProto.DOUBLE), folder / "double.onnx")


def _rank3(folder: Path) -> Path:
    return save(build_model(in_shape=(1, 3, "L")), folder / "rank3.onnx")


def _huge_fixed(folder: Path) -> Path:
    return save(build_model(in_shape=(1, 3, 100_000, 100_000)), folder / "huge.onnx")


def _zero_fixed(folder: Path) -> Path:
    return save(build_model(in_shape=(1, 3, 0, 0)), folder / "zero.onnx")


def _negative_dim(folder: Path) -> Path:
    return save(build_model(in_shape=(1, 3, -5, "W")), folder / "negative.onnx")


def _channels_7(folder: Path) -> Path:
    return save(build_model(in_shape=(1, 7, "H", "W")), folder / "c7.onnx")


def _no_graph(folder: Path) -> Path:
    path = folder / "nograph.onnx"
    path.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
    return path


def _truncated(folder: Path) -> Path:
    data = build_model().SerializeToString()
    path = folder / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def _missing_external(folder: Path) -> Path:
    return external_data_model(folder, "ext.onnx")


def _present_external(folder: Path) -> Path:
    return external_data_model(folder, "ext2.onnx", keep_data=True)


def _unknown_op(folder: Path) -> Path:
    nodes = [helper.make_node("NoSuchOp", ["input"], ["saliency_map"], name="n")]
    return save(build_model(nodes, []), folder / "unknown.onnx")


def _dangling_input(folder: Path) -> Path:
    nodes = [
        helper.make_node("Conv", ["input", "nowhere", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["conv"], ["saliency_map"]),
    ]
    return save(build_model(nodes), folder / "dangling.onnx")


def _string_output(folder: Path) -> Path:
    return save(string_output_model(), folder / "strout.onnx")


def _string_constant(folder: Path) -> Path:
    return save(string_constant_model(), folder / "strconst.onnx")


def _weightless(folder: Path) -> Path:
    return save(weightless_conv_model(), folder / "noweight.onnx")


def _opset_99(folder: Path) -> Path:
    model = build_model()
    model.opset_import[0].version = 99
    return save(model, folder / "opset99.onnx")


def _ir_99(folder: Path) -> Path:
    model = build_model()
    model.ir_version = 99
    return save(model, folder / "ir99.onnx")


def _empty(folder: Path) -> Path:
    path = folder / "empty.onnx"
    path.write_bytes(b"")
    return path


MALFORMED: dict[str, Callable[[Path], Path]] = {
    "string output": _string_output,
    "string constant into the output": _string_constant,
    "input name not UTF-8": _utf8,
    "tensor name not UTF-8": _node_utf8,
    "external data missing": _missing_external,
    "external data present": _present_external,
    "conv without weight": _weightless,
    "two inputs": _two_inputs,
    "no output": _no_output,
    "int64 input": _int_input,
    "sequence output": _sequence_output,
    "double output": _double_output,
    "rank 3 input": _rank3,
    "fixed 100000x100000": _huge_fixed,
    "fixed 0x0": _zero_fixed,
    "negative dim": _negative_dim,
    "7 channels": _channels_7,
    "no graph": _no_graph,
    "truncated": _truncated,
    "unknown op": _unknown_op,
    "dangling initializer": _dangling_input,
    "opset 99": _opset_99,
    "ir_version 99": _ir_99,
    "empty file": _empty,
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {name: make(folder) for name, make in MALFORMED.items()}


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pic") / "a.png"
    path.write_bytes(png_bytes((16, 12)))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return data_folder(tmp_path_factory.mktemp("data") / "D", n=2)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_predict_refuses_a_malformed_model_in_one_line(models, picture, tmp_path, kind):
    model = models[kind]
    keep = Snapshot([model, picture])
    result = cli("predict", picture, "--model", model, "--out", tmp_path / "o", "--quiet")
    refused(result, 2, model)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.png"))
    keep.unchanged()


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_evaluate_refuses_a_malformed_model_in_one_line(models, data, kind):
    model = models[kind]
    result = cli("evaluate", model, "--data", data, "--quiet")
    refused(result, 2, model)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_bench_refuses_a_malformed_model_in_one_line(models, kind):
    model = models[kind]
    result = cli("bench", model, "--sizes", "8", "--threads", "1", "--runs", "1", "--quiet")
    refused(result, 2, model)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_check_fails_or_refuses_a_malformed_model_without_a_traceback(models, kind):
    model = models[kind]
    result = cli("check", model)
    assert result.exit_code in (1, 2), result.output
    line = refused(result, result.exit_code, model)
    if result.exit_code == 1:
        assert "checks failed" in line and "FAIL " in result.stdout


def test_fold_iou_refuses_a_malformed_model_before_decoding(models, tmp_path):
    for kind in ("string output", "input name not UTF-8", "fixed 100000x100000"):
        result = cli("fold-iou", models[kind], "--duts-root", tmp_path / "nowhere")
        refused(result, 2, models[kind], "cannot load")


def test_the_loader_names_each_problem(models):
    expected = {
        "string output": "tensor(string)",
        "input name not UTF-8": "not valid UTF-8",
        "external data missing": "external data",
        "fixed 100000x100000": "outside the supported range",
        "fixed 0x0": "not a size",
        "two inputs": "expected one input",
        "double output": "tensor(double)",
        "7 channels": "expected [1,3,H,W]",
        "truncated": "not an ONNX model",
        "conv without weight": "onnxruntime refuses",
    }
    for kind, words in expected.items():
        with pytest.raises(UserInputError) as caught:
            SaliencyModel.open(models[kind])
        assert words in str(caught.value) and str(models[kind]) in str(caught.value)


def test_check_names_string_output_and_bad_names_as_failures(models):
    out = cli("check", models["string constant into the output"])
    assert out.exit_code == 1 and "FAIL run 64x64:" in out.stdout
    bad = cli("check", models["input name not UTF-8"])
    assert bad.exit_code == 1 and "not valid UTF-8" in bad.stdout


def test_a_valid_model_still_loads(tmp_path):
    model = onnx.load_model_from_string(build_model().SerializeToString())
    assert model_problems(model) == []
    assert SaliencyModel.open(save(model, tmp_path / "ok.onnx")) is not None


# -- a model that never finishes is stopped at its deadline, never waited on ----------------


@pytest.fixture
def endless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model that never finishes, with the deadline cut to 1 s (of wall and CPU time)."""
    from sod_train import guards

    monkeypatch.setattr(guards, "MAX_RUN_SECONDS", 1.0)
    return save(endless_loop_model(), tmp_path / "endless.onnx")


def test_predict_stops_a_model_that_never_finishes(endless, picture, tmp_path):
    second = tmp_path / "b.png"
    second.write_bytes(png_bytes())
    result = cli(
        "predict", picture, second, "--model", endless, "--out", tmp_path / "o", timeout=120
    )
    refused(result, 2, endless, "still running after 1 s", "no more pictures")


def test_evaluate_stops_a_model_that_never_finishes(endless, data):
    refused(cli("evaluate", endless, "--data", data, "--quiet", timeout=120), 2, endless, "stopped")


def test_check_stops_once_and_skips_the_rest(endless):
    result = cli("check", endless, timeout=120)
    assert result.exit_code == 1
    assert "FAIL run 1x1: still running after 1 s; stopped" in result.stdout
    assert "FAIL run 1080x1920: not run: the run at 1x1 was stopped" in result.stdout


def test_bench_stops_a_model_once_and_keeps_timing_the_others(endless, tmp_path):
    good = save(build_model(), tmp_path / "good.onnx")
    args = ["--sizes", "8,16", "--threads", "1,2", "--runs", "2", "--warmup", "0", "--quiet"]
    result = cli("bench", good, endless, *args, timeout=120)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("| fails |") == 4  # 2 sizes x 2 thread counts, one wait
    assert "endless.onnx fails at 8x8: still running after 1 s; stopped" in result.stdout


def test_the_deadline_counts_cpu_time_so_a_busy_machine_does_not_trip_it():
    import time

    from sod_train.guards import stop_after

    calls = []
    with stop_after(0.2, lambda: calls.append(1), poll=0.05) as fired:
        time.sleep(0.6)  # wall time passes, this process's CPU time does not: a starved run
    assert not fired.is_set() and not calls
    give_up = time.monotonic() + 60
    with stop_after(0.2, lambda: calls.append(1), poll=0.05) as fired:
        while not fired.is_set() and time.monotonic() < give_up:
            sum(range(1000))  # burns CPU, like a model that never finishes
    assert fired.is_set() and calls == [1]
