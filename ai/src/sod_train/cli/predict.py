"""``sod-train predict``: saliency masks, cut-outs or overlays for your own pictures."""

from __future__ import annotations

from pathlib import Path

import click

from sod_train.check.modelio import ModelTimeout
from sod_train.errors import GateError, UserInputError
from sod_train.guards import MAX_SQUARE, MAX_THREADS
from sod_train.predict.predict import (
    DEFAULT_SIZE,
    FORMATS,
    default_model,
    fixed_input_size,
    load_session,
    plan_jobs,
    predict_file,
)


def _run_size(
    fixed: tuple[int, int] | None, size: int | None, native: bool
) -> int | tuple[int, int] | None:
    """The size the model runs at: N x N, the model's fixed size, or None for native."""
    if native and size is not None:
        raise click.UsageError("--size and --native exclude each other")
    if fixed is None:
        return None if native else (size or DEFAULT_SIZE)
    if native or (size is not None and (size, size) != fixed):
        raise UserInputError(f"this model only runs at {fixed[0]}x{fixed[1]}; drop --size/--native")
    return fixed


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model (default: the shipped model in model/tiny/).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNGs (created; input folder structure is kept).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="mask",
    show_default=True,
    help="mask: 8-bit map; cutout: RGBA with the map as alpha; overlay: salient region tinted red.",
)
@click.option(
    "--size",
    type=click.IntRange(1, MAX_SQUARE),
    help=f"Run the model at N x N and resize the map back (default {DEFAULT_SIZE}).",
)
@click.option(
    "--native",
    is_flag=True,
    help="Run the model at each picture's own size (pictures up to 16 MP).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="onnxruntime threads (default: all cores).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def predict(
    inputs: tuple[Path, ...],
    model: Path | None,
    out: Path,
    fmt: str,
    size: int | None,
    native: bool,
    threads: int | None,
    quiet: bool,
) -> None:
    """Write one PNG per picture in INPUT... (files and/or folders, recursed) into --out.

    Each PNG has its picture's size (EXIF orientation applied) and is named after the
    picture's path plus the format, e.g. sub/cat.jpg -> OUT/sub/cat.jpg.mask.png. A
    picture that cannot be read, or whose map is not finite (NaN), is reported and
    skipped; the exit code is then 1.
    """
    model_path = model if model is not None else default_model()
    jobs = plan_jobs(list(inputs), out, fmt, model_path)
    session = load_session(model_path, threads)
    run_size = _run_size(fixed_input_size(session), size, native)
    failures: list[str] = []
    with click.progressbar(jobs, label="predict", hidden=quiet, show_pos=True) as bar:
        for job in bar:
            try:
                predict_file(session, job, fmt, run_size)
            except ModelTimeout as exc:  # it would be as slow on every other picture
                raise UserInputError(f"{model_path}: {exc}; no more pictures were run") from None
            except UserInputError as exc:
                failures.append(str(exc))
                click.echo(f"skipped: {exc}", err=True)
    done = len(jobs) - len(failures)
    if not quiet:
        click.echo(f"wrote {done} {fmt} PNG(s) to {out}")
    if failures:
        raise GateError(f"{len(failures)} of {len(jobs)} picture(s) could not be processed")
