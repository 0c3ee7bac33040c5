"""Video throughput: frames per second of ``sod-train video`` on a synthetic 1080p y4m.

    python benchmarks/bench_video.py [MODEL.onnx ...] [--frames 48] [--size 1920x1080]
                                     [--threads 2] [--max-seconds 30] [--json]

Writes a synthetic 8-bit 4:2:0 y4m (a bright disc moving over a textured gradient,
chroma varying) to a temp folder once, then for each MODEL, side by side in one run:

* ``fps``: the command's own loop (:func:`sod_train.video.pipeline.process_video`, CSV
  to memory), decode included: read, host YUV -> model input straight from the planes,
  the model at native size on ``--threads`` onnxruntime threads, saliency_mean/var and
  the stability figures, with reading and converting overlapped with the model (the
  default prefetch), and ``fps_serial`` the same loop with no overlap (prefetch 0);
* ``cpu_ms_per_frame``: CPU time of the whole process (every thread) per frame of the
  overlapped loop; on a shared machine the robust figure: 2 idle cores give at most
  2000 / cpu_ms_per_frame fps;
* the median milliseconds (wall) of each stage run alone, frame by frame: ``read`` the y4m
  frame, ``convert`` (:func:`sod_train.video.run.planes_input`), ``model``
  (:func:`~sod_train.video.run.input_map`: onnxruntime and the output checks), ``stats``
  (:func:`~sod_train.video.run.map_stats`).

The model is warmed up on one frame first. A slow model (one that does not normalise its
own scale runs a 1080p frame at native size) gets fewer frames, about ``--max-seconds``
a loop, at least 3. Target: >= 25 fps at 1080p on 2 threads, with a model that normalises
its own scale. MODEL defaults to the registry's default model. Prints the machine
(:func:`sod_train.machine.describe`) and the load average, since timings on a shared
machine are only comparable within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnxruntime

from sod_train.machine import describe
from sod_train.release.registry import default_model_path
from sod_train.video.colour import Planes
from sod_train.video.pipeline import Outputs, process_video
from sod_train.video.run import input_map, load_model, map_stats, planes_input
from sod_train.video.source import open_video, parse_size
from sod_train.video.y4m import Y4MReader, y4m_frame, y4m_header


def write_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A moving bright disc on a textured gradient, chroma varying across the frame."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = np.mgrid[0 : height // 2, 0 : width // 2]
    texture = ((xx * 7 + yy * 13) % 23).astype(np.int32)
    with open(path, "wb") as fh:
        fh.write(y4m_header(width, height, Fraction(25), "420jpeg"))
        for t in range(frames):
            centre = width // 4 + t * width // (2 * frames)
            disc = (xx - centre) ** 2 + (yy - height // 2) ** 2 < (height // 5) ** 2
            y = np.where(disc, 200 - texture, 40 + (xx * 100) // width + texture)
            u = 110 + (cx * 40) // (width // 2) + (t % 5)
            v = 150 - (cy * 40) // (height // 2)
            planes = Planes(y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8))
            fh.write(y4m_frame(planes))


def stage_times(model, clip: Path, frames: int) -> dict[str, float]:
    """Median ms of each stage run alone (after one warm-up frame)."""
    times: dict[str, list[float]] = {"read": [], "convert": [], "model": [], "stats": []}
    buffer = None
    with Y4MReader(clip) as reader:
        frames_iter = iter(reader)
        for n in range(frames + 1):
            tick = time.perf_counter()
            item = next(frames_iter, None)
            if item is None:
                break
            planes = item[2]
            read = time.perf_counter()
            buffer = planes_input(planes, "host", "limited", buffer)
            converted = time.perf_counter()
            saliency = input_map(model, buffer)
            ran = time.perf_counter()
            map_stats(saliency)
            done = time.perf_counter()
            if n:
                spans = (read - tick, converted - read, ran - converted, done - ran)
                for key, seconds in zip(times, spans, strict=True):
                    times[key].append(seconds)
    return {key: round(1000 * statistics.median(v), 1) for key, v in times.items()}


def loop_fps(
    model, model_path: Path, clip: Path, frames: int, prefetch: int
) -> tuple[float, float]:
    """(frames per second, CPU ms per frame of the whole process, every thread)."""
    cpu = time.process_time()
    with open_video(clip) as video:
        result = process_video(
            video,
            model,
            model_path,
            Outputs(csv_stream=io.StringIO()),
            max_frames=frames,
            quiet=True,
            prefetch=prefetch,
        )
    cpu_ms = 1000 * (time.process_time() - cpu) / max(1, len(result.rows))
    return round(result.fps, 2), round(cpu_ms, 1)


def bench_model(model_path: Path, clip: Path, args: argparse.Namespace, size) -> dict:
    model = load_model(model_path, args.threads)
    warm = np.zeros((1, 3, size[1], size[0]), np.float32)
    tick = time.perf_counter()
    input_map(model, warm)
    per_frame = time.perf_counter() - tick
    frames = max(3, min(args.frames, int(args.max_seconds / max(per_frame, 1e-3))))
    fps, cpu_ms = loop_fps(model, model_path, clip, frames, prefetch=1)
    serial, _ = loop_fps(model, model_path, clip, frames, prefetch=0)
    stages = stage_times(model, clip, min(frames, 12))
    return {
        "model": model_path.name,
        "working_size": model.working_size,
        "frames": frames,
        "fps": fps,
        "fps_serial": serial,
        "cpu_ms_per_frame": cpu_ms,
        "stage_ms": stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = args.models or [default_model_path()]
    width, height = parse_size(args.size)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bench.y4m"
        write_clip(clip, width, height, args.frames)
        rows = [bench_model(path, clip, args, (width, height)) for path in models]
    report = {
        "size": f"{width}x{height} y4m 8-bit 4:2:0",
        "threads": args.threads,
        "machine": describe(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "models": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['size']}, {args.threads} threads, {report['machine']}, onnxruntime "
        f"{report['onnxruntime']}, load average {report['load_average_before'][0]} -> "
        f"{report['load_average_after'][0]}"
    )
    print("| model | frames | fps | fps serial | CPU ms/frame | read | convert | model | stats |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        s = row["stage_ms"]
        print(
            f"| {row['model']} | {row['frames']} | {row['fps']} | {row['fps_serial']} | "
            f"{row['cpu_ms_per_frame']} | "
            f"{s['read']} | {s['convert']} | {s['model']} | {s['stats']} |"
        )


if __name__ == "__main__":
    main()
