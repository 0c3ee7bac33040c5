"""``sod-train report``: one static HTML page comparing models (or saved maps) on a data set,
with a video section per ``--video`` clip (or only those: a video-only page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sod_train import progress
from sod_train.cli.evaluate import source_options, sources_from
from sod_train.cli.video import MAX_FRAMES, colour_options
from sod_train.evaluate.sod_metrics import METRIC_KEYS
from sod_train.guards import check_output_file
from sod_train.stdio import echo_block

# Options about --data: refused in a video-only report rather than silently ignored.
DATA_ONLY = ("pred_dir", "metrics", "size", "native", "name", "n", "by", "seed")
# Options about the clips: refused without --video rather than silently ignored.
VIDEO_ONLY = {
    "video_masks": "--video-masks",
    "video_max_frames": "--video-max-frames",
    "yuv_matrix": "--yuv-matrix",
    "value_range": "--range",
}
PARAMS = {"pred_dir": "pred_dirs", "metrics": "metrics_files", "n": "count"}


def _given(ctx: click.Context, option: str) -> bool:
    source = ctx.get_parameter_source(PARAMS.get(option, option))
    return source is click.core.ParameterSource.COMMANDLINE


@click.command("report")
@source_options(data_required=False)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The HTML page to write (self-contained: images are embedded).",
)
@click.option(
    "--metrics",
    "metrics_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A metrics JSON whose training.history to plot. Repeatable.",
)
@click.option(
    "--n",
    "count",
    type=click.IntRange(0, 100),
    default=6,
    show_default=True,
    help="Images in each of the worst, best and random grids.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
@click.option(
    "--by",
    type=click.Choice(METRIC_KEYS),
    default="MAE",
    show_default=True,
    help="Metric that ranks the worst and best images (mean over the models).",
)
@click.option(
    "--video",
    "videos",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A clip (y4m, mp4/mkv/webm, or a folder of frames) for a video section: "
    "saliency_mean over time, a filmstrip and the stability figures of every MODEL. "
    "Repeatable (one section per clip); with no --data the page has only these.",
)
@click.option(
    "--video-masks",
    "video_masks",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A folder of ground-truth masks for the i-th --video, paired with its frames in "
    "name order: adds the ground truth's stability figures. Repeatable.",
)
@click.option(
    "--video-max-frames",
    type=click.IntRange(1, MAX_FRAMES),
    help="Run the models on the first N frames of each clip only.",
)
@colour_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the page's path, the data set and every model's metrics as JSON.",
)
@click.pass_context
def report(
    ctx: click.Context,
    models: tuple[Path, ...],
    data_dir: Path | None,
    pred_dirs: tuple[Path, ...],
    out: Path,
    metrics_files: tuple[Path, ...],
    count: int,
    seed: int,
    by: str,
    size: int,
    native: bool,
    name: str | None,
    threads: int | None,
    videos: tuple[Path, ...],
    video_masks: tuple[Path, ...],
    video_max_frames: int | None,
    yuv_matrix: str,
    value_range: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write one static HTML page on MODELS (.onnx) and/or --pred-dir maps on --data:
    metrics, curves, training curves, worst/best/random images, sortable per-image scores,
    and a video section per --video clip. --data may be left out when --video is given
    (a video-only page).

    Needs matplotlib for --data (pip install -e ".[report]"). See docs/evaluate.md and
    docs/video.md.
    """
    from sod_train.evaluate.evaluate import make_sources, tune_allocator
    from sod_train.evaluate.plots import require_matplotlib
    from sod_train.evaluate.report import build_report
    from sod_train.guards import refuse_aliases
    from sod_train.video.report import check_clips, run_clips, write_sections

    unused = [flag for param, flag in VIDEO_ONLY.items() if _given(ctx, param)]
    if unused and not videos:
        raise click.UsageError(f"{unused[0]} needs --video")
    if data_dir is None and not videos:  # click's own message, as when --data was required
        param = next(p for p in ctx.command.params if p.name == "data_dir")
        raise click.MissingParameter(ctx=ctx, param=param)
    if data_dir is not None:
        require_matplotlib()
        sources = sources_from(ctx, models, pred_dirs, native)
    else:
        given = [f"--{p.replace('_', '-')}" for p in DATA_ONLY if _given(ctx, p)]
        if given:
            raise click.UsageError(
                f"{given[0]} needs --data (a video-only report has no data; the clips run "
                "at their native size)"
            )
        if not models:
            raise click.UsageError("give an ONNX MODEL for the --video sections")
        sources = make_sources(models)
    check_output_file(out, "the report")
    clips = check_clips(videos, video_masks, video_max_frames, yuv_matrix, value_range)
    refuse_aliases(
        [("the model", m) for m in models]
        + [("the video", c.path) for c in clips if not c.path.is_dir()]
        + [("a mask", m) for c in clips for m in c.masks],
        [("the report", out)],
    )
    onnx_models = [(s.label, s.path) for s in sources if s.kind == "onnx"]
    if clips and not onnx_models:
        raise click.UsageError("--video needs an ONNX MODEL (saved maps cannot run on a clip)")
    reports = []

    def sections() -> list[str]:
        reports.extend(
            run_clips(clips, onnx_models, threads, video_max_frames, yuv_matrix, value_range, quiet)
        )
        return [r.html for r in reports]

    doc: dict[str, Any] = {"out": str(out)}
    if data_dir is not None:
        tune_allocator()
        evaluations = build_report(
            sources,
            data_dir,
            out,
            metrics_files,
            count,
            seed,
            by,
            size,
            native,
            threads,
            quiet,
            name,
            sections if clips else None,
        )
        first = evaluations[0].result
        doc.update({"data": first["name"], "n": first["n"]})
        doc["models"] = {ev.source.label: ev.result["metrics"] for ev in evaluations}
    else:
        names = ", ".join(clip.path.name for clip in clips)
        write_sections(out, f"Video report: {names}", sections())
    if clips:
        doc["videos"] = [r.doc for r in reports]
    if as_json:
        echo_block(json.dumps(doc, indent=2, allow_nan=False))
    else:
        progress.note(f"report written to {out}", quiet)
