"""Inference benchmark: our shipped model vs the anchor students v1 and v2, in one run.

    python benchmarks/bench_inference.py [MODEL.onnx] [--sizes 256,720p,1080p]
                                         [--threads 1,2] [--runs 30] [--warmup 5] [--json]

MODEL defaults to the registry's default model (model/tiny/); with none shipped yet the
anchors are compared with each other. The anchors are read from ../shared/anchor/ next
to the repository and skipped if absent. All models are timed in turns at each size and
thread count (sod_train.evaluate.bench), so the ratios are measured side by side. Ratios are to
the first model (ours when there is one); the target is latency <= anchor v1's at every
size where v1 runs. Paste the printed tables into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sod_train.errors import SodTrainError
from sod_train.evaluate.bench import format_table, parse_list, run_bench
from sod_train.release.registry import default_model_path

REPO = Path(__file__).resolve().parents[1]
ANCHORS = [
    REPO.parent / "shared" / "anchor" / "saliency_student_v1.onnx",
    REPO.parent / "shared" / "anchor" / "saliency_student_v2.onnx",
]


def _models(explicit: str | None) -> tuple[Path | None, list[Path]]:
    """(our model or None, every model to time, ours first)."""
    ours: Path | None = Path(explicit) if explicit else None
    if ours is None:
        try:
            ours = default_model_path()
        except SodTrainError as exc:
            print(f"note: {exc}; comparing the anchors only", file=sys.stderr)
    anchors = [path for path in ANCHORS if path.is_file()]
    if ours is not None:  # timing one file against itself tells nothing
        anchors = [path for path in anchors if path.resolve() != ours.resolve()]
    if len(anchors) < len(ANCHORS):
        print(f"note: anchors missing under {ANCHORS[0].parent}", file=sys.stderr)
    return ours, ([ours] if ours else []) + anchors


def _target_lines(report: dict, ours: Path | None) -> list[str]:
    """One line per size/threads: our latency over anchor v1's, and whether <= 1."""
    if ours is None:
        return []
    lines = []
    cells = {(r["size"], r["threads"], r["model"]): r for r in report["results"]}
    ours_label = report["models"][0]["model"]
    v1_label = next((m["model"] for m in report["models"] if "student_v1" in m["model"]), None)
    for size, threads, model in cells:
        if model != ours_label or v1_label is None:
            continue
        mine, v1 = cells[(size, threads, ours_label)], cells[(size, threads, v1_label)]
        if mine["status"] != "ok":
            lines.append(f"{size} t{threads}: ours fails - target missed")
        elif v1["status"] != "ok":
            lines.append(f"{size} t{threads}: v1 fails here, ours runs ({mine['median_ms']} ms)")
        else:
            ratio = mine["median_ms"] / v1["median_ms"]
            verdict = "met" if ratio <= 1.0 else "MISSED"
            lines.append(f"{size} t{threads}: ours / v1 latency = {ratio:.2f} ({verdict})")
    return lines


def main() -> int:
    """Parse arguments, time the models, print the tables (or JSON) and the target check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="our ONNX model (default: the shipped one)")
    parser.add_argument("--sizes", default="256,720p,1080p")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args()
    try:
        ours, models = _models(args.model)
        if not models:
            print("error: no models to benchmark", file=sys.stderr)
            return 2
        try:
            threads = [int(t) for t in parse_list(args.threads, "--threads")]
        except ValueError:
            print(
                f"error: --threads '{args.threads}': expected integers, e.g. 1,2", file=sys.stderr
            )
            return 2
        report = run_bench(
            models, parse_list(args.sizes, "--sizes"), threads, args.runs, args.warmup
        )
    except SodTrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_table(report))
    targets = _target_lines(report, ours)
    if targets:
        print("\ntarget (latency per frame <= anchor v1 at equal size):")
        print("\n".join(f"- {line}" for line in targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
