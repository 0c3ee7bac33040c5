"""`sod-train check`: each contract rule fails on a model breaking it; no input crashes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hostile import build_model
from onnx import TensorProto, helper, numpy_helper

from sod_train.check.check import DEFAULT_SIZES, check_model
from sod_train.check.golden import write_golden
from sod_train.cli.main import main
from sod_train.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]
ANCHOR_V1 = REPO.parent / "shared" / "anchor" / "saliency_student_v1.onnx"


def build(
    nodes=None,
    inits=None,
    in_shape=(1, 3, "H", "W"),
    out_shape=(1, 1, "H", "W"),
    in_name="input",
    out_name="saliency_map",
    opsets=(("", 17),),
):
    """A model from nodes; by default the tiny any-size Conv 3->1 k3 pad1 + Sigmoid."""
    return build_model(nodes, inits, in_shape, out_shape, in_name, out_name, opsets=opsets)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save_model(model, path)
    return path


def verdicts(report) -> dict[str, bool]:
    return {c.name: c.passed for c in report.checks}


def detail(report, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def cli(*args: str):
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def tiny(tmp_path) -> Path:
    return save(build(), tmp_path / "tiny.onnx")


def test_tiny_valid_model_passes_every_check(tiny):
    report = check_model(tiny)
    assert report.passed, [c for c in report.checks if not c.passed]
    names = [c.name for c in report.checks]
    assert [f"run {h}x{w}" for h, w in DEFAULT_SIZES] == [n for n in names if n.startswith("run ")]
    assert {"onnx.checker", "opset", "input", "output", "allowlist", "no_batchnorm"} <= set(names)
    golden = next(c for c in report.checks if c.name == "golden")
    assert golden.skipped and "tiny.golden.json" in golden.detail


def test_cli_lines_summary_and_exit_zero(tiny):
    result = cli(str(tiny))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "PASS run 7x13: shape [1,1,7,13], finite, range" in "\n".join(lines)
    assert lines[-1].startswith("OK: ") and "(1 skipped)" in lines[-1]
    assert any(line.startswith("SKIP golden:") for line in lines)


def test_cli_json_output(tiny):
    result = cli(str(tiny), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["model"] == str(tiny) and doc["passed"] is True
    assert {"name", "passed", "detail"} <= set(doc["checks"][0])
    assert "run 1080x1920" in [c["name"] for c in doc["checks"]]


def test_cli_json_failure_keeps_stdout_pure_json_and_exits_one(tmp_path):
    path = save(build(opsets=(("", 13),)), tmp_path / "m.onnx")
    result = cli(str(path), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["passed"] is False
    assert [c["name"] for c in doc["checks"] if not c["passed"]] == ["opset"]
    assert "checks failed: opset" in result.stderr


def test_resize_fails_the_allowlist_but_still_runs(tmp_path):
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="c"),
        helper.make_node("Resize", ["conv", "", "scales"], ["up"], name="up"),
        helper.make_node("Sigmoid", ["up"], ["saliency_map"], name="s"),
    ]
    inits = [*build().graph.initializer, numpy_helper.from_array(np.ones(4, np.float32), "scales")]
    report = check_model(save(build(nodes, inits), tmp_path / "r.onnx"))
    failed = [c.name for c in report.failed]
    assert failed == ["allowlist"]
    assert "node 'up': Resize" in detail(report, "allowlist")


def test_custom_domain_conv_fails_allowlist_opset_and_runtime(tmp_path):
    model = build(opsets=(("", 17), ("com.example", 1)))
    model.graph.node[0].domain = "com.example"
    report = check_model(save(model, tmp_path / "custom.onnx"))
    ok = verdicts(report)
    assert not ok["allowlist"] and not ok["opset"] and not ok["run 64x64"]
    assert "Conv in domain com.example" in detail(report, "allowlist")
    assert "com.example 1" in detail(report, "opset")
    assert "com.example:Conv" in detail(report, "ort_load")


def test_external_data_fails_and_skips_runtime(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save_model(build(), path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    report = check_model(path)
    assert not verdicts(report)["no_external_data"]
    assert detail(report, "no_external_data") == "2 tensors stored outside the file: w, b"
    assert detail(report, "run 64x64").startswith("not run:")


@pytest.mark.parametrize(
    ("kwargs", "failing", "mentions"),
    [
        ({"in_name": "image"}, "input", "'image'"),
        ({"out_name": "mask"}, "output", "'mask'"),
        ({"in_shape": (1, 3, 64, 64), "out_shape": (1, 1, 64, 64)}, "input", "symbolic"),
        ({"out_shape": (1, 1, "A", "B")}, "output", "input's symbols H,W"),
        ({"in_shape": (1, 3, "S", "S"), "out_shape": (1, 1, "S", "S")}, "input", "different"),
        ({"in_shape": (1, 1, "H", "W")}, "input", "[1,1,H,W]"),
    ],
)
def test_io_contract_violations_are_named(tmp_path, kwargs, failing, mentions):
    report = check_model(save(build(**kwargs), tmp_path / "io.onnx"))
    assert not verdicts(report)[failing]
    assert mentions in detail(report, failing)


def test_fixed_size_model_names_the_sizes_it_cannot_run(tmp_path):
    model = build(in_shape=(1, 3, 64, 64), out_shape=(1, 1, 64, 64))
    report = check_model(save(model, tmp_path / "fixed.onnx"))
    ok = verdicts(report)
    assert ok["run 64x64"] and not ok["run 7x13"] and not ok["run 1080x1920"]
    assert "onnxruntime error" in detail(report, "run 7x13")


def test_wrong_rank_model_fails_contract_and_runtime_without_crashing(tmp_path):
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1], name="c"),
        helper.make_node("Sigmoid", ["conv"], ["saliency_map"], name="s"),
    ]
    w = np.full((1, 3, 3), 0.1, np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(1, np.float32), "b")]
    model = build(nodes, inits, in_shape=(1, 3, "L"), out_shape=(1, 1, "L"))
    report = check_model(save(model, tmp_path / "rank3.onnx"))
    ok = verdicts(report)
    assert not ok["input"] and not ok["output"]
    assert not any(ok[f"run {h}x{w}"] for h, w in DEFAULT_SIZES)
    assert "[1,3,L]" in detail(report, "input")


def test_huge_declared_dimension_is_reported_not_allocated(tmp_path):
    huge = 2**40
    model = build(in_shape=(1, 3, huge, "W"), out_shape=(1, 1, huge, "W"))
    report = check_model(save(model, tmp_path / "huge.onnx"))
    assert not verdicts(report)["input"]
    assert str(huge) in detail(report, "input")
    assert not verdicts(report)["run 64x64"]


def test_opset_13_fails_only_the_opset_check(tmp_path):
    report = check_model(save(build(opsets=(("", 13),)), tmp_path / "o13.onnx"))
    assert [c.name for c in report.failed] == ["opset"]
    assert "ai.onnx 13" in detail(report, "opset")


def _conv(strides=(1, 1)):
    return helper.make_node(
        "Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1], strides=list(strides), name="c"
    )


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([_conv(), helper.make_node("Relu", ["conv"], ["saliency_map"])], "outside [0,1]"),
        (
            [_conv((2, 2)), helper.make_node("Sigmoid", ["conv"], ["saliency_map"])],
            "output shape [1, 1, 32, 32], expected [1, 1, 64, 64]",
        ),
        ([_conv(), helper.make_node("Div", ["conv", "zero"], ["saliency_map"])], "non-finite"),
    ],
)
def test_bad_outputs_fail_the_run_lines(tmp_path, nodes, message):
    inits = [*build().graph.initializer, numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    allow = tmp_path / "ops.txt"
    allow.write_text("Conv\nRelu\nSigmoid\nDiv\n")
    report = check_model(save(build(nodes, inits), tmp_path / "bad.onnx"), allowlist_path=allow)
    assert message in detail(report, "run 64x64")
    assert not report.passed


def test_ir_version_newer_than_old_runtimes_read_fails(tmp_path):
    model = build()
    model.ir_version = 10  # onnxruntime 1.15 refuses it (seen in scripts/runtime_matrix.py)
    report = check_model(save(model, tmp_path / "ir10.onnx"))
    assert [c.name for c in report.failed] == ["ir_version"]


def test_unfolded_batchnorm_is_named(tmp_path):
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="c"),
        helper.make_node("BatchNormalization", ["conv", "g", "b", "b", "v"], ["bn"], name="bn1"),
        helper.make_node("Sigmoid", ["bn"], ["saliency_map"], name="s"),
    ]
    ones = np.ones(1, np.float32)
    inits = [
        *build().graph.initializer,
        numpy_helper.from_array(ones, "g"),
        numpy_helper.from_array(ones, "v"),
    ]
    report = check_model(save(build(nodes, inits), tmp_path / "bn.onnx"))
    assert {c.name for c in report.failed} == {"allowlist", "no_batchnorm"}
    assert "bn1" in detail(report, "no_batchnorm")


def test_disallowed_node_inside_if_branch_fails(tmp_path):
    def branch(op, name):
        return helper.make_graph(
            [helper.make_node(op, ["conv"], [f"{name}_out"], name=f"{name}_op")],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 1, "H", "W"])],
        )

    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="c"),
        helper.make_node(
            "If",
            ["cond"],
            ["saliency_map"],
            name="gate",
            then_branch=branch("Sigmoid", "then"),
            else_branch=branch("HardSigmoid", "else"),
        ),
    ]
    inits = [*build().graph.initializer, numpy_helper.from_array(np.array(True), "cond")]
    allow = tmp_path / "ops.txt"
    allow.write_text("Conv\nSigmoid\nIf\n")
    report = check_model(save(build(nodes, inits), tmp_path / "if.onnx"), allowlist_path=allow)
    assert [c.name for c in report.failed] == ["allowlist"]
    assert "gate/else_branch/else_op" in detail(report, "allowlist")
    assert "HardSigmoid" in detail(report, "allowlist")


def test_size_cap_option(tiny):
    result = cli(str(tiny), "--max-mb", "0.0001")
    assert result.exit_code == 1
    assert "FAIL file_size:" in result.stdout


def test_golden_file_next_to_model_is_verified(tiny):
    golden = write_golden(tiny)
    assert verdicts(check_model(tiny))["golden"]
    doc = json.loads(golden.read_text())
    doc["cases"][0]["sample"][0][2] += 0.01
    golden.write_text(json.dumps(doc))
    report = check_model(tiny)
    assert [c.name for c in report.failed] == ["golden"]
    assert "64x64" in detail(report, "golden")
    golden.write_text("{not json")
    assert "not valid JSON" in detail(check_model(tiny), "golden")


def test_unreadable_allowlist_is_a_usage_error(tiny, tmp_path):
    result = cli(str(tiny), "--allowlist", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "nope.txt" in result.stderr


def _unreadable(folder: Path, kind: str) -> Path:
    if kind == "folder":
        return folder
    path = folder / f"{kind}.onnx"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello, not protobuf")
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "cannot read"),
        ("folder", "is a folder"),
        ("empty", "empty file"),
        ("text", "not an ONNX model"),
    ],
)
def test_unreadable_files_exit_two_with_one_line(tmp_path, kind, message):
    path = _unreadable(tmp_path, kind)
    result = cli(str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    with pytest.raises(UserInputError):
        check_model(path, sizes=((8, 8),))


def test_fuzzed_files_never_crash(tmp_path, tiny):
    data = tiny.read_bytes()
    rng = np.random.default_rng(1234)
    blobs = [rng.bytes(n) for n in (1, 7, 64, 1000)]
    blobs += [data[: len(data) // 2], data[:-3], data[:40]]
    for _ in range(40):
        mutated = bytearray(data)
        for pos in rng.integers(0, len(data), size=4):
            mutated[pos] = int(rng.integers(0, 256))
        blobs.append(bytes(mutated))
    codes = set()
    for i, blob in enumerate(blobs):
        path = tmp_path / f"fuzz{i}.onnx"
        path.write_bytes(blob)
        try:
            report = check_model(path, sizes=((7, 13), (16, 16)))
        except UserInputError as exc:
            assert str(exc).startswith(str(path))
            codes.add(2)
        else:
            codes.add(0 if report.passed else 1)
    assert 2 in codes  # random bytes are rejected as unreadable


def test_anchor_v1_fails_and_names_the_sizes_that_break():
    if not ANCHOR_V1.exists():
        pytest.skip(f"needs {ANCHOR_V1} (the reference anchor model); see README 'Test data'")
    result = cli(str(ANCHOR_V1))
    assert result.exit_code == 1
    out = result.stdout
    for size in ("1x1", "7x13", "321x481", "540x960"):
        assert f"FAIL run {size}: onnxruntime error" in out
    for size in ("64x64", "256x256", "1080x1920"):
        assert f"PASS run {size}:" in out
    assert "run 7x13, run 321x481, run 540x960" in result.stderr
