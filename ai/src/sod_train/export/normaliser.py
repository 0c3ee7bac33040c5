"""The scale normaliser: the exported graph brings any frame to the scale it was trained at.

A host runs the model on the native frame (a 1080p frame goes in as [1,3,1080,1920]),
but the network learned objects at a working size T of about 224-256 px. So the graph
itself, from the input's shape alone:

1. takes the short side S = min(H, W) and an integer factor
   ``k = max(1, (S + T // 2) // T)``: S / k is the nearest a whole factor brings S to T
   (within about +-30 % for k >= 2; pictures below 1.5 T run at their own size, k = 1);
2. area-averages the picture by k, as if it were padded to multiples of k by repeating its
   last row and column (so the border rows and columns are covered): rows first, a
   ``Reshape`` to [1,3,h,k,W] and a ``ReduceMean`` over the k rows (whole rows added:
   long contiguous runs, on the full picture), then columns on the k-times smaller
   result, transposed so that its k columns are rows too ([1,3,W,h] -> [1,3,w,k,h]).
   Each padding ``Pad`` sits in an ``If`` that runs it only when H (or W) is not a
   multiple of k: a ``Pad`` copies its whole input, and most video sizes need none
   (1080p and 4K at T = 224). Neither mean is over the innermost axis, where
   onnxruntime's order of adding the k values is its own (up to k = 5 it is in order, as
   the numpy oracle adds them);
3. runs the network at that working size, h x w = ceil(H/k) x ceil(W/k);
4. brings the map back to exactly [1,1,H,W], each working pixel repeated k x k times
   (nearest neighbour): columns first on the transposed small map ([1,1,w,h] ->
   [1,1,w,k,h]), transposed back, then rows ([1,1,h,Wp] -> [1,1,h,k,Wp]); ``Expand`` only
   ever repeats whole rows (one ``memcpy`` each, where repeating single values along the
   innermost axis costs a call per value), and one ``Slice`` crops to H x W.
   ``benchmarks/bench_normaliser.py`` measures this graph against the one before it.

Only ops on the host's C allowlist are added (Shape, Gather, Min, Max, Add, Sub, Mul,
Div, Concat, Unsqueeze, Cast, If, Pad, Reshape, ReduceMean, Transpose, Expand, Slice);
never Resize. The arithmetic on sizes is int64, where ``Div`` of positive numbers is floor
division; ``Cast`` to bool turns a padding amount into the ``If`` condition.

:func:`add_normaliser` wraps any contract-conforming model (an exported network or a
shipped file) and is the one implementation; :func:`reference_map` is the same
computation in numpy, the oracle the tests and the exporter's parity check use (bit for
bit where onnxruntime sums the k values in order: k <= 5, i.e. up to 1080p at T = 224,
on the machines measured; within about 2e-7 otherwise). ``working_size`` 0 means no
normaliser (the old graphs).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sod_train.contract import INPUT_NAME, OUTPUT_NAME
from sod_train.errors import UserInputError
from sod_train.runtime.modelfile import WORKING_SIZE_KEY, recorded_working_size

PREFIX = "normaliser/"
MIN_WORKING_SIZE = 16
MAX_WORKING_SIZE = 4096


def scale_factor(height: int, width: int, working_size: int) -> int:
    """The integer k the graph computes for an H x W input (1 when ``working_size`` is 0)."""
    if working_size <= 0:
        return 1
    return max(1, (min(height, width) + working_size // 2) // working_size)


def working_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) the network runs at for an H x W input: ceil(H / k) x ceil(W / k)."""
    k = scale_factor(height, width, working_size)
    return -(-height // k), -(-width // k)


def check_working_size(working_size: int) -> None:
    """UserInputError unless ``working_size`` is 0 (off) or in the supported range."""
    if working_size != 0 and not MIN_WORKING_SIZE <= working_size <= MAX_WORKING_SIZE:
        raise UserInputError(
            f"--working-size {working_size}: give 0 (no normaliser) or "
            f"{MIN_WORKING_SIZE} to {MAX_WORKING_SIZE}"
        )


def _const(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), PREFIX + name)


def _name(tensor: str) -> str:
    """The graph name of one of the normaliser's tensors (the model's input keeps its own)."""
    return tensor if tensor == INPUT_NAME else PREFIX + tensor


def _node(op: str, inputs: list[str], output: str, **attrs: object) -> onnx.NodeProto:
    """A node named after its one output (names without the prefix: :func:`_name`)."""
    return helper.make_node(
        op, [_name(x) for x in inputs], [_name(output)], name=_name(output), **attrs
    )


def _concat(parts: list[str], out: str) -> onnx.NodeProto:
    """A 1-D int64 shape or pads vector from scalars and constants."""
    return _node("Concat", parts, out, axis=0)


def _block_mean(source: str, blocks: str, pad: str, out: str) -> list[onnx.NodeProto]:
    """Nodes: ``out`` [1,3,l,M], the mean of ``source`` [1,3,L,M] over blocks of k rows.

    ``blocks`` is l = ceil(L / k) and ``pad`` = l k - L. An ``If`` pads by repeating the
    last row only when ``pad`` > 0 (a ``Pad`` copies the whole tensor even when it adds
    nothing). The mean is over axis 3 of [1,3,l,k,M], not the innermost axis.
    """
    shape = out + "_shape"  # [1, 3, l, k, M]: 0 keeps the input's dim, -1 infers M

    def branch(padded: bool) -> onnx.GraphProto:
        name = f"{out}_{'padded' if padded else 'exact'}"
        body, rows = [], source
        if padded:  # pads [0,0,0,0, 0,0,pad,0]: repeat the last row pad times
            body += [
                _concat(["zeros6", pad, "zero"], name + "_pads"),
                _node("Pad", [source, name + "_pads"], name + "_rows", mode="edge"),
            ]
            rows = name + "_rows"
        body += [
            _node("Reshape", [rows, shape], name + "_blocks"),
            _node("ReduceMean", [name + "_blocks"], name + "_mean", axes=[3], keepdims=0),
        ]
        result = helper.make_tensor_value_info(
            _name(name + "_mean"), TensorProto.FLOAT, [1, 3, None, None]
        )
        return helper.make_graph(body, _name(name), [], [result])

    return [
        _concat(["zeros2", blocks, "k", "minus1"], shape),
        _node("Cast", [pad], out + "_needs_pad", to=TensorProto.BOOL),
        _node(
            "If",
            [out + "_needs_pad"],
            out,
            then_branch=branch(True),
            else_branch=branch(False),
        ),
    ]


def _normaliser_nodes(
    working_size: int, net_input: str, net_output: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], int]:
    """(the normaliser's nodes, its initializers, how many of the nodes precede the network).

    ``net_input`` and ``net_output`` name the network's tensors without the prefix.
    """
    inits = [
        _const("T", [working_size]),
        _const("half_T", [working_size // 2]),
        _const("one", [1]),
        _const("zero", [0]),
        _const("minus1", [-1]),
        _const("zeros2", [0, 0]),
        _const("zeros6", [0, 0, 0, 0, 0, 0]),
        _const("i2", [2]),
        _const("i3", [3]),
        _const("batch_one", [1, 1]),
        _const("axis3", [3]),
        _const("axes_23", [2, 3]),
        _const("starts_00", [0, 0]),
    ]
    swap = [0, 1, 3, 2]  # Transpose: exchange the last two axes
    before = [
        # sizes: H, W (1-D int64), short side S and the factor k
        _node("Shape", [INPUT_NAME], "shape"),
        _node("Gather", ["shape", "i2"], "H", axis=0),
        _node("Gather", ["shape", "i3"], "W", axis=0),
        _node("Min", ["H", "W"], "S"),
        _node("Add", ["S", "half_T"], "S_round"),
        _node("Div", ["S_round", "T"], "k_raw"),
        _node("Max", ["k_raw", "one"], "k"),
        # working size h = ceil(H / k), w = ceil(W / k), the padded Hp = h k, Wp = w k,
        # and how many rows and columns the padding repeats
        _node("Add", ["H", "k"], "H_k"),
        _node("Sub", ["H_k", "one"], "H_k1"),
        _node("Div", ["H_k1", "k"], "h"),
        _node("Add", ["W", "k"], "W_k"),
        _node("Sub", ["W_k", "one"], "W_k1"),
        _node("Div", ["W_k1", "k"], "w"),
        _node("Mul", ["h", "k"], "Hp"),
        _node("Mul", ["w", "k"], "Wp"),
        _node("Sub", ["Hp", "H"], "pad_h"),
        _node("Sub", ["Wp", "W"], "pad_w"),
        # area average: rows on the full picture, [1,3,H,W] -> [1,3,h,W] (whole rows added:
        # long contiguous runs), ...
        *_block_mean(INPUT_NAME, "h", "pad_h", "mean_h"),
        # ... then columns on the k-times smaller result, as rows of its transpose:
        # [1,3,W,h] -> [1,3,w,h] -> [1,3,h,w]
        _node("Transpose", ["mean_h"], "mean_h_t", perm=swap),
        *_block_mean("mean_h_t", "w", "pad_w", "pooled_t"),
        _node("Transpose", ["pooled_t"], net_input, perm=swap),
    ]
    after = [
        # nearest-neighbour upsampling by k, whole rows at a time: columns on the transposed
        # map, [1,1,w,h] -> [1,1,w,1,h] -> [1,1,w,k,h] -> [1,1,Wp,h], ...
        _node("Transpose", [net_output], "map_t", perm=swap),
        _node("Unsqueeze", ["map_t", "axis3"], "map_t5"),
        _concat(["batch_one", "w", "k", "h"], "shape_cols"),
        _node("Expand", ["map_t5", "shape_cols"], "cols_up"),
        _concat(["batch_one", "Wp", "h"], "shape_wide_t"),
        _node("Reshape", ["cols_up", "shape_wide_t"], "map_wide_t"),
        # ... then rows: [1,1,h,Wp] -> [1,1,h,1,Wp] -> [1,1,h,k,Wp] -> [1,1,Hp,Wp]
        _node("Transpose", ["map_wide_t"], "map_wide", perm=swap),
        _node("Unsqueeze", ["map_wide", "axis3"], "map_wide5"),
        _concat(["batch_one", "h", "k", "Wp"], "shape_rows"),
        _node("Expand", ["map_wide5", "shape_rows"], "rows_up"),
        _concat(["batch_one", "Hp", "Wp"], "shape_full"),
        _node("Reshape", ["rows_up", "shape_full"], "map_padded"),
        # crop the padding away: exactly [1,1,H,W]
        _concat(["H", "W"], "ends"),
        helper.make_node(
            "Slice",
            [_name(x) for x in ("map_padded", "starts_00", "ends", "axes_23")],
            [OUTPUT_NAME],
            name=PREFIX + "crop",
        ),
    ]
    return before + after, inits, len(before)


def add_normaliser(model: onnx.ModelProto, working_size: int) -> onnx.ModelProto:
    """A copy of ``model`` whose graph normalises its own working scale to ``working_size``.

    ``model`` must follow the host contract (one input ``input`` [1,3,H,W], one output
    ``saliency_map`` [1,1,H,W]); a model that already has a normaliser is refused, and
    ``working_size`` 0 returns an unchanged copy. The result records T in its metadata
    (``sod_train.working_size``). Deterministic: the same model and T give the same bytes.
    """
    check_working_size(working_size)
    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    if working_size == 0:
        return wrapped
    if recorded_working_size(model) is not None:
        raise UserInputError("the model already normalises its scale (it records a working size)")
    graph = wrapped.graph
    inputs = [v.name for v in graph.input if v.name not in {i.name for i in graph.initializer}]
    outputs = [v.name for v in graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise UserInputError(
            f"the model's inputs {inputs} and outputs {outputs} are not the contract's "
            f"['{INPUT_NAME}'] -> ['{OUTPUT_NAME}']"
        )
    if any(node.name.startswith(PREFIX) for node in graph.node):
        raise UserInputError(f"the model already has nodes named {PREFIX}*")
    net_in, net_out = "working_input", "working_map"
    rename = {INPUT_NAME: _name(net_in), OUTPUT_NAME: _name(net_out)}
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        node.output[:] = [rename.get(name, name) for name in node.output]
    # The network's inner shapes were inferred for H x W; at h x w they would lie.
    del graph.value_info[:]
    nodes, inits, split = _normaliser_nodes(working_size, net_in, net_out)
    network = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes[:split] + network + nodes[split:])
    graph.initializer.extend(inits)
    wrapped.metadata_props.append(
        onnx.StringStringEntryProto(key=WORKING_SIZE_KEY, value=str(working_size))
    )
    onnx.checker.check_model(wrapped)
    return wrapped


def reference_map(
    network: Callable[[np.ndarray], np.ndarray], x: np.ndarray, working_size: int
) -> np.ndarray:
    """What the wrapped graph computes for ``x`` [1,3,H,W], in numpy (the tests' oracle).

    ``network`` maps a [1,3,h,w] float32 array to its [1,1,h,w] map.
    """
    _, _, height, width = x.shape
    k = scale_factor(height, width, working_size)
    h, w = working_shape(height, width, working_size)
    padded = np.pad(x, ((0, 0), (0, 0), (0, h * k - height), (0, w * k - width)), mode="edge")
    pooled = padded.reshape(1, 3, h, k, w * k).mean(axis=3, dtype=np.float32)
    pooled = pooled.reshape(1, 3, h, w, k).mean(axis=4, dtype=np.float32)
    out = np.asarray(network(pooled.astype(np.float32)))
    full = np.repeat(np.repeat(out, k, axis=2), k, axis=3)
    return full[:, :, :height, :width]
