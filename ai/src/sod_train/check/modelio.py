"""The one way every command opens an ONNX model: read, validate, then load it in onnxruntime.

A model is read as a regular file of at most 2 GiB (:mod:`sod_train.guards`), parsed
without external data, and checked for everything that would otherwise crash, hang or
exhaust memory later: names that are not UTF-8, weights stored outside the file, an
input that is not one float tensor [N,3,H,W], fixed H or W outside the documented size
range (or 0), an output that is not a float tensor. Only then does onnxruntime load it,
from the bytes already read (never the path again, so no external file is looked up),
and every run goes through :func:`run`, which turns any runtime failure or non-float
output into an error. Each problem is one UserInputError naming the file (exit 2);
``sod-train check`` reports the same findings as FAIL lines instead.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import onnx

from sod_train.check.allowlist import iter_graphs, text
from sod_train.errors import UserInputError, first_line
from sod_train.guards import (
    MAX_MODEL_BYTES,
    MAX_PIXELS,
    MAX_SIDE,
    MAX_THREADS,
    read_bytes,
    stop_after,
)


class ModelTimeout(UserInputError):
    """A run was stopped at its deadline: the model will not finish on any input either."""


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
        more = f" (+{len(bad_names) - 3} more)" if len(bad_names) > 3 else ""
        return ["names that are not valid UTF-8: " + ", ".join(bad_names[:3]) + more]
    external = external_tensors(model)
    if external:
        more = f" (+{len(external) - 3} more)" if len(external) > 3 else ""
        return [
            f"{len(external)} tensor(s) stored outside the file (external data): "
            + ", ".join(external[:3])
            + more
        ]
    return io_problems(model)


_ORT_NODE_ERROR = re.compile(
    r"running (\w+) node\. Name:'([^']*)' Status Message: (?:\S+:\d+ \S+ )?(.*)", re.S
)


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


def ort_message(exc: BaseException) -> str:
    """onnxruntime's message in one line without its boilerplate: ``Op node 'name': reason``.

    The one error policy for every onnxruntime failure: loading, running, describing.
    """
    match = _ORT_NODE_ERROR.search(str(exc))
    if not match:
        return first_line(RuntimeError(_ORT_PREFIX.sub("", str(exc).strip())), 240)
    op, node, reason = match.groups()
    return first_line(RuntimeError(f"{op} node '{node}': {reason}"), 240)


def _session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures are reported by us, once, not by ORT's logger
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise UserInputError(f"threads {threads}: must be 1 to {MAX_THREADS}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def create_session(data: bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session from serialized bytes; UserInputError (no path) if it fails."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # failures are reported by us, once
    options = _session_options(threads)
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises many types (Fail, InvalidGraph, ...)
        raise UserInputError(f"onnxruntime refuses the model ({ort_message(exc)})") from None


def session_io(session: Any) -> tuple[str, list[Any], str]:
    """(input name, input shape, output type) as onnxruntime reports them; UserInputError."""
    try:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        return inputs[0].name, list(inputs[0].shape), outputs[0].type
    except Exception as exc:  # UnicodeDecodeError, IndexError
        raise UserInputError(f"onnxruntime cannot describe the model ({first_line(exc)})") from None


def load_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """Read, validate and load ``path`` in onnxruntime (CPU); UserInputError naming the file.

    ``threads`` None keeps onnxruntime's default (all physical cores).
    """
    data, model = read_model(path)
    return session_for(path, data, model, threads)


def session_for(
    path: str | os.PathLike[str], data: bytes, model: onnx.ModelProto, threads: int | None = None
) -> Any:
    """The session for a model already read by :func:`read_model` (validated first)."""
    problems = model_problems(model)
    if problems:
        raise UserInputError(f"{path}: cannot load the model: {'; '.join(problems)}")
    try:
        session = create_session(data, threads)
        _, shape, out_type = session_io(session)
    except UserInputError as exc:
        raise UserInputError(f"{path}: cannot load the model: {exc}") from None
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise UserInputError(
            f"{path}: cannot load the model: expected one input [1,3,H,W], got {shape}"
        )
    if out_type != "tensor(float)":
        raise UserInputError(
            f"{path}: cannot load the model: output is {out_type}, expected tensor(float)"
        )
    return session


def fixed_input_size(session: Any) -> tuple[int, int] | None:
    """(height, width) if the model's input has fixed spatial dims, else None."""
    _, shape, _ = session_io(session)
    height, width = shape[2:]
    if isinstance(height, int) and isinstance(width, int):
        return height, width
    return None


def run_options() -> Any:
    """Fresh onnxruntime RunOptions (log level quiet), for :func:`deadline`."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4
    return options


def deadline(options: Any, seconds: float | None = None) -> Any:
    """A context that stops a run using ``options`` after ``seconds`` (MAX_RUN_SECONDS)."""
    from sod_train import guards

    limit = guards.MAX_RUN_SECONDS if seconds is None else seconds
    return stop_after(limit, lambda: setattr(options, "terminate", True))


def run(session: Any, x: np.ndarray) -> np.ndarray:
    """The model's first output for ``x`` as float32; UserInputError if the run fails.

    Any onnxruntime failure, and an output that is not a numeric float array (a string
    tensor, say), becomes one line; the caller adds the file name. A run still going
    after MAX_RUN_SECONDS is stopped: ModelTimeout.
    """
    from sod_train import guards

    name, _, _ = session_io(session)
    options = run_options()
    size = f"{x.shape[2]}x{x.shape[3]}"
    with deadline(options) as stopped:
        try:
            out = session.run(None, {name: x}, options)[0]
        except Exception as exc:  # onnxruntime errors, MemoryError, ...
            if stopped.is_set():
                raise ModelTimeout(
                    f"model still running after {guards.MAX_RUN_SECONDS:g} s at {size}; "
                    "stopped (a model that never finishes?)"
                ) from None
            raise UserInputError(f"model failed at {size} ({ort_message(exc)})") from None
    out = np.asarray(out)
    if out.dtype.kind != "f":
        raise UserInputError(f"model output is {out.dtype} data, not float")
    return out.astype(np.float32, copy=False)
