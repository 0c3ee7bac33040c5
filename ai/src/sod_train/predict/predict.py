"""Run a saliency ONNX model on people's pictures and write one PNG per picture.

Inputs are files and folders; folders are walked recursively (sorted, hidden entries
skipped, only ``.jpg .jpeg .png .webp .bmp`` in any case). A file named explicitly is
always tried, whatever its extension.

Output naming keeps the input's extension and adds the format, so ``a.jpg`` and
``a.png`` never collide: ``photos/sub/a.jpg`` given as the folder ``photos`` becomes
``OUT/sub/a.jpg.mask.png``; a file given directly becomes ``OUT/a.jpg.mask.png``.
When a folder is walked, files inside OUT ending in ``.mask.png``, ``.cutout.png`` or
``.overlay.png`` are taken to be earlier outputs and skipped, so running twice with
OUT inside (or equal to) an input folder does not feed outputs back in.

By default the model runs at ``DEFAULT_SIZE`` x ``DEFAULT_SIZE`` and the map is
resized back to the picture (bilinear), so a 6000x4000 photo costs the same model
memory as a thumbnail; ``native`` runs at the picture's own size (up to
``MAX_NATIVE_PIXELS``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from PIL import Image

from sod_train import atomicio
from sod_train.check import modelio
from sod_train.data.imageio import load_rgb, to_model_input
from sod_train.errors import UserInputError
from sod_train.guards import check_output_dir, refuse_aliases
from sod_train.release import registry

FORMATS = ("mask", "cutout", "overlay")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
DEFAULT_SIZE = 256
MAX_NATIVE_PIXELS = 16_000_000
OVERLAY_TINT = (255, 0, 0)
OVERLAY_STRENGTH = 0.5  # a pixel with saliency 1 is 50 % tint, 50 % picture

# Everything onnxruntime raises for a bad model or a run that fails.
ORT_ERRORS: tuple[type[BaseException], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NoModel,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
    ort_state.EPFail,
    RuntimeError,
    ValueError,
)


@dataclass(frozen=True)
class Job:
    """One picture to process and the PNG it becomes."""

    src: Path
    dest: Path


first_line = modelio.first_line


def default_model() -> Path:
    """The registry's default model, or UserInputError telling the user to pass --model."""
    try:
        path = registry.default_model_path(registry.REGISTRY_PATH)
    except UserInputError as exc:
        raise UserInputError(f"no default model shipped yet ({exc}); pass --model M.onnx") from None
    if not path.is_file():
        raise UserInputError(f"{path}: default model listed in the registry is missing")
    if registry.model_entry(None, registry.REGISTRY_PATH).get("smoke"):
        click.echo(
            f"note: the default model {path.name} is a smoke model (a short CPU run, "
            "weaker than a release); pass --model for another one",
            err=True,
        )
    return path


def load_session(model: str | os.PathLike[str], threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session for ``model`` with ``threads`` intra-op threads.

    Goes through the one model loader (:func:`sod_train.check.modelio.load_session`): a file
    that is not a regular file, not ONNX, or not one float [1,3,H,W] input and a float
    output (fixed sizes within range) raises UserInputError naming the file.
    ``threads`` None keeps onnxruntime's default (all physical cores).
    """
    return modelio.load_session(model, threads)


def fixed_input_size(session: ort.InferenceSession) -> tuple[int, int] | None:
    """(height, width) if the model's input has fixed spatial dims, else None."""
    return modelio.fixed_input_size(session)


def output_name(rel: Path, fmt: str) -> Path:
    """Output path, relative to OUT, for an input at ``rel``: ``a.jpg`` -> ``a.jpg.mask.png``."""
    return rel.parent / f"{rel.name}.{fmt}.png"


def _is_earlier_output(path: Path, out: Path) -> bool:
    names = tuple(f".{fmt}.png" for fmt in FORMATS)
    return path.name.lower().endswith(names) and path.resolve().is_relative_to(out)


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


def plan_jobs(inputs: list[Path], out: Path, fmt: str, model: Path | None = None) -> list[Job]:
    """Expand files/folders into jobs; refuse collisions and any output that is an input.

    Raises UserInputError (before anything is written) for a missing input, no images
    at all, two inputs mapping to the same output, or an output that would replace an
    input file or ``model`` (compared by path and inode: symlinks and hard links count).
    """
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{out}: --out exists and is not a folder")
    check_output_dir(out, "the PNGs")
    out_resolved = out.resolve()
    sources: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            sources += [(path, path.relative_to(item)) for path in _walk_images(item, out_resolved)]
        elif item.is_file():
            sources.append((item, Path(item.name)))
        else:
            raise UserInputError(f"{item}: no such file or folder")
    jobs: list[Job] = []
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
    if not jobs:
        wanted = " ".join(IMAGE_EXTS)
        raise UserInputError(f"no images ({wanted}) found in {' '.join(map(str, inputs))}")
    reads = [("an input picture", job.src) for job in jobs]
    if model is not None:
        reads.append(("the model", model))
    refuse_aliases(reads, [("the output PNG", job.dest) for job in jobs])
    return jobs


def saliency_map(
    session: ort.InferenceSession, rgb: np.ndarray, size: int | tuple[int, int] | None
) -> np.ndarray:
    """Run the model on ``uint8`` RGB; return its map as ``uint8`` HxW (0..255) at rgb's size.

    ``size`` None runs at the picture's own size; otherwise at N x N or (height, width)
    and the 8-bit map is resized back bilinearly (8-bit keeps a 24 MP map at 24 MB).
    Model failures raise UserInputError.
    """
    height, width = rgb.shape[:2]
    x = to_model_input(rgb, size)
    result = modelio.run(session, x)
    if result.ndim < 2 or result.size != result.shape[-1] * result.shape[-2] or not result.size:
        raise UserInputError(f"model output has shape {list(result.shape)}, expected [1,1,H,W]")
    bad = int(result.size - np.count_nonzero(np.isfinite(result)))
    if bad:
        raise UserInputError(
            f"model output has {bad:,} of {result.size:,} values NaN or infinite; no PNG written"
        )
    result = np.clip(result.reshape(result.shape[-2:]), 0.0, 1.0)
    mask = Image.fromarray(np.rint(result * 255.0).astype(np.uint8))
    if mask.size != (width, height):
        mask = mask.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(mask)


def render(rgb: np.ndarray, mask: np.ndarray, fmt: str) -> Image.Image:
    """The output picture: ``mask`` (L), ``cutout`` (RGBA, map as alpha) or ``overlay`` (RGB).

    ``mask`` is the ``uint8`` map from :func:`saliency_map`.
    """
    mask_img = Image.fromarray(mask)
    if fmt == "mask":
        return mask_img
    picture = Image.fromarray(rgb)
    if fmt == "cutout":
        picture.putalpha(mask_img)
        return picture
    if fmt == "overlay":
        weight = mask_img.point(lambda v: round(v * OVERLAY_STRENGTH))
        tint = Image.new("RGB", picture.size, OVERLAY_TINT)
        return Image.composite(tint, picture, weight)
    raise UserInputError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")


def predict_file(
    session: ort.InferenceSession, job: Job, fmt: str, size: int | tuple[int, int] | None
) -> None:
    """Process one picture and write its PNG atomically; UserInputError names the file."""
    rgb, (width, height) = load_rgb(job.src)
    if size is None and width * height > MAX_NATIVE_PIXELS:
        raise UserInputError(
            f"{job.src}: {width}x{height} is too large for --native "
            f"(limit {MAX_NATIVE_PIXELS / 1e6:g} MP); use --size"
        )
    try:
        mask = saliency_map(session, rgb, size)
    except UserInputError as exc:  # keeps the kind: ModelTimeout stops the whole run
        raise type(exc)(f"{job.src}: {exc}") from None
    picture = render(rgb, mask, fmt)
    try:
        with atomicio.atomic_path(job.dest, suffix=".png") as tmp:
            picture.save(tmp, format="PNG")
    except OSError as exc:
        raise UserInputError(f"{job.dest}: cannot write ({exc})") from None
