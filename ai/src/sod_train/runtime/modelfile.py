"""Reading and validating an ONNX file before anything runs it (onnx side, no onnxruntime).

A model is read as a regular file of at most 2 GiB (:mod:`sod_train.guards`), parsed
without external data, and checked for everything that would otherwise crash, hang or
exhaust memory later: names that are not UTF-8, weights stored outside the file, an
input that is not one float tensor [N,3,H,W], fixed H or W outside the documented size
range (or 0), an output that is not a float tensor. :class:`sod_train.runtime.model.
SaliencyModel` runs these before onnxruntime sees the bytes; ``sod-train check``
reports the same findings as FAIL lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import onnx

from sod_train.errors import UserInputError, first_line, joined
from sod_train.guards import (
    MAX_MODEL_BYTES,
    MAX_PIXELS,
    MAX_SIDE,
    read_bytes,
)

# The metadata key under which a graph with the scale normaliser records its working size T
# (sod_train/export/normaliser.py); hosts and `predict` read it to know the graph rescales.
WORKING_SIZE_KEY = "sod_train.working_size"


def text(value: str | bytes) -> str:
    """A proto string field as text: invalid UTF-8 (which protobuf hands back as bytes)
    is decoded with replacement characters, so a corrupt model can still be described."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Yield ``graph`` and every sub-graph nested in its nodes' attributes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graphs(sub)


def recorded_working_size(model: onnx.ModelProto) -> int | None:
    """The working size a wrapped file records in its metadata, or None (not wrapped)."""
    for prop in model.metadata_props:
        if prop.key == WORKING_SIZE_KEY:
            try:
                return int(prop.value)
            except ValueError:
                return None
    return None


def parameter_count(model: onnx.ModelProto) -> int:
    """The model's parameter count: values in its Conv/ConvTranspose weight and bias initializers.

    The one definition the registry, the card and ``bench`` report. After BatchNorm
    folding these are all the network's parameters, counted from the shipped file (so
    it is lower than the trainable count in PyTorch, which includes BatchNorm's); a
    constant such as a Resize scale is not a parameter.
    """
    inits = {init.name: init for init in model.graph.initializer}
    names = {
        name
        for node in model.graph.node
        if node.op_type in ("Conv", "ConvTranspose") and node.domain in ("", "ai.onnx")
        for name in node.input[1:3]
        if name in inits
    }
    return sum(int(np.prod(inits[name].dims, dtype=np.int64)) for name in names)


def read_model(path: str | os.PathLike[str]) -> tuple[bytes, onnx.ModelProto]:
    """Read and parse an ONNX file (no external data); UserInputError if impossible."""
    data = read_bytes(path, "the ONNX model", MAX_MODEL_BYTES)
    if not data:
        raise UserInputError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf DecodeError, RuntimeWarning-as-error, ...
        reason = first_line(exc, 240)
        raise UserInputError(f"{path}: cannot load: not an ONNX model ({reason})") from None
    if not model.HasField("graph"):
        raise UserInputError(f"{path}: cannot load: not an ONNX model (no graph)")
    return data, model


def external_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of the tensors (sub-graphs included) whose data live outside the file."""
    names = []
    for graph in iter_graphs(model.graph):
        tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
        for node in graph.node:
            for attr in node.attribute:
                tensors.extend([attr.t] if attr.HasField("t") else list(attr.tensors))
        names += [
            text(t.name) or "?" for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL
        ]
    return names


def non_utf8_names(model: onnx.ModelProto) -> list[str]:
    """Where the model holds a name that is not valid UTF-8 (onnxruntime cannot return it)."""
    found = [f"opset domain '{text(o.domain)}'" for o in model.opset_import if _bad(o.domain)]
    for graph in iter_graphs(model.graph):
        for kind, values in (
            ("input", graph.input),
            ("output", graph.output),
            ("value_info", graph.value_info),
            ("initializer", graph.initializer),
        ):
            found += [f"{kind} '{text(v.name)}'" for v in values if _bad(v.name)]
        for index, node in enumerate(graph.node):
            fields = [node.name, node.op_type, node.domain, *node.input, *node.output]
            if any(_bad(f) for f in fields):
                found.append(f"node '{text(node.name) or f'#{index}'}'")
    return found


def _bad(value: str | bytes) -> bool:
    return isinstance(value, bytes)


def _tensor_type(value: onnx.ValueInfoProto) -> onnx.TypeProto.Tensor | None:
    return value.type.tensor_type if value.type.HasField("tensor_type") else None


def _type_name(value: onnx.ValueInfoProto) -> str:
    tensor = _tensor_type(value)
    if tensor is None:
        return value.type.WhichOneof("value") or "no type"
    try:  # onnxruntime's spelling: tensor(float), tensor(string), tensor(double), ...
        return f"tensor({onnx.TensorProto.DataType.Name(tensor.elem_type).lower()})"
    except ValueError:
        return f"tensor(elem_type {tensor.elem_type})"


def size_problem(height: int, width: int) -> str | None:
    """Why a model cannot be run at height x width (None if it can): the run-size range."""
    if height < 1 or width < 1:
        return f"{height}x{width} is not a size (both must be >= 1)"
    if max(height, width) > MAX_SIDE or height * width > MAX_PIXELS:
        return (
            f"{height}x{width} is outside the supported range "
            f"(sides <= {MAX_SIDE}, at most {MAX_PIXELS:,} pixels)"
        )
    return None


def io_problems(model: onnx.ModelProto) -> list[str]:
    """Why a command cannot feed the model one float [1,3,H,W] image and read a float map."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(f"'{text(v.name)}'" for v in inputs) or "none"
        return [f"expected one input [1,3,H,W], got {len(inputs)}: {names}"]
    value, problems = inputs[0], []
    tensor = _tensor_type(value)
    name = text(value.name)
    if tensor is None or tensor.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"input '{name}' is {_type_name(value)}, expected tensor(float)")
    dims = list(tensor.shape.dim) if tensor is not None and tensor.HasField("shape") else None
    if dims is not None and len(dims) != 4:
        problems.append(f"input '{name}' has {len(dims)} dimensions, expected 4 [1,3,H,W]")
    elif dims is not None:
        fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if fixed[0] not in (None, 1) or fixed[1] not in (None, 3):
            shown = ",".join("?" if f is None else str(f) for f in fixed)
            problems.append(f"input '{name}' is [{shown}], expected [1,3,H,W]")
        if fixed[2] is not None and fixed[3] is not None:
            problem = size_problem(fixed[2], fixed[3])
            if problem:
                problems.append(f"input '{name}' declares a fixed size, but {problem}")
        elif any(f is not None and f < 1 for f in fixed[2:]):
            problems.append(f"input '{name}' declares a fixed height or width below 1")
    if not graph.output:
        problems.append("the model has no output")
    else:
        out = graph.output[0]
        out_tensor = _tensor_type(out)
        if out_tensor is None or out_tensor.elem_type != onnx.TensorProto.FLOAT:
            problems.append(
                f"output '{text(out.name)}' is {_type_name(out)}, expected tensor(float)"
            )
    return problems


def model_problems(model: onnx.ModelProto) -> list[str]:
    """Everything that keeps a parsed model from being run by predict/evaluate/bench/fold."""
    bad_names = non_utf8_names(model)
    if bad_names:
        return ["names that are not valid UTF-8: " + joined(bad_names, 3, ", ")]
    external = external_tensors(model)
    if external:
        return [
            f"{len(external)} tensor(s) stored outside the file (external data): "
            + joined(external, 3, ", ")
        ]
    return io_problems(model)
