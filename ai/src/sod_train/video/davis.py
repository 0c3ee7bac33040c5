"""Video SOD evaluation on a DAVIS-layout data set, the way video SOD benchmarks average.

Layout: ``ROOT/JPEGImages/480p/<seq>/*.jpg`` and ``ROOT/Annotations/480p/<seq>/*.png``
(``480p/`` may be absent), frames and masks paired by stem. For each sequence and each
source (a model, optionally with temporal smoothing ``@ALPHA``):

1. every frame is run through :func:`sod_train.video.run.frame_map` at its native size
   (``pad_to`` N > 1 pads right and bottom by edge replication to a multiple of N and
   crops the map back: the anchors need N = 8), then smoothed if asked;
2. max-F, S-measure and MAE (:mod:`sod_train.evaluate.sod_metrics`, PySODMetrics'
   definitions, map quantised as ``rint(clip(map, 0, 1) * 255)``, mask > 128) over the
   sequence's frames (every ``every``-th frame when subsampling, the first included);
   max-F is the maximum of the sequence's mean F curve;
3. the stability figures (:mod:`sod_train.video.stability`) over every frame, for the
   source and for the ground truth.

The data set's figure is the mean over sequences of each sequence's figure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sod_train import progress
from sod_train.data.imageio import load_rgb
from sod_train.errors import UserInputError
from sod_train.evaluate.evaluate import load_mask
from sod_train.evaluate.sod_metrics import MAE, Fmeasure, Smeasure, prepare
from sod_train.runtime.model import pad_to_multiple
from sod_train.video.outputs import map_to_uint8
from sod_train.video.run import Smoother, frame_map, load_model
from sod_train.video.stability import Stability, average

TUNE = [
    "breakdance",
    "camel",
    "car-roundabout",
    "cows",
    "dance-twirl",
    "dog",
    "drift-chicane",
    "goat",
    "horsejump-high",
    "kite-surf",
]
REPORT = [
    "blackswan",
    "bmx-trees",
    "car-shadow",
    "drift-straight",
    "libby",
    "motocross-jump",
    "paragliding-launch",
    "parkour",
    "scooter-black",
    "soapbox",
]
SETS = {"tune": TUNE, "report": REPORT}
QUALITY = ("maxF", "Sm", "MAE")
STABILITY = ("iou_mean", "iou_p5", "mean_change")


def _folder(root: Path, name: str) -> Path:
    base = root / name
    return base / "480p" if (base / "480p").is_dir() else base


def scan_davis(root: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """Sequence -> sorted (frame, mask) pairs; UserInputError naming what is missing."""
    root = Path(root)
    images, masks = _folder(root, "JPEGImages"), _folder(root, "Annotations")
    if not images.is_dir() or not masks.is_dir():
        raise UserInputError(
            f"{root}: not a DAVIS layout (expected JPEGImages/480p/<seq>/ and "
            "Annotations/480p/<seq>/)"
        )
    found: dict[str, list[tuple[Path, Path]]] = {}
    for seq_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        frames = sorted(
            p for p in seq_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        by_stem = {p.stem: p for p in (masks / seq_dir.name).glob("*.png")}
        missing = [f.name for f in frames if f.stem not in by_stem]
        if missing:
            raise UserInputError(
                f"{masks / seq_dir.name}: no mask for {len(missing)} frame(s) of {seq_dir.name}, "
                f"e.g. {missing[0]}"
            )
        if frames:
            found[seq_dir.name] = [(f, by_stem[f.stem]) for f in frames]
    if not found:
        raise UserInputError(f"{images}: no sequences")
    return found


def choose_sequences(available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """Names (or the sets ``tune`` / ``report``, comma-separated too), checked; all if None."""
    if not wanted:
        return list(available)
    chosen: list[str] = []
    for item in (w for spec in wanted for w in spec.split(",") if w):
        for name in SETS.get(item, [item]):
            if name not in available:
                raise UserInputError(f"--sequences: no sequence '{name}' in the data set")
            if name not in chosen:
                chosen.append(name)
    return chosen


@dataclass(frozen=True)
class Source:
    """One column of the table: a model run, smoothed with ``alpha`` (0: off)."""

    name: str
    model: int  # index into the loaded models
    alpha: float


def _sequence(
    pairs: list[tuple[Path, Path]],
    sessions: list[Any],
    paths: list[Path],
    sources: list[Source],
    every: int,
    multiple: int,
    bar: progress.Bar,
) -> dict[str, Any]:
    smoothers = [Smoother(s.alpha) for s in sources]
    metrics = [(Fmeasure(), Smeasure(), MAE()) for _ in sources]
    stable = [Stability() for _ in sources]
    truth = Stability()
    seconds = [0.0] * len(sessions)
    for index, (frame_path, mask_path) in enumerate(pairs):
        rgb, _ = load_rgb(frame_path)
        mask = load_mask(mask_path)
        height, width = rgb.shape[:2]
        if mask.shape != (height, width):
            raise UserInputError(f"{mask_path}: mask is {mask.shape[::-1]}, frame {width}x{height}")
        padded = pad_to_multiple(rgb, multiple)
        maps = []
        for k, session in enumerate(sessions):
            tick = time.perf_counter()
            try:
                maps.append(frame_map(session, padded)[:height, :width])
            except UserInputError as exc:
                hint = " (try --pad-to 8)" if multiple == 1 else ""
                raise UserInputError(f"{paths[k]}: {frame_path.name}: {exc}{hint}") from None
            seconds[k] += time.perf_counter() - tick
        truth.step(mask > 128)
        for j, source in enumerate(sources):
            saliency = smoothers[j](maps[source.model])
            stable[j].step(saliency)
            if index % every == 0:
                pair = prepare(map_to_uint8(saliency), mask)
                for metric in metrics[j]:
                    metric.update(pair)
        bar.update(1)
    out: dict[str, Any] = {"frames": len(pairs), "scored": len(range(0, len(pairs), every))}
    for j, source in enumerate(sources):
        scores: dict[str, Any] = {}
        for metric in metrics[j]:
            scores.update(metric.get_results())
        out[source.name] = {
            **{k: scores[k] for k in QUALITY},
            **stable[j].get_results(),
        }
    out["ground truth"] = truth.get_results()
    out["model_ms"] = [1000 * s / len(pairs) for s in seconds]
    return out


def evaluate_video(
    root: str | Path,
    models: Sequence[Path],
    sequences: Sequence[str] | None = None,
    smooths: Sequence[float] = (0.0,),
    every: int = 1,
    multiple: int = 1,
    threads: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Per-sequence and mean figures of each (model, smoothing) source; JSON-ready."""
    if every < 1 or multiple < 1:
        raise UserInputError("--every and --pad-to must be at least 1")
    data = scan_davis(root)
    chosen = choose_sequences(sorted(data), sequences)
    paths = [Path(m) for m in models]
    sessions = [load_model(p, threads) for p in paths]
    sources = [
        Source(p.stem if alpha == 0 else f"{p.stem}@{alpha:g}", k, alpha)
        for k, p in enumerate(paths)
        for alpha in smooths
    ]
    if len({s.name for s in sources}) != len(sources):
        raise UserInputError("two models share a file name; give them distinct names")
    per_sequence: dict[str, Any] = {}
    total = sum(len(data[s]) for s in chosen)
    with progress.Bar(length=total, label="evaluate-video", quiet=quiet) as bar:
        for name in chosen:
            per_sequence[name] = _sequence(
                data[name], sessions, paths, sources, every, multiple, bar
            )
    mean: dict[str, Any] = {}
    for source in [*(s.name for s in sources), "ground truth"]:
        rows = [per_sequence[n][source] for n in chosen]
        figures = average(rows)
        if source != "ground truth":
            figures = {
                **{k: float(np.mean([r[k] for r in rows])) for k in QUALITY},
                **figures,
            }
        mean[source] = figures
    return {
        "data": str(root),
        "sequences": chosen,
        "frames": sum(per_sequence[n]["frames"] for n in chosen),
        "every": every,
        "pad_to": multiple,
        "protocol": (
            "native size (padded to a multiple of pad_to, map cropped back); map uint8 = "
            "rint(clip(map,0,1)*255); mask > 128; maxF (beta^2 0.3, max of the sequence's "
            "mean F curve), S-measure (alpha 0.5), MAE per sequence, on every `every`-th "
            "frame; stability on every frame (IoU at 0.5, empty vs empty = 1); figures "
            "averaged over sequences"
        ),
        "sources": [
            {"name": s.name, "model": str(paths[s.model]), "smooth": s.alpha} for s in sources
        ],
        "mean": mean,
        "per_sequence": per_sequence,
    }


def _f(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(
    result: dict[str, Any], cols: list[str], keys: tuple[str, ...], heading: str
) -> list[str]:
    """One Markdown table: a row per sequence and the mean, ``keys`` of every column."""
    seqs = result["sequences"]
    lines = ["| sequence | " + " | ".join(f"{n} {heading}" for n in cols) + " |"]
    lines.append("|---|" + "---|" * len(cols))
    for seq in [*seqs, "mean"]:
        row = result["mean"] if seq == "mean" else result["per_sequence"][seq]
        cells = [" / ".join(_f(row[n][k], 3) for k in keys) for n in cols]
        label = f"**mean of {len(seqs)}**" if seq == "mean" else seq
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown_tables(result: dict[str, Any]) -> str:
    """Two Markdown tables: quality (maxF / Sm / MAE) and stability, one row per sequence."""
    names = [s["name"] for s in result["sources"]]
    lines = _table(result, names, QUALITY, "maxF / Sm / MAE")
    lines += [""]
    lines += _table(result, [*names, "ground truth"], STABILITY, "IoU mean / p5 / mean abs change")
    return "\n".join(lines)
