"""Render a Markdown model card from a metrics JSON (and the model's registry entry).

The card is what a person reads before wiring the model into a host: the contract, where
the training data comes from and under which terms, how it was trained, how good it is,
and what it cannot do. Every number comes from the metrics JSON, so the card cannot drift
from the model; the output is deterministic (same input, same bytes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from sod_train import atomicio, progress
from sod_train.contract import QUALITY_METRICS
from sod_train.errors import UserInputError
from sod_train.evaluate.plots import INSTALL_HINT, has_matplotlib
from sod_train.guards import check_output_file, confined, read_json, refuse_aliases
from sod_train.paths import ANCHOR_DIR, CARD_DIR, REGISTRY_PATH, REPO_ROOT
from sod_train.release.schema import (
    validate_evaluations,
    validate_metrics,
    validate_registry,
)

DUTS_CITATION = (
    "Wang et al., *Learning to Detect Salient Objects with Image-Level Supervision*, CVPR 2017"
)
# Reference models' results shown beside ours by default (sod-train card needs no flags).

# The two parameter counts a card shows, named the same everywhere.
TRAINABLE_PARAMS = "trainable parameters (with BatchNorm)"
ONNX_PARAMS = "exported ONNX parameters (BN folded)"
PARAMS_DEFINITION = (
    f"Parameter counts. **{TRAINABLE_PARAMS}**: every trainable tensor of the PyTorch "
    "network, BatchNorm scale and shift included, as the trainer counts them. "
    f"**{ONNX_PARAMS}**: the values of the Conv and ConvTranspose weights and biases in "
    "the shipped ONNX file, after export folded each BatchNorm into the convolution "
    "before it; this is what the registry records (`params`) and what a host loads."
)

# Hugging Face Hub licence ids for the licences we use; anything else is "other".
HUB_LICENSES = {
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc-by-4.0",
    "cc-by-nc-4.0",
    "cc-by-sa-4.0",
}
# Long names of the quality metrics, for model-index entries.
METRIC_NAMES = {
    "maxF": "max F-measure (β²=0.3)",
    "meanF": "mean F-measure (β²=0.3)",
    "adpF": "adaptive F-measure (β²=0.3)",
    "wF": "weighted F-measure",
    "Sm": "S-measure (α=0.5)",
    "meanEm": "mean E-measure",
    "maxEm": "max E-measure",
    "MAE": "mean absolute error",
    "IoU": "IoU at threshold 0.5",
}
DUTS_BIBTEX = """@inproceedings{wang2017duts,
  title     = {Learning to Detect Salient Objects with Image-Level Supervision},
  author    = {Wang, Lijun and Lu, Huchuan and Wang, Yifan and Feng, Mengyang and
               Wang, Dong and Yin, Baocai and Ruan, Xiang},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  pages     = {136--145},
  year      = {2017}
}"""


def _esc(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _num(value: Any, digits: int = 4) -> str:
    """A number with fixed decimals (integers as-is); anything else via str."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else _esc(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """Markdown table lines."""
    headers = list(headers)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _shape(shape: list[Any]) -> str:
    return "[" + ", ".join(str(dim) for dim in shape) + "]"


def _summary(m: dict[str, Any], entry: dict[str, Any] | None, onnx_params: int | None) -> list[str]:
    model, onnx, data, training, gate = m["model"], m["onnx"], m["data"], m["training"], m["gate"]
    size = f"architecture `{model['arch']}`"
    if "macs_256" in model:
        size += f", {model['macs_256'] / 1e6:.1f} M multiply-accumulates at 256×256"
    exported = f"{onnx_params:,}" if onnx_params is not None else "not recorded (not registered)"
    epochs = len(training["history"])
    lines = [
        "## Summary",
        "",
        f"- **Model:** `{m['model_id']}`, {size}.",
        f"- **Parameters:** {exported} {ONNX_PARAMS}; {model['params']:,} {TRAINABLE_PARAMS}.",
        f"- **File:** `{onnx['file']}`, {onnx['bytes']:,} bytes, sha256 `{onnx['sha256']}`.",
        f"- **Weights licence:** {_licence(entry)}.",
        f"- **Trained on:** {data['name']}, {data['train']:,} training and {data['val']:,} "
        f"validation pairs, {epochs} epoch(s).",
        f"- **Validation IoU** (best epoch {training['best_epoch']}): "
        f"{_num(training['best_val_iou'])} per image, "
        f"{_num(training['best_val_iou_batch'])} per batch.",
        f"- **Training gate:** {gate['metric']} {_num(gate['value'])} ≥ {_num(gate['threshold'])}: "
        f"{'passed' if gate['passed'] else 'FAILED'}.",
    ]
    for name, ev in m.get("evaluations", {}).items():
        q = ev["metrics"]
        lines.append(
            f"- **{_esc(name)}** (n={ev['n']}): maxF {_num(q['maxF'])}, Sm {_num(q['Sm'])}, "
            f"MAE {_num(q['MAE'])}."
        )
    derived = m.get("derived_from")
    if derived:
        lines.append(
            f"- **Derived from:** `{_esc(derived.get('model_id'))}` (sha256 "
            f"`{derived['sha256']}`): {_esc(derived['how'])}."
        )
    env = m["environment"]
    lines.append(
        f"- **Built by:** {m.get('created_by', 'sod-train')}, git commit "
        f"`{env.get('git_commit') or 'unknown'}`."
    )
    return [*lines, "", PARAMS_DEFINITION, ""]


def _licence(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "not recorded (model not in `model/tiny/registry.json`)"
    return _esc(entry["license"])


def _contract(m: dict[str, Any]) -> list[str]:
    contract, onnx = m["contract"], m["onnx"]
    inp, out = contract["input"], contract["output"]
    norm = inp["normalisation"]
    parity = ", ".join(f"{size}: {diff:.1e}" for size, diff in onnx["parity_max_abs_diff"].items())
    lines = [
        "## Host contract",
        "",
        *_table(
            ["tensor", "name", "dtype", "shape", "values"],
            [
                [
                    "input",
                    f"`{inp['name']}`",
                    inp["dtype"],
                    _shape(inp["shape"]),
                    f"RGB, NCHW, {norm['range']} then (x − mean) / std per channel",
                ],
                [
                    "output",
                    f"`{out['name']}`",
                    out["dtype"],
                    _shape(out["shape"]),
                    f"saliency in [{out['range'][0]}, {out['range'][1]}], same H×W as the input",
                ],
            ],
        ),
        "",
        f"- **Normalisation the host applies** (the model does not): scale 8-bit RGB to [0, 1] "
        f"({norm['range']}), subtract mean {norm['mean']}, divide by std {norm['std']} "
        "(ImageNet statistics), channel order R, G, B.",
        "- **Any size:** H and W are symbolic; the model runs at any H, W ≥ 1 and returns a map "
        "of the same size, no padding or multiple-of-N rule. `sod-train check` runs it at "
        "sizes from 1×1 to 1080×1920.",
        *_working_scale(onnx),
        f"- **Export parity** (PyTorch vs onnxruntime, max |difference|): {parity}.",
        f"- **Opset** {contract['opset']}, default ONNX domain only; no external data.",
        f"- **Operators** ({len(onnx['ops'])}): " + ", ".join(f"`{op}`" for op in onnx["ops"]),
        "",
    ]
    return lines


def _working_scale(onnx: dict[str, Any]) -> list[str]:
    """The contract bullet of a graph that normalises its own scale (``onnx.working_size``)."""
    size = onnx.get("working_size")
    if not size:
        return []
    return [
        f"- **Working scale {size}:** the graph normalises its own scale. From the input's "
        f"shape it takes k = max(1, (min(H, W) + {size // 2}) // {size}), area-averages the "
        "frame by k, runs the network there and repeats the map back to exactly H×W. Give "
        "it the native frame: 1080p and 4K keep the quality of 256 px and cost little more "
        "(docs/scale.md). `sod-train predict` runs it at the picture's native size."
    ]


def _data(m: dict[str, Any], entry: dict[str, Any] | None) -> list[str]:
    data = m["data"]
    counts = (
        f"{data['pairs']:,} image/mask pairs: {data['train']:,} for training, "
        f"{data['val']:,} held out for validation"
    )
    if data.get("skipped_bad"):
        counts += f", {data['skipped_bad']} skipped as unreadable"
    if _is_duts(data["name"]):
        source = f"**{data['name']}** from the DUTS data set ({DUTS_CITATION}): {counts}."
        terms = [
            "- **Data terms:** the DUTS authors release DUTS free for academic research. "
            "The images are never redistributed with this model, this repository or its "
            "releases; users obtain DUTS themselves (`sod-train fetch`).",
        ]
    else:
        source = f"**{_esc(data['name'])}**: {counts}. Provenance not recorded by sod-train."
        terms = ["- **Data terms:** those of the data set's owner."]
    lines = [
        "## Training data and licence terms",
        "",
        source,
        "",
        *terms,
        f"- **Weights licence:** {_licence(entry)}. The weights are derived from the training "
        "images; check the data terms above before any non-academic use.",
        f"- **Data digest** (sha256 recorded by the trainer): `{data['digest']}`.",
    ]
    skipped = data.get("skipped_files") or []
    if skipped:
        shown = ", ".join(f"`{_esc(name)}`" for name in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        lines.append(f"- **Skipped files:** {shown}{more}.")
    return [*lines, ""]


def _recipe(m: dict[str, Any]) -> list[str]:
    def show(value: Any) -> str:
        return _esc(value if isinstance(value, str) else json.dumps(value))

    env = m["environment"]
    lines = [
        "## Recipe",
        "",
        *_table(["setting", "value"], [[f"`{k}`", show(v)] for k, v in m["config"].items()]),
        "",
    ]
    arch = m["model"].get("config") or {}
    if arch:
        lines.append(
            f"- **Architecture `{m['model']['arch']}`:** "
            + ", ".join(f"`{k}={show(v)}`" for k, v in arch.items())
        )
    versions = ", ".join(
        f"{name} {env[name]}"
        for name in ("python", "torch", "onnx", "onnxruntime", "onnxsim")
        if name in env
    )
    lines.append(f"- **Environment:** {env.get('device', 'unknown device')}; {versions}.")
    if "deterministic" in env:
        nondet = env.get("nondeterministic") or []
        detail = f" (non-deterministic: {', '.join(nondet)})" if nondet else ""
        verdict = "yes" if env["deterministic"] else "no"
        lines.append(f"- **Deterministic training:** {verdict}{detail}.")
    return [*lines, ""]


def _fold_iou(m: dict[str, Any], anchors: Mapping[str, dict[str, Any]]) -> list[str]:
    training, config, gate = m["training"], m["config"], m["gate"]
    data = m["data"]
    fold = f"{data['val']:,} held-out {data['name']} pairs"
    if data["pairs"]:
        share = data["val"] / data["pairs"]
        fold += f" ({share:.1%} of {data['pairs']:,}, split seed {config['seed']})"
    rows = [
        [
            f"this model, best epoch {training['best_epoch']} "
            f"(validated at {config.get('val_crop') or config['crop_size']})",
            _num(training["best_val_iou"]),
            _num(training["best_val_iou_batch"]),
        ]
    ]
    recorded = {"this model": m.get("fold_iou")} | {
        _reference_label(label, doc): doc.get("fold_iou") for label, doc in anchors.items()
    }
    for label, f in recorded.items():
        if f:
            rows.append(
                [
                    f"{label}, `sod-train fold-iou` (crop {f['crop']}, n {f['n']})",
                    _num(f["iou"]),
                    _num(f["iou_batch"]),
                ]
            )
    return [
        "## Validation-fold IoU",
        "",
        f"Measured on {fold}: shorter side resized to the crop, centre crop, map "
        "thresholded at 0.5, IoU per image (+1e-6 smoothing). **Per image** is the mean "
        "over images; **per batch** is the anchor's protocol: the mean of the per-image "
        "IoUs within each batch of 32, then over batches.",
        "",
        *_table(["", "per image", "per batch"], rows),
        "",
        f"Gate: `{gate['metric']}` ≥ {_num(gate['threshold'])}; this model: "
        f"{_num(gate['value'])}, {'passed' if gate['passed'] else 'FAILED'}.",
        "",
    ]


def _history(m: dict[str, Any]) -> list[str]:
    training = m["training"]
    history = training["history"]
    lines = ["## Training history", ""]
    if not history:
        return [*lines, "No epochs recorded.", ""]
    seconds = training["seconds_total"]
    lines += [
        f"{len(history)} epoch(s), {seconds:.0f} s in total ({seconds / 60:.1f} min) on "
        f"{m['environment'].get('device', 'an unrecorded device')}.",
        "",
    ]
    image = curves_name(m["model_id"])
    lines += [
        f"![Training curves: train and validation loss, validation IoU per epoch]({image})",
        "",
        f"`{image}` beside this card, drawn by `sod-train card` from the metrics JSON's "
        "`training.history`. First, best and last epoch:",
        "",
    ]
    keys = ["train_loss", "val_loss", "val_iou", "val_iou_batch", "lr", "img_per_s"]
    picked = {row["epoch"]: row for row in (history[0], history[-1])}
    picked.update({row["epoch"]: row for row in history if row["epoch"] == training["best_epoch"]})
    rows = []
    for epoch in sorted(picked):
        row = picked[epoch]
        label = f"{epoch} (best)" if epoch == training["best_epoch"] else str(epoch)
        rows.append([label, *(_history_cell(k, row.get(k)) for k in keys)])
    return [*lines, *_table(["epoch", *keys], rows), ""]


def _history_cell(key: str, value: Any) -> str:
    if key == "lr" and isinstance(value, int | float):
        return f"{value:.2e}"
    return _num(value, 1 if key == "img_per_s" else 4)


def _evaluations(m: dict[str, Any], anchors: Mapping[str, dict[str, Any]]) -> list[str]:
    lines = ["## Benchmark evaluation", ""]
    evals = m.get("evaluations", {})
    if not evals:
        return [*lines, "No evaluations recorded; run `sod-train evaluate`.", ""]
    rows = []
    for name, ev in evals.items():
        rows.append(_eval_row(f"**{_esc(name)}**", ev))
        for label, anchor in anchors.items():
            if name in anchor["evaluations"]:
                row_label = f"{_esc(name)}, {_reference_label(label, anchor)}"
                rows.append(_eval_row(row_label, anchor["evaluations"][name]))
    lines += [
        "Higher is better except MAE. F-measures use β² = 0.3; IoU thresholds the map at 0.5.",
        "",
        *_table(["data set", "n", "size", *QUALITY_METRICS], rows),
        "",
    ]
    for name, ev in evals.items():
        protocol = _esc(ev["protocol"])
        lines.append(f"- **{_esc(name)}** protocol: {protocol} (data digest `{ev['digest']}`)")
    return [*lines, ""]


def _reference_label(label: str, doc: dict[str, Any]) -> str:
    """How a reference model is named on the card: one of our earlier releases (a full
    metrics document) by its id, anything else as an anchor."""
    return f"`{_esc(label)}`" if "schema_version" in doc else f"anchor `{_esc(label)}`"


def _eval_row(label: str, ev: dict[str, Any]) -> list[str]:
    size = ev["size"]
    if isinstance(size, int):
        shown = f"{size}×{size}"
    elif isinstance(size, str) and size.startswith("short"):
        shown = f"short side {size[len('short') :]}"
    else:
        shown = "native"
    return [label, str(ev["n"]), shown, *(_num(ev["metrics"][k]) for k in QUALITY_METRICS)]


def _latency(m: dict[str, Any]) -> list[str]:
    lines = ["## Latency", ""]
    latency = m.get("latency")
    if not latency:
        return [*lines, "Not recorded in the metrics JSON (`sod-train bench` measures it).", ""]

    def order(key: str) -> tuple[int, int]:
        h, _, w = key.partition("x")
        return int(h), int(w or h)

    rows = [
        ["{}×{}".format(*order(key)), f"{latency[key]:.2f}"] for key in sorted(latency, key=order)
    ]
    return [
        *lines,
        "Milliseconds per image, as recorded in the metrics JSON.",
        "",
        *_table(["input H×W", "ms / image"], rows),
        "",
    ]


def _cost(m: dict[str, Any]) -> list[str]:
    """Params, GMAC per 256² frame and CPU latency per size and thread count, ours beside
    the anchors (``cost``, written by ``sod-train bench --record``)."""
    cost = m.get("cost")
    if not cost:
        return []
    cells: list[str] = []  # ms_<size>_<n>t keys in first-seen order
    for row in cost["models"].values():
        cells += [k for k in row if k.startswith("ms_") and k not in cells]
    rows = [
        [
            f"`{_esc(name)}`",
            f"{row['params']:,}",
            _num(row.get("gmac_256"), 3),
            *(_num(row.get(key), 1) for key in cells),
        ]
        for name, row in cost["models"].items()
    ]

    def heading(key: str) -> str:
        size, threads = key[len("ms_") :].rsplit("_", 1)
        return f"{size} ms, {threads[:-1]} thread{'s' if threads != '1t' else ''}"

    return [
        "## Cost",
        "",
        _esc(cost["note"]),
        "",
        *_table(["model", "params (ONNX)", "GMAC / 256²", *map(heading, cells)], rows),
        "",
    ]


def reproduction_scope(env: Mapping[str, Any]) -> str:
    """Which CPUs should rebuild the same bytes, from a metrics JSON's ``environment``.

    The kernels torch trains with follow the CPU (AVX2, AVX-512, AMX; bf16 natively or
    emulated) unless ``--cpu-isa`` pinned them, so the claim names the features it holds
    for; whether it was checked is the separate **Reproduced** line.
    """
    pin = env.get("cpu_isa") or "native"
    held = f"the same command, commit and versions, {env.get('threads')} torch threads"
    if pin != "native":
        return (
            f"any x86-64 CPU with {pin.upper()} and FMA, given {held}: `--cpu-isa {pin}` held "
            f"oneDNN and ATen to {pin.upper()} kernels and MKL to its COMPATIBLE branch, with "
            "bf16 autocast off. Across "
            "CPU vendors this is expected, not verified (docs/training.md, "
            '"Reproducibility across CPUs").'
        )
    features = env.get("cpu_isa_features")
    if features is not None:
        absent = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f not in features]
        kernels = ", ".join(features) or "no AVX2"
        kernels += f"; no {', '.join(absent)}" if absent else ""
    else:  # recorded before the ISA features were
        kernels = f"ATen capability {env.get('cpu_capability')}"
    bf16 = ", ".join(env.get("cpu_bf16_features") or []) or "none"
    amp = (
        f"bf16 autocast on (native bf16: {bf16}), whose kernels differ between AMX-BF16, "
        "AVX512-BF16 and emulated bf16"
        if env.get("amp")
        else "bf16 autocast off"
    )
    return (
        f"CPUs with the build machine's features ({kernels}), given {held} and {amp}. "
        "oneDNN and ATen pick AVX-512 or AMX code where a CPU has it, so a CPU with other "
        "features gives other bytes; `--cpu-isa avx2` pins the kernels for a build other CPUs "
        "should repeat."
    )


def _build(m: dict[str, Any]) -> list[str]:
    """How to rebuild the file bit-exactly, and whether that was checked (``build``)."""
    build = m.get("build")
    if not build:
        return []
    env = m["environment"]
    wall = m["training"].get("wall_seconds")
    lines = [
        "## Reproducible build",
        "",
        "Command (from a checkout of the commit below, DUTS-TR from the public copy):",
        "",
        "```sh",
        build["command"],
        "```",
        "",
        f"- **Commit:** `{env.get('git_commit') or 'unknown'}`.",
        f"- **Machine:** {_esc(build['machine'])}; torch threads {env.get('threads')}, "
        f"bf16 autocast {'on' if env.get('amp') else 'off'} "
        f"(CPU bf16 features: {', '.join(env.get('cpu_bf16_features') or []) or 'none'}).",
        "- **Versions:** "
        + ", ".join(
            f"{name} {env[name]}"
            for name in ("python", "torch", "onnx", "onnxruntime", "onnxsim")
            if name in env
        )
        + ".",
        f"- **Same bytes expected on:** {_esc(reproduction_scope(env))}",
    ]
    if wall is not None and "--resume" in build["command"].split():
        # The wall clock restarts with each session; the epochs' own times add up.
        history = m["training"]["history"]
        epochs = sum(h.get("seconds", 0.0) for h in history) / 60
        lines.append(
            f"- **Wall time:** {wall / 60:.1f} min for the last session of a resumed run; "
            f"its {len(history)} epochs (training and validation) took {epochs:.1f} min in "
            "all. `--resume` with no checkpoint starts afresh, so the command rebuilds "
            "from scratch."
        )
    elif wall is not None:
        lines.append(f"- **Wall time:** {wall / 60:.1f} min for the whole command.")
    lines.append(f"- **ONNX sha256:** `{m['onnx']['sha256']}`.")
    lines.append(f"- **Reproduced:** {_esc(build['reproduced'])}")
    return [*lines, ""]


def _golden(m: dict[str, Any]) -> list[str]:
    name = f"{Path(m['onnx']['file']).stem}.golden.json"
    return [
        "## Golden vectors",
        "",
        f"`{name}`, written by `sod-train export` next to `{m['onnx']['file']}`: fixed "
        "inputs from an integer formula any C program reproduces bit-exactly (including an "
        "odd size), the SHA-256 of each input tensor, and the expected output statistics, a "
        "pixel sample and, for small cases, the full map, with an absolute tolerance. "
        "Layout and host procedure: `docs/golden.md`. `sod-train check` verifies them; a host "
        "should feed the same inputs through its own preprocessing and runtime and compare, "
        "which catches channel-order, layout and normalisation mistakes.",
        "",
    ]


def _limits(m: dict[str, Any]) -> list[str]:
    name = m["data"]["name"]
    domain = (
        "natural photos, mostly one dominant object. Expect weaker maps for several or tiny "
        "objects, and for documents, screenshots, medical or other out-of-domain images."
        if _is_duts(name)
        else "expect weaker maps on images unlike that data set."
    )
    lines = [
        "## Known limits",
        "",
        f"- Trained only on {_esc(name)}: {domain}",
        "- The output is a soft saliency map, not instance segmentation; the host picks the "
        "threshold (0.5 is used for IoU here).",
        "- The validation-fold IoU comes from the training distribution and is optimistic; "
        "the benchmark table is the fairer measure.",
        "- Compute and memory grow linearly with H×W; downscale very large inputs."
        if not m["onnx"].get("working_size")
        else "- Only the scale normaliser's pooling reads every pixel; the network runs at "
        f"about {m['onnx']['working_size']} px short side whatever the frame size.",
    ]
    if not m.get("evaluations"):
        lines.append("- No benchmark evaluation is recorded for this model.")
    if not m["gate"]["passed"]:
        lines.append("- This model FAILED its training gate.")
    if m.get("smoke"):
        lines.append("- Smoke model: a short run, far below a release model's quality.")
    return [*lines, ""]


def _is_duts(name: str) -> bool:
    return name.upper().startswith("DUTS")


def _yaml_scalar(value: Any) -> str:
    """One YAML scalar: plain where unambiguous, else a JSON string (valid YAML).

    Floats are written positionally from their shortest repr (``0.00005``, never
    ``5e-05``, which YAML 1.1 readers such as PyYAML take for a string), so a reader
    gets back exactly the float in the metrics JSON.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9_./()+ -]*", text) and not text.endswith(" ")
    ambiguous = text.lower() in {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
    return text if plain and not ambiguous else json.dumps(text, ensure_ascii=False)


def _yaml(obj: Any, indent: int = 0) -> list[str]:
    """Block-style YAML lines for nested dicts/lists of scalars (the Hub's card style)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines += _yaml(value, indent + (0 if isinstance(value, list) else 2))
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(value)}")
    else:
        for item in obj:
            if isinstance(item, dict | list) and item:
                first, *rest = _yaml(item, indent + 2)
                lines += [f"{pad}- {first[indent + 2 :]}", *rest]
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    return lines


def front_matter(metrics: dict[str, Any], entry: dict[str, Any] | None) -> dict[str, Any]:
    """The Hugging Face Hub metadata of the card (YAML front matter), as a plain dict.

    ``model-index`` carries every benchmark evaluation (all quality metrics) and the
    validation-fold IoU of the best epoch, with the metrics JSON's own numbers.
    """
    data, training = metrics["data"], metrics["training"]
    meta: dict[str, Any] = {}
    licence = entry["license"] if entry else None
    if licence and licence.lower() in HUB_LICENSES:
        meta["license"] = licence.lower()
    elif licence:
        meta["license"] = "other"
        meta["license_name"] = licence.lower()
        if re.fullmatch(r"[A-Za-z0-9.+-]+", licence):  # an SPDX id: link its text
            meta["license_link"] = f"https://spdx.org/licenses/{licence}.html"
    meta["library_name"] = "onnx"
    meta["pipeline_tag"] = "image-segmentation"
    tags = ["onnx", "salient-object-detection", "saliency", "image-segmentation"]
    tags += ["u-net", "sod-train", *(["smoke-test"] if _smoke(metrics, entry) else [])]
    meta["tags"] = tags
    datasets = [data["name"], *metrics.get("evaluations", {})]
    if all(_is_duts(name) for name in datasets):
        meta["datasets"] = ["DUTS"]
    task = {"type": "image-segmentation", "name": "Salient object detection"}
    results = []
    for name, ev in metrics.get("evaluations", {}).items():
        dataset = {"name": name, "type": "DUTS" if _is_duts(name) else name}
        if name.upper() == "DUTS-TE":
            dataset["split"] = "test"
        results.append(
            {
                "task": task,
                "dataset": dataset,
                "metrics": [
                    {"type": key, "name": METRIC_NAMES[key], "value": ev["metrics"][key]}
                    for key in QUALITY_METRICS
                ],
            }
        )
    fold = f"{data['name']} validation fold ({data['val']} pairs, seed {metrics['config']['seed']})"
    results.append(
        {
            "task": task,
            "dataset": {
                "name": fold,
                "type": "DUTS" if _is_duts(data["name"]) else data["name"],
                "split": "validation",
            },
            "metrics": [
                {
                    "type": "IoU",
                    "name": f"IoU per image, best epoch {training['best_epoch']}",
                    "value": training["best_val_iou"],
                },
                {
                    "type": "IoU_batch",
                    "name": "IoU per batch of 32",
                    "value": training["best_val_iou_batch"],
                },
            ],
        }
    )
    meta["model-index"] = [{"name": metrics["model_id"], "results": results}]
    return meta


def _front_matter(metrics: dict[str, Any], entry: dict[str, Any] | None) -> list[str]:
    return ["---", *_yaml(front_matter(metrics, entry)), "---", ""]


def _host_constants() -> tuple[str, str, list[str], list[str]]:
    """(input name, output name, mean, std) from the contract the checker enforces, the
    floats as the shortest text that reads back as the same float32."""
    import numpy as np

    from sod_train import contract

    def f32(values: Any) -> list[str]:
        return [str(np.float32(v)) for v in values]

    return (
        contract.INPUT_NAME,
        contract.OUTPUT_NAME,
        f32(contract.IMAGENET_MEAN),
        f32(contract.IMAGENET_STD),
    )


def model_path(metrics: dict[str, Any], entry: dict[str, Any] | None) -> str:
    """The model file as a user types it: the registry path, else the metrics' file name."""
    return entry["onnx"] if entry else metrics["onnx"]["file"]


def python_snippet(metrics: dict[str, Any], entry: dict[str, Any] | None) -> str:
    """Python (onnxruntime) that preprocesses a picture exactly as the host contract says
    and writes the 8-bit map ``sod-train predict --native`` writes."""
    inp, out, mean, std = _host_constants()
    return "\n".join(
        [
            "import numpy as np",
            "import onnxruntime as ort",
            "from PIL import Image, ImageOps",
            "",
            f'MODEL = "{model_path(metrics, entry)}"',
            'IMAGE = "photo.jpg"',
            f"MEAN = np.array([{', '.join(mean)}], dtype=np.float32)  # R, G, B",
            f"STD = np.array([{', '.join(std)}], dtype=np.float32)",
            "",
            'session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])',
            'rgb = np.asarray(ImageOps.exif_transpose(Image.open(IMAGE)).convert("RGB"))'
            "  # uint8 [H, W, 3]",
            "x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD  # float32, any H and W",
            "x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # NCHW [1, 3, H, W]",
            f'(saliency,) = session.run(["{out}"], {{"{inp}": x}})  # float32 [1, 1, H, W]',
            "mask = np.rint(np.clip(saliency[0, 0], 0.0, 1.0) * 255.0).astype(np.uint8)",
            'Image.fromarray(mask).save("photo.mask.png")  # 0 = background, 255 = salient',
        ]
    )


def c_snippet(metrics: dict[str, Any], entry: dict[str, Any] | None) -> str:
    """C (onnxruntime C API) calls a host makes: environment, session with its threads and
    no spinning, one run, every status checked, everything released. Valid C99 and C++17
    (``tests/test_host_c.py`` compiles it both ways and runs it against the golden vectors).
    """
    inp, out, mean, std = _host_constants()
    return "\n".join(
        [
            "#include <onnxruntime_c_api.h>",
            "#include <stdint.h>",
            "#include <stdio.h>",
            "#include <stdlib.h>",
            "",
            "/* Prints and releases a failed status; 1 if there was one, 0 for success (NULL). */",
            "static int failed(const OrtApi *ort, OrtStatus *status) {",
            "    if (status == NULL)",
            "        return 0;",
            '    fprintf(stderr, "onnxruntime: %s\\n", ort->GetErrorMessage(status));',
            "    ort->ReleaseStatus(status);",
            "    return 1;",
            "}",
            "",
            "/* rgb: 8-bit RGB, row-major H x W x 3. map: H x W floats in [0, 1] (1 = salient).",
            "   threads: onnxruntime intra-op threads (0 = one per core). Returns 0 on success.",
            "   A real host creates the env and session once and reuses them for every frame. */",
            "int saliency(const char *model, const uint8_t *rgb, int64_t h, int64_t w, "
            "int threads,",
            "             float *map) {",
            f"    static const float mean[3] = {{{', '.join(v + 'f' for v in mean)}}};",
            f"    static const float std_[3] = {{{', '.join(v + 'f' for v in std)}}};",
            f'    const char *in_names[] = {{"{inp}"}}, *out_names[] = {{"{out}"}};',
            "    const int64_t shape[4] = {1, 3, h, w};",
            "    const size_t n = (size_t)(h * w);",
            "    const OrtApi *ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);",
            "    OrtEnv *env = NULL;",
            "    OrtSessionOptions *options = NULL;",
            "    OrtSession *session = NULL;",
            "    OrtMemoryInfo *memory = NULL;",
            "    OrtValue *in = NULL, *out = NULL;",
            "    float *result = NULL; /* [1, 1, H, W], row-major; owned by out */",
            "    float *input = (float *)malloc(3 * n * sizeof(float));",
            "    int status = -1;",
            "    if (ort == NULL || input == NULL) { /* NULL: a library older than the header */",
            '        fprintf(stderr, "onnxruntime: no C API version %d, or out of memory\\n",',
            "                ORT_API_VERSION);",
            "        free(input);",
            "        return -1;",
            "    }",
            "    for (size_t c = 0; c < 3; ++c) /* HWC uint8 -> NCHW float32, normalised */",
            "        for (size_t i = 0; i < n; ++i)",
            "            input[c * n + i] = ((float)rgb[3 * i + c] / 255.0f - mean[c]) / std_[c];",
            "",
            '    if (failed(ort, ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "host", &env)) ||',
            "        failed(ort, ort->CreateSessionOptions(&options)) ||",
            "        failed(ort, ort->SetIntraOpNumThreads(options, threads)) ||",
            "        /* idle worker threads sleep instead of spinning after each frame */",
            "        failed(ort, ort->AddSessionConfigEntry(options, "
            '"session.intra_op.allow_spinning", "0")) ||',
            "        failed(ort, ort->CreateSession(env, model, options, &session)) ||",
            "        failed(ort, ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, "
            "&memory)) ||",
            "        failed(ort, ort->CreateTensorWithDataAsOrtValue(",
            "                        memory, input, 3 * n * sizeof(float), shape, 4,",
            "                        ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in)) ||",
            "        failed(ort, ort->Run(session, NULL, in_names, "
            "(const OrtValue *const *)&in, 1,",
            "                             out_names, 1, &out)) ||",
            "        failed(ort, ort->GetTensorMutableData(out, (void **)&result)))",
            "        goto done;",
            "    for (size_t i = 0; i < n; ++i)",
            "        map[i] = result[i];",
            "    status = 0;",
            "",
            "done: /* the Release functions accept NULL */",
            "    ort->ReleaseValue(out);",
            "    ort->ReleaseValue(in);",
            "    ort->ReleaseMemoryInfo(memory);",
            "    ort->ReleaseSession(session);",
            "    ort->ReleaseSessionOptions(options);",
            "    ort->ReleaseEnv(env);",
            "    free(input);",
            "    return status;",
            "}",
            "",
            f'/* e.g. saliency("{model_path(metrics, entry)}", rgb, h, w, 1, map) */',
        ]
    )


def _usage(metrics: dict[str, Any], entry: dict[str, Any] | None) -> list[str]:
    return [
        "## Usage",
        "",
        "Python, with `onnxruntime`, `numpy` and `pillow` (the same map as "
        "`sod-train predict --native`; `tests/test_card.py` runs this snippet against the "
        "shipped model):",
        "",
        "```python",
        python_snippet(metrics, entry),
        "```",
        "",
        "C or C++, with the onnxruntime C API (valid C99 and C++17; on Windows the model "
        'path is a wide string, `L"..."`). Where to get onnxruntime, a CMake project, '
        "threads and error handling: `docs/host.md`. The input normalisation is the one "
        "`docs/golden.md` defines; feed the golden inputs through it to prove a host matches:",
        "",
        "```c",
        c_snippet(metrics, entry),
        "```",
        "",
    ]


def _citation(metrics: dict[str, Any]) -> list[str]:
    mid = metrics["model_id"]
    commit = metrics["environment"].get("git_commit") or "unknown"
    ours = "\n".join(
        [
            f"@misc{{{re.sub(r'[^A-Za-z0-9]', '_', mid)},",
            f"  title  = {{{{{mid.replace('_', chr(92) + '_')}}}: a tiny salient-object-detection "
            "U-Net for C/C++ hosts (ONNX)},",
            "  author = {{sod-train contributors}},",
            f"  note   = {{Trained and exported with {metrics.get('created_by', 'sod-train')}, "
            f"git commit {commit}; weights sha256 {metrics['onnx']['sha256']}}}",
            "}",
        ]
    )
    lines = ["## Citation", "", "If you use this model, please cite it"]
    if _is_duts(metrics["data"]["name"]):
        lines[-1] += " and the DUTS data set it was trained on:"
        blocks = [ours, DUTS_BIBTEX]
    else:
        lines[-1] += ":"
        blocks = [ours]
    return [*lines, "", "```bibtex", "\n\n".join(blocks), "```", ""]


def curves_name(model_id: str) -> str:
    """File name of the training-curves image, beside the card."""
    return f"{model_id}.curves.png"


def render_card(
    metrics: dict[str, Any],
    registry_entry: dict[str, Any] | None,
    anchors: Mapping[str, dict[str, Any]] | None = None,
    onnx_params: int | None = None,
) -> str:
    """The Markdown model card for a schema-valid metrics document.

    ``registry_entry`` supplies the weights licence and the exported parameter count
    (None: not registered). ``anchors`` maps a label to another model's document (its
    ``evaluations`` and, if present, ``fold_iou``), shown beside ours for what both have.
    ``onnx_params`` is the exported parameter count when there is no registry entry.
    The card links its training-curves image, ``<id>.curves.png`` beside it.
    """
    smoke = _smoke(metrics, registry_entry)
    if onnx_params is None and registry_entry is not None:
        onnx_params = registry_entry["params"]
    lines = _front_matter(metrics, registry_entry)
    lines += [f"# Model card: {metrics['model_id']}", ""]
    if smoke:
        lines += [
            "> **Warning: smoke model.** A short demo/CI run (a few CPU epochs, or synthetic "
            "data), not a release; its numbers show the pipeline works, not what a trained "
            "model reaches. Do not ship it.",
            "",
        ]
    lines += _summary(metrics, registry_entry, onnx_params)
    lines += _contract(metrics)
    lines += _usage(metrics, registry_entry)
    lines += _data(metrics, registry_entry)
    lines += _recipe(metrics)
    lines += _fold_iou(metrics, anchors or {})
    lines += _history(metrics)
    lines += _evaluations(metrics, anchors or {})
    lines += _cost(metrics)
    lines += _latency(metrics)
    lines += _build(metrics)
    lines += _golden(metrics)
    lines += _limits(metrics)
    lines += _citation(metrics)
    lines.append(
        f"*Generated by `sod-train card` from `{metrics['model_id']}.metrics.json`; "
        "edit the metrics or the registry, not this file.*"
    )
    return "\n".join(lines) + "\n"


def _smoke(metrics: dict[str, Any], entry: dict[str, Any] | None) -> bool:
    return bool(metrics.get("smoke")) or bool(entry and entry.get("smoke"))


def _registry_entry(model_id: str, registry_path: Path) -> dict[str, Any] | None:
    """The registry entry for ``model_id``, or None if the model (or default registry) is absent."""
    if registry_path == REGISTRY_PATH and not registry_path.exists():
        return None
    registry = read_json(registry_path, "the model registry")
    problems = validate_registry(registry)
    if problems:
        raise UserInputError(f"{registry_path}: invalid registry: {problems[0]}")
    return next((e for e in registry["models"] if e["id"] == model_id), None)


def _load_anchor(path: Path) -> tuple[str, dict[str, Any]]:
    """(label, document) of an anchor file: a JSON object with an ``evaluations`` section
    and optionally a ``fold_iou`` section (as ``sod-train fold-iou --record`` writes)."""
    doc = read_json(path, "the anchor metrics")
    if not isinstance(doc, dict) or "evaluations" not in doc:
        raise UserInputError(f"{path}: no 'evaluations' section to compare against")
    problems = validate_evaluations(doc["evaluations"])
    if problems:
        raise UserInputError(f"{path}: invalid evaluations: {problems[0]}")
    label = doc.get("model_id") or path.name.removesuffix(".json").removesuffix(".metrics")
    return str(label), doc


def default_anchor_paths() -> list[Path]:
    """The reference results kept in the repository (``benchmarks/anchors/*.json``), sorted
    by name so the card's row order never depends on the file system."""
    return sorted(ANCHOR_DIR.glob("*.json")) if ANCHOR_DIR.is_dir() else []


def earlier_release_paths(model_id: str, registry_path: Path = REGISTRY_PATH) -> list[Path]:
    """The metrics files of the released (non-smoke) models registered before ``model_id``
    (all of them when it is not registered), in registry order: a card shows a new
    release beside the ones it replaces, and an old card never changes when a newer
    model ships."""
    if registry_path == REGISTRY_PATH and not registry_path.exists():
        return []
    from sod_train.release.registry import entry_file

    registry = read_json(registry_path, "the model registry")
    problems = validate_registry(registry)
    if problems:
        raise UserInputError(f"{registry_path}: invalid registry: {problems[0]}")
    ids = [entry["id"] for entry in registry["models"]]
    earlier = registry["models"][: ids.index(model_id)] if model_id in ids else registry["models"]
    return [entry_file(e, "metrics", registry_path) for e in earlier if not e.get("smoke")]


def _exported_params(metrics_path: Path, metrics: dict[str, Any]) -> int | None:
    """The exported parameter count of an unregistered model, from its ONNX file beside
    the metrics (:func:`sod_train.runtime.modelfile.parameter_count`, the one definition); None
    when that file is absent or is not the one the metrics describe."""
    from sod_train.hashing import file_sha256
    from sod_train.runtime.modelfile import parameter_count, read_model

    path = confined(Path(metrics_path).parent, metrics["onnx"]["file"], "onnx.file", metrics_path)
    if not path.is_file() or file_sha256(path) != metrics["onnx"]["sha256"]:
        return None
    return parameter_count(read_model(path)[1])


class CardFiles(NamedTuple):
    """What :func:`write_card` wrote: the card, and the curves image (None: not drawn)."""

    card: Path
    curves: Path | None


def write_card(
    metrics_path: Path,
    out: Path | None = None,
    registry_path: Path = REGISTRY_PATH,
    anchor_paths: Iterable[Path] | None = None,
    quiet: bool = False,
) -> CardFiles:
    """Render the card and its training-curves image for a metrics file; write both
    atomically (image first, so a card never links a half-written picture).

    Default destination: the registry entry's ``card`` path, else
    ``docs/ai/models/<id>.md`` under the repository root; the image is
    ``<id>.curves.png`` beside the card. Default references: :func:`default_anchor_paths`
    and :func:`earlier_release_paths`.
    Without matplotlib the card is still written (its bytes do not depend on the image),
    an existing image is kept, and a note on stderr says so.
    """
    metrics = read_json(metrics_path, "the metrics JSON")
    problems = validate_metrics(metrics)
    if problems:
        raise UserInputError(f"{metrics_path}: not a valid metrics file: {problems[0]}")
    if anchor_paths is None:
        anchor_paths = default_anchor_paths()
        anchor_paths += earlier_release_paths(metrics["model_id"], Path(registry_path))
    else:
        anchor_paths = [Path(p) for p in anchor_paths]
    if out is not None:  # checked before anything else is read
        _check_out(Path(out), metrics, metrics_path, Path(registry_path), anchor_paths)
    entry = _registry_entry(metrics["model_id"], Path(registry_path))
    if entry is not None and entry["sha256"] != metrics["onnx"]["sha256"]:
        raise UserInputError(
            f"{registry_path}: entry '{entry['id']}' has sha256 {entry['sha256']} but "
            f"{metrics_path} describes {metrics['onnx']['sha256']}"
        )
    anchors = dict(_load_anchor(path) for path in anchor_paths)
    if out is None:
        # The registry's card path is confined to the repository: a registry can never
        # make `card` write anywhere else (no '..', absolute path or symlink out).
        if entry is not None:
            where = f"models[{entry['id']}].card"
            out = confined(REPO_ROOT, entry["card"], where, registry_path)
        else:
            out = REPO_ROOT / CARD_DIR / f"{metrics['model_id']}.md"
        _check_out(Path(out), metrics, metrics_path, Path(registry_path), anchor_paths)
    out = Path(out)
    params = None if entry is not None else _exported_params(Path(metrics_path), metrics)
    text = render_card(metrics, entry, anchors, onnx_params=params)
    image = out.parent / curves_name(metrics["model_id"])
    drawn: Path | None = None
    if not has_matplotlib():
        kept = "kept the existing" if image.exists() else "did not write the"
        progress.note(
            f"note: matplotlib is not installed ({INSTALL_HINT}); {kept} training-curves image "
            f"{image}; the card links it",
            quiet,
        )
    else:
        from sod_train.evaluate.curves import save_training_curves

        save_training_curves(metrics["training"]["history"], image)
        drawn = image
    atomicio.write_bytes(out, text.encode("utf-8"))
    return CardFiles(out, drawn)


def _check_out(
    out: Path,
    metrics: dict[str, Any],
    metrics_path: Path,
    registry_path: Path,
    anchors: list[Path],
) -> None:
    """The card and its image must be writable and must not be any file they are made from."""
    image = out.parent / curves_name(metrics["model_id"])
    check_output_file(out, "the model card")
    check_output_file(image, "the training-curves image")
    reads = [("the metrics JSON", Path(metrics_path)), ("the registry", registry_path)]
    reads += [("the anchor metrics", path) for path in anchors]
    refuse_aliases(reads, [("the card", out), ("the training-curves image", image)])
