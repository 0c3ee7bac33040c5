"""The scale normaliser's own cost, and the order of its reduce steps, side by side.

    python benchmarks/bench_normaliser.py [MODEL.onnx] [--working-size 224] [--runs 20]

MODEL (default: the registry's default model) is the network; if it already records a
working size its inner network is not recovered, so give the plain file (e.g.
model/tiny/sod_tiny_v1.onnx). Three graphs are timed in turns at 720p, 1080p and 4K on
1 and 2 threads (sod_train.evaluate.bench, interleaved):

* ``shipped``: what export ships: mean over height (adding whole rows) on the full
  picture, then over width on the k-times smaller tensor;
* ``width-first``: the other order; ``joint``: one ReduceMean over both axes of a
  [1,3,h,k,w,k] view;
* ``pool only``: the normaliser around an identity network, to see what the pooling
  and upsampling cost on their own.

Then onnxruntime's profiler splits one 1080p run of the shipped graph by node, to show
where the time goes. Paste the output into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from sod_train.evaluate.bench import format_table, machine_description, run_bench
from sod_train.export.normaliser import PREFIX, add_normaliser
from sod_train.release.registry import default_model_path

SIZES = ["720p", "1080p", "4k"]


POOL_NODES = ("shape_h", "rows", "mean_h", "shape_w", "cols", "mean_w")


def pooling_variant(wrapped: onnx.ModelProto, order: str) -> onnx.ModelProto:
    """``wrapped`` with its two reduce steps (height, then width) replaced by ``order``:
    ``joint`` (one ReduceMean over axes 3 and 5 of [1,3,h,k,w,k]) or ``width-first``."""
    model = onnx.ModelProto()
    model.CopyFrom(wrapped)
    nodes = list(model.graph.node)
    drop = {PREFIX + name for name in POOL_NODES}
    start = next(i for i, node in enumerate(nodes) if node.name in drop)
    net_input = next(node for node in nodes if node.name == PREFIX + "mean_w").output[0]
    p, n = PREFIX, helper.make_node

    def concat(parts: list[str], out: str) -> onnx.NodeProto:
        return n("Concat", [p + x for x in parts], [p + out], name=p + out, axis=0)

    if order == "joint":
        pool = [
            concat(["batch_channels", "h", "k", "w", "k"], "shape6"),
            n("Reshape", [p + "padded", p + "shape6"], [p + "b6"], name=p + "b6"),
            n("ReduceMean", [p + "b6"], [net_input], name=p + "mean_hw", axes=[3, 5], keepdims=0),
        ]
    else:  # width first: [1,3,Hp,w,k] mean of axis 4, then [1,3,h,k,w] mean of axis 3
        pool = [
            concat(["batch_channels", "Hp", "w", "k"], "sw"),
            n("Reshape", [p + "padded", p + "sw"], [p + "r"], name=p + "r"),
            n("ReduceMean", [p + "r"], [p + "mw"], name=p + "mw", axes=[4], keepdims=0),
            concat(["batch_channels", "h", "k", "w"], "sh"),
            n("Reshape", [p + "mw", p + "sh"], [p + "c"], name=p + "c"),
            n("ReduceMean", [p + "c"], [net_input], name=p + "mh", axes=[3], keepdims=0),
        ]
    kept = [node for node in nodes if node.name not in drop]
    del model.graph.node[:]
    model.graph.node.extend(kept[:start] + pool + kept[start:])
    onnx.checker.check_model(model)
    return model


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


def profile(path: Path, height: int, width: int, threads: int = 2) -> dict[str, float]:
    """Milliseconds per node group for one run at height x width (onnxruntime profiler)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as runtime/
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((1, 3, height, width), dtype=np.float32)
        for _ in range(3):
            session.run(None, {"input": x})
        trace = json.loads(Path(session.end_profiling()).read_text())
    groups: dict[str, float] = defaultdict(float)
    for event in trace:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        group = "normaliser: " + name[len(PREFIX) :] if name.startswith(PREFIX) else "network"
        groups[group] += event["dur"] / 1000.0 / 3
    return dict(sorted(groups.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--working-size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    source = args.model or default_model_path()
    plain = onnx.load(source)
    shipped = add_normaliser(plain, args.working_size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "shipped": Path(tmp) / "shipped.onnx",
            "width_first": Path(tmp) / "width_first.onnx",
            "joint": Path(tmp) / "joint.onnx",
            "pool_only": Path(tmp) / "pool_only.onnx",
        }
        onnx.save(shipped, paths["shipped"])
        onnx.save(pooling_variant(shipped, "width-first"), paths["width_first"])
        onnx.save(pooling_variant(shipped, "joint"), paths["joint"])
        onnx.save(add_normaliser(identity_network(), args.working_size), paths["pool_only"])
        report = run_bench(list(paths.values()), SIZES, [1, 2], args.runs, args.warmup)
        print(format_table(report))
        print()
        print(f"onnxruntime profile of one 1080p run, 2 threads ({source.name}, shipped):")
        for group, ms in profile(paths["shipped"], 1080, 1920).items():
            print(f"  {ms:8.2f} ms  {group}")
    print(json.dumps(machine_description()))


if __name__ == "__main__":
    main()
