"""Conformance check of an ONNX file against the host contract, one verdict per rule.

The contract a C/C++ host relies on: one input ``input`` float32 [1,3,H,W] and one
output ``saliency_map`` float32 [1,1,H,W] with H and W symbolic; opset 17 in the
default domain only; every node (sub-graphs included) on the op allowlist; no
BatchNormalization left unfolded; weights inside the file; a size cap; and the
model must actually run in onnxruntime (CPU) at awkward sizes, give a finite map
in [0,1] of the input's size, be deterministic, and match its golden vectors.

Only a file that cannot be read or parsed as ONNX raises (UserInputError, exit 2; it is
read by the one model loader, :mod:`sod_train.runtime.modelfile`, so a FIFO or a device is refused
at once); every other problem, including runtime errors, names that are not UTF-8 and
outputs of the wrong type, becomes a failed check line.
The runtime checks feed only this module's own sizes, never the declared ones,
so a graph declaring a huge dimension cannot make the check allocate it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx

from sod_train.check.allowlist import (
    DEFAULT_ALLOWLIST,
    disallowed_ops,
    iter_nodes,
    load_allowlist,
    text,
)
from sod_train.check.golden import (
    RunStopped,
    default_golden_path,
    load_golden,
    ort_runner,
    run_golden_with,
)
from sod_train.contract import INPUT_NAME, MAX_IR_VERSION, OPSET, OUTPUT_NAME
from sod_train.errors import SodTrainError, UserInputError, first_line, joined
from sod_train.runtime import modelfile
from sod_train.runtime.session import ort_message

DEFAULT_SIZES: tuple[tuple[int, int], ...] = (
    (1, 1),
    (7, 13),
    (64, 64),
    (256, 256),
    (321, 481),
    (540, 960),
    (1080, 1920),
)
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class Check(NamedTuple):
    """One verdict: a short name, whether it passed, and one line saying why."""

    name: str
    passed: bool
    detail: str
    skipped: bool = False


@dataclass
class CheckReport:
    """All verdicts for one model file, in a fixed order."""

    model: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def add(self, name: str, passed: bool, detail: str, skipped: bool = False) -> None:
        self.checks.append(Check(name, passed, detail, skipped))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "passed": self.passed,
            "checks": [c._asdict() for c in self.checks],
        }


read_model = modelfile.read_model  # the one loader: regular files only, bounded, parsed


def _dim(d: onnx.TensorShapeProto.Dimension) -> str:
    if d.HasField("dim_value"):
        return str(d.dim_value)
    return text(d.dim_param) or "?"


def _dtype_name(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        return f"elem_type {elem_type}"


def describe(value: onnx.ValueInfoProto) -> str:
    """``name dtype [dims]`` for a graph input or output, e.g. ``input float32 [1,3,H,W]``."""
    if not value.type.HasField("tensor_type"):
        return f"'{text(value.name)}' (not a tensor)"
    tensor = value.type.tensor_type
    dtype = _dtype_name(tensor.elem_type)
    if not tensor.HasField("shape"):
        return f"'{text(value.name)}' {dtype} (no shape)"
    return f"'{text(value.name)}' {dtype} [{','.join(_dim(d) for d in tensor.shape.dim)}]"


def _io_problem(
    values: list[onnx.ValueInfoProto], kind: str, name: str, channels: int, hw: list[str] | None
) -> str | None:
    """Why ``values`` is not exactly one ``name`` float32 [1,channels,H,W] (None if it is).

    ``hw`` pins the symbols of H and W (for the output: the input's); None accepts
    any two distinct symbols.
    """
    want = f"one {kind} '{name}' float32 [1,{channels},H,W] with symbolic H,W"
    got = ", ".join(describe(v) for v in values) or "none"
    if len(values) != 1:
        return f"expected {want}; got {len(values)}: {got}"
    value = values[0]
    tensor = value.type.tensor_type if value.type.HasField("tensor_type") else None
    dims = list(tensor.shape.dim) if tensor is not None and tensor.HasField("shape") else []
    if value.name != name or tensor is None or tensor.elem_type != onnx.TensorProto.FLOAT:
        return f"expected {want}; got {got}"
    if len(dims) != 4 or [_dim(d) for d in dims[:2]] != ["1", str(channels)]:
        return f"expected {want}; got {got}"
    symbols = [text(d.dim_param) for d in dims[2:]]
    if any(d.HasField("dim_value") or not d.dim_param for d in dims[2:]):
        return f"H and W must be symbolic (dim_param), not fixed; got {got}"
    if symbols[0] == symbols[1]:
        return f"H and W must be two different symbols; got {got}"
    if hw is not None and symbols != hw:
        return f"H,W must be the input's symbols {','.join(hw)}; got {got}"
    return None


def _check_io(report: CheckReport, model: onnx.ModelProto) -> None:
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    problem = _io_problem(inputs, "input", INPUT_NAME, 3, None)
    report.add("input", problem is None, problem or describe(inputs[0]))
    hw = (
        [text(d.dim_param) for d in inputs[0].type.tensor_type.shape.dim[2:]]
        if not problem
        else None
    )
    problem = _io_problem(list(graph.output), "output", OUTPUT_NAME, 1, hw)
    report.add("output", problem is None, problem or describe(graph.output[0]))


def _check_opset(report: CheckReport, model: onnx.ModelProto) -> None:
    imports = [(text(op.domain) or "ai.onnx", op.version) for op in model.opset_import]
    found = ", ".join(f"{d} {v}" for d, v in imports) or "none"
    ok = len(imports) == 1 and imports[0] == ("ai.onnx", OPSET)
    detail = found if ok else f"expected exactly ai.onnx {OPSET} and no other domain; got {found}"
    report.add("opset", ok, detail)


_external_tensors = modelfile.external_tensors


def _check_static(
    report: CheckReport, model: onnx.ModelProto, size: int, allowed: frozenset[str], cap: int
) -> None:
    report.add(
        "ir_version",
        0 < model.ir_version <= MAX_IR_VERSION,
        f"{model.ir_version} (hosts on onnxruntime >= 1.15 read <= {MAX_IR_VERSION})",
    )
    _check_opset(report, model)
    _check_io(report, model)
    disallowed = disallowed_ops(model, allowed)
    ops = sorted({text(n.op_type) for _, n in iter_nodes(model.graph)})
    if disallowed:  # every disallowed op is named, however many nodes use it
        report.add("allowlist", False, "; ".join(disallowed))
    else:
        report.add("allowlist", True, f"all ops allowed: {', '.join(ops) or 'none'}")
    bn = [loc for loc, n in iter_nodes(model.graph) if n.op_type == "BatchNormalization"]
    report.add(
        "no_batchnorm",
        not bn,
        f"BatchNormalization not folded: {', '.join(bn[:5])}" if bn else "none left",
    )
    external = _external_tensors(model)
    report.add(
        "no_external_data",
        not external,
        f"{len(external)} tensors stored outside the file: {', '.join(external[:5])}"
        if external
        else "all weights inside the file",
    )
    mib = size / 2**20
    report.add("file_size", size <= cap, f"{size} bytes ({mib:.2f} MiB), cap {cap / 2**20:g} MiB")


def _run_once(run: Any, h: int, w: int) -> tuple[np.ndarray | None, str]:
    """Run at h x w with a fixed pseudo-random input; (output or None, verdict text)."""
    x = np.random.default_rng(h * 100_003 + w).standard_normal((1, 3, h, w), dtype=np.float32)
    try:
        out = np.asarray(run(x))
    except RunStopped as exc:
        return None, f"{exc} (the model never finishes)"
    except Exception as exc:
        return None, f"onnxruntime error: {ort_message(exc)}"
    if out.dtype.kind != "f":
        return None, f"output is {out.dtype} data, expected float32"
    if out.shape != (1, 1, h, w):
        return None, f"output shape {list(out.shape)}, expected [1, 1, {h}, {w}]"
    if not np.isfinite(out).all():
        return None, f"{int((~np.isfinite(out)).sum())} non-finite output values"
    lo, hi = float(out.min()), float(out.max())
    if lo < 0.0 or hi > 1.0:
        return None, f"output outside [0,1]: min {lo:.4g}, max {hi:.4g}"
    return out, f"shape [1,1,{h},{w}], finite, range [{lo:.4f}, {hi:.4f}]"


def _check_runtime(
    report: CheckReport,
    data: bytes,
    sizes: tuple[tuple[int, int], ...],
    skip_reason: str | None,
    golden_path: Path | None,
    model_sha256: str,
) -> None:
    run = None
    if skip_reason is None:
        try:
            import onnxruntime as ort

            run = ort_runner(data, threads=1)
            report.add("ort_load", True, f"onnxruntime {ort.__version__} (CPU) loads the model")
        except UserInputError as exc:
            skip_reason = str(exc)
            report.add("ort_load", False, skip_reason)
    else:
        report.add("ort_load", False, f"not run: {skip_reason}")
    if run is None:
        for h, w in sizes:
            report.add(f"run {h}x{w}", False, f"not run: {skip_reason}")
        report.add("deterministic", False, f"not run: {skip_reason}")
        if golden_path is not None:
            report.add("golden", False, f"not run: {skip_reason}")
        return

    passed = []
    stopped = None  # a run stopped at its deadline: the rest would only wait as long again
    for h, w in sizes:
        if stopped is not None:
            report.add(f"run {h}x{w}", False, f"not run: {stopped}")
            continue
        out, detail = _run_once(run, h, w)
        report.add(f"run {h}x{w}", out is not None, detail)
        if out is not None:
            passed.append((h, w))
        elif "never finishes" in detail:
            stopped = f"the run at {h}x{w} was stopped ({detail})"
    if stopped is not None:
        report.add("deterministic", False, f"not run: {stopped}")
        if golden_path is not None:
            report.add("golden", False, f"not run: {stopped}")
        return
    _check_determinism(report, run, passed)
    if golden_path is not None:
        _check_golden(report, run, golden_path, model_sha256)


def _check_determinism(report: CheckReport, run: Any, passed: list[tuple[int, int]]) -> None:
    if not passed:
        report.add("deterministic", False, "not run: the model ran at no size")
        return
    # The largest working size up to 256x256 (cheap, still exercises tiling).
    h, w = max((s for s in passed if s[0] * s[1] <= 256 * 256), default=passed[0])
    first, _ = _run_once(run, h, w)
    second, _ = _run_once(run, h, w)
    same = first is not None and second is not None and first.tobytes() == second.tobytes()
    report.add(
        "deterministic", same, f"two runs at {h}x{w} " + ("bit-identical" if same else "differ")
    )


def _check_golden(report: CheckReport, run: Any, golden_path: Path, model_sha256: str) -> None:
    if not golden_path.exists():
        report.add("golden", True, f"no {golden_path.name} next to the model", True)
        return
    try:
        doc = load_golden(golden_path)
    except SodTrainError as exc:
        report.add("golden", False, str(exc))
        return
    problems = []
    if doc.get("model", {}).get("sha256") not in (None, model_sha256):
        problems.append("written for a different model file (sha256 differs)")
    try:
        problems += run_golden_with(run, doc)
    except Exception as exc:  # the file passed load_golden; a failure here is the model's
        problems.append(f"cannot run the golden cases: {first_line(exc, 240)}")
    if problems:
        report.add("golden", False, f"{golden_path.name}: " + joined(problems, 2))
    else:
        names = ", ".join(c["name"] for c in doc["cases"])
        report.add("golden", True, f"{golden_path.name} matches ({names})")


def check_model(
    path: str | Path,
    allowlist_path: str | Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES,
) -> CheckReport:
    """Verify one ONNX file against the host contract; one Check per rule, in a fixed order.

    Raises UserInputError only when the file (or the allowlist) cannot be read or
    parsed; every other problem is a failed Check in the returned report.
    """
    path = Path(path)
    allowed = load_allowlist(allowlist_path if allowlist_path is not None else DEFAULT_ALLOWLIST)
    data, model = read_model(path)
    return check_proto(data, model, path, allowed, max_bytes, sizes, default_golden_path(path))


def check_proto(
    data: bytes,
    model: onnx.ModelProto,
    name: Path,
    allowed: frozenset[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES,
    golden_path: Path | None = None,
) -> CheckReport:
    """Every rule of the contract on serialised ``data`` (parsed as ``model``).

    The one authority for :func:`check_model` and for the exporter, which runs it on the
    bytes it is about to write. ``golden_path`` None leaves the golden rule out (the
    exporter writes the vectors after this passes).
    """
    report = CheckReport(name)
    try:
        onnx.checker.check_model(model, full_check=True)
        report.add("onnx.checker", True, "full check passed")
        skip = None
    except Exception as exc:
        detail = first_line(exc, 240)
        report.add("onnx.checker", False, detail)
        skip = "model fails onnx.checker"
    try:
        _check_static(report, model, len(data), allowed, max_bytes)
    except Exception as exc:  # a proto too corrupt even to describe
        report.add("contract", False, f"model too malformed to inspect: {first_line(exc, 240)}")
        skip = skip or "model too malformed to inspect"
    bad_names = modelfile.non_utf8_names(model)
    if bad_names:
        skip = skip or f"names that are not valid UTF-8: {joined(bad_names, 3, ', ')}"
    if any(c.name == "no_external_data" and not c.passed for c in report.checks):
        skip = skip or "model stores weights outside the file"
    sha = hashlib.sha256(data).hexdigest()
    _check_runtime(report, data, sizes, skip, golden_path, sha)
    return report
