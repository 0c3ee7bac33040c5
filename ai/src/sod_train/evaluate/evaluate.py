"""Benchmark an ONNX saliency model on a folder of (image, mask) pairs.

Protocol (what :data:`PROTOCOL` states in every result):

1. the image is decoded to 8-bit RGB (EXIF orientation applied);
2. :meth:`sod_train.runtime.model.SaliencyModel.map`, the one picture -> map step that
   ``predict`` uses too: resized to ``size`` x ``size`` (Pillow bilinear; ``native``
   keeps its own size), /255, ImageNet-normalised, run by onnxruntime (CPU), the float32
   map resized back to the mask's size (bilinear) and clipped, then quantised to uint8
   as ``rint(map * 255)`` (:func:`sod_train.runtime.model.to_uint8`);
3. the uint8 map and the mask (foreground = value > 128) go to
   :class:`sod_train.evaluate.sod_metrics.SODMetrics` (PySODMetrics definitions).

The data digest is :func:`sod_train.data.pairs.content_digest` over every image and mask,
so a result says exactly which files it was measured on.
"""

from __future__ import annotations

import csv
import ctypes
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from sod_train import atomicio, progress
from sod_train.contract import LOWER_IS_BETTER
from sod_train.data import pairs
from sod_train.data.imageio import load_rgb, open_image
from sod_train.errors import UserInputError
from sod_train.evaluate.sod_metrics import CURVE_KEYS, METRIC_KEYS, SODMetrics
from sod_train.guards import MAX_SQUARE, read_json_object, refuse_aliases
from sod_train.runtime.model import SaliencyModel, prepare, to_uint8
from sod_train.runtime.modelfile import size_problem

PROTOCOL = (
    "RGB {input}, /255, ImageNet mean/std; {pad}onnxruntime CPU; map {back}, "
    "uint8 = rint(clip(map,0,1)*255); mask > 128; PySODMetrics definitions "
    "(F beta^2=0.3 over 256 thresholds, adaptive 2*mean; S alpha=0.5; wF beta=1; IoU at 0.5)"
)
MAPS_PROTOCOL = (
    "saved uint8 grey maps at the mask size (no model run); mask > 128; PySODMetrics "
    "definitions (F beta^2=0.3 over 256 thresholds, adaptive 2*mean; S alpha=0.5; wF beta=1; "
    "IoU at 0.5)"
)
RECORDED_KEYS = ("n", "size", "protocol", "digest", "metrics")
DEFAULT_BY = "MAE"  # --worst/--by default: defined for every mask, empty ones included
MAP_MODES = ("L", "1", "P", "LA", "RGB", "RGBA")  # 8 bits a channel; read as luminance
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


def protocol_text(size: int | None, short_side: int | None = None, pad_to: int = 1) -> str:
    """The one-line protocol for resizing to ``size`` x ``size``, native size (None), or
    to a short side of ``short_side`` (aspect kept); ``pad_to`` N > 1 adds the padding."""
    pad = (
        f"edge-padded right and bottom to a multiple of {pad_to}, map cropped back; "
        if pad_to > 1
        else ""
    )
    if short_side is not None:
        return PROTOCOL.format(
            input=f"resized to short side {short_side}, aspect kept (bilinear)",
            pad=pad,
            back="resized back to the mask size (bilinear, float)",
        )
    if size is None:
        return PROTOCOL.format(input="at native size (no resize)", pad=pad, back="at native size")
    return PROTOCOL.format(
        input=f"resized to {size}x{size} (bilinear)",
        pad=pad,
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
        raise UserInputError(
            f"{scan.root}: {len(scan.problems)} bad file(s), fix or remove them:",
            pairs.problem_lines(scan.problems),
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


@dataclass(frozen=True)
class Source:
    """One thing to score: an ONNX model (``kind`` "onnx") or a folder of saved maps
    ("maps"); ``label`` names it in tables and JSON."""

    path: Path
    kind: str
    label: str


@dataclass
class Evaluation:
    """One source's result: the JSON ``result`` and every image's scores (stem, scores)."""

    source: Source
    result: dict[str, Any]
    per_image: list[tuple[str, dict[str, float]]] = field(default_factory=list)


def make_sources(
    models: Iterable[str | Path] = (), pred_dirs: Iterable[str | Path] = ()
) -> list[Source]:
    """Sources for ONNX ``models`` then ``pred_dirs``, labelled by file stem / folder name.

    Where two would share a label, both are labelled by the path as given; the same
    path twice is a UserInputError.
    """
    items = [(Path(m), "onnx", Path(m).stem) for m in models]
    items += [(Path(d), "maps", Path(d).resolve().name) for d in pred_dirs]
    seen: set[str] = set()
    for path, _, _ in items:
        key = os.path.realpath(path)
        if key in seen:
            raise UserInputError(f"{path}: given twice")
        seen.add(key)
    labels = [label for _, _, label in items]
    return [
        Source(path, kind, label if labels.count(label) == 1 else str(path))
        for path, kind, label in items
    ]


def find_map(folder: Path, pair: pairs.Pair) -> Path:
    """The saved map of ``pair`` in ``folder``: ``<stem>.png``, or ``<image name>.mask.png``
    as ``sod-train predict --out`` writes it. Missing or both: UserInputError."""
    plain, predicted = folder / f"{pair.stem}.png", folder / f"{pair.image.name}.mask.png"
    found = [path for path in (plain, predicted) if path.exists()]
    if not found:
        raise UserInputError(f"{plain}: no saved map for {pair.image.name} (nor {predicted.name})")
    if len(found) == 2:
        raise UserInputError(f"{plain}: ambiguous, {predicted.name} is there too; keep one")
    return found[0]


def load_map(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A saved map as uint8 HxW; UserInputError naming the file if it is not 8-bit or not
    ``shape`` (the mask's height, width): a resized map would be scored differently."""
    with open_image(path, "saved map") as img:
        if img.mode not in MAP_MODES:
            raise UserInputError(f"{path}: mode {img.mode}, expected an 8-bit grey PNG")
        if (img.height, img.width) != shape:
            raise UserInputError(
                f"{path}: size {img.width}x{img.height} != mask size {shape[1]}x{shape[0]}"
            )
        try:
            return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)
        except MASK_ERRORS as exc:
            raise UserInputError(f"{path}: cannot decode saved map ({exc})") from None


class Scorer:
    """Produces one source's uint8 maps under the protocol (model run or saved file)."""

    def __init__(
        self,
        source: Source,
        size: int | None,
        threads: int | None,
        short_side: int | None = None,
        model: SaliencyModel | None = None,
        pad_to: int = 1,
    ) -> None:
        self.source, self.size, self.short_side = source, size, short_side
        self.pad_to = pad_to
        if model is None and source.kind == "onnx":
            model = SaliencyModel.open(source.path, threads)
        self.model = model
        if source.kind == "maps" and not source.path.is_dir():
            raise UserInputError(f"{source.path}: --pred-dir is not a folder")

    def map_for(
        self,
        pair: pairs.Pair,
        rgb: np.ndarray | None,
        shape: tuple[int, int],
        inputs: dict[tuple[Any, ...], np.ndarray] | None = None,
    ) -> np.ndarray:
        """The map for ``pair`` at ``shape`` (rgb: the decoded image, for models).

        ``inputs`` shares each prepared model input between the models of one picture.
        """
        if self.model is None:
            return load_map(find_map(self.source.path, pair), shape)
        key = (self.size, self.short_side)
        inputs = {} if inputs is None else inputs
        try:
            if key not in inputs:
                inputs[key] = prepare(rgb, self.size, self.short_side)
            return to_uint8(self.model.map_input(inputs[key], *rgb.shape[:2], self.pad_to))
        except UserInputError as exc:
            raise UserInputError(f"{self.source.path} on {pair.image}: {exc}") from None


def load_pair(pair: pairs.Pair, need_rgb: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """(rgb or None, mask) of ``pair``; a mask not at the image's size is a UserInputError."""
    mask = load_mask(pair.mask)
    if not need_rgb:
        return None, mask
    rgb, (width, height) = load_rgb(pair.image)
    if mask.shape != (height, width):
        raise UserInputError(
            f"{pair.mask}: size {mask.shape[1]}x{mask.shape[0]} != image size "
            f"{width}x{height} (after EXIF orientation)"
        )
    return rgb, mask


def scan_sources(
    sources: list[Source],
    data_dir: str | Path,
    writes: Iterable[tuple[str, Path]] = (),
    fold: tuple[int, float] | None = None,
) -> pairs.PairScan:
    """Scan the data and refuse, before any work, a write onto a model, data file or map.

    ``fold`` (seed, fraction) keeps only that validation fold's pairs, split exactly as
    training splits (:func:`sod_train.data.pairs.split_scan`).
    """
    scan = scan_dataset(data_dir)
    if fold is not None:
        _, scan.pairs = pairs.split_scan(scan, fold[1], fold[0])
    reads = [("the data file", p) for p in pairs.pair_files(scan.pairs)]
    for source in sources:
        if source.kind == "onnx":
            reads.append(("the model", source.path))
        else:
            reads += [("a saved map", p) for p in source.path.glob("*.png")]
    refuse_aliases(reads, writes)
    return scan


def evaluate_sources(
    sources: list[Source],
    data_dir: str | Path,
    size: int = 256,
    native: bool = False,
    threads: int | None = None,
    quiet: bool = False,
    name: str | None = None,
    writes: Iterable[tuple[str, Path]] = (),
    short_sides: Sequence[int] = (),
    fold: tuple[int, float] | None = None,
    pad_to: int = 1,
) -> list[Evaluation]:
    """Score every source on the pairs of ``data_dir`` in one pass over the data.

    With ``short_sides``, each model is scored once per short side S (the picture
    rescaled so its short side is S, as a host sees a frame of that height): one
    result each, named ``<data set>@S`` and labelled ``<model>@S``. ``fold`` (seed,
    fraction) scores only that validation fold of ``data_dir`` (:func:`scan_sources`).
    ``pad_to`` N > 1 runs every model on its input edge-padded to multiples of N (the
    anchors need 8) and crops the map back, for every model alike.

    Each image and mask is decoded once for all sources. Per source the result has the
    keys ``name`` (data-set name, see :func:`dataset_name`, or ``name``), ``n``, ``size``
    (an int, ``"native"`` or ``"maps"``), ``protocol``, ``digest``, ``metrics`` (the nine
    of :data:`sod_train.evaluate.sod_metrics.METRIC_KEYS`), ``seconds`` and ``img_per_s``
    (the shared decoding plus that source's own model and metrics time), ``source``
    ({kind, path}) and ``curves`` (:func:`curves_json`). Bad data, an unloadable model or
    a failing run raise UserInputError naming the file. ``writes`` are the
    ``(label, path)`` outputs the caller will write: refused before any work if one is a
    model, a data file or a saved map.
    """
    if not sources:
        raise UserInputError("nothing to evaluate: give an ONNX model or --pred-dir")
    problem = None if native or short_sides else size_problem(size, size)
    if problem:
        raise UserInputError(f"--size {size}: {problem}")
    for side in short_sides:
        if not 1 <= side <= MAX_SQUARE:
            raise UserInputError(f"--short-side {side}: must be 1 to {MAX_SQUARE}")
    run_size = None if native else size
    scan = scan_sources(sources, data_dir, writes, fold)
    scorers = []
    for source in sources:
        side = short_sides[0] if short_sides else None
        first = Scorer(source, run_size, threads, side, pad_to=pad_to)
        scorers.append(first)
        if source.kind == "onnx":  # one model object, several short sides
            scorers += [
                Scorer(source, None, threads, s, first.model, pad_to) for s in short_sides[1:]
            ]
    need_rgb = any(source.kind == "onnx" for source in sources)
    metrics = [SODMetrics() for _ in scorers]
    own = [0.0] * len(scorers)
    shared = 0.0
    with progress.Bar(scan.pairs, label="evaluating", quiet=quiet) as bar:
        for pair in bar:
            start = time.perf_counter()
            rgb, mask = load_pair(pair, need_rgb)
            shared += time.perf_counter() - start
            inputs: dict[tuple[Any, ...], np.ndarray] = {}
            for i, scorer in enumerate(scorers):
                start = time.perf_counter()
                metrics[i].step(scorer.map_for(pair, rgb, mask.shape, inputs), mask)
                own[i] += time.perf_counter() - start
    digest = pairs.content_digest(scan.root, pairs.pair_files(scan.pairs))
    data_name = name or dataset_name(scan.image_dir, scan.root) + ("-fold" if fold else "")
    stems = [pair.stem for pair in scan.pairs]
    evaluations = []
    for scorer, metric, seconds in zip(scorers, metrics, own, strict=True):
        source, side = scorer.source, scorer.short_side
        seconds += shared
        if source.kind == "maps":
            shown_size: int | str = "maps"
        elif side is not None:
            shown_size = f"short{side}"
        else:
            shown_size = "native" if native else size
        result = {
            "name": data_name if side is None or source.kind == "maps" else f"{data_name}@{side}",
            "n": metric.n,
            "size": shown_size,
            "protocol": (
                protocol_text(run_size, side, pad_to) if source.kind == "onnx" else MAPS_PROTOCOL
            ),
            "digest": digest,
            "metrics": {key: round(value, 6) for key, value in metric.get_results().items()},
            "seconds": round(seconds, 3),
            "img_per_s": round(metric.n / seconds, 2) if seconds > 0 else None,
            "source": {"kind": source.kind, "path": str(source.path)},
            "curves": curves_json(metric),
        }
        rows = list(zip(stems, metric.per_image(), strict=True))
        if side is not None and len(short_sides) > 1 and source.kind == "onnx":
            source = replace(source, label=f"{source.label}@{side}")
        evaluations.append(Evaluation(source, result, rows))
    return evaluations


def curves_json(metrics: SODMetrics) -> dict[str, Any]:
    """The data-set curves for JSON: ``thresholds`` 0..255 and one array per curve key.

    Index t is the binary map ``uint8(stretched map * 255) >= t``; PySODMetrics' arrays
    are the same values from t = 255 down.
    """
    arrays = metrics.curves()
    out: dict[str, Any] = {"thresholds": list(range(256))}
    out.update({key: [round(float(v), 6) for v in arrays[key]] for key in CURVE_KEYS})
    return out


def worst_images(
    evaluation: Evaluation, by: str = DEFAULT_BY, n: int = 10, best: bool = False
) -> list[tuple[str, float]]:
    """The ``n`` worst (or best) images of ``evaluation`` by metric ``by`` as (stem, score).

    Worst is the highest score for lower-is-better metrics (MAE), else the lowest; ties
    keep data order.
    """
    if by not in METRIC_KEYS:
        raise UserInputError(f"--by {by}: not a metric (one of {', '.join(METRIC_KEYS)})")
    worst_first = (by in LOWER_IS_BETTER) != best
    scored = [(stem, scores[by]) for stem, scores in evaluation.per_image]
    ordered = sorted(scored, key=lambda item: -item[1] if worst_first else item[1])
    return ordered[:n]


def write_per_image(path: str | Path, evaluations: list[Evaluation]) -> None:
    """Every image's scores for every source, atomically: CSV, or JSON for ``.json``.

    One row per (model, image): ``model, image`` (the stem) and the nine metrics; the
    JSON is a list of those rows as objects. Full precision, so rows can be re-averaged.
    """
    rows = [
        {"model": ev.source.label, "image": stem, **scores}
        for ev in evaluations
        for stem, scores in ev.per_image
    ]
    path = Path(path)
    if path.suffix.lower() == ".json":
        atomicio.write_json(path, rows)
        return
    with atomicio.atomic_open(path, "w") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["model", "image", *METRIC_KEYS], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows({**row, **{k: repr(float(row[k])) for k in METRIC_KEYS}} for row in rows)


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
    shown = {"native": "native size", "maps": "saved maps"}.get(size, f"{size}x{size}")
    if isinstance(size, str) and size.startswith("short"):
        shown = f"short side {size[len('short') :]}"
    head = f"{result['name']}: n={result['n']}, {shown}, {result['img_per_s']} img/s"
    names = "  ".join(f"{key:>6}" for key in METRIC_KEYS)
    values = "  ".join(f"{result['metrics'][key]:>6.4f}" for key in METRIC_KEYS)
    return f"{head}\n{names}\n{values}"


def format_side_by_side(evaluations: list[Evaluation]) -> str:
    """One row per source (model or pred dir), the nine metrics and img/s side by side."""
    first = evaluations[0].result
    width = max(5, *(len(ev.source.label) for ev in evaluations))
    head = f"{first['name']}: n={first['n']}"
    names = f"{'model':<{width}}  " + "  ".join(f"{key:>6}" for key in METRIC_KEYS) + "   img/s"
    lines = [head, names]
    for ev in evaluations:
        values = "  ".join(f"{ev.result['metrics'][key]:>6.4f}" for key in METRIC_KEYS)
        lines.append(f"{ev.source.label:<{width}}  {values}  {ev.result['img_per_s']!s:>6}")
    return "\n".join(lines)


def format_worst(evaluation: Evaluation, by: str, ranked: list[tuple[str, float]]) -> str:
    """The ``--worst`` list of one source: rank, score, image stem."""
    better = "lower" if by in LOWER_IS_BETTER else "higher"
    lines = [f"{evaluation.source.label}: {len(ranked)} worst by {by} ({better} is better)"]
    lines += [f"{rank:>4}  {score:.4f}  {stem}" for rank, (stem, score) in enumerate(ranked, 1)]
    return "\n".join(lines)
