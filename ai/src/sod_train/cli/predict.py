"""``sod-train predict``: saliency masks, cut-outs, overlays or side-by-side views of pictures."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

from sod_train import progress, stdio
from sod_train.data.imageio import load_rgb, rgb_from_bytes
from sod_train.errors import GateError, UserInputError
from sod_train.guards import MAX_SQUARE, MAX_THREADS
from sod_train.predict.predict import (
    DEFAULT_SIZE,
    FORMATS,
    STDIN_LABEL,
    STDIO,
    VIEWS,
    Look,
    picture_for,
    plan_jobs,
    plan_single,
    png_bytes,
    predict_file,
    read_stream,
    write_png,
)
from sod_train.predict.render import DEFAULT_THRESHOLD, parse_color
from sod_train.release import registry
from sod_train.runtime.model import SaliencyModel
from sod_train.runtime.session import ModelTimeout


def resolve_model(model: Path | None, quiet: bool) -> Path:
    """``--model``, or the registry's default model (checked once); UserInputError if none."""
    if model is not None:
        return model
    try:
        entry = registry.model_entry(None, registry.REGISTRY_PATH)
        path = registry.entry_file(entry, "onnx", registry.REGISTRY_PATH).resolve()
    except UserInputError as exc:
        raise UserInputError(f"no default model shipped yet ({exc}); pass --model M.onnx") from None
    if not path.is_file():
        raise UserInputError(f"{path}: default model listed in the registry is missing")
    if entry.get("smoke"):
        progress.note(
            f"note: the default model {path.name} is a smoke model (a short CPU run, "
            "weaker than a release); pass --model for another one",
            quiet,
        )
    return path


def _run_size(model: SaliencyModel, size: int | None, native: bool) -> int | tuple[int, int] | None:
    """The size the model runs at: N x N, the model's fixed size, or None for native.

    A model that normalises its own scale (it records a working size) runs at the
    picture's native size by default, as a host runs it; any other at DEFAULT_SIZE.
    """
    if native and size is not None:
        raise click.UsageError("--size and --native exclude each other")
    fixed = model.fixed_size
    if fixed is None:
        if native or (size is None and model.working_size is not None):
            return None
        return size or DEFAULT_SIZE
    if native or (size is not None and (size, size) != fixed):
        raise UserInputError(f"this model only runs at {fixed[0]}x{fixed[1]}; drop --size/--native")
    return fixed


def _look(
    fmt_given: bool,
    fmt: str,
    view: str,
    threshold: float | None,
    soft: bool,
    bg_color: str | None,
    masks: Path | None,
) -> Look:
    """The options as a :class:`Look`; an option that cannot apply is one line, exit 2."""
    if view == "side-by-side" and fmt_given:
        raise UserInputError(
            "--format and --view side-by-side exclude each other "
            "(the row is picture | map | overlay [| ground truth])"
        )
    cutout = view == "single" and fmt == "cutout"
    if soft and not cutout:
        raise UserInputError("--soft applies to --format cutout only")
    if soft and threshold is not None:
        raise UserInputError("--soft uses the map itself as alpha; drop --threshold")
    if bg_color is not None and not cutout:
        raise UserInputError("--bg-color applies to --format cutout only")
    if masks is not None and view != "side-by-side":
        raise UserInputError("--masks (ground truth) applies to --view side-by-side only")
    bg = parse_color(bg_color) if bg_color is not None else None
    return Look(fmt=fmt, view=view, threshold=threshold, soft=soft, bg=bg)


def _one_picture(
    src: Path,
    dest: Path,
    model: Path | None,
    look: Look,
    masks: Path | None,
    size: int | None,
    native: bool,
    threads: int | None,
    quiet: bool,
    as_json: bool = False,
) -> None:
    """``predict INPUT OUTPUT``: one picture, ``-`` for stdin or stdout."""
    from_stdin, to_stdout = str(src) == STDIO, str(dest) == STDIO
    if from_stdin and stdio.stdin_binary().isatty():
        raise UserInputError("stdin is a terminal; pipe a picture in: predict - out.png < in.jpg")
    if to_stdout and stdio.stdout_binary().isatty():
        raise UserInputError(
            "refusing to write PNG bytes to a terminal; redirect stdout or give OUTPUT.png"
        )
    model_path = resolve_model(model, quiet)
    job = plan_single(src, dest, model_path, masks)
    opened = SaliencyModel.open(model_path, threads)
    run_size = _run_size(opened, size, native)
    if from_stdin:
        rgb = rgb_from_bytes(read_stream(stdio.stdin_binary()), STDIN_LABEL)
    else:
        rgb, _ = load_rgb(src)
    label = STDIN_LABEL if from_stdin else src
    try:
        picture = picture_for(opened, rgb, look, run_size, label, job.truth)
    except ModelTimeout as exc:
        raise UserInputError(f"{model_path}: {exc}") from None
    if to_stdout:
        stdio.write_stdout(png_bytes(picture))
    else:
        write_png(picture, dest)
    where = "stdout" if to_stdout else dest
    progress.note(f"wrote {look.kind} {picture.width}x{picture.height} PNG to {where}", quiet)
    if as_json:
        summary = {"model": str(model_path), "kind": look.kind, "size": run_size or "native"}
        item = {"input": str(label), "output": str(dest)}
        item.update(width=picture.width, height=picture.height)
        stdio.echo_block(json.dumps({**summary, "written": [item], "skipped": []}, indent=2))


@click.command("predict")
@click.argument(
    "inputs",
    nargs=-1,
    required=True,
    metavar="INPUT OUTPUT | INPUT...",
    type=click.Path(path_type=Path),
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model (default: the shipped model in model/tiny/).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNGs (created; input folder structure is kept). "
    "Without --out: predict INPUT OUTPUT, one picture.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="mask",
    show_default=True,
    help="mask: 8-bit map (binary with --threshold); cutout: RGBA, alpha 255 on the subject "
    "and 0 elsewhere (--soft: the map as alpha); overlay: background greyed and dimmed, "
    "subject outlined in a contrasting colour.",
)
@click.option(
    "--view",
    type=click.Choice(VIEWS),
    default="single",
    show_default=True,
    help="side-by-side: picture | map | overlay in one PNG, plus the ground truth with --masks.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    help="Salient where map >= T: a binary mask, and the cut for cutout and overlay "
    f"(which default to {DEFAULT_THRESHOLD}).",
)
@click.option("--soft", is_flag=True, help="cutout: the map itself as alpha (soft edges).")
@click.option(
    "--bg-color",
    "bg_color",
    metavar="R,G,B[,A]",
    help="cutout: put the subject on this colour (0..255 each; A 255 or omitted gives RGB).",
)
@click.option(
    "--masks",
    type=click.Path(path_type=Path),
    help="side-by-side: ground-truth folder; a picture's mask is MASKS/<its path's stem>.*",
)
@click.option(
    "--size",
    type=click.IntRange(1, MAX_SQUARE),
    help="Run the model at N x N and resize the map back [default: native size for a model "
    f"that normalises its own scale (the shipped one), else {DEFAULT_SIZE}].",
)
@click.option(
    "--native",
    is_flag=True,
    help="Run the model at each picture's own size (pictures up to 16 MP); the default for "
    "a model that normalises its own scale.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="onnxruntime threads (default: all cores).",
)
@click.option("--quiet", is_flag=True, help="No progress, summary or notes (errors still show).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON summary on stdout: model, kind, run size, every written PNG and "
    "every skipped picture (not with OUTPUT -).",
)
@click.pass_context
def predict(
    ctx: click.Context,
    inputs: tuple[Path, ...],
    model: Path | None,
    out: Path | None,
    fmt: str,
    view: str,
    threshold: float | None,
    soft: bool,
    bg_color: str | None,
    masks: Path | None,
    size: int | None,
    native: bool,
    threads: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run the model on pictures: INPUT OUTPUT, or INPUT... --out DIR.

    \b
    One picture:  predict in.jpg out.png    (- as INPUT: stdin; - as OUTPUT: stdout)
    Many:         predict photos/ a.jpg --out DIR   (folders recursed)

    With --out each PNG has its picture's size (EXIF orientation applied) and is named
    after the picture's path plus the format, e.g. sub/cat.jpg -> DIR/sub/cat.jpg.mask.png.
    A picture that cannot be read, or whose map is not finite (NaN), is reported and
    skipped; the exit code is then 1. Progress and notes go to stderr.
    """
    fmt_given = ctx.get_parameter_source("fmt") is not ParameterSource.DEFAULT
    look = _look(fmt_given, fmt, view, threshold, soft, bg_color, masks)
    if out is None:
        if len(inputs) != 2:
            raise UserInputError(
                f"got {len(inputs)} path(s) and no --out: give INPUT OUTPUT (one picture; "
                "OUTPUT a .png file or -) or INPUT... --out DIR"
            )
        if as_json and str(inputs[1]) == STDIO:
            raise click.UsageError("--json prints to stdout, where OUTPUT - writes the PNG")
        _one_picture(*inputs, model, look, masks, size, native, threads, quiet, as_json)
        return
    model_path = resolve_model(model, quiet)
    jobs = plan_jobs(list(inputs), out, look.kind, model_path, masks)
    opened = SaliencyModel.open(model_path, threads)
    run_size = _run_size(opened, size, native)
    failures: list[str] = []
    written: list[dict[str, str]] = []
    with progress.Bar(jobs, label="predict", quiet=quiet) as bar:
        for job in bar:
            try:
                predict_file(opened, job, look, run_size)
                written.append({"input": str(job.src), "output": str(job.dest)})
            except ModelTimeout as exc:  # it would be as slow on every other picture
                raise UserInputError(f"{model_path}: {exc}; no more pictures were run") from None
            except UserInputError as exc:
                failures.append(str(exc))
                progress.note(f"skipped: {exc}")
    done = len(jobs) - len(failures)
    progress.note(f"wrote {done} {look.kind} PNG(s) to {out}", quiet)
    if as_json:
        summary = {"model": str(model_path), "kind": look.kind, "size": run_size or "native"}
        skipped = [{"error": f} for f in failures]
        stdio.echo_block(json.dumps({**summary, "written": written, "skipped": skipped}, indent=2))
    if failures:
        raise GateError(f"{len(failures)} of {len(jobs)} picture(s) could not be processed")
