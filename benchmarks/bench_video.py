"""Video throughput: frames per second of ``sod-train video`` on a synthetic 1080p y4m.

    python benchmarks/bench_video.py [MODEL.onnx] [--frames 24] [--size 1920x1080]
                                     [--threads 2] [--json]

Writes a synthetic 4:2:0 8-bit y4m (a bright disc moving over a gradient) to a temp
folder, then times the whole per-frame path as the command runs it, decode included:
read the frame, host YUV -> RGB8 (:mod:`sod_train.video.colour`), the model at native
size (:func:`sod_train.video.run.frame_map`), saliency_mean/var. The first frame is a
warm-up and not counted. Prints decode+colour ms, model ms and fps (target: >= 25 fps at
1080p on 2 threads, once the model normalises its own scale). MODEL defaults to the
registry's default model.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnxruntime

from sod_train.release.registry import default_model_path
from sod_train.video.colour import Planes
from sod_train.video.run import frame_map, load_model, map_stats
from sod_train.video.source import open_video, parse_size
from sod_train.video.y4m import y4m_frame, y4m_header


def write_clip(path: Path, width: int, height: int, frames: int) -> None:
    yy, xx = np.mgrid[0:height, 0:width]
    u = np.full((height // 2, width // 2), 110, np.uint8)
    v = np.full((height // 2, width // 2), 150, np.uint8)
    with open(path, "wb") as fh:
        fh.write(y4m_header(width, height, Fraction(25), "420jpeg"))
        for t in range(frames):
            cx = width // 4 + t * width // (2 * frames)
            disc = (xx - cx) ** 2 + (yy - height // 2) ** 2 < (height // 5) ** 2
            y = np.where(disc, 200, 40 + (xx * 100) // width).astype(np.uint8)
            fh.write(y4m_frame(Planes(y, u, v)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model_path = args.model or default_model_path()
    width, height = parse_size(args.size)
    session = load_model(model_path, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bench.y4m"
        write_clip(clip, width, height, args.frames + 1)
        decode = model = 0.0
        started = None
        with open_video(clip) as video:
            frames = video.frames()
            count = 0
            while True:
                tick = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                decoded = time.perf_counter()
                map_stats(frame_map(session, frame.rgb))
                done = time.perf_counter()
                if started is None:  # warm-up frame
                    started = done
                    continue
                decode += decoded - tick
                model += done - decoded
                count += 1
        total = time.perf_counter() - started
    result = {
        "model": model_path.name,
        "size": f"{width}x{height}",
        "threads": args.threads,
        "frames": count,
        "decode_colour_ms": round(1000 * decode / count, 2),
        "model_and_stats_ms": round(1000 * model / count, 2),
        "fps": round(count / total, 2),
        "machine": platform.processor() or platform.machine(),
        "onnxruntime": onnxruntime.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['model']} {result['size']} y4m 4:2:0, {args.threads} threads, "
            f"{count} frames: decode+colour {result['decode_colour_ms']} ms, model+stats "
            f"{result['model_and_stats_ms']} ms -> {result['fps']} fps"
        )


if __name__ == "__main__":
    main()
