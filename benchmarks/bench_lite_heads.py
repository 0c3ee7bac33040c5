"""1080p latency of lite-family variants against anchor v1, weights random (speed only).

    python benchmarks/bench_lite_heads.py [--anchor ../shared/anchor/saliency_student_v1.onnx]
                                          [--threads 2] [--runs 6]

Exports each preset's network (BatchNorm folded) with random weights, whose speed does
not depend on the weights, and times it beside the anchor in one interleaved loop
(onnxruntime CPU, 1x3x1088x1920). Prints median ms and the ratio to the anchor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from sod_train.export.export import fold_batchnorm, to_onnx
from sod_train.model.unet import build_model
from sod_train.train.config import TrainConfig

VARIANTS = {
    "release (refine 8)": TrainConfig.from_preset("release").model_config,
    "release-fast (refine 0)": TrainConfig.from_preset("release-fast").model_config,
    "deeper (blocks 0,2,3,2,0)": TrainConfig.from_preset(
        "release", blocks=(0, 2, 3, 2, 0)
    ).model_config,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_anchor = Path(__file__).resolve().parents[2] / "shared/anchor/saliency_student_v1.onnx"
    parser.add_argument("--anchor", type=Path, default=default_anchor)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {}
    for name, config in VARIANTS.items():
        torch.manual_seed(0)
        proto = to_onnx(fold_batchnorm(build_model(config).eval()))
        sessions[name] = ort.InferenceSession(proto.SerializeToString(), options)
    sessions["anchor v1"] = ort.InferenceSession(str(args.anchor), options)
    x = np.random.default_rng(0).standard_normal((1, 3, 1088, 1920), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.runs):  # interleaved, the first round is warm-up
        for name, session in sessions.items():
            t0 = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: x})
            times[name].append(time.perf_counter() - t0)
    anchor = float(np.median(times["anchor v1"][1:]))
    print(f"| network | median ms ({args.threads} threads, 1088x1920) | x anchor v1 |")
    print("| --- | ---: | ---: |")
    for name, values in times.items():
        median = float(np.median(values[1:]))
        print(f"| {name} | {median * 1000:.1f} | {median / anchor:.3f} |")


if __name__ == "__main__":
    main()
