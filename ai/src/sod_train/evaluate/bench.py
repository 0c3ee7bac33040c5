"""CPU latency and cost of saliency ONNX models, side by side on one machine at one moment.

For every thread count and size, all models are warmed up and then timed in turns
(run 1 of each model, run 2 of each model, ...), so a load spike from another
process hits them all alike. Cost is counted from the graph, not guessed: params
are the float initializers' elements; MACs per frame come from onnx shape inference
on a copy of the model with the input fixed to 1x3xHxW:

* Conv: output elements x (Cin / group) x kH x kW
* ConvTranspose: input elements x (Cout / group) x kH x kW
* MatMul / Gemm: output elements x K

(bias additions, activations and pooling are not counted).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from sod_train import guards, machine
from sod_train.errors import UserInputError
from sod_train.guards import MAX_LIST, MAX_RUNS, MAX_THREADS, MAX_WARMUP
from sod_train.runtime.model import SaliencyModel
from sod_train.runtime.modelfile import parameter_count, size_problem
from sod_train.runtime.session import ModelTimeout, create_session

NAMED_SIZES = {"4k": (2160, 3840)}


def parse_size(text: str) -> tuple[int, int]:
    """``256`` -> 256x256, ``720p`` -> 720x1280 (16:9, even width), ``HxW`` -> (H, W).

    Sizes outside the run-size range (:func:`sod_train.runtime.modelfile.size_problem`: sides up
    to 8192, at most 16.8 MP) are refused, so no size can ask for a huge allocation.
    """
    key = text.strip().lower()
    try:
        if key in NAMED_SIZES:
            size = NAMED_SIZES[key]
        elif key.endswith("p") and len(key) <= 12:
            height = int(key[:-1])
            size = height, 2 * math.ceil(height * 16 / 9 / 2)
        elif "x" in key and len(key) <= 25:
            height, width = (int(part) for part in key.split("x"))
            size = (height, width)
        elif len(key) <= 12:
            size = (int(key), int(key))
        else:
            size = (0, 0)
    except ValueError:
        size = (0, 0)
    if min(size) < 1:
        raise UserInputError(f"size '{text[:40]}': expected N, Np (e.g. 720p) or HxW")
    problem = size_problem(*size)
    if problem:
        raise UserInputError(f"size '{text}': {problem}")
    return size


def parse_list(text: str, what: str, max_items: int = MAX_LIST) -> list[str]:
    """Split a comma-separated option value (duplicates dropped): 1 to ``max_items`` items."""
    items = list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    if not items:
        raise UserInputError(f"{what}: empty list")
    if len(items) > max_items:
        raise UserInputError(f"{what}: {len(items)} items, at most {max_items}")
    return items


def with_fixed_input(model: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    """A copy of ``model`` whose first input is fixed to [1, C, height, width]."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    channels = dims[1].dim_value if dims[1].HasField("dim_value") else 3
    for dim, value in zip(dims, (1, channels, height, width), strict=True):
        dim.Clear()
        dim.dim_value = value
    return fixed


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    shapes: dict[str, list[int] | None] = {}
    graph = model.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor = info.type.tensor_type
        if not tensor.HasField("shape"):
            shapes[info.name] = None
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        shapes[info.name] = None if None in dims else dims
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _run_shapes(
    model: onnx.ModelProto, height: int, width: int, nodes: list[onnx.NodeProto]
) -> dict[str, list[int]]:
    """Shapes of ``nodes``' data inputs and outputs, from one onnxruntime run on zeros."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = {name for n in nodes for name in (n.input[0], n.output[0])}
    known = {o.name for o in probe.graph.output} | {i.name for i in probe.graph.input}
    for name in sorted(names - known):
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = create_session(probe.SerializeToString())
    inp = session.get_inputs()[0].name
    x = np.zeros((1, 3, height, width), dtype=np.float32)
    outputs = session.run(None, {inp: x})
    got = {o.name: list(v.shape) for o, v in zip(session.get_outputs(), outputs, strict=True)}
    got[inp] = [1, 3, height, width]
    return {name: got[name] for name in names if name in got}


def count_macs(model: onnx.ModelProto, height: int, width: int) -> int | None:
    """Multiply-accumulates of one 1x3xHxW frame (formulas in the module doc).

    None when shape inference cannot tell a shape a counted op needs.
    """
    try:
        return _count_macs(model, height, width)
    except Exception:  # a malformed graph (a Conv without weights, ...) has no MAC count
        return None


def _count_macs(model: onnx.ModelProto, height: int, width: int) -> int | None:
    try:
        inferred = onnx.shape_inference.infer_shapes(
            with_fixed_input(model, height, width), data_prop=True
        )
    except (onnx.shape_inference.InferenceError, ValueError, IndexError):
        return None
    shapes = _known_shapes(inferred)
    counted = [
        n for n in inferred.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")
    ]
    if any(shapes.get(name) is None for n in counted for name in (n.input[0], n.output[0])):
        # Inference cannot see through a crop that feeds an Add (the lite family's skip
        # fusion): read the real shapes off one run at this size instead.
        shapes.update(_run_shapes(model, height, width, counted))
    total = 0
    for node in counted:
        op = node.op_type
        a, b, y = (shapes.get(name) for name in (node.input[0], node.input[1], node.output[0]))
        # Each formula needs only some shapes (a Conv after a dynamic crop may have an
        # input whose channel count inference cannot tell, but its weight and output
        # shapes are enough).
        needed = {"Conv": (b, y), "ConvTranspose": (a, b)}.get(op, (a, b, y))
        if any(shape is None for shape in needed):
            return None
        if op == "Conv":
            total += math.prod(y) * math.prod(b[1:])
        elif op == "ConvTranspose":
            total += math.prod(a) * math.prod(b[1:])
        elif op == "MatMul":
            total += math.prod(y) * a[-1]
        else:
            trans_a = any(att.name == "transA" and att.i for att in node.attribute)
            total += math.prod(y) * (a[0] if trans_a else a[1])
    return total


def machine_description() -> dict[str, Any]:
    """CPU model, core count, ISA features and library versions, to record with any timing."""
    return {
        "cpu": machine.cpu_model(),
        "cores": machine.available_cores(),
        "isa": machine.isa_features(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine of a timing: CPU, cores, bf16 features, onnxruntime."""
    features = ", ".join(machine.get("isa") or []) or "no AVX2/AVX-512"
    return (
        f"{machine['cpu']}, {machine['cores']} cores ({features}), "
        f"onnxruntime {machine['onnxruntime']}"
    )


def cost_record(report: dict[str, Any], command: str) -> dict[str, Any]:
    """The metrics JSON's ``cost`` from one :func:`run_bench` report, written by code.

    Per model: ``params``, ``gmac_256`` and ``ms_<size>_<n>t`` (median) for every cell
    that ran; the note names the command, the machine and the date.
    """
    models: dict[str, dict[str, Any]] = {}
    for entry in report["models"]:
        row: dict[str, Any] = {"params": entry["params"]}
        if entry.get("gmac_256") is not None:
            row["gmac_256"] = entry["gmac_256"]
        models[entry["model"]] = row
    for cell in report["results"]:
        if cell["median_ms"] is not None:
            key = f"ms_{cell['size']}_{cell['threads']}t"
            models[cell["model"]][key] = round(cell["median_ms"], 3)
    when = time.strftime("%Y-%m-%d", time.gmtime())
    note = (
        "params: Conv/ConvTranspose weights and biases of the ONNX file. GMAC: "
        "multiply-accumulates per 1x3x256x256 frame. ms: median latency per frame "
        f"(onnxruntime CPU), from `{command}` on {machine_line(report['machine'])}, {when}."
    )
    return {"note": note, "models": models}


def _labels(paths: list[Path]) -> list[str]:
    names = [path.name for path in paths]
    return [
        name if names.count(name) == 1 else str(path)
        for name, path in zip(names, paths, strict=True)
    ]


def _gmac(macs: int | None) -> float | None:
    return None if macs is None else round(macs / 1e9, 4)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 3)


def _time_models(
    models: list[SaliencyModel],
    frame: np.ndarray,
    runs: int,
    warmup: int,
    stopped: dict[int, str] | None = None,
) -> tuple[list[list[float]], list[str | None]]:
    """Warm up, then time ``runs`` rounds of one run per model, models in turn.

    Returns per model its times in ms and its error (None if every run worked); a
    model that fails once is dropped from the following rounds. A run still going
    after MAX_RUN_SECONDS is stopped, and the model is added to ``stopped`` (index ->
    reason) so that later sizes and thread counts skip it instead of waiting again.
    """
    stopped = {} if stopped is None else stopped
    samples: list[list[float]] = [[] for _ in models]
    errors: list[str | None] = [stopped.get(i) for i in range(len(models))]
    for round_no in range(warmup + runs):
        for i, model in enumerate(models):
            if errors[i] is not None:
                continue
            try:
                _, elapsed = model.run_timed(frame)
            except ModelTimeout:
                errors[i] = stopped[i] = (
                    f"still running after {guards.MAX_RUN_SECONDS:g} s; stopped"
                )
                continue
            except UserInputError as exc:  # onnxruntime errors, MemoryError: the model fails
                errors[i] = str(exc)
                continue
            if round_no >= warmup:
                samples[i].append(elapsed * 1000.0)
    return samples, errors


def _summarise(samples: list[float], error: str | None, macs: int | None) -> dict[str, Any]:
    """Status, median / p90 ms and achieved GMAC/s (from the reported median) of one cell."""
    if error is not None:
        return {
            "status": "fails",
            "error": error,
            "median_ms": None,
            "p90_ms": None,
            "macs": macs,
            "gmac_per_s": None,
        }
    median = round(statistics.median(samples), 4)
    p90 = round(float(np.percentile(samples, 90)), 4)
    rate = round(macs / median / 1e6, 3) if macs is not None and median > 0 else None
    return {
        "status": "ok",
        "error": None,
        "median_ms": median,
        "p90_ms": p90,
        "macs": macs,
        "gmac_per_s": rate,
    }


def run_bench(
    models: list[Path],
    sizes: list[str],
    threads: list[int],
    runs: int = 20,
    warmup: int = 3,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Time every model x size x thread count; return the report ``--json`` prints.

    A model that fails at a size (onnxruntime error) is recorded with status ``fails``
    and its error, and does not stop the others. ``tick`` is called once per
    (size, threads) round, for a progress bar.
    """
    if not (1 <= runs <= MAX_RUNS and 0 <= warmup <= MAX_WARMUP):
        raise UserInputError(f"--runs must be 1 to {MAX_RUNS:,} and --warmup 0 to {MAX_WARMUP:,}")
    if not 1 <= len(models) <= MAX_LIST:
        raise UserInputError(f"{len(models)} models: bench compares 1 to {MAX_LIST}")
    if not (threads and len(threads) <= MAX_LIST and all(1 <= t <= MAX_THREADS for t in threads)):
        raise UserInputError(f"--threads: 1 to {MAX_LIST} counts, each 1 to {MAX_THREADS}")
    if not 1 <= len(sizes) <= MAX_LIST:
        raise UserInputError(f"--sizes: {len(sizes)} sizes, give 1 to {MAX_LIST}")
    parsed = {name: parse_size(name) for name in sizes}
    labels = _labels(models)
    protos, blobs = [], []
    for path in models:  # every model read, validated and loaded once before any timing
        opened = SaliencyModel.open(path, 1)
        protos.append(opened.proto)
        blobs.append(opened.data)
    report: dict[str, Any] = {
        "machine": machine_description(),
        "settings": {"runs": runs, "warmup": warmup, "sizes": sizes, "threads": threads},
        "models": [],
        "results": [],
    }
    macs = {
        (i, name): count_macs(proto, *parsed[name])
        for i, proto in enumerate(protos)
        for name in sizes
    }
    first_bytes, first_params = models[0].stat().st_size, parameter_count(protos[0])
    for i, (path, proto) in enumerate(zip(models, protos, strict=True)):
        size_bytes, params = path.stat().st_size, parameter_count(proto)
        report["models"].append(
            {
                "model": labels[i],
                "path": str(path),
                "bytes": size_bytes,
                "params": params,
                "bytes_ratio": _ratio(size_bytes, first_bytes),
                "params_ratio": _ratio(params, first_params),
                "macs": {name: macs[(i, name)] for name in sizes},
                "gmac_256": _gmac(count_macs(proto, 256, 256)),
            }
        )
    rng = np.random.default_rng(0)
    stopped: dict[int, str] = {}  # models stopped at their deadline: not run again
    for n_threads in threads:
        sessions = [
            SaliencyModel.open(data, n_threads, label=str(path))
            for path, data in zip(models, blobs, strict=True)
        ]
        for name in sizes:
            height, width = parsed[name]
            frame = rng.standard_normal((1, 3, height, width), dtype=np.float32)
            samples, errors = _time_models(sessions, frame, runs, warmup, stopped)
            rows = [
                {
                    "model": label,
                    "size": name,
                    "height": height,
                    "width": width,
                    "threads": n_threads,
                    **_summarise(samples[i], errors[i], macs[(i, name)]),
                }
                for i, label in enumerate(labels)
            ]
            for row in rows:
                row["ratio"] = _ratio(row["median_ms"], rows[0]["median_ms"])
            report["results"] += rows
            if tick is not None:
                tick()
    order = {name: k for k, name in enumerate(sizes)}
    report["results"].sort(key=lambda row: (order[row["size"]], row["threads"]))
    return report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """Markdown tables: the models' cost, then latency per size and threads.

    ``x first`` is the ratio to the first model given (latency: lower is faster).
    """
    machine = report["machine"]
    settings = report["settings"]
    lines = [
        f"machine: {machine['cpu']}, {machine['cores']} cores, "
        f"onnxruntime {machine['onnxruntime']}; {settings['warmup']} warm-up + "
        f"{settings['runs']} timed runs, models interleaved",
        "",
        "| model | file bytes | x first | params | x first |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for m in report["models"]:
        lines.append(
            f"| {m['model']} | {m['bytes']:,} | {_fmt(m['bytes_ratio'], '.2f')} "
            f"| {m['params']:,} | {_fmt(m['params_ratio'], '.2f')} |"
        )
    lines += [
        "",
        "| size | threads | model | median ms | p90 ms | x first | GMAC/frame | GMAC/s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["results"]:
        size = f"{row['size']} ({row['height']}x{row['width']})"
        gmac = None if row["macs"] is None else row["macs"] / 1e9
        if row["status"] == "ok":
            timing = f"{row['median_ms']:.2f} | {row['p90_ms']:.2f} | {_fmt(row['ratio'], '.2f')}"
        else:
            timing = "fails | - | -"
        lines.append(
            f"| {size} | {row['threads']} | {row['model']} | {timing} "
            f"| {_fmt(gmac, '.3f')} | {_fmt(row['gmac_per_s'], '.1f')} |"
        )
    failures = {
        (row["model"], row["height"], row["width"]): row["error"]
        for row in report["results"]
        if row["status"] == "fails"
    }
    if failures:
        lines.append("")
    for (model, height, width), error in failures.items():
        lines.append(f"{model} fails at {height}x{width}: {error}")
    return "\n".join(lines)
