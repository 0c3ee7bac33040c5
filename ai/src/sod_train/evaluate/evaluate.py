"""Benchmark an ONNX saliency model on a folder of (image, mask) pairs.

Protocol (what :data:`PROTOCOL` states in every result):

1. the image is decoded to 8-bit RGB (EXIF orientation applied), resized to
   ``size`` x ``size`` (Pillow bilinear), divided by 255 and ImageNet-normalised;
   with ``native`` it keeps its own size;
2. onnxruntime (CPU) runs the model; its [1,1,h,w] map is resized back to the mask's
   size (Pillow bilinear on the float32 map) and quantised to uint8 as
   ``rint(clip(map, 0, 1) * 255)``;
3. the uint8 map and the mask (foreground = value > 128) go to
   :class:`sod_train.evaluate.sod_metrics.SODMetrics` (PySODMetrics definitions).

The data digest is :func:`sod_train.data.pairs.content_digest` over every image and mask,
so a result says exactly which files it was measured on.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import numpy as np
from PIL import Image, UnidentifiedImageError

from sod_train import atomicio
from sod_train.check import modelio
from sod_train.check.modelio import load_session
from sod_train.data import pairs
from sod_train.data.imageio import load_rgb, open_image, to_model_input
from sod_train.errors import UserInputError
from sod_train.evaluate.sod_metrics import METRIC_KEYS, SODMetrics
from sod_train.guards import read_json_object, refuse_aliases

PROTOCOL = (
    "RGB {input}, /255, ImageNet mean/std; onnxruntime CPU; map {back}, "
    "uint8 = rint(clip(map,0,1)*255); mask > 128; PySODMetrics definitions "
    "(F beta^2=0.3 over 256 thresholds, adaptive 2*mean; S alpha=0.5; wF beta=1; IoU at 0.5)"
)
RECORDED_KEYS = ("n", "size", "protocol", "digest", "metrics")
MASK_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
)


def tune_allocator(threshold: int = 32 << 20) -> bool:
    """Let glibc keep freed blocks up to ``threshold`` bytes on the heap; True if it did.

    The metrics allocate many image-sized numpy temporaries. With glibc's defaults each
    one is a fresh mmap that is page-faulted in and unmapped again, which here made the
    metrics about twice as slow. Raising the mmap and trim thresholds (what the
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ variables do) reuses that memory.
    Process-wide, so only commands and benchmarks call it; a no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, threshold)) and bool(mallopt(m_trim_threshold, threshold))


def protocol_text(size: int | None) -> str:
    """The one-line protocol for resizing to ``size`` x ``size``, or native size (None)."""
    if size is None:
        return PROTOCOL.format(input="at native size (no resize)", back="at native size")
    return PROTOCOL.format(
        input=f"resized to {size}x{size} (bilinear)",
        back="resized back to the mask size (bilinear, float)",
    )


def dataset_name(image_dir: Path, root: Path) -> str:
    """``DUTS-TE`` for ``DUTS-TE-Image/``; the data folder's own name for ``images/``."""
    if image_dir.name.endswith("-Image"):
        return image_dir.name[: -len("-Image")]
    return root.resolve().name


def scan_dataset(data_dir: str | Path) -> pairs.PairScan:
    """All pairs of ``data_dir``; UserInputError listing every bad file, or if there are none.

    RGB masks are read as luminance, as the standard SOD evaluation tools do (the
    official DUTS-TE has two); 16-bit masks and everything else bad are refused.
    """
    scan = pairs.scan_pairs(data_dir, check_headers=True, allow_rgb=True)
    if scan.problems:
        shown = "\n  ".join(scan.problems[:50])
        more = f"\n  ... and {len(scan.problems) - 50} more" if len(scan.problems) > 50 else ""
        raise UserInputError(
            f"{scan.root}: {len(scan.problems)} bad file(s), fix or remove them:\n  {shown}{more}"
        )
    if not scan.pairs:
        raise UserInputError(f"{scan.root}: no image/mask pairs in {scan.image_dir}")
    return scan


def load_mask(path: Path) -> np.ndarray:
    """A mask file as uint8 HxW (1-bit, palette and RGB masks converted to 8-bit grey)."""
    with open_image(path, "mask") as img:
        try:
            return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)
        except MASK_ERRORS as exc:
            raise UserInputError(f"{path}: cannot decode mask ({exc})") from None


def predict_uint8(session: Any, rgb: np.ndarray, size: int | None) -> np.ndarray:
    """Steps 1-2 of the protocol: the model's map for ``rgb`` as uint8 at rgb's size.

    A failing run or an output that is not [1,1,h,w] at the input size raises
    UserInputError (the caller adds the file name).
    """
    height, width = rgb.shape[:2]
    x = to_model_input(rgb, size)
    out = modelio.run(session, x)
    if out.shape != (1, 1, *x.shape[2:]):
        raise UserInputError(
            f"model output has shape {list(out.shape)}, expected {[1, 1, *x.shape[2:]]}"
        )
    saliency = out[0, 0]
    if saliency.shape != (height, width):
        resized = Image.fromarray(saliency).resize((width, height), Image.Resampling.BILINEAR)
        saliency = np.asarray(resized, dtype=np.float32)
    if not np.isfinite(saliency).all():
        raise UserInputError("model output is not finite (NaN or inf)")
    return np.rint(np.clip(saliency, 0.0, 1.0) * 255.0).astype(np.uint8)


def evaluate_model(
    onnx_path: str | Path,
    data_dir: str | Path,
    size: int = 256,
    native: bool = False,
    threads: int | None = None,
    quiet: bool = False,
    name: str | None = None,
    writes: Iterable[tuple[str, Path]] = (),
) -> dict[str, Any]:
    """Run the benchmark protocol of this module and return the result dict.

    Keys: ``name`` (data-set name, see :func:`dataset_name`, or ``name``), ``n``,
    ``size`` (an int, or ``"native"``), ``protocol``, ``digest``, ``metrics`` (the nine
    of :data:`sod_train.evaluate.sod_metrics.METRIC_KEYS`), ``seconds`` and ``img_per_s`` (the
    whole loop: decoding, model and metrics). Bad data, an unloadable model or a run
    that fails raise UserInputError naming the file. ``writes`` are the ``(label, path)``
    outputs the caller will write: refused before any work if one is the model, a data
    file or another output.
    """
    problem = None if native else modelio.size_problem(size, size)
    if problem:
        raise UserInputError(f"--size {size}: {problem}")
    run_size = None if native else size
    scan = scan_dataset(data_dir)
    data_files = [path for pair in scan.pairs for path in (pair.image, pair.mask)]
    reads = [("the model", Path(onnx_path)), *(("the data file", p) for p in data_files)]
    refuse_aliases(reads, writes)
    session = load_session(onnx_path, threads)
    metrics = SODMetrics()
    start = time.perf_counter()
    with click.progressbar(
        scan.pairs, label="evaluating", file=sys.stderr, hidden=quiet
    ) as progress:
        for pair in progress:
            rgb, (width, height) = load_rgb(pair.image)
            mask = load_mask(pair.mask)
            if mask.shape != (height, width):
                raise UserInputError(
                    f"{pair.mask}: size {mask.shape[1]}x{mask.shape[0]} != image size "
                    f"{width}x{height} (after EXIF orientation)"
                )
            try:
                pred = predict_uint8(session, rgb, run_size)
            except UserInputError as exc:
                raise UserInputError(f"{onnx_path} on {pair.image}: {exc}") from None
            metrics.step(pred, mask)
    seconds = time.perf_counter() - start
    files = data_files
    return {
        "name": name or dataset_name(scan.image_dir, scan.root),
        "n": metrics.n,
        "size": "native" if native else size,
        "protocol": protocol_text(run_size),
        "digest": pairs.content_digest(scan.root, files),
        "metrics": {key: round(value, 6) for key, value in metrics.get_results().items()},
        "seconds": round(seconds, 3),
        "img_per_s": round(metrics.n / seconds, 2) if seconds > 0 else None,
    }


def record_evaluation(metrics_path: str | Path, result: dict[str, Any]) -> None:
    """Store ``result`` under ``evaluations[result["name"]]`` of a metrics JSON, atomically.

    Only n, size, protocol, digest and metrics are recorded (no timings, which vary by
    machine). Every other key, and the order of all keys, is kept; an existing entry of
    the same name is replaced in place.
    """
    metrics_path = Path(metrics_path)
    doc = read_record(metrics_path)
    evaluations = doc.get("evaluations") or {}
    evaluations[result["name"]] = {key: result[key] for key in RECORDED_KEYS}
    doc["evaluations"] = evaluations
    atomicio.write_json(metrics_path, doc)


def read_record(metrics_path: str | Path) -> dict[str, Any]:
    """The metrics JSON ``--record`` updates, checked: a bounded JSON object whose
    ``evaluations`` (if any) is an object. UserInputError naming the file if not.

    Called before the evaluation starts too, so a bad file fails in a second.
    """
    doc = read_json_object(metrics_path, "the metrics JSON to record into")
    if doc.get("evaluations") is not None and not isinstance(doc["evaluations"], dict):
        raise UserInputError(f"{metrics_path}: 'evaluations' must be an object")
    return doc


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    """Write the full result dict as JSON, atomically."""
    atomicio.write_json(path, result)


def format_table(result: dict[str, Any]) -> str:
    """A small fixed-width table of the metrics, with a header line."""
    size = result["size"]
    head = (
        f"{result['name']}: n={result['n']}, "
        f"{'native size' if size == 'native' else f'{size}x{size}'}, "
        f"{result['img_per_s']} img/s"
    )
    names = "  ".join(f"{key:>6}" for key in METRIC_KEYS)
    values = "  ".join(f"{result['metrics'][key]:>6.4f}" for key in METRIC_KEYS)
    return f"{head}\n{names}\n{values}"
