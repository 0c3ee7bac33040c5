"""Hostile inputs, class 9: NaN maps, bad URL schemes, unwritable outputs, hidden ops.

A NaN or infinite map is a warning and exit 1 (no black PNG); a URL that is not http(s)
and an output folder that cannot be written are usage errors (exit 2) found before any
work; ``check`` names every disallowed op, however deep and however many.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hostile import build_model, cli, data_folder, nan_model, png_bytes, refused, save
from onnx import TensorProto, helper, numpy_helper


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes((16, 12)))
    return path


def _inf_model():
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Abs", ["m"], ["a"]),
        helper.make_node("Div", ["a", "zero"], ["saliency_map"]),  # |x| / 0: +inf (or NaN)
    ]
    return build_model(nodes, [zero])


@pytest.mark.parametrize("make", [nan_model, _inf_model], ids=["nan", "inf"])
def test_predict_warns_on_a_non_finite_map_and_exits_one(tmp_path, picture, make):
    model = save(make(), tmp_path / "m.onnx")
    out = tmp_path / "o"
    result = cli("predict", picture, "--model", model, "--out", out, "--quiet")
    assert result.exit_code == 1, result.output
    assert f"skipped: {picture}: model output has" in result.stderr
    assert "NaN or infinite" in result.stderr
    assert not (out / "a.png.mask.png").exists()  # no silently black PNG


def test_evaluate_refuses_a_nan_map(tmp_path):
    model = save(nan_model(), tmp_path / "m.onnx")
    result = cli("evaluate", model, "--data", data_folder(tmp_path / "D"), "--quiet")
    refused(result, 2, model, "not finite")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/DUTS-TR.zip",
        "file:///etc/passwd",
        "gopher://x/",
        "http://",
        "https:///nohost.zip",
        "javascript:alert(1)",
        "example.com/DUTS-TR.zip",
        "",
    ],
)
def test_fetch_refuses_a_bad_url_scheme_before_any_work(tmp_path, url):
    dest = tmp_path / "d"
    result = cli("fetch", "duts-tr", "--dest", dest, "--url", url, "--quiet")
    assert result.exit_code == 2, result.output
    assert "--url" in result.stderr and "http" in result.stderr
    assert not dest.exists()


def test_predict_unwritable_out_is_exit_2_before_any_work(tmp_path, picture):
    if not Path("/proc/sys").is_dir() or os.access("/proc/sys", os.W_OK):
        pytest.skip(
            "needs /proc/sys unwritable by this user (not root): run the tests as an ordinary user"
        )
    model = save(build_model(), tmp_path / "m.onnx")
    out = Path("/proc/sys/sod-train-out")
    result = cli("predict", picture, "--model", model, "--out", out, "--quiet")
    refused(result, 2, out, "not writable")


def test_build_cache_and_fetch_unwritable_out_are_exit_2(tmp_path):
    if not Path("/proc/sys").is_dir() or os.access("/proc/sys", os.W_OK):
        pytest.skip(
            "needs /proc/sys unwritable by this user (not root): run the tests as an ordinary user"
        )
    out = Path("/proc/sys/sod-train-out")
    data = data_folder(tmp_path / "D")
    refused(cli("build-cache", "--duts-root", data, "--out", out, "--quiet"), 2, out)
    refused(cli("fetch", "duts-tr", "--dest", out, "--quiet"), 2, out, "not writable")


def _branch(ops: list[str], name: str) -> object:
    nodes, prev = [], "conv"
    for i, op in enumerate(ops):
        out = f"{name}_out" if i == len(ops) - 1 else f"{name}_{i}"
        nodes.append(helper.make_node(op, [prev], [out], name=f"{name}_{op}_{i}"))
        prev = out
    return helper.make_graph(
        nodes,
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 1, "H", "W"])],
    )


def test_check_names_every_disallowed_op_however_many_and_however_deep(tmp_path):
    inner = helper.make_node(
        "If",
        ["cond"],
        ["inner_out"],
        name="inner",
        then_branch=_branch(["Sigmoid", "Resize"], "deep"),
        else_branch=_branch(["Sigmoid"], "fine"),
    )
    outer_then = helper.make_graph(
        [inner],
        "outer_then",
        [],
        [helper.make_tensor_value_info("inner_out", TensorProto.FLOAT, [1, 1, "H", "W"])],
    )
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="c"),
        helper.make_node("Erf", ["conv"], ["e1"], name="erf1"),
        helper.make_node("Erf", ["e1"], ["e2"], name="erf2"),
        helper.make_node("Erf", ["e2"], ["e3"], name="erf3"),
        helper.make_node("HardSwish", ["e3"], ["h"], name="hs"),
        helper.make_node(
            "If",
            ["cond"],
            ["saliency_map"],
            name="outer",
            then_branch=outer_then,
            else_branch=_branch(["Sigmoid"], "plain"),
        ),
    ]
    inits = [*build_model().graph.initializer, numpy_helper.from_array(np.array(True), "cond")]
    allow = tmp_path / "ops.txt"
    allow.write_text("Conv\nSigmoid\nIf\n")
    model = save(build_model(nodes, inits), tmp_path / "nested.onnx")
    result = cli("check", model, "--allowlist", allow)
    assert result.exit_code == 1
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("FAIL allowlist:")]
    for op in ("Erf", "HardSwish", "Resize"):
        assert f": {op} in domain" in line, line
    assert "outer/then_branch/inner/then_branch/deep_Resize_1" in line
    assert "3 nodes 'erf1', 'erf2', 'erf3'" in line
