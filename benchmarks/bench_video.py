"""Video throughput: frames per second of ``sod-train video`` on a synthetic 1080p y4m.

    python benchmarks/bench_video.py [MODEL.onnx ...] [--frames 48] [--size 1920x1080]
                                     [--threads 2] [--max-seconds 30] [--json]
                                     [--interleave N [--baseline OTHER/ai/src]]

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
  (:func:`~sod_train.video.run.map_stats`) and ``stability`` (the flicker figures' step).

The model is warmed up on one frame first. A slow model (one that does not normalise its
own scale runs a 1080p frame at native size) gets fewer frames, about ``--max-seconds``
a loop, at least 3. Target: >= 25 fps at 1080p on 2 threads, with a model that normalises
its own scale. MODEL defaults to the registry's default model. Prints the machine
(:func:`sod_train.machine.describe`) and the load average, since timings on a shared
machine are only comparable within one run.

``--interleave N`` compares instead, on a loaded machine: each MODEL (and, with
``--baseline SRC``, each MODEL run by another checkout's ``ai/src``, e.g. a ``git worktree``
of the commit before a change) gets a worker process that loads it once; then N times, in
turns (the order reversed every other turn), each worker runs the command's loop on
``--frames`` frames, then runs each stage alone on as many frames, timed by CPU time
(``stability`` is :class:`~sod_train.video.stability.Stability`). Each row gives the
medians of fps, of the CPU ms a frame (every thread of the worker) and of each stage's CPU
ms, and their ratios to the first row. The CPU ratios are the robust ones where other
jobs hold the cores (a preempted run's fps says little).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
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
from sod_train.video.stability import Stability
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


def stage_times(model, clip: Path, frames: int, clock=time.perf_counter) -> dict[str, float]:
    """Median ms of each stage run alone (after one warm-up frame), by ``clock`` (wall, or
    ``time.process_time``: CPU time of every thread)."""
    keys = ("read", "convert", "model", "stats", "stability")
    times: dict[str, list[float]] = {key: [] for key in keys}
    buffer = None
    stability = Stability()
    with Y4MReader(clip) as reader:
        frames_iter = iter(reader)
        for n in range(frames + 1):
            tick = clock()
            item = next(frames_iter, None)
            if item is None:
                break
            planes = item[2]
            read = clock()
            buffer = planes_input(planes, "host", "limited", buffer)
            converted = clock()
            saliency = input_map(model, buffer)
            ran = clock()
            mean, _ = map_stats(saliency)
            measured = clock()
            stability.step(saliency, mean)
            done = clock()
            if n:
                marks = (tick, read, converted, ran, measured, done)
                for key, start, end in zip(keys, marks, marks[1:], strict=False):
                    times[key].append(end - start)
    return {key: round(1000 * statistics.median(v), 2) for key, v in times.items()}


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


def worker(model_path: Path, clip: Path, threads: int) -> None:
    """Serve ``run FRAMES PREFETCH`` lines on stdin with one JSON line each (``--worker``)."""
    model = load_model(model_path, threads)
    with Y4MReader(clip) as reader:  # warm-up on one frame
        input_map(model, planes_input(next(iter(reader))[2], "host", "limited"))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        _, frames, prefetch = line.split()
        fps, cpu_ms = loop_fps(model, model_path, clip, int(frames), int(prefetch))
        stages = stage_times(model, clip, int(frames), clock=time.process_time)
        print(json.dumps({"fps": fps, "cpu_ms_per_frame": cpu_ms, "stage_cpu_ms": stages}))
        sys.stdout.flush()


def interleaved(args: argparse.Namespace, models: list[Path], clip: Path) -> list[dict]:
    """One worker per (model, code); ``--interleave`` turns of ``--frames`` frames each."""
    here = Path(__file__).resolve()
    current = str(here.parents[1] / "ai" / "src")
    arms = [(path, "current", current) for path in models]
    if args.baseline:
        arms += [(path, "baseline", str(Path(args.baseline).resolve())) for path in models]
    workers = []
    for path, _code, src in arms:
        env = {**os.environ, "PYTHONPATH": src}
        command = [sys.executable, str(here), "--worker", str(path), "--clip", str(clip)]
        command += ["--threads", str(args.threads)]
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        workers.append(proc)
    for proc in workers:  # all loaded before any timing
        json.loads(proc.stdout.readline())
    samples: list[list[dict]] = [[] for _ in arms]
    for turn in range(args.interleave):
        order = range(len(arms)) if turn % 2 == 0 else reversed(range(len(arms)))
        for i in order:
            workers[i].stdin.write(f"run {args.frames} {args.prefetch}\n")
            workers[i].stdin.flush()
            samples[i].append(json.loads(workers[i].stdout.readline()))
    for proc in workers:
        proc.stdin.close()
        proc.wait()
    rows = []
    for (path, code, _), runs in zip(arms, samples, strict=True):
        rows.append(
            {
                "model": path.name,
                "code": code,
                "fps": statistics.median(r["fps"] for r in runs),
                "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in runs),
                "stage_cpu_ms": {
                    key: statistics.median(r["stage_cpu_ms"][key] for r in runs)
                    for key in runs[0]["stage_cpu_ms"]
                },
                "runs": runs,
            }
        )
    return rows


def print_interleaved(report: dict) -> None:
    rows = report["models"]
    base = rows[0]
    print(
        f"{report['size']}, {report['threads']} threads, {report['frames']} frames a turn, "
        f"{report['turns']} turns interleaved, {report['machine']}, load average "
        f"{report['load_average_before'][0]} -> {report['load_average_after'][0]}"
    )
    stages = list(base["stage_cpu_ms"])
    print(
        "| model | code | fps | x first | CPU ms/frame | x first | "
        + " | ".join(f"{key} CPU ms" for key in stages)
        + " | stages x first |"
    )
    print("|---|---|" + "---:|" * (5 + len(stages)))
    for row in rows:
        total, base_total = sum(row["stage_cpu_ms"].values()), sum(base["stage_cpu_ms"].values())
        print(
            f"| {row['model']} | {row['code']} | {row['fps']:.2f} | "
            f"{row['fps'] / base['fps']:.3f} | {row['cpu_ms_per_frame']:.1f} | "
            f"{row['cpu_ms_per_frame'] / base['cpu_ms_per_frame']:.3f} | "
            + " | ".join(f"{row['stage_cpu_ms'][key]:.2f}" for key in stages)
            + f" | {total / base_total:.3f} |"
        )


def previous_map_stats(model, x: np.ndarray) -> tuple[float, float]:
    """Model, output checks and statistics as commit 5356e14 ran them (for ``--frame-ab``):
    a full-size finiteness mask, a clipped copy of the map, ``np.mean`` and ``np.var``."""
    out = model.run(x)
    if out.size - np.count_nonzero(np.isfinite(out)):
        raise ValueError("model output not finite")
    saliency = np.clip(out[0, 0], 0.0, 1.0)
    return float(np.mean(saliency, dtype=np.float64)), float(np.var(saliency, dtype=np.float64))


def current_map_stats(model, x: np.ndarray) -> tuple[float, float]:
    """The same with the current code (:func:`input_map`, :func:`map_stats`)."""
    return map_stats(input_map(model, x))


def frame_ab(args: argparse.Namespace, clip: Path) -> dict:
    """``--frame-ab OLD NEW``: per frame, in one process, in turns (the order reversed
    every other turn), the previous file with the previous output checks and statistics
    against the current file with the current ones; median CPU ms of each part."""
    old_path, new_path = args.frame_ab
    arms = {
        "previous": (load_model(old_path, args.threads), previous_map_stats),
        "current": (load_model(new_path, args.threads), current_map_stats),
    }
    with Y4MReader(clip) as reader:
        frames = [item[2] for item in reader]
    buffer = planes_input(frames[0], "host", "limited")
    cpu: dict[str, dict[str, list[float]]] = {n: {"convert": [], "model+stats": []} for n in arms}
    for turn in range(args.reps + 1):  # turn 0 warms up
        planes = frames[turn % len(frames)]
        for name in list(arms) if turn % 2 == 0 else list(arms)[::-1]:
            model, run = arms[name]
            start = time.process_time()
            planes_input(planes, "host", "limited", buffer)
            converted = time.process_time()
            run(model, buffer)
            done = time.process_time()
            if turn:
                cpu[name]["convert"].append(converted - start)
                cpu[name]["model+stats"].append(done - converted)
    return {
        name: {key: 1000 * statistics.median(v) for key, v in times.items()}
        for name, times in cpu.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--interleave", type=int, default=0, metavar="N")
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's ai/src")
    parser.add_argument("--prefetch", type=int, default=1, help="with --interleave")
    parser.add_argument("--frame-ab", nargs=2, type=Path, metavar=("OLD", "NEW"))
    parser.add_argument("--reps", type=int, default=20, help="with --frame-ab")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.clip, args.threads)
        return
    models = args.models or [default_model_path()]
    width, height = parse_size(args.size)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bench.y4m"
        write_clip(clip, width, height, args.frames)
        if args.frame_ab:
            rows = frame_ab(args, clip)
            print(
                f"{width}x{height} y4m 4:2:0, {args.threads} threads, {args.reps} turns, "
                f"{describe()}, load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}"
            )
            print("| arm | model | convert CPU ms | model+stats CPU ms | x previous |")
            print("|---|---|---:|---:|---:|")
            for (name, row), path in zip(rows.items(), args.frame_ab, strict=True):
                ratio = row["model+stats"] / rows["previous"]["model+stats"]
                print(
                    f"| {name} | {path.name} | {row['convert']:.2f} | "
                    f"{row['model+stats']:.2f} | {ratio:.3f} |"
                )
            return
        if args.interleave:
            report = {
                "size": f"{width}x{height} y4m 8-bit 4:2:0",
                "threads": args.threads,
                "frames": args.frames,
                "turns": args.interleave,
                "prefetch": args.prefetch,
                "machine": describe(),
                "load_average_before": [round(x, 2) for x in load_before],
                "models": interleaved(args, models, clip),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                print_interleaved(report)
            return
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
    print(
        "| model | frames | fps | fps serial | CPU ms/frame | read | convert | model | stats "
        "| stability |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        s = row["stage_ms"]
        print(
            f"| {row['model']} | {row['frames']} | {row['fps']} | {row['fps_serial']} | "
            f"{row['cpu_ms_per_frame']} | "
            f"{s['read']} | {s['convert']} | {s['model']} | {s['stats']} | {s['stability']} |"
        )


if __name__ == "__main__":
    main()
