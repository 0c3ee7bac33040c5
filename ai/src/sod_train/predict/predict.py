"""Run a saliency ONNX model on people's pictures and write one PNG per picture.

Two ways in. **One picture**: :func:`plan_single` checks ``INPUT OUTPUT`` (a file or
``-`` for stdin, a ``.png`` file or ``-`` for stdout), :func:`sod_train.data.imageio.rgb_from_bytes`
decodes piped bytes by the same rules as a file, and :func:`picture_for` renders the result.
**Files and folders**: :func:`plan_jobs` expands them into :class:`Job` s and
:func:`predict_file` writes each one. Rendering itself lives in
:mod:`sod_train.predict.render`; :class:`Look` says which picture is wanted.

Inputs are files and folders; folders are walked recursively (sorted, hidden entries
skipped, only ``.jpg .jpeg .png .webp .bmp`` in any case). A file named explicitly is
always tried, whatever its extension.

Output naming keeps the input's extension and adds the format, so ``a.jpg`` and
``a.png`` never collide: ``photos/sub/a.jpg`` given as the folder ``photos`` becomes
``OUT/sub/a.jpg.mask.png``; a file given directly becomes ``OUT/a.jpg.mask.png``
(side by side: ``a.jpg.side-by-side.png``). When a folder is walked, files inside OUT
ending in one of :data:`OUTPUT_SUFFIXES` are taken to be earlier outputs and skipped,
so running twice with OUT inside (or equal to) an input folder does not feed outputs
back in.

Ground truth for the side-by-side view (``masks``) is matched by file stem, keeping
the folder structure: ``photos/sub/a.jpg`` takes ``MASKS/sub/a.<any image ext>``. A
picture without one stops the run before any work (one line naming it).

The model runs through :meth:`sod_train.runtime.model.SaliencyModel.map`, the same
step ``evaluate`` scores. By default at ``DEFAULT_SIZE`` x ``DEFAULT_SIZE`` with the
map resized back to the picture (bilinear, on floats), so a 6000x4000 photo costs the
same model memory as a thumbnail; ``native`` runs at the picture's own size (up to
``MAX_NATIVE_PIXELS``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from sod_train import atomicio, stdio
from sod_train.data.imageio import IMAGE_EXTS, load_rgb
from sod_train.errors import UserInputError
from sod_train.guards import check_output_dir, check_output_file, refuse_aliases
from sod_train.predict import render as draw
from sod_train.runtime.model import SaliencyModel, to_uint8

FORMATS = ("mask", "cutout", "overlay")
VIEWS = ("single", "side-by-side")
OUTPUT_SUFFIXES = tuple(f".{kind}.png" for kind in (*FORMATS, "side-by-side"))
DEFAULT_SIZE = 256
MAX_NATIVE_PIXELS = 16_000_000
MAX_STDIN_BYTES = 256 << 20  # a picture piped in; an 89 MP PNG fits
STDIO = stdio.STDIO  # INPUT: read stdin; OUTPUT: write stdout
STDIN_LABEL = "<stdin>"


@dataclass(frozen=True)
class Look:
    """Which picture to make of a map: the format or side-by-side view, and its knobs.

    ``threshold`` None: the soft map where a format shows it (mask, side-by-side map
    panel) and :data:`~sod_train.predict.render.DEFAULT_THRESHOLD` where a decision is
    needed (cut-out alpha, overlay). ``soft`` and ``bg`` apply to the cut-out only.
    """

    fmt: str = "mask"
    view: str = "single"
    threshold: float | None = None
    soft: bool = False
    bg: tuple[int, int, int, int] | None = None

    @property
    def kind(self) -> str:
        """The name part of an output: the format, or ``side-by-side``."""
        return self.fmt if self.view == "single" else "side-by-side"

    def decision(self) -> float:
        """The threshold where a yes/no per pixel is needed."""
        return draw.DEFAULT_THRESHOLD if self.threshold is None else self.threshold


@dataclass(frozen=True)
class Job:
    """One picture to process, the PNG it becomes, and its ground-truth mask if any."""

    src: Path
    dest: Path
    truth: Path | None = None


def output_name(rel: Path, fmt: str) -> Path:
    """Output path, relative to OUT, for an input at ``rel``: ``a.jpg`` -> ``a.jpg.mask.png``."""
    return rel.parent / f"{rel.name}.{fmt}.png"


def _is_earlier_output(path: Path, out: Path) -> bool:
    return path.name.lower().endswith(OUTPUT_SUFFIXES) and path.resolve().is_relative_to(out)


def _walk_images(folder: Path, out: Path) -> list[Path]:
    """Image files under ``folder``, sorted, skipping hidden entries and earlier outputs."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTS:
                continue
            if not _is_earlier_output(path, out):
                found.append(path)
    return found


class _TruthFinder:
    """Ground-truth masks under one folder, matched by stem; each folder listed once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.listed: dict[Path, dict[str, list[Path]]] = {}

    def _by_stem(self, folder: Path) -> dict[str, list[Path]]:
        if folder not in self.listed:
            stems: dict[str, list[Path]] = {}
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                names = []  # a missing sub-folder: every picture in it has no mask
            for name in names:
                path = folder / name
                if path.suffix.lower() in IMAGE_EXTS and not name.startswith("."):
                    stems.setdefault(path.stem, []).append(path)
            self.listed[folder] = stems
        return self.listed[folder]

    def find(self, src: Path, rel: Path) -> Path | None:
        """The mask for the picture ``src`` (at ``rel`` under its input), None if none.

        Two candidates with the picture's stem (``a.png`` and ``a.jpg``) are refused as
        ambiguous; the picture itself never counts (masks next to their pictures).
        """
        folder = self.root / rel.parent
        found = [p for p in self._by_stem(folder).get(rel.stem, []) if p.resolve() != src.resolve()]
        if len(found) > 1:
            names = " and ".join(p.name for p in found)
            raise UserInputError(f"{src}: ground truth is ambiguous in {folder} ({names})")
        return found[0] if found else None


def attach_truth(jobs: list[Job], rels: list[Path], masks: Path) -> list[Job]:
    """``jobs`` with their ground-truth masks from ``masks``; UserInputError if any lacks one.

    Checked before any work: a run that would stop half-way, or silently show some
    pictures without ground truth, helps nobody.
    """
    if not masks.is_dir():
        raise UserInputError(f"{masks}: --masks is not a folder")
    finder = _TruthFinder(masks)
    matched: list[Job] = []
    missing: list[tuple[Job, Path]] = []
    for job, rel in zip(jobs, rels, strict=True):
        truth = finder.find(job.src, rel)
        if truth is None:
            missing.append((job, rel))
        matched.append(Job(job.src, job.dest, truth))
    if missing:
        job, rel = missing[0]
        more = f" ({len(missing)} of {len(jobs)} pictures have none)" if len(missing) > 1 else ""
        raise UserInputError(
            f"{job.src}: no ground-truth mask {rel.stem}.* in {masks / rel.parent}{more}"
        )
    return matched


def plan_jobs(
    inputs: list[Path],
    out: Path,
    fmt: str,
    model: Path | None = None,
    masks: Path | None = None,
) -> list[Job]:
    """Expand files/folders into jobs; refuse collisions and any output that is an input.

    ``fmt`` is the output name's kind (:attr:`Look.kind`). Raises UserInputError (before
    anything is written) for a missing input, no images at all, two inputs mapping to
    the same output, an output that would replace an input file, a mask or ``model``
    (compared by path and inode: symlinks and hard links count), and, with ``masks``,
    a picture without its ground-truth mask.
    """
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{out}: --out exists and is not a folder")
    check_output_dir(out, "the PNGs")
    out_resolved = out.resolve()
    sources: list[tuple[Path, Path]] = []
    for item in inputs:
        if str(item) == STDIO:
            raise UserInputError(
                "- (stdin) works only as `predict - OUTPUT`, one picture; with --out give "
                "files or folders"
            )
        if item.is_dir():
            sources += [(path, path.relative_to(item)) for path in _walk_images(item, out_resolved)]
        elif item.is_file():
            sources.append((item, Path(item.name)))
        else:
            raise UserInputError(f"{item}: no such file or folder")
    jobs: list[Job] = []
    rels: list[Path] = []
    seen_src: set[Path] = set()
    by_dest: dict[Path, Path] = {}
    for src, rel in sources:
        if src.resolve() in seen_src:
            continue
        seen_src.add(src.resolve())
        dest = out / output_name(rel, fmt)
        other = by_dest.setdefault(dest.resolve(), src)
        if other != src:
            raise UserInputError(f"{other} and {src} would both be written to {dest}")
        jobs.append(Job(src, dest))
        rels.append(rel)
    if not jobs:
        wanted = " ".join(IMAGE_EXTS)
        raise UserInputError(f"no images ({wanted}) found in {' '.join(map(str, inputs))}")
    if masks is not None:
        jobs = attach_truth(jobs, rels, masks)
    reads = [("an input picture", job.src) for job in jobs]
    reads += [("a ground-truth mask", job.truth) for job in jobs if job.truth is not None]
    if model is not None:
        reads.append(("the model", model))
    refuse_aliases(reads, [("the output PNG", job.dest) for job in jobs])
    return jobs


def plan_single(src: Path, dest: Path, model: Path | None = None, masks: Path | None = None) -> Job:
    """Check ``predict INPUT OUTPUT`` before any work and return its one job.

    ``-`` is stdin (INPUT) or stdout (OUTPUT). OUTPUT must end in ``.png``, so a slip
    like ``predict a.jpg b.jpg`` cannot replace a photo with a PNG. Refused (one
    UserInputError naming the path): a missing INPUT or a folder, an OUTPUT that is a
    folder or cannot be written, an OUTPUT that is the INPUT, the model or the mask
    (path, symlink or hard link), ``masks`` with stdin, and a missing ground truth.
    """
    from_stdin, to_stdout = str(src) == STDIO, str(dest) == STDIO
    if not from_stdin:
        if src.is_dir():
            raise UserInputError(
                f"{src}: is a folder; for folders use `predict FOLDER... --out DIR`"
            )
        if not src.exists():
            raise UserInputError(f"{src}: no such file")
    truth = None
    if masks is not None:
        if from_stdin:
            raise UserInputError("--masks needs a named INPUT (its stem finds the mask), not -")
        (job,) = attach_truth([Job(src, dest)], [Path(src.name)], masks)
        truth = job.truth
    if not to_stdout:
        reads = [] if from_stdin else [("the input picture", src)]
        reads += [("the model", model)] if model is not None else []
        reads += [("the ground-truth mask", truth)] if truth is not None else []
        refuse_aliases(reads, [("the output PNG", dest)])
        if dest.suffix.lower() != ".png":
            raise UserInputError(f"{dest}: OUTPUT must be a .png file (or - for stdout)")
        check_output_file(dest, "the PNG")
    return Job(src, dest, truth)


def read_stream(stream: BinaryIO, what: str = STDIN_LABEL, limit: int = MAX_STDIN_BYTES) -> bytes:
    """All of ``stream`` (at most ``limit`` bytes); UserInputError if empty or larger."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise UserInputError(f"{what}: more than {limit >> 20} MiB piped in; give a file")
    if not total:
        raise UserInputError(f"{what}: no picture piped in (empty input)")
    return b"".join(chunks)


def saliency_map(
    model: SaliencyModel, rgb: np.ndarray, size: int | tuple[int, int] | None
) -> np.ndarray:
    """The model's map of ``uint8`` RGB as ``uint8`` HxW (0..255) at rgb's size.

    The one picture -> map step (:meth:`SaliencyModel.map`) then the one quantisation
    (:func:`to_uint8`), exactly what ``evaluate`` scores. ``size`` None runs at the
    picture's own size, otherwise at N x N or (height, width). Model failures raise
    UserInputError.
    """
    return to_uint8(model.map(rgb, size))


def render(
    rgb: np.ndarray, mask: np.ndarray, look: Look | str, truth: np.ndarray | None = None
) -> Image.Image:
    """The output picture for ``look`` (a :class:`Look`, or a format name for defaults).

    ``mask`` (L: the map, or binary with a threshold), ``cutout`` (RGBA, hard alpha at
    the threshold, or ``soft``; over ``bg`` if given), ``overlay`` (RGB), or the
    side-by-side row; ``mask`` is the ``uint8`` map from :func:`saliency_map`, ``truth``
    the ground truth for the side-by-side view.
    """
    if isinstance(look, str):
        look = Look(fmt=look)
    if look.view == "side-by-side":
        return draw.side_by_side(rgb, mask, look.threshold, truth)
    if look.view != "single":
        raise UserInputError(f"unknown view '{look.view}' (choose from {', '.join(VIEWS)})")
    if look.fmt == "mask":
        return draw.mask(mask, look.threshold)
    if look.fmt == "cutout":
        return draw.cutout(rgb, mask, look.decision(), look.soft, look.bg)
    if look.fmt == "overlay":
        return draw.overlay(rgb, mask, look.decision())
    raise UserInputError(f"unknown format '{look.fmt}' (choose from {', '.join(FORMATS)})")


def load_truth(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask as ``uint8`` HxW grey, checked to be ``size`` (width, height)."""
    rgb, found = load_rgb(path)
    if found != size:
        raise UserInputError(
            f"{path}: ground-truth mask is {found[0]}x{found[1]}, the picture {size[0]}x{size[1]}"
        )
    return np.asarray(Image.fromarray(rgb).convert("L"))


def picture_for(
    model: SaliencyModel,
    rgb: np.ndarray,
    look: Look,
    size: int | tuple[int, int] | None,
    label: str | os.PathLike[str],
    truth: Path | None = None,
) -> Image.Image:
    """Run the model on one decoded picture and render ``look``; errors name ``label``."""
    height, width = rgb.shape[:2]
    if size is None and width * height > MAX_NATIVE_PIXELS:
        raise UserInputError(
            f"{label}: {width}x{height} is too large for --native "
            f"(limit {MAX_NATIVE_PIXELS / 1e6:g} MP); use --size"
        )
    truth_map = load_truth(truth, (width, height)) if truth is not None else None
    try:
        mask = saliency_map(model, rgb, size)
    except UserInputError as exc:  # keeps the kind: ModelTimeout stops the whole run
        raise type(exc)(f"{label}: {exc}") from None
    return render(rgb, mask, look, truth_map)


def png_bytes(picture: Image.Image) -> bytes:
    """``picture`` encoded as PNG, in memory (for stdout: written whole or not at all)."""
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def write_png(picture: Image.Image, dest: Path) -> None:
    """Write ``picture`` to ``dest`` as PNG atomically; UserInputError names ``dest``."""
    try:
        with atomicio.atomic_path(dest, suffix=".png") as tmp:
            picture.save(tmp, format="PNG")
    except OSError as exc:
        raise UserInputError(f"{dest}: cannot write ({exc})") from None


def predict_file(
    model: SaliencyModel,
    job: Job,
    look: Look | str,
    size: int | tuple[int, int] | None,
) -> None:
    """Process one picture and write its PNG atomically; UserInputError names the file."""
    if isinstance(look, str):
        look = Look(fmt=look)
    rgb, _ = load_rgb(job.src)
    write_png(picture_for(model, rgb, look, size, job.src, job.truth), job.dest)
