"""The op allowlist: parsing the list file and finding violating nodes, sub-graphs included."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from sod_train.check.allowlist import (
    DEFAULT_ALLOWLIST,
    allowlist_violations,
    iter_nodes,
    load_allowlist,
)
from sod_train.errors import UserInputError

ALLOWED = frozenset({"Conv", "Sigmoid", "Relu"})


def _model(nodes, opsets=(("", 17),)):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], ir_version=8
    )


def _branch(op: str, name: str) -> object:
    return helper.make_graph(
        [helper.make_node(op, ["conv"], [f"{name}_out"], name=f"{name}_node")],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
    )


def test_repo_allowlist_parses_without_comments_and_excludes_resize():
    ops = load_allowlist(DEFAULT_ALLOWLIST)
    assert {"Conv", "ConvTranspose", "Sigmoid"} <= ops
    assert not {"Resize", "Upsample"} & ops
    assert not any(op.startswith("#") or " " in op for op in ops)


def test_load_allowlist_ignores_comments_and_blank_lines(tmp_path):
    path = tmp_path / "ops.txt"
    path.write_text("# header\n\nConv\n  Relu   # inline comment\n#Sigmoid\nConv\n")
    assert load_allowlist(path) == frozenset({"Conv", "Relu"})


@pytest.mark.parametrize("forbidden", ["Resize", "Upsample"])
def test_load_allowlist_rejects_upsampling_ops(tmp_path, forbidden):
    path = tmp_path / "ops.txt"
    path.write_text(f"Conv\n{forbidden}\n")
    with pytest.raises(UserInputError, match=forbidden):
        load_allowlist(path)


def test_load_allowlist_unreadable_or_empty_names_the_file(tmp_path):
    with pytest.raises(UserInputError, match=r"missing\.txt"):
        load_allowlist(tmp_path / "missing.txt")
    with pytest.raises(UserInputError, match="cannot read"):
        load_allowlist(tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(UserInputError, match="no operators"):
        load_allowlist(tmp_path / "empty.txt")


def test_clean_model_has_no_violations_and_explicit_default_domain_is_fine():
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], name="conv"),
        helper.make_node("Sigmoid", ["conv"], ["saliency_map"], domain="ai.onnx"),
    ]
    assert allowlist_violations(_model(nodes), ALLOWED) == []


def test_violation_names_node_op_and_domain_and_unnamed_nodes_by_index():
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], name="conv"),
        helper.make_node("Resize", ["conv", "", "scales"], ["up"], name="up1"),
        helper.make_node("Tanh", ["up"], ["saliency_map"]),
    ]
    lines = allowlist_violations(_model(nodes), ALLOWED)
    assert lines == [
        "node 'up1': Resize in domain ai.onnx (default) is not on the allowlist",
        "node '#2': Tanh in domain ai.onnx (default) is not on the allowlist",
    ]


def test_resize_is_a_violation_even_if_the_caller_allows_it():
    nodes = [helper.make_node("Resize", ["input", "", "s"], ["saliency_map"], name="r")]
    assert len(allowlist_violations(_model(nodes), ALLOWED | {"Resize"})) == 1


def test_custom_domain_node_named_like_an_allowed_op_is_a_violation():
    nodes = [helper.make_node("Conv", ["input", "w"], ["saliency_map"], name="c", domain="com.x")]
    lines = allowlist_violations(_model(nodes, (("", 17), ("com.x", 1))), ALLOWED)
    assert lines == ["node 'c': Conv in domain com.x is not in the default ONNX domain"]


def test_nodes_inside_if_branches_are_checked():
    if_node = helper.make_node(
        "If",
        ["cond"],
        ["saliency_map"],
        name="gate",
        then_branch=_branch("Tanh", "then"),
        else_branch=_branch("Sigmoid", "else"),
    )
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"], name="conv"), if_node]
    lines = allowlist_violations(_model(nodes), ALLOWED | {"If"})
    assert lines == [
        "node 'gate/then_branch/then_node': Tanh in domain ai.onnx (default) "
        "is not on the allowlist"
    ]


def test_graphs_attribute_and_nested_subgraphs_are_walked():
    inner_if = helper.make_node(
        "If",
        ["cond"],
        ["loop_out"],
        name="inner",
        then_branch=_branch("Resize", "deep"),
        else_branch=_branch("Relu", "ok"),
    )
    body = helper.make_graph(
        [inner_if], "body", [], [helper.make_tensor_value_info("loop_out", TensorProto.FLOAT, None)]
    )
    multi = helper.make_node(
        "Multi", ["input"], ["saliency_map"], name="m", domain="com.x", bodies=[body, body]
    )
    model = _model([multi], (("", 17), ("com.x", 1)))
    locations = [loc for loc, _ in iter_nodes(model.graph)]
    assert "m/bodies[1]/inner/then_branch/deep_node" in locations
    lines = allowlist_violations(model, ALLOWED | {"If"})
    assert lines[0].startswith("node 'm': Multi in domain com.x")
    assert [line.split(":")[0] for line in lines[1:]] == [
        "node 'm/bodies[0]/inner/then_branch/deep_node'",
        "node 'm/bodies[1]/inner/then_branch/deep_node'",
    ]
