"""Video conformance vectors: small synthetic y4m files with the RGB8 and saliency_mean
every conforming host must get from them.

``model/tiny/video_vectors/`` holds the y4m files and ``vectors.json``::

    {"format": "sod-train-video-vectors", "version": 1, "yuv_matrix": "host",
     "range": "limited", "tolerance": 1e-6,
     "files": [{"name", "sha256", "colourspace", "width", "height",
                "rgb_sha256": [one per frame]}],
     "models": {"<model sha256>": {"id", "onnx", "saliency_mean": {"<name>": [per frame]}}}}

``rgb_sha256`` is the SHA-256 of the frame's RGB8 bytes, row-major, R G B interleaved
(H x W x 3), after the ``host`` conversion (:mod:`sod_train.video.colour`). A host that
feeds the same RGB to the model, normalised as the contract says, gets ``saliency_mean``
(the double-precision mean of the map) within ``tolerance``. The frames are computed from
integer formulas (:func:`frame_planes`), so any language can regenerate them; they cover
4:2:0 at a size that is no multiple of 8 (66x50), 4:2:2, 4:4:4, 10-bit 4:2:0, and every
8-bit code value of Y, Cb and Cr (values outside 16..235/240 exercise the clamp).

Regenerate (after re-exporting a shipped model): ``python scripts/make_video_vectors.py``.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sod_train import atomicio
from sod_train.errors import SodTrainError, UserInputError, first_line
from sod_train.guards import read_json_object
from sod_train.hashing import file_sha256
from sod_train.paths import MODEL_DIR, REPO_ROOT
from sod_train.video.colour import Planes
from sod_train.video.y4m import COLOURSPACES, Layout, y4m_frame, y4m_header

VECTORS_DIR = MODEL_DIR / "video_vectors"
VECTORS_NAME = "vectors.json"
FORMAT = "sod-train-video-vectors"
VERSION = 1
TOLERANCE = 1e-6
FPS = Fraction(25, 1)
# name, y4m colour space, width, height, frames, pattern
SPECS: tuple[tuple[str, str, int, int, int, str], ...] = (
    ("disc_420_66x50.y4m", "420jpeg", 66, 50, 3, "disc"),
    ("disc_422_48x38.y4m", "422", 48, 38, 2, "disc"),
    ("disc_444_40x30.y4m", "444", 40, 30, 2, "disc"),
    ("codes_420_64x48.y4m", "420mpeg2", 64, 48, 2, "codes"),
    ("codes_444_64x64.y4m", "444", 64, 64, 1, "codes"),
    ("disc_420p10_32x24.y4m", "420p10", 32, 24, 2, "disc"),
)


def frame_planes(pattern: str, layout: Layout, t: int) -> Planes:
    """Frame ``t`` of a vector (integer formulas, documented in docs/video.md).

    ``disc``: Y = 40 + (3x + 2y) mod 60 outside a disc of radius H/4 centred at
    (W/3 + 4t, H/2), 200 + (x + y) mod 30 inside; Cb = 100 + (x + 3t) mod 40,
    Cr = 150 + (2y) mod 50 (at chroma coordinates); 10-bit: every sample times 4 plus
    (x + y) mod 4. ``codes``: Y = (37x + 101y + 13t) mod 256, Cb = (53x + 29y) mod 256,
    Cr = (11x + 71y + 5t) mod 256: every code value, the clamp included.
    """
    h, w = layout.height, layout.width
    ch, cw = layout.chroma_size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = np.mgrid[0:ch, 0:cw]
    if pattern == "disc":
        inside = (xx - (w // 3 + 4 * t)) ** 2 + (yy - h // 2) ** 2 < (h // 4) ** 2
        y = np.where(inside, 200 + (xx + yy) % 30, 40 + (3 * xx + 2 * yy) % 60)
        u = 100 + (cx + 3 * t) % 40
        v = 150 + (2 * cy) % 50
    else:
        y = (37 * xx + 101 * yy + 13 * t) % 256
        u = (53 * cx + 29 * cy) % 256
        v = (11 * cx + 71 * cy + 5 * t) % 256
    if layout.depth == 8:
        return Planes(y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8))
    scale = 1 << (layout.depth - 8)
    return Planes(
        (y * scale + (xx + yy) % scale).astype("<u2"),
        (u * scale + (cx + cy) % scale).astype("<u2"),
        (v * scale + (cx + cy) % scale).astype("<u2"),
        layout.depth,
    )


def write_vector_files(folder: Path) -> list[Path]:
    """Write every y4m of :data:`SPECS` into ``folder`` (atomically); return the paths."""
    paths = []
    for name, colourspace, width, height, frames, pattern in SPECS:
        subsampling, depth = COLOURSPACES[colourspace]
        layout = Layout(width, height, subsampling, depth)
        data = y4m_header(width, height, FPS, colourspace) + b"".join(
            y4m_frame(frame_planes(pattern, layout, t)) for t in range(frames)
        )
        atomicio.write_bytes(folder / name, data)
        paths.append(folder / name)
    return paths


def rgb_sha256(rgb: np.ndarray) -> str:
    """SHA-256 of uint8 HxWx3 RGB bytes (row-major, interleaved)."""
    return hashlib.sha256(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def read_vector(path: Path) -> list[np.ndarray]:
    """Every frame of a vector file as host-converted RGB8."""
    from sod_train.video.source import Y4MVideo

    with Y4MVideo(path, "host", "limited") as clip:
        return [frame.rgb for frame in clip.frames()]


def saliency_means(model: Any, frames: list[np.ndarray]) -> list[float]:
    """saliency_mean of each frame (float64 mean of the float32 map)."""
    from sod_train.video.run import frame_map, map_stats

    return [map_stats(frame_map(model, rgb))[0] for rgb in frames]


def build_document(folder: Path, models: list[tuple[str, Path]]) -> dict[str, Any]:
    """vectors.json for the files in ``folder`` and ``models`` ((id, path) pairs)."""
    from sod_train.video.run import load_model

    files, frames_of = [], {}
    for name, colourspace, width, height, _, _ in SPECS:
        frames = read_vector(folder / name)
        frames_of[name] = frames
        files.append(
            {
                "name": name,
                "sha256": file_sha256(folder / name),
                "colourspace": colourspace,
                "width": width,
                "height": height,
                "rgb_sha256": [rgb_sha256(rgb) for rgb in frames],
            }
        )
    entries: dict[str, Any] = {}
    for model_id, path in models:
        session = load_model(path)
        entries[file_sha256(path)] = {
            "id": model_id,
            "onnx": _relative(path),
            "saliency_mean": {n: saliency_means(session, f) for n, f in frames_of.items()},
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "yuv_matrix": "host",
        "range": "limited",
        "tolerance": TOLERANCE,
        "rgb_sha256": "SHA-256 of RGB8 H x W x 3 bytes, row-major, interleaved",
        "files": files,
        "models": entries,
    }


def _relative(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_vectors(folder: Path = VECTORS_DIR) -> dict[str, Any]:
    """The vectors JSON, shape-checked; UserInputError naming it if unusable."""
    path = folder / VECTORS_NAME
    doc = read_json_object(path, "the video vectors")
    files, models = doc.get("files"), doc.get("models")
    if doc.get("format") != FORMAT or not isinstance(files, list) or not isinstance(models, dict):
        raise UserInputError(f"{path}: not a {FORMAT} file (format, files, models)")
    for entry in files:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or "/" in entry["name"]
            or not isinstance(entry.get("rgb_sha256"), list)
        ):
            raise UserInputError(f"{path}: a files entry is malformed")
    return doc


def video_vector_checks(
    model_path: Path, folder: Path = VECTORS_DIR
) -> list[tuple[str, bool, str, bool]]:
    """(name, passed, detail, skipped) verdicts of ``model_path`` against the vectors.

    * ``video_files``: every y4m is there with its recorded sha256;
    * ``video_rgb``: every frame's host RGB8 has its recorded sha256;
    * ``video_saliency``: every frame's saliency_mean within the tolerance of the entry
      for this model's sha256. A model with no entry is SKIP (the vectors list the shipped
      models), but a shipped model's id recorded with another sha256 is FAIL: stale vectors.
    """
    from sod_train.video.run import load_model

    try:
        doc = load_vectors(folder)
    except SodTrainError as exc:
        return [("video_files", False, str(exc), False)]
    problems, frames_of = [], {}
    for entry in doc["files"]:
        path = folder / entry["name"]
        if not path.is_file():
            problems.append(f"{entry['name']} is missing")
        elif file_sha256(path) != entry.get("sha256"):
            problems.append(f"{entry['name']} differs from its recorded sha256")
        else:
            try:
                frames_of[entry["name"]] = read_vector(path)
            except SodTrainError as exc:
                problems.append(str(exc))
    verdicts = [
        (
            "video_files",
            not problems,
            "; ".join(problems[:2]) if problems else f"{len(doc['files'])} y4m files intact",
            False,
        )
    ]
    bad_rgb, total = [], 0
    for entry in doc["files"]:
        frames = frames_of.get(entry["name"])
        if frames is None:
            continue
        expected = entry["rgb_sha256"]
        if len(frames) != len(expected):
            bad_rgb.append(f"{entry['name']}: {len(frames)} frames, expected {len(expected)}")
            continue
        for index, (rgb, want) in enumerate(zip(frames, expected, strict=True)):
            total += 1
            if rgb_sha256(rgb) != want:
                bad_rgb.append(f"{entry['name']} frame {index}")
    verdicts.append(
        (
            "video_rgb",
            not bad_rgb,
            f"RGB8 differs: {', '.join(bad_rgb[:3])}"
            if bad_rgb
            else f"{total} frames convert to their recorded RGB8 (host matrix)",
            False,
        )
    )
    sha = file_sha256(model_path)
    entry = doc["models"].get(sha)
    if entry is None:
        stale = [e.get("id") for e in doc["models"].values() if e.get("id") == model_path.stem]
        detail = (
            f"no saliency_mean entry for this model (sha256 {sha[:12]}...); the vectors "
            "hold the shipped models only"
            if not stale
            else f"the vectors hold {model_path.stem} with another sha256 (stale); "
            "regenerate: python scripts/make_video_vectors.py"
        )
        verdicts.append(("video_saliency", not stale, detail, not stale))
        return verdicts
    try:
        session = load_model(model_path)
        worst, bad = 0.0, []
        for name, frames in frames_of.items():
            expected = entry.get("saliency_mean", {}).get(name)
            got = saliency_means(session, frames)
            if not isinstance(expected, list) or len(expected) != len(got):
                bad.append(f"{name}: no values recorded")
                continue
            for index, (value, want) in enumerate(zip(got, expected, strict=True)):
                error = abs(value - float(want))
                worst = max(worst, error)
                if not error <= TOLERANCE:
                    bad.append(f"{name} frame {index}: {value:.8f} vs {float(want):.8f}")
    except SodTrainError as exc:
        verdicts.append(("video_saliency", False, first_line(exc, 240), False))
        return verdicts
    verdicts.append(
        (
            "video_saliency",
            not bad,
            f"saliency_mean differs by more than {TOLERANCE:g}: {', '.join(bad[:3])}"
            if bad
            else f"saliency_mean of every frame within {TOLERANCE:g} (worst {worst:.1e})",
            False,
        )
    )
    return verdicts
