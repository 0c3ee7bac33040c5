"""``sod-train video`` and ``evaluate-video``: saliency per video frame, the host's way."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sod_train.guards import MAX_THREADS
from sod_train.stdio import echo_block
from sod_train.video.colour import DEFAULT_MATRIX, DEFAULT_RANGE, MATRICES, RANGES
from sod_train.video.outputs import OVERLAY_STYLES
from sod_train.video.source import PIX_FMTS

MAX_FRAMES = 10_000_000


def colour_options(command: click.Command) -> click.Command:
    """--yuv-matrix and --range, shared by the commands that convert YUV."""
    command = click.option(
        "--range",
        "value_range",
        type=click.Choice(RANGES),
        default=DEFAULT_RANGE,
        show_default=True,
        help="YUV sample range: limited (16-235/240, as the host) or full (0-255).",
    )(command)
    return click.option(
        "--yuv-matrix",
        type=click.Choice(tuple(MATRICES)),
        default=DEFAULT_MATRIX,
        show_default=True,
        help="YUV -> RGB: host (the C extractor's coefficients, bit-exact), bt709, bt601.",
    )(command)


@click.command("video")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model (default: the registry's default model).",
)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="One row per frame.")
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Rows, options and stability."
)
@click.option("--maps", type=click.Path(path_type=Path), help="Folder for a grey PNG per frame.")
@click.option(
    "--overlay",
    type=click.Path(path_type=Path),
    help="Video of each frame with its map: .y4m, .mp4/.mkv (H.264) or .webm (VP9).",
)
@click.option(
    "--overlay-style",
    type=click.Choice(OVERLAY_STYLES),
    default="beside",
    show_default=True,
    help="Map beside the picture, or the picture dimmed where the map is low.",
)
@click.option(
    "--report", "report_path", type=click.Path(path_type=Path), help="HTML page: plot, filmstrip."
)
@click.option("--size", help="Raw YUV only: WIDTHxHEIGHT.")
@click.option("--pix-fmt", type=click.Choice(tuple(PIX_FMTS)), help="Raw YUV only: sample layout.")
@click.option(
    "--fps",
    type=click.FloatRange(0, 1000, min_open=True),
    help="Frame rate of raw YUV or a folder (for pts and overlays).",
)
@colour_options
@click.option(
    "--smooth",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Temporal smoothing: weight ALPHA of the previous (smoothed) map; 0 is off, 0.5 is "
    "the value chosen on DAVIS (docs/video.md).",
)
@click.option(
    "--max-frames", type=click.IntRange(1, MAX_FRAMES), help="Stop after this many frames."
)
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="onnxruntime intra-op threads (default: onnxruntime's).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def video(
    input_path: Path,
    model: Path | None,
    csv_path: Path | None,
    json_path: Path | None,
    maps: Path | None,
    overlay: Path | None,
    overlay_style: str,
    report_path: Path | None,
    size: str | None,
    pix_fmt: str | None,
    fps: float | None,
    yuv_matrix: str,
    value_range: str,
    smooth: float,
    max_frames: int | None,
    threads: int | None,
    quiet: bool,
) -> None:
    """Saliency map of every frame of INPUT (y4m, raw .yuv, mp4/mkv/webm, or a folder).

    Writes one row per frame (frame, pts, saliency_mean, saliency_var, ms) to --csv, or to
    stdout when no output is given; --json, --maps, --overlay and --report add the rest.
    """
    from sod_train.errors import UserInputError
    from sod_train.guards import check_output_dir, check_output_file, refuse_aliases
    from sod_train.progress import note
    from sod_train.release.registry import default_model_path
    from sod_train.stdio import is_stdio
    from sod_train.video.pipeline import Outputs, process_video, summary
    from sod_train.video.run import load_model
    from sod_train.video.source import open_video

    model_path = model if model is not None else default_model_path()
    files = [
        ("--csv", csv_path, "the CSV"),
        ("--json", json_path, "the JSON"),
        ("--overlay", overlay, "the overlay video"),
        ("--report", report_path, "the report"),
    ]
    # ``-`` is stdout for --csv and --json (one of them), never a file named ``-``.
    to_stdout = [flag for flag, path, _ in [*files, ("--maps", maps, "")] if is_stdio(path)]
    if to_stdout and (len(to_stdout) > 1 or to_stdout[0] not in ("--csv", "--json")):
        raise UserInputError(
            f"-: only one of --csv and --json can go to stdout (got {' and '.join(to_stdout)})"
        )
    files = [(flag, None if is_stdio(path) else path, what) for flag, path, what in files]
    for _, path, what in files:
        if path is not None:
            check_output_file(path, what)
    if maps is not None:
        check_output_dir(maps, "the maps")
        if input_path.is_dir() and maps.resolve() == input_path.resolve():
            raise UserInputError(f"{maps}: refusing to write the maps into the input folder")
    refuse_aliases(
        [("the input video", input_path), ("the model", model_path)],
        [(label, path) for label, path, _ in files if path is not None],
    )
    nothing = not any(p is not None for p in (csv_path, json_path, maps, overlay, report_path))
    outputs = Outputs(
        csv=None if is_stdio(csv_path) else csv_path,
        json=json_path,
        maps=maps,
        overlay=overlay,
        overlay_style=overlay_style,
        report=report_path,
        csv_stream=sys.stdout if nothing or is_stdio(csv_path) else None,
    )
    session = load_model(model_path, threads)
    with open_video(input_path, yuv_matrix, value_range, size, pix_fmt, fps) as clip:
        note(f"reading {clip.describe()} with {model_path.name}", quiet)
        result = process_video(clip, session, model_path, outputs, smooth, max_frames, quiet)
        note(summary(clip, result), quiet)


@click.command("evaluate-video")
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="DAVIS-layout root: JPEGImages/480p/<seq>/ and Annotations/480p/<seq>/.",
)
@click.option(
    "--sequences",
    multiple=True,
    help="Sequences to score, comma-separated or repeated; 'tune' and 'report' name the "
    "DAVIS-2016 val halves (default: all).",
)
@click.option(
    "--smooth",
    "smooths",
    multiple=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Temporal smoothing ALPHA; repeat to compare several (each a column) [default: 0].",
)
@click.option(
    "--every",
    type=click.IntRange(1, 10_000),
    default=1,
    show_default=True,
    help="Score max-F/S/MAE on every N-th frame (models and stability still see every frame).",
)
@click.option(
    "--pad-to",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Pad frames (edge) to a multiple of N and crop maps back; the anchors need 8.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Everything, as JSON.")
@click.option(
    "--table",
    type=click.Choice(("md", "text")),
    default="text",
    show_default=True,
    help="Print the per-sequence tables as Markdown or aligned text.",
)
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), help="onnxruntime threads.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate_video(
    models: tuple[Path, ...],
    data_root: Path,
    sequences: tuple[str, ...],
    smooths: tuple[float, ...],
    every: int,
    pad_to: int,
    json_path: Path | None,
    table: str,
    threads: int | None,
    quiet: bool,
) -> None:
    """Per-sequence max-F, S-measure, MAE and stability of MODELS on a DAVIS-layout set."""
    from sod_train import atomicio
    from sod_train.guards import check_output_file, refuse_aliases
    from sod_train.release.registry import default_model_path
    from sod_train.video.davis import evaluate_video as run
    from sod_train.video.davis import markdown_tables

    chosen = list(models) or [default_model_path()]
    if json_path is not None:
        check_output_file(json_path, "the JSON")
        refuse_aliases([("a model", m) for m in chosen], [("--json", json_path)])
    result = run(
        data_root, chosen, sequences or None, smooths or (0.0,), every, pad_to, threads, quiet
    )
    text = markdown_tables(result)
    if table == "text":
        text = text.replace("|---", "").replace("**", "")
    echo_block(text)
    if json_path is not None:
        atomicio.write_json(json_path, result)
