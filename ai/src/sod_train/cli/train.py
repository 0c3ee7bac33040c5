"""``sod-train train``, ``export`` and ``quickstart``: the train -> export pipeline."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import click

from sod_train import atomicio
from sod_train.check.allowlist import DEFAULT_ALLOWLIST
from sod_train.guards import MAX_BATCH_SIZE, MAX_CROP, MAX_EPOCHS
from sod_train.train.presets import preset_names

DEVICES = click.Choice(["auto", "cpu", "cuda"])


def _int_tuple(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'") from None


def train_options(fn: Callable) -> Callable:
    """The options shared by ``sod-train train`` and ai/scripts/train_saliency_student.py."""
    options = [
        click.option(
            "--duts-root",
            type=click.Path(path_type=Path),
            help="Data folder: DUTS-TR-Image/ + DUTS-TR-Mask/ (or images/ + masks/).",
        ),
        click.option(
            "--data-cache",
            type=click.Path(file_okay=False, path_type=Path),
            help="Instead of --duts-root: a folder made by `sod-train build-cache`, "
            "verified and unpacked once into DIR/extracted/.",
        ),
        click.option(
            "--output",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="ONNX file to write, e.g. model/tiny/x.onnx.",
        ),
        click.option(
            "--preset",
            type=click.Choice(preset_names()),
            default="default",
            show_default=True,
            help="Named recipe; explicit options override it.",
        ),
        click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), help="Epochs [default: 50]."),
        click.option(
            "--batch-size",
            type=click.IntRange(1, MAX_BATCH_SIZE),
            help="Batch size [default: 32].",
        ),
        click.option(
            "--lr",
            type=click.FloatRange(min=0, min_open=True),
            help="Learning rate [default: 1e-3].",
        ),
        click.option(
            "--crop-size", type=click.IntRange(8, MAX_CROP), help="Training crop [default: 256]."
        ),
        click.option(
            "--seed",
            type=click.IntRange(0, 2**32 - 1),
            help="Seed for init, split and augmentation [default: 42].",
        ),
        click.option(
            "--val-fraction",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            help="Validation share; at least 64 pairs [default: 0.05].",
        ),
        click.option(
            "--min-val-iou",
            type=click.FloatRange(0, 1),
            default=0.5,
            show_default=True,
            help="Ship gate: refuse to export below this best validation IoU.",
        ),
        click.option(
            "--widths", callback=_int_tuple, help="Encoder widths, e.g. 16,32,48 (preset)."
        ),
        click.option(
            "--dilations", callback=_int_tuple, help="Bottleneck dilations, e.g. 1,2 (preset)."
        ),
        click.option(
            "--separable/--no-separable",
            default=None,
            help="Depthwise-separable 3x3 convolutions (all but the first) [default: preset].",
        ),
        click.option(
            "--loss", type=click.Choice(["bce+dice", "bce+iou"]), help="Loss [default: bce+dice]."
        ),
        click.option(
            "--arch",
            type=click.Choice(["anchor", "lite"]),
            help="Network family: the anchor TinyUNet or the efficient LiteUNet [default: anchor].",
        ),
        click.option(
            "--blocks", callback=_int_tuple, help="lite: residual blocks per level (preset)."
        ),
        click.option(
            "--refine",
            type=click.IntRange(0, 64),
            help="lite: channels of the full-resolution head; 0 = ConvTranspose straight "
            "to the logit [default: 8].",
        ),
        click.option(
            "--deep-supervision",
            type=click.FloatRange(0, 10),
            help="lite: weight of the side outputs' loss; 0 = off [default: 0].",
        ),
        click.option("--optimizer", type=click.Choice(["adam", "adamw"]), help="[default: adam]."),
        click.option("--weight-decay", type=click.FloatRange(0, 1), help="[default: 0]."),
        click.option(
            "--schedule",
            type=click.Choice(["cosine", "warmup-cosine"]),
            help="LR schedule: cosine per epoch, or linear warm-up + cosine per step "
            "[default: cosine].",
        ),
        click.option(
            "--warmup-epochs",
            type=click.FloatRange(0, 1000),
            help="warmup-cosine: warm-up length in epochs [default: 0].",
        ),
        click.option(
            "--final-crop",
            type=click.IntRange(8, MAX_CROP),
            help="Progressive resizing: crop of the last --final-epochs [default: off].",
        ),
        click.option(
            "--final-epochs",
            type=click.IntRange(0, MAX_EPOCHS),
            help="See --final-crop [default: 0].",
        ),
        click.option(
            "--val-crop",
            type=click.IntRange(8, MAX_CROP),
            help="Validation (model selection) crop [default: --crop-size].",
        ),
        click.option(
            "--ema",
            type=click.FloatRange(0, 1, max_open=True),
            help="EMA decay of the weights, e.g. 0.999; validated and exported [default: 0, off].",
        ),
        click.option(
            "--colour-jitter",
            type=click.FloatRange(0, 1),
            help="Brightness/contrast/saturation factors in [1-S, 1+S] [default: 0, off].",
        ),
        click.option(
            "--scale-jitter",
            type=click.FloatRange(0, 1, max_open=True),
            help="Random window of side crop*[1-S, 1+S] resized to the crop [default: 0, off].",
        ),
        click.option(
            "--metrics-out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Metrics JSON [default: <output stem>.metrics.json next to the ONNX].",
        ),
        click.option("--device", type=DEVICES, default="auto", show_default=True),
        click.option(
            "--workers",
            type=click.IntRange(0, 256),
            help="Processes used to decode the data set once at start; 0 = in this process "
            "[default: every core for 1,000+ pairs, else 0].",
        ),
        click.option(
            "--checkpoint-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Checkpoint folder [default: checkpoints/<output stem>/].",
        ),
        click.option(
            "--resume", is_flag=True, help="Continue from the checkpoint in --checkpoint-dir."
        ),
        click.option(
            "--skip-bad", is_flag=True, help="Skip (and count) bad pairs instead of failing."
        ),
        click.option(
            "--convert-rgb-masks",
            is_flag=True,
            help="Accept RGB masks as luminance (DUTS-TR has 3; the anchor kept them).",
        ),
        click.option(
            "--amp/--no-amp",
            default=None,
            help="bf16 autocast of the forward pass [default: on where the CPU or GPU has "
            "native bf16 (AVX512-BF16, AMX-BF16, CUDA), else off].",
        ),
        click.option(
            "--threads",
            type=click.IntRange(1, 1024),
            help="torch intra-op threads; recorded, since bit-exactness depends on it "
            "[default: every core this process may use].",
        ),
        click.option(
            "--no-export",
            is_flag=True,
            help="Train and checkpoint only; export later with `sod-train export`.",
        ),
        click.option(
            "--smoke",
            is_flag=True,
            help="Label the model a smoke/demo model in its metrics (never a release).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def run_train(
    duts_root: Path | None,
    output: Path,
    preset: str,
    min_val_iou: float,
    metrics_out: Path | None,
    device: str,
    workers: int | None,
    checkpoint_dir: Path | None,
    resume: bool,
    amp: bool | None,
    quiet: bool,
    data_cache: Path | None = None,
    no_export: bool = False,
    smoke: bool = False,
    threads: int | None = None,
    **recipe: object,
) -> dict | None:
    """Train, gate and export in one go; returns the metrics dict (None on ranks > 0).

    ``recipe`` holds the TrainConfig fields given on the command line (None: the
    preset's value). Under torchrun every rank trains; only rank 0 gates and writes.
    """
    from sod_train.train.config import Runtime, TrainConfig
    from sod_train.train.distributed import session
    from sod_train.train.loop import train

    flags = {"skip_bad", "convert_rgb_masks"}  # click gives False when absent: not an override
    recipe = {k: (v or None) if k in flags else v for k, v in recipe.items()}
    cfg = TrainConfig.from_preset(preset, min_val_iou=min_val_iou, **recipe)
    rt = Runtime(
        device=device,
        workers=workers,
        resume=resume,
        quiet=quiet,
        amp=amp,
        threads=threads,
        checkpoint_dir=checkpoint_dir or Path("checkpoints") / output.stem,
    )
    if (duts_root is None) == (data_cache is None):
        raise click.UsageError("give exactly one of --duts-root and --data-cache")
    if not no_export:
        atomicio.ensure_writable_dir(output.parent, "ONNX file")
        if metrics_out:
            atomicio.ensure_writable_dir(metrics_out.parent, "metrics JSON")
    atomicio.ensure_writable_dir(rt.checkpoint_dir, "checkpoints")
    if data_cache is not None:
        from sod_train.data.cache import open_cache

        duts_root = open_cache(data_cache, quiet=quiet)
    from sod_train.guards import check_release_outputs

    if not no_export:  # every output writable, none a training file nor the checkpoint
        check_release_outputs(
            output,
            metrics_out,
            data_root=duts_root,
            writes=[("the checkpoint", rt.checkpoint_dir / "last.pt")],
        )
    with session(device) as info:
        result = train(duts_root, cfg, rt)
    if not info.is_main:
        return None
    if no_export:
        click.echo(
            f"checkpoint: {rt.checkpoint_dir / 'last.pt'} (best val IoU "
            f"{result.best_val_iou:.4f}); export with: sod-train export "
            f"{rt.checkpoint_dir} --output {output}",
            err=True,
        )
        return None
    from sod_train.export.export import (  # needs onnxsim: not imported by --no-export
        check_gate,
        export,
    )

    check_gate(result, min_val_iou)
    metrics = export(result, output, metrics_out, min_val_iou=min_val_iou, smoke=smoke)
    if not quiet:
        click.echo(
            f"wrote {output} (best val IoU {result.best_val_iou:.4f} at epoch "
            f"{result.best_epoch}, {metrics['model']['params']:,} params)",
            err=True,
        )
    return metrics


@click.command("train")
@train_options
def train(**kwargs) -> None:
    """Train the tiny U-Net on DUTS-TR and export a verified ONNX file."""
    run_train(**kwargs)


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--metrics-out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--min-val-iou", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option(
    "--allowlist",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_ALLOWLIST,
    show_default=True,
)
@click.option("--smoke", is_flag=True, help="Label the model a smoke/demo model in its metrics.")
def export(
    checkpoint: Path,
    output: Path,
    metrics_out: Path | None,
    min_val_iou: float,
    allowlist: Path,
    smoke: bool,
) -> None:
    """Export a saved CHECKPOINT (file or checkpoint folder) through the same gate and checks."""
    from sod_train.export.export import export as export_result
    from sod_train.train.checkpoint import NAME, Checkpoint

    path = checkpoint / NAME if checkpoint.is_dir() else checkpoint
    from sod_train.guards import check_release_outputs, require_regular_file

    require_regular_file(path, "the checkpoint")  # a FIFO or a device would block torch.load
    check_release_outputs(
        output, metrics_out, reads=[("the checkpoint", path), ("the op allowlist", allowlist)]
    )
    result = Checkpoint.load(path).result()
    if not result.finished:
        click.echo(
            f"note: {path} is from an unfinished run (epoch {len(result.history)} of "
            f"{result.config.epochs}); exporting its best epoch so far",
            err=True,
        )
    export_result(
        result, output, metrics_out, min_val_iou=min_val_iou, allowlist_path=allowlist, smoke=smoke
    )
    click.echo(f"wrote {output}", err=True)


@click.command("quickstart")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/quickstart"),
    show_default=True,
)
@click.option("--quiet", is_flag=True)
@click.pass_context
def quickstart(ctx: click.Context, out_dir: Path, quiet: bool) -> None:
    """DEMO: synthetic DUTS-layout data -> train a few epochs -> export -> check (~1 min, CPU).

    The data are coloured blobs, not DUTS: the model is a smoke test of the pipeline.
    """
    from sod_train.cli.check import check
    from sod_train.data.synthetic import make_synthetic_duts

    data = out_dir / "synthetic-duts"
    if not (data / "DUTS-TR-Image").is_dir():
        make_synthetic_duts(data, n=160, size=(72, 96))
    output = out_dir / "quickstart_demo.onnx"
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # the demo always starts afresh
    # The train command's own defaults, with a small, fast recipe on top.
    ctx.invoke(
        train,
        duts_root=data,
        output=output,
        epochs=6,
        batch_size=16,
        lr=3e-3,
        crop_size=64,
        device="cpu",
        checkpoint_dir=out_dir / "checkpoints",
        smoke=True,
        quiet=quiet,
    )
    ctx.invoke(check, model=output)
    click.echo(f"demo model: {output} (synthetic data; not a release model)")
