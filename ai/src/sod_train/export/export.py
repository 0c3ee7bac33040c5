"""Export trained weights to a verified, drop-in ONNX file.

Order matters: the ship gate is checked first, then the model is built in memory
(BatchNorm folded, exported, simplified) and verified (opset, no BatchNormalization,
every op on the allowlist, PyTorch-vs-onnxruntime parity at sizes that are and are
not multiples of 8). Only a model that passed everything is written, atomically,
with its golden vectors and metrics JSON beside it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxsim
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from sod_train import __version__, atomicio
from sod_train.check.allowlist import DEFAULT_ALLOWLIST, iter_nodes, load_allowlist
from sod_train.check.check import check_proto
from sod_train.check.golden import write_golden
from sod_train.contract import (
    HEIGHT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    WIDTH,
)
from sod_train.errors import GateError, UserInputError, first_line
from sod_train.export.normaliser import add_normaliser, check_working_size, reference_map
from sod_train.guards import check_release_outputs
from sod_train.model.unet import build_model, count_parameters
from sod_train.provenance import build_record
from sod_train.runtime.model import SaliencyModel
from sod_train.train.config import TrainResult

PARITY_SIZES = ((256, 256), (257, 263), (97, 131))
PARITY_TOLERANCE = 1e-5
METRICS_SCHEMA_VERSION = 1


def check_gate(result: TrainResult, min_val_iou: float) -> None:
    """Refuse to export a model whose best validation IoU is below ``min_val_iou``."""
    if result.best_val_iou < min_val_iou:
        raise GateError(
            f"ship gate: best validation IoU {result.best_val_iou:.4f} (epoch {result.best_epoch}) "
            f"is below --min-val-iou {min_val_iou}; nothing was written"
        )


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm folded into its Conv.

    Folds each Conv2d directly followed by a BatchNorm2d inside any ``nn.Sequential``
    (the plain block's 3x3 conv, the separable block's pointwise conv); a BatchNorm
    anywhere else is an error rather than a silently unfolded layer.
    """
    folded = copy.deepcopy(model).eval()
    for seq in list(folded.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    if any(isinstance(m, nn.BatchNorm2d) for m in folded.modules()):
        raise GateError("export: a BatchNorm layer was left unfolded")
    return folded


def to_onnx(model: nn.Module) -> onnx.ModelProto:
    """Export at opset 17 with symbolic H, W, then simplify with onnxsim.

    We use the TorchScript exporter (``dynamo=False``): for this small static graph it
    gives a plain opset-17 graph with stable node names and byte-identical output
    across runs, while the dynamo exporter targets newer opsets and adds an
    opset-conversion step whose output has changed between torch releases.
    """
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 64, 64),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {2: HEIGHT, 3: WIDTH}, OUTPUT_NAME: {2: HEIGHT, 3: WIDTH}},
            do_constant_folding=True,
        )
    simplified, ok = onnxsim.simplify(onnx.load_from_string(buf.getvalue()))
    if not ok:
        raise GateError("export: onnxsim could not validate the simplified model")
    return simplified


def parity_sizes(working_size: int) -> tuple[tuple[int, int], ...]:
    """PARITY_SIZES, plus one where the normaliser works (k = 2, H and W not multiples of 2)."""
    if not working_size:
        return PARITY_SIZES
    return (*PARITY_SIZES, (2 * working_size + 1, 2 * working_size + 37))


def verify_onnx(
    proto: onnx.ModelProto, model: nn.Module, allowlist_path: Path, working_size: int = 0
) -> dict[str, Any]:
    """Every rule of ``check`` on the bytes to be written, then PyTorch parity.

    Raises GateError naming each failed rule: export and ``sod-train check`` share one
    authority (:func:`sod_train.check.check.check_proto`), so nothing ships that check refuses.
    Parity compares onnxruntime with the PyTorch network inside the normaliser's numpy
    reference (:func:`sod_train.export.normaliser.reference_map`).
    """
    data = proto.SerializeToString()
    allowed = load_allowlist(allowlist_path)
    report = check_proto(data, proto, Path("export"), allowed, sizes=PARITY_SIZES)
    if not report.passed:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failed)
        raise GateError(f"export: the model breaks the host contract ({failed})")
    runtime = SaliencyModel.open(data, label="export")
    parity: dict[str, float] = {}
    rng = np.random.default_rng(0)

    def network(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    for h, w in parity_sizes(working_size):
        x = rng.standard_normal((1, 3, h, w), dtype=np.float32)
        expected = reference_map(network, x, working_size)
        got = runtime.run(x)
        if got.shape != (1, 1, h, w):
            raise GateError(f"export: output shape {got.shape} at input {h}x{w}")
        parity[f"{h}x{w}"] = float(np.abs(got - expected).max())
        if parity[f"{h}x{w}"] > PARITY_TOLERANCE:
            raise GateError(
                f"export: PyTorch vs onnxruntime max abs diff {parity[f'{h}x{w}']:.2e} "
                f"at {h}x{w} exceeds {PARITY_TOLERANCE}"
            )
    ops = sorted({node.op_type for _, node in iter_nodes(proto.graph)})  # If branches too
    return {"ops": ops, "parity_max_abs_diff": parity}


def build_metrics(
    result: TrainResult,
    model_id: str,
    onnx_bytes: bytes,
    checks: dict,
    params: int,
    min_val_iou: float,
    command: str | None = None,
) -> dict[str, Any]:
    """The metrics JSON, keys in a fixed order so two runs diff cleanly.

    ``command`` (the command line that trained it) adds ``build``
    (:func:`sod_train.provenance.build_record`).
    """
    wall = time.time() - result.extra["started"] if "started" in result.extra else None
    doc = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "model_id": model_id,
        "created_by": f"sod-train {__version__}",
        "contract": {
            "input": {
                "name": INPUT_NAME,
                "dtype": "float32",
                "shape": [1, 3, HEIGHT, WIDTH],
                "normalisation": {
                    "mean": list(IMAGENET_MEAN),
                    "std": list(IMAGENET_STD),
                    "range": "RGB/255",
                },
            },
            "output": {
                "name": OUTPUT_NAME,
                "dtype": "float32",
                "shape": [1, 1, HEIGHT, WIDTH],
                "range": [0, 1],
            },
            "opset": OPSET,
        },
        "onnx": {
            "file": f"{model_id}.onnx",
            "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "bytes": len(onnx_bytes),
            "opset": OPSET,
            "ops": checks["ops"],
            "parity_max_abs_diff": checks["parity_max_abs_diff"],
            "working_size": result.config.working_size,
        },
        "model": {
            "arch": {"anchor": "tiny_unet", "lite": "lite_unet"}[result.config.arch],
            "config": result.config.model_config.to_dict(),
            "params": params,
        },
        "config": result.config.to_dict(),
        "data": result.data,
        "training": {
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_val_iou": result.best_val_iou,
            "best_val_iou_batch": result.best_val_iou_batch,
            "seconds_total": sum(h["seconds"] for h in result.history),
            **({"wall_seconds": wall} if wall is not None else {}),
        },
        "gate": {
            "metric": "val_iou",
            "value": result.best_val_iou,
            "threshold": min_val_iou,
            "passed": result.best_val_iou >= min_val_iou,
        },
        "environment": result.environment,
    }
    if command:
        doc["build"] = build_record(command, result.environment, wall)
    return doc


def export(
    result: TrainResult,
    output: str | Path,
    metrics_out: str | Path | None = None,
    min_val_iou: float = 0.5,
    allowlist_path: Path = DEFAULT_ALLOWLIST,
    smoke: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Gate, build, verify, then write ``output`` (+ golden vectors + metrics JSON).

    Returns the metrics dict; ``command`` is recorded as ``build.command``. Raises
    GateError (exit 1) without writing anything when the gate or a check fails.
    """
    output = Path(output)
    check_release_outputs(output, metrics_out, reads=[("the op allowlist", allowlist_path)])
    check_gate(result, min_val_iou)
    model = build_model(result.config.model_config)
    try:
        model.load_state_dict(result.best_state)
    except RuntimeError as exc:
        raise UserInputError(
            f"weights do not fit the recorded model config {result.config.model_config}: "
            f"{first_line(exc)}"
        ) from None
    params = count_parameters(model)
    folded = fold_batchnorm(model)
    working_size = result.config.working_size
    check_working_size(working_size)
    proto = add_normaliser(to_onnx(folded), working_size)
    checks = verify_onnx(proto, folded, allowlist_path, working_size)
    onnx_bytes = proto.SerializeToString()
    metrics = build_metrics(result, output.stem, onnx_bytes, checks, params, min_val_iou, command)
    if smoke or result.config.preset == "smoke-cpu":
        metrics["smoke"] = True
    metrics_text = json.dumps(finite_or_null(metrics), indent=2, allow_nan=False) + "\n"
    metrics_path = Path(metrics_out) if metrics_out else output.with_suffix(".metrics.json")
    write_release(output, onnx_bytes, metrics_path, metrics_text)
    return metrics


def finite_or_null(obj: Any) -> Any:
    """``obj`` with NaN/inf floats (a diverged epoch's loss) replaced by None: valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_or_null(v) for v in obj]
    return obj


def write_release(output: Path, onnx_bytes: bytes, metrics_path: Path, metrics_text: str) -> None:
    """Write the metrics JSON, golden vectors and ONNX file, all or nothing.

    Everything goes to temp files first; only when all three are complete are they
    renamed into place, the ONNX file last, so a host never sees a model without its
    golden vectors and metrics.
    """
    golden_path = output.with_suffix(".golden.json")
    try:
        with (
            atomicio.atomic_path(output) as onnx_tmp,
            atomicio.atomic_path(golden_path) as golden_tmp,
            atomicio.atomic_path(metrics_path) as metrics_tmp,
        ):
            onnx_tmp.write_bytes(onnx_bytes)
            write_golden(onnx_tmp, golden_tmp, model_file=output.name)
            metrics_tmp.write_text(metrics_text)
    except OSError as exc:
        raise UserInputError(f"{exc.filename or output}: cannot write ({exc.strerror})") from None
