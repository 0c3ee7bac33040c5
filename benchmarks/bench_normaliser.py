"""The scale normaliser's own cost: the shipped graph against the one before it, interleaved.

    python benchmarks/bench_normaliser.py [MODEL.onnx] [--working-size 224] [--reps 15]
                                          [--sizes 720p,1080p,1081x1923,4k] [--threads 1,2]

MODEL (default: ``model/tiny/sod_tiny_v1.onnx``) is the plain network (a file that already
records a working size is refused: its inner network is not recovered). Four graphs:

* ``shipped``: :func:`sod_train.export.normaliser.add_normaliser` as it is now: each
  ``Pad`` inside an ``If`` (skipped when H or W is a multiple of k), both means over a
  non-innermost axis (columns on the transposed, k-times smaller tensor), and the
  upsampling repeating whole rows (columns on the transposed map);
* ``previous``: the graph before (commit 5356e14): one ``Pad`` always (a copy of the
  frame even when it adds nothing), the column mean over the innermost axis, one
  ``Expand`` of [1,1,h,1,w,1] to [1,1,h,k,w,k] (a ``memcpy`` call per value);
* ``pool_only`` / ``pool_only_previous``: each normaliser around a nearly free network
  (the mean over channels), to see the pooling and upsampling on their own.

For each size and thread count the graphs run in turns, ``--reps`` times, the order
reversed every other turn, and each run's process CPU time (every thread) and wall time
are kept; the table gives medians and the ratio to ``previous``. On a shared machine the
CPU times are the robust figure (a preempted run's wall time says nothing); compare only
ratios from one run. Then onnxruntime's profiler splits one 1080p run of each full graph
by node (wall time per node, so only meaningful on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sod_train.contract import INPUT_NAME, OUTPUT_NAME
from sod_train.evaluate.bench import machine_description, machine_line, parse_size
from sod_train.export.normaliser import PREFIX, add_normaliser
from sod_train.paths import REPO_ROOT
from sod_train.runtime.modelfile import WORKING_SIZE_KEY
from sod_train.runtime.session import create_session

SIZES = "720p,1080p,1081x1923,4k"  # parse_size: HxW


def previous_normaliser(model: onnx.ModelProto, working_size: int) -> onnx.ModelProto:
    """``model`` wrapped in the normaliser as commit 5356e14 built it (for comparison only)."""
    p, n = PREFIX, helper.make_node
    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    graph = wrapped.graph
    rename = {INPUT_NAME: p + "working_input", OUTPUT_NAME: p + "working_map"}
    for node in graph.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    del graph.value_info[:]

    def const(name: str, values: list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, dtype=np.int64), p + name)

    def node(op: str, inputs: list[str], out: str, **attrs: object) -> onnx.NodeProto:
        ins = [x if x == INPUT_NAME else p + x for x in inputs]
        outs = [OUTPUT_NAME if out == OUTPUT_NAME else p + out]
        return n(op, ins, outs, name=p + out, **attrs)

    def concat(parts: list[str], out: str) -> onnx.NodeProto:
        return node("Concat", parts, out, axis=0)

    sizes = [
        node("Shape", [INPUT_NAME], "shape"),
        node("Gather", ["shape", "i2"], "H", axis=0),
        node("Gather", ["shape", "i3"], "W", axis=0),
        node("Min", ["H", "W"], "S"),
        node("Add", ["S", "half_T"], "S_round"),
        node("Div", ["S_round", "T"], "k_raw"),
        node("Max", ["k_raw", "one"], "k"),
        node("Add", ["H", "k"], "H_k"),
        node("Sub", ["H_k", "one"], "H_k1"),
        node("Div", ["H_k1", "k"], "h"),
        node("Add", ["W", "k"], "W_k"),
        node("Sub", ["W_k", "one"], "W_k1"),
        node("Div", ["W_k1", "k"], "w"),
        node("Mul", ["h", "k"], "Hp"),
        node("Mul", ["w", "k"], "Wp"),
        node("Sub", ["Hp", "H"], "pad_h"),
        node("Sub", ["Wp", "W"], "pad_w"),
    ]
    pool = [
        concat(["zeros6", "pad_h", "pad_w"], "pads"),
        node("Pad", [INPUT_NAME, "pads"], "padded", mode="edge"),
        concat(["batch_channels", "h", "k", "Wp"], "shape_h"),
        node("Reshape", ["padded", "shape_h"], "rows"),
        node("ReduceMean", ["rows"], "mean_h", axes=[3], keepdims=0),
        concat(["batch_channels", "h", "w", "k"], "shape_w"),
        node("Reshape", ["mean_h", "shape_w"], "cols"),
        node("ReduceMean", ["cols"], "working_input", axes=[4], keepdims=0),
    ]
    up = [
        node("Unsqueeze", ["working_map", "axes_35"], "map6"),
        concat(["batch_one", "h", "k", "w", "k"], "shape_up"),
        node("Expand", ["map6", "shape_up"], "blocks"),
        concat(["batch_one", "Hp", "Wp"], "shape_full"),
        node("Reshape", ["blocks", "shape_full"], "map_padded"),
        concat(["H", "W"], "ends"),
        node("Slice", ["map_padded", "starts_00", "ends", "axes_23"], OUTPUT_NAME),
    ]
    network = list(graph.node)
    del graph.node[:]
    graph.node.extend(sizes + pool + network + up)
    graph.initializer.extend(
        const(name, values)
        for name, values in [
            ("T", [working_size]),
            ("half_T", [working_size // 2]),
            ("one", [1]),
            ("zeros6", [0] * 6),
            ("i2", [2]),
            ("i3", [3]),
            ("batch_channels", [1, 3]),
            ("batch_one", [1, 1]),
            ("axes_35", [3, 5]),
            ("axes_23", [2, 3]),
            ("starts_00", [0, 0]),
        ]
    )
    wrapped.metadata_props.append(
        onnx.StringStringEntryProto(key=WORKING_SIZE_KEY, value=str(working_size))
    )
    onnx.checker.check_model(wrapped)
    return wrapped


def identity_network() -> onnx.ModelProto:
    """input [1,3,H,W] -> the mean over channels as the map: nearly free, any size."""
    node = helper.make_node("ReduceMean", ["input"], ["saliency_map"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node],
        "identity",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", onnx.TensorProto.FLOAT, [1, 1, "H", "W"])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def interleaved(
    graphs: dict[str, bytes], height: int, width: int, threads: int, reps: int
) -> dict[str, dict[str, float]]:
    """Median CPU and wall ms per graph, the graphs run in turns (order reversed each turn)."""
    sessions = {name: create_session(data, threads) for name, data in graphs.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, height, width), dtype=np.float32)
    outputs = {}
    for name, session in sessions.items():  # warm-up, and the outputs must agree
        outputs[name] = session.run(None, {INPUT_NAME: x})[0]
    cpu: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    names = list(sessions)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            c, t = time.process_time(), time.perf_counter()
            sessions[name].run(None, {INPUT_NAME: x})
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - t)
    return {
        name: {
            "cpu_ms": 1000 * statistics.median(cpu[name]),
            "wall_ms": 1000 * statistics.median(wall[name]),
            "max_abs_diff_vs_first": float(np.abs(outputs[name] - outputs[names[0]]).max()),
        }
        for name in names
    }


def profile(data: bytes, height: int, width: int, threads: int = 2) -> dict[str, float]:
    """Milliseconds per node group for one run at height x width (onnxruntime profiler)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = threads
    options.log_severity_level = 4
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as runtime/
    runs = 5
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((1, 3, height, width), dtype=np.float32)
        for _ in range(runs):
            session.run(None, {INPUT_NAME: x})
        trace = json.loads(Path(session.end_profiling()).read_text())
    groups: dict[str, float] = defaultdict(float)
    for event in trace:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        if event.get("args", {}).get("op_name") == "If":  # its branch's nodes are counted
            continue
        name = event["name"][: -len("_kernel_time")]
        # onnxruntime names the fused head convolution after its output, working_map
        inner = name.startswith(PREFIX) and not name.startswith(PREFIX + "working_map")
        group = "normaliser: " + name[len(PREFIX) :] if inner else "network"
        groups[group] += event["dur"] / 1000.0 / runs
    return dict(sorted(groups.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--working-size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--sizes", default=SIZES)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    source = args.model or REPO_ROOT / "model/tiny/sod_tiny_v1.onnx"
    plain = onnx.load(source)
    ws = args.working_size
    graphs = {
        "previous": previous_normaliser(plain, ws).SerializeToString(),
        "shipped": add_normaliser(plain, ws).SerializeToString(),
        "pool_only_previous": previous_normaliser(identity_network(), ws).SerializeToString(),
        "pool_only": add_normaliser(identity_network(), ws).SerializeToString(),
    }
    print(f"{source.name}, working size {ws}; {machine_line(machine_description())}")
    print("| size | threads | graph | CPU ms | x previous | wall ms | x previous |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        height, width = parse_size(size)
        for threads in (int(t) for t in args.threads.split(",")):
            full = {k: v for k, v in graphs.items() if not k.startswith("pool_only")}
            pools = {k: v for k, v in graphs.items() if k.startswith("pool_only")}
            for group in (full, pools):
                rows = interleaved(group, height, width, threads, args.reps)
                base = next(iter(rows.values()))
                for name, row in rows.items():
                    print(
                        f"| {width}x{height} | {threads} | {name} | {row['cpu_ms']:.2f} | "
                        f"{row['cpu_ms'] / base['cpu_ms']:.3f} | {row['wall_ms']:.2f} | "
                        f"{row['wall_ms'] / base['wall_ms']:.3f} |"
                    )
                    if name == "shipped" and row["max_abs_diff_vs_first"] > 1e-5:
                        print(f"  (differs from previous by {row['max_abs_diff_vs_first']:.2e})")
    if not args.no_profile:
        for name in ("previous", "shipped"):
            print(f"\nonnxruntime profile of a 1080p run, 2 threads ({name}; wall ms per node):")
            for group, ms in profile(graphs[name], 1080, 1920).items():
                if ms >= 0.05:
                    print(f"  {ms:8.2f} ms  {group}")


if __name__ == "__main__":
    main()
