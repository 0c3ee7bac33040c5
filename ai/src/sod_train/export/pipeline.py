"""Train -> gate -> export in one go: what ``sod-train train`` and the entry script run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sod_train import atomicio, progress
from sod_train.errors import UserInputError
from sod_train.train.checkpoint import NAME as CHECKPOINT_NAME
from sod_train.train.config import Runtime, TrainConfig


def train_and_export(
    cfg: TrainConfig,
    rt: Runtime,
    output: Path,
    duts_root: Path | None = None,
    data_cache: Path | None = None,
    metrics_out: Path | None = None,
    no_export: bool = False,
    smoke: bool = False,
) -> dict[str, Any] | None:
    """Train ``cfg`` on the data, gate and export; the metrics dict (None on ranks > 0).

    Every output is checked writable, and none a training file nor the checkpoint,
    before the first epoch. Under torchrun every rank trains; only rank 0 gates and
    writes. With ``no_export`` it trains and checkpoints only.
    """
    from sod_train.data.pairs import training_files
    from sod_train.guards import check_release_outputs, release_outputs
    from sod_train.train.distributed import session
    from sod_train.train.loop import train

    if (duts_root is None) == (data_cache is None):
        raise UserInputError("give exactly one of --duts-root and --data-cache")
    if not no_export:
        release_outputs(output, metrics_out)  # names files at all? before any folder is made
    checkpoint_dir = rt.checkpoint_dir or Path("checkpoints") / output.stem
    if not no_export:
        atomicio.ensure_writable_dir(output.parent, "ONNX file")
        if metrics_out:
            atomicio.ensure_writable_dir(metrics_out.parent, "metrics JSON")
    atomicio.ensure_writable_dir(checkpoint_dir, "checkpoints")
    if data_cache is not None:
        from sod_train.fetch.cache import open_cache

        duts_root = open_cache(data_cache, quiet=rt.quiet)
    assert duts_root is not None
    checkpoint = checkpoint_dir / CHECKPOINT_NAME
    if not no_export:
        check_release_outputs(
            output,
            metrics_out,
            reads=training_files(duts_root),
            writes=[("the checkpoint", checkpoint)],
        )
    with session(rt.device) as info:
        result = train(duts_root, cfg, replace(rt, checkpoint_dir=checkpoint_dir))
    if not info.is_main:
        return None
    if no_export:
        progress.note(
            f"checkpoint: {checkpoint} (best val IoU {result.best_val_iou:.4f}); export with: "
            f"sod-train export {checkpoint_dir} --output {output}"
        )
        return None
    from sod_train.export.export import export  # onnxsim: not for --no-export

    metrics = export(
        result, output, metrics_out, min_val_iou=cfg.min_val_iou, smoke=smoke, command=rt.command
    )
    progress.note(
        f"wrote {output} (best val IoU {result.best_val_iou:.4f} at epoch "
        f"{result.best_epoch}, {metrics['model']['params']:,} params)",
        rt.quiet,
    )
    return metrics
