"""``sod-train train``, ``export`` and ``quickstart``: the train -> export pipeline."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from sod_train import progress
from sod_train.check.allowlist import DEFAULT_ALLOWLIST
from sod_train.guards import MAX_BATCH_SIZE, MAX_CROP, MAX_EPOCHS
from sod_train.machine import ISA_PINS, pin_cpu_isa
from sod_train.model.config import LOSSES
from sod_train.stdio import echo, echo_block
from sod_train.train.config import Runtime, TrainConfig
from sod_train.train.presets import DEFAULT_PRESET, preset_names

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


_RECIPE = TrainConfig.from_preset(DEFAULT_PRESET)  # the defaults --help shows, from one place


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def recipe_option(name: str, help: str, shown: str | None = None, **kwargs: Any) -> Callable:
    """A --option for the TrainConfig field it names; its [default] read from TrainConfig.

    A preset may change the default: ``--preset NAME`` values win over it, explicit
    options over both (so the option itself defaults to None: "not given").
    """
    field = name.lstrip("-").split("/")[0].replace("-", "_")
    value = getattr(_RECIPE, field)
    # ``shown`` names what a 0 ("not used") means, e.g. "off"
    default = shown if shown is not None and not value else _shown(value)
    return click.option(name, help=f"{help} [default: {default}]", **kwargs)


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
            default=DEFAULT_PRESET,
            show_default=True,
            help=f"Named recipe; explicit options override it. `{DEFAULT_PRESET}` is the fast "
            "release recipe (under an hour on 2 Zen 4 cores, about 2 hours on 2 Zen 3 cores); "
            "`anchor` is the anchor's recipe (its network, 50 epochs at crop 256: 5-6 hours). "
            "See docs/training.md.",
        ),
        recipe_option("--epochs", "Epochs.", type=click.IntRange(1, MAX_EPOCHS)),
        recipe_option("--batch-size", "Batch size.", type=click.IntRange(1, MAX_BATCH_SIZE)),
        recipe_option("--lr", "Learning rate.", type=click.FloatRange(min=0, min_open=True)),
        recipe_option("--crop-size", "Training crop.", type=click.IntRange(8, MAX_CROP)),
        recipe_option(
            "--seed", "Seed for init, split and augmentation.", type=click.IntRange(0, 2**32 - 1)
        ),
        recipe_option(
            "--val-fraction",
            "Validation share; at least 64 pairs.",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
        ),
        recipe_option(
            "--min-val-iou",
            "Ship gate: refuse to export below this best validation IoU.",
            type=click.FloatRange(0, 1),
            default=_RECIPE.min_val_iou,
        ),
        recipe_option("--widths", "Encoder widths.", callback=_int_tuple),
        recipe_option("--dilations", "Bottleneck dilations.", callback=_int_tuple),
        recipe_option(
            "--separable/--no-separable",
            "Depthwise-separable 3x3 convolutions (all but the first).",
            default=None,
        ),
        recipe_option("--loss", "Loss.", type=click.Choice(list(LOSSES))),
        recipe_option(
            "--arch",
            "Network family: the anchor TinyUNet or the efficient LiteUNet.",
            type=click.Choice(["anchor", "lite"]),
        ),
        recipe_option("--blocks", "lite: residual blocks per level.", callback=_int_tuple),
        recipe_option(
            "--refine",
            "lite: channels of the full-resolution head; 0 = ConvTranspose straight to the logit.",
            type=click.IntRange(0, 64),
        ),
        recipe_option(
            "--deep-supervision",
            "lite: weight of the side outputs' loss; 0 = off.",
            type=click.FloatRange(0, 10),
        ),
        recipe_option("--optimizer", "Optimizer.", type=click.Choice(["adam", "adamw"])),
        recipe_option("--weight-decay", "Weight decay.", type=click.FloatRange(0, 1)),
        recipe_option(
            "--schedule",
            "LR schedule: cosine per epoch, or linear warm-up + cosine per step.",
            type=click.Choice(["cosine", "warmup-cosine"]),
        ),
        recipe_option(
            "--warmup-epochs",
            "warmup-cosine: warm-up length in epochs.",
            type=click.FloatRange(0, 1000),
        ),
        recipe_option(
            "--final-crop",
            "Progressive resizing: crop of the last --final-epochs.",
            shown="off",
            type=click.IntRange(8, MAX_CROP),
        ),
        recipe_option("--final-epochs", "See --final-crop.", type=click.IntRange(0, MAX_EPOCHS)),
        recipe_option(
            "--mixed-crops",
            "Multi-scale training: each batch's crop is drawn from these sizes, e.g. "
            "128,160,192 (outside the --final-epochs); each cut from the set stored at that "
            "crop + 32, so a smaller crop shows objects smaller.",
            callback=_int_tuple,
        ),
        recipe_option(
            "--val-crop",
            "Validation (model selection) crop.",
            shown="--crop-size",
            type=click.IntRange(8, MAX_CROP),
        ),
        recipe_option(
            "--ema",
            "EMA decay of the weights, e.g. 0.999; validated and exported; 0 = off.",
            type=click.FloatRange(0, 1, max_open=True),
        ),
        recipe_option(
            "--colour-jitter",
            "Brightness/contrast/saturation factors in [1-S, 1+S]; 0 = off.",
            type=click.FloatRange(0, 1),
        ),
        recipe_option(
            "--scale-jitter",
            "Random window of side crop*[1-S, 1+S] resized to the crop; 0 = off.",
            type=click.FloatRange(0, 1, max_open=True),
        ),
        recipe_option(
            "--working-size",
            "The exported graph normalises its own scale: it area-averages any frame by an "
            "integer k so its short side lands near T, runs there and maps back to H x W; "
            "0 = no normaliser (the old graphs).",
            type=click.IntRange(0, 4096),
        ),
        click.option(
            "--metrics-out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Metrics JSON [default: <output stem>.metrics.json next to the ONNX].",
        ),
        click.option(
            "--device",
            type=DEVICES,
            default="auto",
            show_default=True,
            help="Where to train: auto picks CUDA when a GPU is there, else the CPU.",
        ),
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
        recipe_option("--skip-bad", "Skip (and count) bad pairs instead of failing.", is_flag=True),
        recipe_option(
            "--convert-rgb-masks/--no-convert-rgb-masks",
            "Accept RGB masks as luminance (DUTS-TR has 3; the anchor kept them); "
            "--no-convert-rgb-masks refuses them as bad pairs.",
            default=None,
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
            "--cpu-isa",
            type=click.Choice(list(ISA_PINS)),
            default="native",
            show_default=True,
            help="CPU kernels: native lets oneDNN and ATen pick the CPU's best (AVX-512, "
            "AMX); avx2 holds oneDNN and ATen to AVX2 code, MKL to its COMPATIBLE branch, and "
            "trains in fp32, "
            "for the same bytes on other AVX2 CPUs (recorded; see docs/training.md).",
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


RUNTIME = ("device", "workers", "checkpoint_dir", "resume", "quiet", "amp", "threads", "cpu_isa")
PIPELINE = ("output", "duts_root", "data_cache", "metrics_out", "no_export", "smoke")
FLAGS = ("skip_bad",)  # click gives False when absent: not an override


def run_train(options: dict[str, Any]) -> dict | None:
    """Build the recipe and the runtime once from the options, then train -> export."""
    # Before torch is imported: each kernel library reads its pin once, at its first op.
    pin_cpu_isa(options["cpu_isa"])
    from sod_train.export.pipeline import train_and_export
    from sod_train.provenance import invocation

    rt = Runtime(**{k: options.pop(k) for k in RUNTIME}, command=invocation())
    run = {k: options.pop(k) for k in PIPELINE}
    preset = options.pop("preset")
    recipe = {k: (v or None) if k in FLAGS else v for k, v in options.items()}
    cfg = TrainConfig.from_preset(preset, **recipe)
    if cfg.only_final_crop:  # e.g. a short run of the release recipe: say what it trains at
        progress.note(
            f"--epochs {cfg.epochs} <= --final-epochs {cfg.final_epochs}: every epoch trains "
            f"at the final crop {cfg.final_crop}; --crop-size and --mixed-crops are not used",
            quiet=rt.quiet,
        )
    return train_and_export(cfg, rt, **run)


JSON_HELP = (
    "Print a JSON summary on stdout: the ONNX, metrics and golden paths, the ONNX "
    "SHA-256, parameters, best epoch and validation IoU, the gate."
)


def release_summary(output: Path, metrics_out: Path | None, metrics: dict) -> dict:
    """What ``--json`` prints after an export: where the files are and what they hold."""
    return {
        "onnx": str(output),
        "metrics": str(metrics_out or output.with_suffix(".metrics.json")),
        "golden": str(output.with_suffix(".golden.json")),
        "sha256": metrics["onnx"]["sha256"],
        "params": metrics["model"]["params"],
        "best_epoch": metrics["training"]["best_epoch"],
        "best_val_iou": metrics["training"]["best_val_iou"],
        "gate": metrics["gate"],
    }


@click.command("train")
@train_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " Not with --no-export.")
def train(as_json: bool = False, **options: Any) -> None:
    """Train the tiny U-Net on DUTS-TR and export a verified ONNX file."""
    if as_json and options["no_export"]:
        raise click.UsageError("--json summarises the exported model: drop --no-export")
    output, metrics_out = options["output"], options["metrics_out"]
    metrics = run_train(options)
    if as_json and metrics is not None:  # None on torchrun ranks > 0
        echo_block(json.dumps(release_summary(output, metrics_out, metrics), indent=2))


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=True, path_type=Path))
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write; <stem>.golden.json goes beside it.",
)
@click.option(
    "--metrics-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Metrics JSON [default: <output stem>.metrics.json next to the ONNX].",
)
@click.option(
    "--min-val-iou",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Ship gate: the best validation IoU must reach this, else nothing is written.",
)
@click.option(
    "--allowlist",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_ALLOWLIST,
    show_default="op_allowlist.txt in the checkout",
    help="Op allowlist every node of the graph must be on.",
)
@click.option("--smoke", is_flag=True, help="Label the model a smoke/demo model in its metrics.")
@click.option(
    "--working-size",
    type=click.IntRange(0, 4096),
    help="Scale normaliser's working size T; 0 = none [default: the checkpoint's recipe].",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--quiet", is_flag=True, help="No notes on stderr (errors still show).")
def export(
    checkpoint: Path,
    output: Path,
    metrics_out: Path | None,
    min_val_iou: float,
    allowlist: Path,
    smoke: bool,
    working_size: int | None,
    as_json: bool,
    quiet: bool,
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
    if working_size is not None:
        result = replace(result, config=replace(result.config, working_size=working_size))
    if not result.finished:
        progress.note(
            f"note: {path} is from an unfinished run (epoch {len(result.history)} of "
            f"{result.config.epochs}); exporting its best epoch so far",
            quiet,
        )
    metrics = export_result(
        result, output, metrics_out, min_val_iou=min_val_iou, allowlist_path=allowlist, smoke=smoke
    )
    if as_json:
        echo_block(json.dumps(release_summary(output, metrics_out, metrics), indent=2))
    progress.note(f"wrote {output}", quiet)


@click.command("quickstart")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/quickstart"),
    show_default=True,
    help="Folder for the synthetic data, checkpoints and the demo model.",
)
@click.option(
    "--quiet",
    is_flag=True,
    help="No progress bars or per-epoch lines (the check result still shows).",
)
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
    # The anchor's network with a small, fast recipe on top.
    ctx.invoke(
        train,
        duts_root=data,
        output=output,
        preset="anchor",
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
    echo(f"demo model: {output} (synthetic data; not a release model)")
