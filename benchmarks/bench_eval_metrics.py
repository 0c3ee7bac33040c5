"""Is metric computation a bottleneck of `sod-train evaluate`? Images/s side by side.

Measures, on the same (prediction, mask) pairs and the same machine, in turns:

* model inference alone: onnxruntime CPU at 256x256 (the anchor v1 student from
  ../shared/anchor when present, else a small built-in conv net), input already decoded
  and normalised;
* our metrics alone (:class:`sod_train.evaluate.sod_metrics.SODMetrics`, all nine metrics);
* PySODMetrics on the same pairs, if installed (the five classes that give the nine).

Usage: python benchmarks/bench_eval_metrics.py [--data DIR] [--limit N] [--threads N]
       [--rounds R] [--default-malloc]
Each stage is timed R times, interleaved, and the best round is reported.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from sod_train.data import pairs
from sod_train.data.imageio import load_rgb, to_model_input
from sod_train.evaluate.evaluate import load_mask, tune_allocator
from sod_train.evaluate.sod_metrics import SODMetrics
from sod_train.runtime.model import SaliencyModel, to_uint8

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANCHOR = SHARED / "anchor" / "saliency_student_v1.onnx"


def builtin_model(path: Path) -> Path:
    """A stand-in when the anchor is absent: 3x3 convs 3->16->16->1, ReLU, Sigmoid."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "input"
    for i, (cin, cout) in enumerate([(3, 16), (16, 16), (16, 1)]):
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.2).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, w.shape, w.ravel().tolist()))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        prev = f"c{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    nodes.append(helper.make_node("Sigmoid", [prev], ["saliency_map"]))
    graph = helper.make_graph(
        nodes,
        "stand_in",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, "H", "W"])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(proto, path)
    return path


def pysod_stage(pairs_: list[tuple[np.ndarray, np.ndarray]]):
    """A callable running PySODMetrics over the pairs, or None if it is not installed."""
    try:
        import py_sod_metrics as psm
    except ImportError:
        return None

    def run() -> None:
        fm = psm.FmeasureV2(
            metric_handlers={
                "fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3),
                "iou": psm.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            }
        )
        classes = (fm, psm.WeightedFmeasure(), psm.Smeasure(), psm.Emeasure(), psm.MAE())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for pred, gt in pairs_:
                for metric in classes:
                    metric.step(pred, gt)
            for metric in classes:
                metric.get_results()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "duts-te-mini")
    parser.add_argument("--limit", type=int, default=100, help="pairs to use (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (best is kept)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's allocator defaults (sod-train evaluate tunes them)",
    )
    args = parser.parse_args()
    tuned = False if args.default_malloc else tune_allocator()

    scan = pairs.scan_pairs(args.data)
    chosen = scan.pairs[: args.limit]
    model = ANCHOR if ANCHOR.is_file() else builtin_model(Path("/tmp/bench_eval_stand_in.onnx"))
    model = SaliencyModel.open(model, args.threads)
    images = [load_rgb(p.image)[0] for p in chosen]
    masks = [load_mask(p.mask) for p in chosen]
    inputs = [to_model_input(rgb, args.size) for rgb in images]
    preds = [to_uint8(model.map(rgb, args.size)) for rgb in images]
    eval_pairs = list(zip(preds, masks, strict=True))
    pixels = sum(m.size for m in masks) / len(masks)

    def model_stage() -> None:
        for x in inputs:
            model.run(x)

    def ours_stage() -> None:
        metrics = SODMetrics()
        for pred, gt in eval_pairs:
            metrics.step(pred, gt)
        metrics.get_results()

    stages = {"model inference": model_stage, "our metrics": ours_stage}
    if (ref := pysod_stage(eval_pairs)) is not None:
        stages["PySODMetrics"] = ref
    best = {key: float("inf") for key in stages}
    for _ in range(args.rounds):
        for key, stage in stages.items():
            start = time.perf_counter()
            stage()
            best[key] = min(best[key], time.perf_counter() - start)

    n = len(eval_pairs)
    rate = {key: n / seconds for key, seconds in best.items()}
    print(f"data: {args.data} ({n} pairs, mean mask {pixels / 1e3:.0f} kpx)")
    print(f"model: {model.name} at {args.size}x{args.size}, onnxruntime threads {args.threads}")
    print(f"allocator tuned as in sod-train evaluate: {'yes' if tuned else 'no'}")
    print(f"{'stage':<18} {'img/s':>8} {'ms/img':>8}")
    for key in stages:
        print(f"{key:<18} {rate[key]:>8.1f} {1000 / rate[key]:>8.2f}")
    ratio = rate["our metrics"] / rate["model inference"]
    print(f"our metrics vs model inference: {ratio:.2f}x the model's images/s")
    if "PySODMetrics" in rate:
        speedup = rate["our metrics"] / rate["PySODMetrics"]
        print(f"our metrics vs PySODMetrics:    {speedup:.2f}x faster")


if __name__ == "__main__":
    main()
