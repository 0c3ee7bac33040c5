"""The scale normaliser: the exported graph brings any frame to the scale it was trained at.

A host runs the model on the native frame (a 1080p frame goes in as [1,3,1080,1920]),
but the network learned objects at a working size T of about 224-256 px. So the graph
itself, from the input's shape alone:

1. takes the short side S = min(H, W) and an integer factor
   ``k = max(1, (S + T // 2) // T)``: S / k is the nearest a whole factor brings S to T
   (within about +-30 % for k >= 2; pictures below 1.5 T run at their own size, k = 1);
2. pads the picture to multiples of k by repeating its last row and column (``Pad``
   mode ``edge``), so the border rows and columns are covered, and area-averages it
   by k: a ``Reshape`` + ``ReduceMean`` over height first (adding k whole rows: long
   contiguous runs, vectorised, on the full picture), then over width (a mean of k
   neighbours, on a k-times smaller tensor). Measured the cheaper order
   (``benchmarks/bench_normaliser.py``);
3. runs the network at that working size, h x w = ceil(H/k) x ceil(W/k);
4. brings the map back to exactly [1,1,H,W]: each working pixel repeated k x k times
   (``Unsqueeze`` + ``Expand`` + ``Reshape``, i.e. nearest neighbour), then ``Slice``
   to H x W.

Only ops on the host's C allowlist are added (Shape, Gather, Min, Max, Add, Sub, Mul,
Div, Concat, Unsqueeze, Pad, Reshape, ReduceMean, Expand, Slice); never Resize. The
arithmetic on sizes is int64, where ``Div`` of positive numbers is floor division.

:func:`add_normaliser` wraps any contract-conforming model (an exported network or a
shipped file) and is the one implementation; :func:`reference_map` is the same
computation in numpy, the oracle the tests and the exporter's parity check use.
``working_size`` 0 means no normaliser (the old graphs).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

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


def _normaliser_nodes(
    working_size: int, net_input: str, net_output: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], int]:
    """(the normaliser's nodes, its initializers, how many of the nodes precede the network)."""
    p = PREFIX
    inits = [
        _const("T", [working_size]),
        _const("half_T", [working_size // 2]),
        _const("one", [1]),
        _const("zeros6", [0, 0, 0, 0, 0, 0]),
        _const("i2", [2]),
        _const("i3", [3]),
        _const("batch_channels", [1, 3]),
        _const("batch_one", [1, 1]),
        _const("axes_35", [3, 5]),
        _const("axes_23", [2, 3]),
        _const("starts_00", [0, 0]),
    ]
    n = helper.make_node

    def concat(parts: list[str], out: str) -> onnx.NodeProto:
        """A 1-D int64 shape or pads vector from scalars and constants."""
        return n("Concat", parts, [out], name=out, axis=0)

    before = [
        # sizes: H, W (1-D int64), short side S and the factor k
        n("Shape", [INPUT_NAME], [p + "shape"], name=p + "shape"),
        n("Gather", [p + "shape", p + "i2"], [p + "H"], name=p + "H", axis=0),
        n("Gather", [p + "shape", p + "i3"], [p + "W"], name=p + "W", axis=0),
        n("Min", [p + "H", p + "W"], [p + "S"], name=p + "S"),
        n("Add", [p + "S", p + "half_T"], [p + "S_round"], name=p + "S_round"),
        n("Div", [p + "S_round", p + "T"], [p + "k_raw"], name=p + "k_raw"),
        n("Max", [p + "k_raw", p + "one"], [p + "k"], name=p + "k"),
        # working size h = ceil(H / k), w = ceil(W / k), and the padded Hp = h k, Wp = w k
        n("Add", [p + "H", p + "k"], [p + "H_k"], name=p + "H_k"),
        n("Sub", [p + "H_k", p + "one"], [p + "H_k1"], name=p + "H_k1"),
        n("Div", [p + "H_k1", p + "k"], [p + "h"], name=p + "h"),
        n("Add", [p + "W", p + "k"], [p + "W_k"], name=p + "W_k"),
        n("Sub", [p + "W_k", p + "one"], [p + "W_k1"], name=p + "W_k1"),
        n("Div", [p + "W_k1", p + "k"], [p + "w"], name=p + "w"),
        n("Mul", [p + "h", p + "k"], [p + "Hp"], name=p + "Hp"),
        n("Mul", [p + "w", p + "k"], [p + "Wp"], name=p + "Wp"),
        n("Sub", [p + "Hp", p + "H"], [p + "pad_h"], name=p + "pad_h"),
        n("Sub", [p + "Wp", p + "W"], [p + "pad_w"], name=p + "pad_w"),
        # pad bottom and right by repeating the edge: [0,0,0,0, 0,0,pad_h,pad_w]
        concat([p + "zeros6", p + "pad_h", p + "pad_w"], p + "pads"),
        n("Pad", [INPUT_NAME, p + "pads"], [p + "padded"], name=p + "pad", mode="edge"),
        # area average over height first: [1,3,h,k,Wp] -> mean of axis 3, which adds whole
        # rows (long contiguous runs, vectorised), on the full picture ...
        concat([p + "batch_channels", p + "h", p + "k", p + "Wp"], p + "shape_h"),
        n("Reshape", [p + "padded", p + "shape_h"], [p + "rows"], name=p + "rows"),
        n("ReduceMean", [p + "rows"], [p + "mean_h"], name=p + "mean_h", axes=[3], keepdims=0),
        # ... then over width on the k-times smaller tensor: [1,3,h,w,k] -> mean of axis 4
        concat([p + "batch_channels", p + "h", p + "w", p + "k"], p + "shape_w"),
        n("Reshape", [p + "mean_h", p + "shape_w"], [p + "cols"], name=p + "cols"),
        n("ReduceMean", [p + "cols"], [net_input], name=p + "mean_w", axes=[4], keepdims=0),
    ]
    after = [
        # nearest-neighbour upsampling by k: [1,1,h,w] -> [1,1,h,1,w,1] -> [1,1,h,k,w,k]
        n("Unsqueeze", [net_output, p + "axes_35"], [p + "map6"], name=p + "map6"),
        concat([p + "batch_one", p + "h", p + "k", p + "w", p + "k"], p + "shape_up"),
        n("Expand", [p + "map6", p + "shape_up"], [p + "blocks"], name=p + "blocks"),
        concat([p + "batch_one", p + "Hp", p + "Wp"], p + "shape_full"),
        n("Reshape", [p + "blocks", p + "shape_full"], [p + "map_padded"], name=p + "map_padded"),
        # crop the padding away: exactly [1,1,H,W]
        concat([p + "H", p + "W"], p + "ends"),
        n(
            "Slice",
            [p + "map_padded", p + "starts_00", p + "ends", p + "axes_23"],
            [OUTPUT_NAME],
            name=p + "crop",
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
    net_in, net_out = PREFIX + "working_input", PREFIX + "working_map"
    rename = {INPUT_NAME: net_in, OUTPUT_NAME: net_out}
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
