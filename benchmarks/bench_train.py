"""Training throughput: images/s of the trainer's step and where the step's time goes.

    python benchmarks/bench_train.py [--device auto|cpu|cuda] [--steps 20] [--warmup 3]
                                     [--batch 32] [--crop 256] [--pairs 256] [--size 300x400]
                                     [--amp] [--channels-last] [--host-data] [--json]

A synthetic DUTS-layout set (sod_train.data.synthetic, ``--pairs`` images of about
``--size``) is written to a temp folder and decoded once, as the trainer does, so this
runs anywhere without DUTS. Each timed step is cut into three stages, measured side by
side in the same steps, with the device synchronised after each one:

* ``assemble``: ``TrainAugment.batches`` (random crop, flip, stack) on the device that
  holds the decoded set (the GPU on CUDA, as in the trainer, unless ``--host-data``);
* ``copy``: host -> device copy, ImageNet normalisation, channels_last if asked;
* ``compute``: forward, BCE + Dice loss, backward and the Adam step.

The synchronisations serialise work that the trainer lets overlap on a GPU, so the sum
of the stages is an upper bound of a real step there. ``--device auto`` times the CPU,
then CUDA when there is one. Paste the printed table into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sod_train.data.augment import TrainAugment
from sod_train.data.decode import TRAIN_MARGIN, DecodedSet, decode_pairs, normalize
from sod_train.data.pairs import scan_pairs
from sod_train.data.synthetic import make_synthetic_duts
from sod_train.model.losses import saliency_loss
from sod_train.model.unet import build_model
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.loop import fast_path, seed_everything, train

STAGES = ("assemble", "copy", "compute")


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def endless_batches(
    data: DecodedSet, batch: int, crop: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The trainer's batches, epoch after epoch (a fresh shuffle each), full batches only."""
    for _ in itertools.count():
        order = torch.randperm(len(data), generator=generator).tolist()
        for images, masks in TrainAugment(crop).batches(data, order, batch, generator):
            if len(images) == batch:
                yield images, masks


def time_device(
    decoded: DecodedSet, device: torch.device, args: argparse.Namespace
) -> dict[str, list[float]]:
    """Run warm-up + timed training steps on ``device``; seconds per stage per timed step."""
    seed_everything(0, device)
    data = decoded if args.host_data or device.type == "cpu" else decoded.to(device)
    model = build_model(TrainConfig.from_preset(args.net).model_config).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step_logits = model.logits
    if getattr(args, "compile", False):
        step_logits = torch.compile(model.logits)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)
    batches = endless_batches(data, args.batch, args.crop, torch.Generator().manual_seed(0))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for step in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        images, masks = next(batches)
        sync()
        t1 = time.perf_counter()
        x = normalize(images.to(device, non_blocking=True))
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = masks.to(device, non_blocking=True)
        sync()
        t2 = time.perf_counter()
        with amp:
            logits = step_logits(x)
        loss = saliency_loss(logits, target, "bce+dice")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        t3 = time.perf_counter()
        if step >= args.warmup:
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                times[stage].append(seconds)
    return times


def summarise(times: dict[str, list[float]], batch: int) -> dict[str, dict[str, float]]:
    """Median and p90 milliseconds per stage and per whole step, and images/s at the median."""
    per_step = np.sum([times[stage] for stage in STAGES], axis=0)
    rows = {}
    for name, values in [*times.items(), ("step", list(per_step))]:
        ms = np.asarray(values) * 1000
        median = float(np.median(ms))
        rows[name] = {
            "median_ms": round(median, 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "img_per_s": round(batch / (median / 1000), 1),
        }
    return rows


def format_report(report: dict) -> str:
    """Markdown: one table of stages per device, then the data / compute ratios."""
    lines = [
        "| device | stage | median ms/step | p90 ms | share of step | img/s at this rate |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    ratios = []
    for run in report["runs"]:
        rows, step = run["stages"], run["stages"]["step"]["median_ms"]
        for name in (*STAGES, "step"):
            row = rows[name]
            share = row["median_ms"] / step if step else float("nan")
            lines.append(
                f"| {run['device']} | {name} | {row['median_ms']:.2f} | {row['p90_ms']:.2f} | "
                f"{share:.2f} | {row['img_per_s']:.1f} |"
            )
        data = rows["assemble"]["median_ms"] + rows["copy"]["median_ms"]
        compute = rows["compute"]["median_ms"]
        ratios.append(
            f"- {run['device']}: data / compute = {data / compute:.3f} "
            f"(assemble {rows['assemble']['median_ms'] / compute:.3f}, "
            f"copy {rows['copy']['median_ms'] / compute:.3f}); "
            f"{rows['step']['img_per_s']:.1f} img/s per step"
        )
    return "\n".join(lines) + "\n\nratios (medians, same steps):\n" + "\n".join(ratios)


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 300x400, got '{text}'") from None
    return height, width


def bare_step_rate(decoded: DecodedSet, net: str, crop: int, old: bool, steps: int) -> float:
    """img/s of the bare step (assemble + copy + compute medians) on the CPU.

    ``old`` is the path the trainer had before the CPU fast path: NCHW fp32. The new
    default is channels_last with bf16 autocast where the CPU has native bf16.
    """
    amp = False if old else fast_path(Runtime(), torch.device("cpu"))[0]
    args = argparse.Namespace(
        net=net, crop=crop, batch=32, steps=steps, warmup=2, amp=amp,
        channels_last=not old, host_data=True, compile=False,
    )  # fmt: skip
    return summarise(time_device(decoded, torch.device("cpu"), args), 32)["step"]["img_per_s"]


def compare(args: argparse.Namespace) -> int:
    """Old path vs new default, side by side per net and crop, interleaved twice."""
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_duts(Path(tmp) / "DUTS-TR", n=args.pairs, size=args.size)
        pairs = scan_pairs(root, check_headers=False).paired
        big, _ = decode_pairs(pairs, max(args.crops) + TRAIN_MARGIN, None, 0, "", True)
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"bf16 autocast in the new default: {fast_path(Runtime(), torch.device('cpu'))[0]}\n")
    print("| net | crop | old path (NCHW fp32) img/s | new default img/s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for net in args.nets:
        for crop in args.crops:
            decoded = big.rescaled(crop + TRAIN_MARGIN)
            old, new = [], []
            for _ in range(2):  # interleaved: old, new, old, new
                old.append(bare_step_rate(decoded, net, crop, True, args.steps))
                new.append(bare_step_rate(decoded, net, crop, False, args.steps))
            o, n = float(np.median(old)), float(np.median(new))
            print(f"| {net} | {crop} | {o:.1f} | {n:.1f} | {n / o:.2f}x |", flush=True)
    return 0


def epoch(args: argparse.Namespace) -> int:
    """The real ``train()`` on a DUTS-TR-sized synthetic set: where an epoch's time goes."""
    cfg = TrainConfig.from_preset(args.net, epochs=args.epochs, crop_size=args.crop)
    if cfg.final_epochs:  # measure one crop: the progressive phase is a separate row
        cfg = TrainConfig.from_preset(
            args.net, epochs=args.epochs, crop_size=args.crop, final_epochs=0, final_crop=0
        )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_synthetic_duts(Path(tmp) / "DUTS-TR", n=args.pairs, size=args.size)
        generate_s = time.perf_counter() - t0
        rt = Runtime(device="cpu", checkpoint_dir=Path(tmp) / "ck", workers=args.workers)
        result = train(root, cfg, rt)
    n_train = result.data["train"]
    rows = []
    for h in result.history:
        t = h["timing"]
        parts = {
            "compute (forward + backward + step)": t["compute_s"],
            "batch assembly": t["assemble_s"],
            "progress display + loop": t["progress_s"],
            "validation": t["validate_s"],
            "checkpointing": t["checkpoint_s"],
        }
        rows.append((h["epoch"], h["seconds"], parts))
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"preset {args.net}, crop {cfg.crop_size}, {n_train} train / {result.data['val']} val "
        f"synthetic pairs ~{args.size[0]}x{args.size[1]} (generated in {generate_s:.0f} s), "
        f"amp {result.environment['amp']}, threads {result.environment['threads']}"
    )
    decode_s = result.data["decode_s"]
    print(f"decode once at start ({args.workers} workers): {decode_s:.1f} s\n")
    print("| epoch | part | seconds | share of epoch |")
    print("| ---: | --- | ---: | ---: |")
    for number, seconds, parts in rows:
        for name, value in parts.items():
            print(f"| {number} | {name} | {value:.1f} | {value / seconds:.1%} |")
        print(f"| {number} | whole epoch | {seconds:.1f} | 100% |")
        if number == 1:
            share = decode_s / seconds
            print(f"| 1 | decode (once, not in the epoch) | {decode_s:.1f} | {share:.1%} |")
    last = rows[-1]
    end_to_end = n_train / last[1]
    bare = bare_step_rate(_bare_set(args), cfg.preset, cfg.crop_size, False, args.steps)
    print(
        f"\nend to end (last epoch, validation and checkpoint included): {end_to_end:.1f} img/s; "
        f"bare step in the same run: {bare:.1f} img/s; ratio {end_to_end / bare:.2f}"
    )
    return 0


def _bare_set(args: argparse.Namespace) -> DecodedSet:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_duts(Path(tmp) / "DUTS-TR", n=256, size=args.size)
        pairs = scan_pairs(root, check_headers=False).paired
        return decode_pairs(pairs, args.crop + TRAIN_MARGIN, None, 0, "", True)[0]


def compile_gain(args: argparse.Namespace) -> int:
    """torch.compile (inductor) on the training step: compile time and steady-state gain."""
    decoded = _bare_set(args)
    amp = fast_path(Runtime(), torch.device("cpu"))[0]
    common = {"net": args.net, "crop": args.crop, "batch": args.batch, "amp": amp,
              "channels_last": True, "host_data": True}  # fmt: skip
    t0 = time.perf_counter()
    first = argparse.Namespace(**common, steps=1, warmup=0, compile=True)
    time_device(decoded, torch.device("cpu"), first)  # includes compilation
    compile_s = time.perf_counter() - t0
    rates = {}
    for compiled in (False, True, False, True):
        ns = argparse.Namespace(**common, steps=args.steps, warmup=2, compile=compiled)
        rate = summarise(time_device(decoded, torch.device("cpu"), ns), args.batch)["step"]
        rates.setdefault(compiled, []).append(rate["img_per_s"])
    eager, comp = float(np.median(rates[False])), float(np.median(rates[True]))
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"net {args.net}, crop {args.crop}, batch {args.batch}, amp {amp}, channels_last")
    print(f"first compiled step (compilation included): {compile_s:.1f} s")
    print(f"eager {eager:.1f} img/s, compiled {comp:.1f} img/s, gain {comp / eager:.2f}x")
    saved_per_hour = 3600 * (1 - eager / comp) if comp > eager else 0.0
    print(f"time saved in a 60-minute run: {saved_per_hour:.0f} s vs {compile_s:.0f} s to compile")
    return 0


def main() -> int:
    """Parse arguments and run the chosen mode (default: the per-step stage split)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--net", default="anchor", help="preset whose network to time")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per device")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=256, help="synthetic pairs to decode")
    parser.add_argument("--size", type=parse_size, default=(300, 400), help="HxW of the pairs")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CPU or CUDA)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC model and input")
    parser.add_argument("--host-data", action="store_true", help="keep decoded set on the CPU")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--compare", action="store_true", help="old path vs new default per net and crop"
    )
    mode.add_argument("--epoch", action="store_true", help="real train() on a DUTS-sized set")
    mode.add_argument("--compile", action="store_true", help="torch.compile on the step")
    parser.add_argument("--nets", default="anchor,release", help="--compare: presets")
    parser.add_argument("--crops", default="128,160,256", help="--compare: crops")
    parser.add_argument("--epochs", type=int, default=1, help="--epoch: epochs to run")
    parser.add_argument("--workers", type=int, default=2, help="--epoch: decode processes")
    args = parser.parse_args()
    args.nets = args.nets.split(",")
    args.crops = [int(c) for c in args.crops.split(",")]
    if args.compare:
        return compare(args)
    if args.epoch:
        return epoch(args)
    if args.compile:
        return compile_gain(args)
    if args.steps < 1 or args.warmup < 0 or args.pairs < args.batch:
        parser.error("need --steps >= 1, --warmup >= 0 and --pairs >= --batch")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    devices = [torch.device(args.device)] if args.device != "auto" else [torch.device("cpu")]
    if args.device == "auto" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_synthetic_duts(Path(tmp) / "DUTS-TR", n=args.pairs, size=args.size)
        t1 = time.perf_counter()
        pairs = scan_pairs(root, check_headers=False).paired
        decoded, problems = decode_pairs(pairs, args.crop + TRAIN_MARGIN, None, 0, "", True)
        t2 = time.perf_counter()
    if problems:
        print(f"error: synthetic data failed to decode: {problems[0]}", file=sys.stderr)
        return 1
    report = {
        "machine": {
            "cpu": cpu_name(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "setup": {
            "pairs": args.pairs,
            "size": list(args.size),
            "generate_s": round(t1 - t0, 2),
            "decode_s": round(t2 - t1, 2),
            "decode_img_per_s": round(args.pairs / (t2 - t1), 1),
        },
        "options": {k: getattr(args, k) for k in ("batch", "crop", "steps", "warmup")}
        | {k: getattr(args, k) for k in ("amp", "channels_last", "host_data")},
        "runs": [],
    }
    for device in devices:
        times = time_device(decoded, device, args)
        report["runs"].append({"device": str(device), "stages": summarise(times, args.batch)})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    machine, setup = report["machine"], report["setup"]
    print(
        f"machine: {machine['cpu']}, torch {machine['torch']} ({machine['torch_threads']} "
        f"threads), python {machine['python']}, GPU {machine['gpu'] or 'none'}"
    )
    print(
        f"data: {setup['pairs']} synthetic pairs ~{args.size[0]}x{args.size[1]}, decoded once "
        f"(1 process) in {setup['decode_s']:.2f} s = {setup['decode_img_per_s']:.1f} img/s"
    )
    print(f"options: {report['options']}\n")
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
