"""Golden vectors: fixed inputs and the outputs a shipped model must give for them.

A C/C++ host uses them to prove that its preprocessing and its runtime reproduce
ours. The inputs come from a formula any C program reproduces bit-exactly in
float32 (IEEE single precision, no ``-ffast-math``). For a case of height ``H``
and width ``W`` the RGB ``uint8`` image is, for ``y < H``, ``x < W``, ``c < 3``::

    p[y][x][c] = (x*(c+1)*7 + y*(c+2)*13 + c*31) mod 256

and the model input (NCHW, batch 1, ImageNet normalisation, all float32)::

    v = (float)p / 255.0f
    input[0][c][y][x] = (v - mean[c]) / std[c]
    mean = {0.485f, 0.456f, 0.406f}, std = {0.229f, 0.224f, 0.225f}

Cases: 64x64, 37x53 (odd, not a multiple of anything) and 256x256. The file
``<stem>.golden.json`` next to the model holds, per case, the SHA-256 of the input
tensor (little-endian float32 bytes), the output statistics (mean, min, max,
sum, computed in float64 from the float32 map), a sample of pixels (the four
corners plus 60 positions ``y = (131k + 5) mod H``, ``x = (197k + 3) mod W``,
stored explicitly as ``[y, x, value]``) and, for cases of at most 4096 pixels,
the full output map (row-major). Values are the shortest decimal that reads back
as the same float32. Everything is compared with an absolute tolerance (default
1e-4; the sum with tolerance * H * W). The layout is documented in docs/golden.md.

This module needs only numpy plus onnxruntime (or onnx for the reference
evaluator), imported when used, so the runtime matrix can run it in a bare venv.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sod_train import __version__, atomicio
from sod_train.contract import IMAGENET_MEAN, IMAGENET_STD, INPUT_NAME, OUTPUT_NAME
from sod_train.errors import UserInputError, first_line
from sod_train.guards import MAX_SIDE, read_json, refuse_aliases
from sod_train.hashing import file_sha256

FORMAT = "sod-train-golden"
FORMAT_VERSION = 1
MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)
GOLDEN_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (37, 53), (256, 256))
DEFAULT_TOLERANCE = 1e-4
FULL_MAP_MAX_PIXELS = 4096
SAMPLE_COUNT = 60
FORMULA = "p = (x*(c+1)*7 + y*(c+2)*13 + c*31) mod 256; input = ((float32)p/255 - mean[c]) / std[c]"
SAMPLE_FORMULA = "corners, then y = (131*k + 5) mod H, x = (197*k + 3) mod W for k = 0..59"
# What a golden file may ask of a reader (ours hold 3 cases of at most 256x256): anything
# beyond is refused before a single input tensor is built.
MAX_CASES = 64
MAX_CASE_PIXELS = 1024 * 1024
MAX_SAMPLES = 10_000
STAT_KEYS = ("mean", "min", "max", "sum")

Runner = Callable[[np.ndarray], np.ndarray]


class RunStopped(RuntimeError):
    """A run was stopped at its deadline (guards.MAX_RUN_SECONDS): the model never finishes."""


def golden_image(height: int, width: int) -> np.ndarray:
    """The case's RGB image, uint8 [H, W, 3], from the documented formula."""
    y = np.arange(height, dtype=np.int64)[:, None, None]
    x = np.arange(width, dtype=np.int64)[None, :, None]
    c = np.arange(3, dtype=np.int64)[None, None, :]
    return ((x * (c + 1) * 7 + y * (c + 2) * 13 + c * 31) % 256).astype(np.uint8)


def golden_input(height: int, width: int) -> np.ndarray:
    """The model input for a case: float32 [1, 3, H, W], normalised op by op in float32."""
    v = golden_image(height, width).astype(np.float32) / np.float32(255.0)
    normalised = (v - MEAN) / STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)


def tensor_sha256(tensor: np.ndarray) -> str:
    """SHA-256 of a tensor's little-endian float32 bytes (C order), as a host computes it."""
    return hashlib.sha256(np.ascontiguousarray(tensor, dtype="<f4").tobytes()).hexdigest()


def sample_positions(height: int, width: int) -> list[tuple[int, int]]:
    """The (y, x) pixels sampled for a case: the four corners, then SAMPLE_COUNT from a formula."""
    corners = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
    spread = [((131 * k + 5) % height, (197 * k + 3) % width) for k in range(SAMPLE_COUNT)]
    return corners + spread


def _f32(value: Any) -> float:
    """The shortest decimal that reads back as the same float32, as a Python float."""
    return float(str(np.float32(value)))


def ort_runner(model: Any, threads: int = 1) -> Runner:
    """A runner over onnxruntime (CPU) from a path, serialized bytes or a SaliencyModel.

    A path opens through the one model object (read, validated). Bytes go straight to the
    one session builder: ``check`` judges a file's contract itself and wants the raw run.
    Where ``onnx`` is missing (a bare host venv with numpy and onnxruntime,
    ``scripts/runtime_matrix.py``) a path's bytes are run that way too.
    """
    from sod_train.runtime.session import ModelTimeout, create_session, run_first, session_io

    try:  # the one model object; it needs onnx, which a bare runtime venv may lack
        from sod_train.runtime.model import SaliencyModel
    except ImportError:
        SaliencyModel = None
    if SaliencyModel is not None and isinstance(model, SaliencyModel):
        session, input_name = model.session, model.input_name
    elif SaliencyModel is not None and not isinstance(model, bytes):
        opened = SaliencyModel.open(model, threads)
        session, input_name = opened.session, opened.input_name
    else:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        session = create_session(data, threads)
        input_name = session_io(session)[0]

    def run(x: np.ndarray) -> np.ndarray:
        try:
            return run_first(session, input_name, x)
        except ModelTimeout:
            from sod_train import guards

            raise RunStopped(f"still running after {guards.MAX_RUN_SECONDS:g} s; stopped") from None

    return run


def reference_runner(model: Any) -> Runner:
    """A runner over ``onnx.reference`` (an independent implementation): path or ModelProto."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    from sod_train.runtime.modelfile import read_model

    proto = model if isinstance(model, onnx.ModelProto) else read_model(model)[1]
    evaluator = ReferenceEvaluator(proto)
    input_name = proto.graph.input[0].name
    return lambda x: np.asarray(evaluator.run(None, {input_name: x})[0])


def compute_cases(
    runner: Runner, sizes: tuple[tuple[int, int], ...] = GOLDEN_SIZES
) -> list[dict[str, Any]]:
    """Run every case through ``runner`` and record what a host must reproduce."""
    cases = []
    for height, width in sizes:
        x = golden_input(height, width)
        out = np.asarray(runner(x), dtype=np.float32)
        if out.shape != (1, 1, height, width):
            raise UserInputError(
                f"golden case {height}x{width}: model output shape {list(out.shape)}, "
                f"expected [1, 1, {height}, {width}]"
            )
        plane = out[0, 0].astype(np.float64)
        case: dict[str, Any] = {
            "name": f"{height}x{width}",
            "height": height,
            "width": width,
            "input_sha256": tensor_sha256(x),
            "stats": {
                "mean": float(plane.mean()),
                "min": float(plane.min()),
                "max": float(plane.max()),
                "sum": float(plane.sum()),
            },
            "sample": [
                [y, xx, _f32(out[0, 0, y, xx])] for y, xx in sample_positions(height, width)
            ],
        }
        if height * width <= FULL_MAP_MAX_PIXELS:
            case["output"] = [_f32(v) for v in out[0, 0].ravel()]
        cases.append(case)
    return cases


def default_golden_path(onnx_path: str | Path) -> Path:
    """``<stem>.golden.json`` next to the model."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.golden.json")


def write_golden(
    onnx_path: str | Path,
    dest: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    model_file: str | None = None,
) -> Path:
    """Run the model on every case with onnxruntime and write the golden file atomically.

    Returns the path written (default ``<stem>.golden.json`` next to the model).
    ``model_file`` is the model's name recorded in the file; by default the
    ``<stem>.onnx`` that a ``<stem>.golden.json`` dest belongs to, so an exporter
    may compute the vectors from a temporary file before renaming it into place.
    """
    onnx_path = Path(onnx_path)
    dest = Path(dest) if dest is not None else default_golden_path(onnx_path)
    if model_file is None:
        suffix = ".golden.json"
        stem = dest.name[: -len(suffix)] if dest.name.endswith(suffix) else None
        model_file = f"{stem}.onnx" if stem else onnx_path.name
    refuse_aliases([("the model", onnx_path)], [("the golden vectors", dest)])
    try:
        import onnxruntime as ort

        runner = ort_runner(onnx_path)
        cases = compute_cases(runner)
        model_sha = file_sha256(onnx_path)
    except UserInputError as exc:
        raise UserInputError(f"{onnx_path}: {exc}") from None
    except Exception as exc:
        raise UserInputError(
            f"{onnx_path}: cannot compute golden vectors ({first_line(exc)})"
        ) from None
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"file": model_file, "sha256": model_sha},
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW float32, batch 1",
            "formula": FORMULA,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        "output": {"name": OUTPUT_NAME, "layout": "[1, 1, H, W] float32, row-major map"},
        "tolerance": {"abs": tolerance, "sum": "abs * H * W"},
        "sample_formula": SAMPLE_FORMULA,
        "full_map_max_pixels": FULL_MAP_MAX_PIXELS,
        "produced_by": {"sod_train": __version__, "onnxruntime": ort.__version__},
        "cases": cases,
    }
    atomicio.write_json(dest, doc)
    return dest


def load_golden(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a golden file; UserInputError naming the file if unusable."""
    path = Path(path)
    doc = read_json(path, "the golden vectors")
    problem = _layout_problem(doc)
    if problem:
        raise UserInputError(f"{path}: not a golden-vector file ({problem})")
    return doc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a bool; an int too large for a float is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _layout_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a usable golden file (None if it is): every type and size checked."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"'format' must be '{FORMAT}'"
    if doc.get("format_version") != FORMAT_VERSION:
        return f"unsupported format_version {str(doc.get('format_version'))[:40]!r}"
    model = doc.get("model", {})
    if not isinstance(model, dict) or not isinstance(model.get("sha256", ""), (str, type(None))):
        return "'model' must be an object with a string sha256"
    tol = doc.get("tolerance", {}).get("abs") if isinstance(doc.get("tolerance"), dict) else None
    if not _is_number(tol) or not 0 <= tol <= 1:  # maps are in [0, 1]: more checks nothing
        return "tolerance.abs must be a number in [0, 1]"
    cases = doc.get("cases")
    if not isinstance(cases, list) or not cases:
        return "no cases"
    if len(cases) > MAX_CASES:
        return f"{len(cases)} cases, more than {MAX_CASES}"
    for index, case in enumerate(cases):
        problem = _case_problem(case)
        if problem:
            name = case.get("name") if isinstance(case, dict) else None
            label = name if isinstance(name, str) else f"#{index}"
            return f"malformed case {label[:40]}: {problem}"
    return None


def _case_problem(case: Any) -> str | None:
    """Why one case cannot be checked (None if it can)."""
    if not isinstance(case, dict):
        return "not an object"
    if not isinstance(case.get("name", ""), str):
        return "name must be a string"
    h, w = case.get("height"), case.get("width")
    if not (_is_int(h) and _is_int(w) and h >= 1 and w >= 1):
        return "height and width must be integers >= 1"
    if max(h, w) > MAX_SIDE or h * w > MAX_CASE_PIXELS:
        return f"{h}x{w} is larger than a golden case may be (at most {MAX_CASE_PIXELS:,} pixels)"
    sha = case.get("input_sha256")
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        return "input_sha256 must be 64 lower-case hex digits"
    stats = case.get("stats")
    if not (isinstance(stats, dict) and all(_is_number(stats.get(k)) for k in STAT_KEYS)):
        return "stats must hold the numbers mean, min, max and sum"
    sample = case.get("sample")
    if not isinstance(sample, list) or len(sample) > MAX_SAMPLES:
        return f"sample must be a list of at most {MAX_SAMPLES:,} [y, x, value] entries"
    for entry in sample:
        if not (isinstance(entry, list) and len(entry) == 3):
            return "sample entries must be [y, x, value]"
        y, x, v = entry
        if not (_is_int(y) and _is_int(x) and 0 <= y < h and 0 <= x < w and _is_number(v)):
            return f"sample entry {str(entry)[:60]} is not [y < {h}, x < {w}, number]"
    output = case.get("output")
    if output is not None and not (
        isinstance(output, list) and len(output) == h * w and all(map(_is_number, output))
    ):
        return f"output must be a list of {h * w:,} numbers (the {h}x{w} map)"
    return None


def _check_case(case: dict[str, Any], runner: Runner, tol: float) -> list[str]:
    h, w, name = int(case["height"]), int(case["width"]), case.get("name", "?")
    x = golden_input(h, w)
    if tensor_sha256(x) != case["input_sha256"]:
        return [f"case {name}: input formula no longer reproduces the recorded input sha256"]
    try:
        out = np.asarray(runner(x))
    except RunStopped:
        raise  # the model never finishes: no further case is worth waiting for
    except Exception as exc:
        return [f"case {name}: runtime error: {first_line(exc)}"]
    if out.dtype.kind != "f":
        return [f"case {name}: output is {out.dtype} data, not float"]
    if out.shape != (1, 1, h, w):
        return [f"case {name}: output shape {list(out.shape)}, expected [1, 1, {h}, {w}]"]
    plane = out[0, 0].astype(np.float64)
    if not np.isfinite(plane).all():
        return [f"case {name}: output has non-finite values"]
    problems = []
    if "output" in case:
        want = np.asarray(case["output"], dtype=np.float64).reshape(h, w)
        diff = np.abs(plane - want)
        bad = int((diff > tol).sum())
        if bad:
            y, xx = np.unravel_index(int(diff.argmax()), diff.shape)
            problems.append(
                f"case {name}: {bad} of {h * w} pixels differ by more than {tol:g} "
                f"(max {diff.max():.3g} at y={y}, x={xx})"
            )
    mismatched = [(y, xx, v) for y, xx, v in case["sample"] if abs(plane[y, xx] - v) > tol]
    if mismatched:
        y, xx, v = mismatched[0]
        problems.append(
            f"case {name}: {len(mismatched)} of {len(case['sample'])} sampled pixels differ "
            f"by more than {tol:g} (first y={y}, x={xx}: got {plane[y, xx]:.7g}, want {v:.7g})"
        )
    got = {"mean": plane.mean(), "min": plane.min(), "max": plane.max(), "sum": plane.sum()}
    for key, value in got.items():
        limit = tol * h * w if key == "sum" else tol
        want_v = float(case["stats"][key])
        if abs(value - want_v) > limit:
            problems.append(f"case {name}: {key} {value:.7g}, golden {want_v:.7g}")
    return problems


def run_golden_with(runner: Runner, golden: dict[str, Any] | str | Path) -> list[str]:
    """Check ``runner`` (float32 [1,3,H,W] -> [1,1,H,W]) against golden vectors.

    ``golden`` is a loaded document or a path. Returns one line per problem; empty
    means every case matches within the file's tolerance. Runtime errors become
    problem lines, so any runner (onnxruntime, onnx.reference, a host) fits.
    """
    doc = golden if isinstance(golden, dict) else load_golden(golden)
    tol = float(doc["tolerance"]["abs"])
    problems: list[str] = []
    for case in doc["cases"]:
        try:
            problems.extend(_check_case(case, runner, tol))
        except RunStopped as exc:
            problems.append(f"case {case.get('name', '?')}: {exc}; later cases not run")
            break
    return problems


def verify_golden(
    model: Any,
    golden_path: str | Path | None = None,
    check_sha256: bool = True,
) -> list[str]:
    """Check a model (path or onnxruntime InferenceSession) against its golden file.

    ``golden_path`` defaults to ``<stem>.golden.json`` next to a model path. With
    ``check_sha256`` a model path whose SHA-256 differs from the recorded one is a
    problem too (the golden file is stale). Returns problem lines, empty if all match.
    """
    if golden_path is None:
        if not isinstance(model, (str, Path)):
            raise UserInputError("verify_golden: pass golden_path when giving a session")
        golden_path = default_golden_path(model)
    doc = load_golden(golden_path)
    problems = []
    if check_sha256 and isinstance(model, (str, Path)):
        recorded = doc.get("model", {}).get("sha256")
        from sod_train.runtime.modelfile import read_model

        actual = hashlib.sha256(read_model(model)[0]).hexdigest()
        if recorded and recorded != actual:
            problems.append(f"{golden_path}: written for a different model file (sha256 differs)")
    try:
        runner = ort_runner(model)
    except Exception as exc:
        return [*problems, f"{model}: onnxruntime cannot load the model: {first_line(exc)}"]
    return problems + run_golden_with(runner, doc)
