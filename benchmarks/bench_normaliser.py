"""The scale normaliser's own cost, and the order of its reduce steps, side by side.

    python benchmarks/bench_normaliser.py [MODEL.onnx] [--working-size 224] [--runs 20]

MODEL (default: the registry's default model) is the network; if it already records a
working size its inner network is not recovered, so give the plain file (e.g.
model/tiny/sod_tiny_v1.onnx). Three graphs are timed in turns at 720p, 1080p and 4K on
1 and 2 threads (sod_train.evaluate.bench, interleaved):

* ``separable``: what export ships: mean over width (the contiguous axis) on the full
  picture, then over height on the k-times smaller tensor;
* ``joint``: one ReduceMean over both axes of a [1,3,h,k,w,k] view;
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


def joint_variant(wrapped: onnx.ModelProto) -> onnx.ModelProto:
    """``wrapped`` with the two reduce steps replaced by one over axes (3, 5)."""
    model = onnx.ModelProto()
    model.CopyFrom(wrapped)
    nodes = list(model.graph.node)
    drop = {PREFIX + n for n in ("shape_w", "rows", "mean_w", "shape_h", "cols", "mean_h")}
    start = next(i for i, n in enumerate(nodes) if n.name in drop)
    net_input = next(n for n in nodes if n.name == PREFIX + "mean_h").output[0]
    p = PREFIX
    joint = [
        helper.make_node(
            "Concat",
            [p + "batch_channels", p + "h", p + "k", p + "w", p + "k"],
            [p + "shape_6"],
            name=p + "shape_6",
            axis=0,
        ),
        helper.make_node("Reshape", [p + "padded", p + "shape_6"], [p + "blocks6"], name=p + "b6"),
        helper.make_node(
            "ReduceMean", [p + "blocks6"], [net_input], name=p + "mean_hw", axes=[3, 5], keepdims=0
        ),
    ]
    kept = [n for n in nodes if n.name not in drop]
    del model.graph.node[:]
    model.graph.node.extend(kept[:start] + joint + kept[start:])
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
            "separable": Path(tmp) / "separable.onnx",
            "joint": Path(tmp) / "joint.onnx",
            "pool_only": Path(tmp) / "pool_only.onnx",
        }
        onnx.save(shipped, paths["separable"])
        onnx.save(joint_variant(shipped), paths["joint"])
        onnx.save(add_normaliser(identity_network(), args.working_size), paths["pool_only"])
        report = run_bench(list(paths.values()), SIZES, [1, 2], args.runs, args.warmup)
        print(format_table(report))
        print()
        print(f"onnxruntime profile of one 1080p run, 2 threads ({source.name}, separable):")
        for group, ms in profile(paths["separable"], 1080, 1920).items():
            print(f"  {ms:8.2f} ms  {group}")
    print(json.dumps(machine_description()))


if __name__ == "__main__":
    main()
