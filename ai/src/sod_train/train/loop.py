"""The trainer: one readable loop from a data folder to the best validation weights.

Adam (or AdamW), cosine annealing to 0 over the epochs, BCE + Dice, best epoch by
validation IoU at 0.5. With ``ema`` > 0 an exponential moving average of the weights
is kept and is what gets validated, selected and exported. Every epoch is
checkpointed with everything needed to carry on bit-exactly (weights, EMA,
optimizer, scheduler, history, best so far; the augmentation RNG is derived from
(seed, epoch, rank), so it needs no state), so ``resume=True`` after an
interruption ends with the same weights as a run that was never interrupted. On
the CPU two runs with the same seed and data give bit-identical weights.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler

from sod_train import progress
from sod_train.data.augment import CropMix, MixedSet, TrainAugment
from sod_train.data.decode import TRAIN_MARGIN, DecodedSet, decode_pairs, normalize
from sod_train.data.pairs import (
    content_digest,
    digest_aliases,
    pair_files,
    raise_if_problems,
    scan_pairs,
    split_scan,
)
from sod_train.errors import UserInputError
from sod_train.guards import MAX_CROP
from sod_train.machine import available_cores
from sod_train.model.losses import iou_at_half, saliency_loss
from sod_train.model.unet import build_model, count_parameters
from sod_train.provenance import environment
from sod_train.train import checkpoint
from sod_train.train.config import Runtime, TrainConfig, TrainResult
from sod_train.train.cpu import apply_isa_pin, bf16_features, cpu_environment
from sod_train.train.distributed import DistInfo, all_reduce_sum, average_buffers, barrier, current

VAL_BATCH = 32  # the anchor averages IoU per batch of 32; keep that fixed for comparability


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda: no CUDA device is available")
    return torch.device(name)


def fast_path(rt: Runtime, device: torch.device) -> tuple[bool, int]:
    """Pin the CPU kernels, set torch's threads and decide bf16 autocast; (amp, threads).

    ``rt.amp`` None means: on where the device computes bf16 natively (a CUDA GPU,
    or a CPU with AVX512-BF16 / AMX-BF16), off elsewhere. A ``cpu_isa`` pin trains in
    fp32: bf16 kernels differ between AVX512-BF16 and AMX, so a pin cannot hold them.
    """
    if rt.cpu_isa != "native":
        if device.type != "cpu":
            raise UserInputError(
                f"--cpu-isa {rt.cpu_isa} pins CPU kernels; this run is on {device}"
            )
        if rt.amp:
            raise UserInputError(
                f"--cpu-isa {rt.cpu_isa} trains in fp32 (bf16 kernels differ per CPU): drop --amp"
            )
        apply_isa_pin(rt.cpu_isa)
        rt = replace(rt, amp=False)
    threads = rt.threads or available_cores()
    torch.set_num_threads(threads)
    if rt.amp is not None:
        return bool(rt.amp), threads
    return (device.type == "cuda" or bool(bf16_features())), threads


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed every RNG and ask for deterministic kernels (warn-only on CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True)


def load_data(
    root: Path, cfg: TrainConfig, workers: int | None, quiet: bool
) -> tuple[DecodedSet, DecodedSet, dict]:
    """Scan, split and decode the data set; every bad file is reported at once.

    ``workers`` None decodes in one process per core when there are 1,000 pairs or
    more (starting processes costs seconds, which small sets never win back).
    """
    rgb = cfg.convert_rgb_masks
    scan = scan_pairs(root, allow_rgb=rgb)
    train_pairs, val_pairs = split_scan(scan, cfg.val_fraction, cfg.seed)
    if workers is None:
        workers = available_cores() if len(scan.pairs) >= 1000 else 0
    short = cfg.max_crop + TRAIN_MARGIN
    train_set, train_bad = decode_pairs(
        train_pairs, short, None, workers, "decode train", quiet, rgb
    )
    val_set, val_bad = decode_pairs(
        val_pairs, cfg.eval_crop, cfg.eval_crop, workers, "decode val", quiet, rgb
    )
    problems = scan.problems + train_bad + val_bad
    raise_if_problems(problems, root, cfg.skip_bad)
    if len(train_set) == 0:
        raise UserInputError(f"{root}: no usable training pairs")
    info = {
        "name": scan.image_dir.name.removesuffix("-Image")
        if scan.image_dir.name.endswith("-Image")
        else root.name,
        "digest": content_digest(root, pair_files(train_set.pairs + val_set.pairs)),
        "pairs": len(train_set) + len(val_set),
        "train": len(train_set),
        "val": len(val_set),
        "skipped_bad": len(problems),
        "skipped_files": problems,
    }
    return train_set, val_set, info


def check_levers(cfg: TrainConfig) -> None:
    """Refuse out-of-range quality levers with one clear line (the CLI checks them too)."""
    if not 0.0 <= cfg.ema < 1.0:
        raise UserInputError(f"ema {cfg.ema}: the EMA decay must be in [0, 1) (0 = off)")
    if not 0.0 <= cfg.colour_jitter <= 1.0:
        raise UserInputError(f"colour_jitter {cfg.colour_jitter}: must be in [0, 1]")
    if not 0.0 <= cfg.scale_jitter < 1.0:
        raise UserInputError(f"scale_jitter {cfg.scale_jitter}: must be in [0, 1)")
    if cfg.mixed_crops and (
        len(set(cfg.mixed_crops)) < 2 or not all(8 <= c <= MAX_CROP for c in cfg.mixed_crops)
    ):
        raise UserInputError(
            f"mixed_crops {','.join(map(str, cfg.mixed_crops))}: give at least two different "
            f"crops, each in [8, {MAX_CROP}]"
        )


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of ``model`` (weights and BatchNorm buffers), or None when ``decay`` is 0."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise UserInputError(f"unknown optimizer '{cfg.optimizer}' (adam, adamw)")


@torch.no_grad()
def validate(
    model: torch.nn.Module, data: DecodedSet, loss_kind: str, device: torch.device
) -> dict[str, float]:
    """Validation loss and IoU at 0.5 over the whole set, exactly once.

    Under DDP each rank scores every world-th image and writes its per-image IoU and
    loss into a full-length vector; summing those vectors over ranks gives every
    rank the complete per-image list, so both the per-image mean and the anchor's
    mean of per-batch (32) means are computed exactly as in a single process.
    """
    model.eval()
    info = current()
    n = len(data)
    ious = torch.zeros(n, dtype=torch.float64, device=device)
    losses = torch.zeros(n, dtype=torch.float64, device=device)
    mine = list(range(info.rank, n, info.world))
    for start in range(0, len(mine), VAL_BATCH):
        idx = mine[start : start + VAL_BATCH]
        images = torch.stack([data.images[i] for i in idx]).to(device)
        masks = torch.stack([data.masks[i] for i in idx]).to(device).float()
        logits = model.logits(normalize(images))
        where = torch.tensor(idx, device=device)
        losses[where] = saliency_loss(logits, masks, loss_kind, per_image=True).double()
        ious[where] = iou_at_half(torch.sigmoid(logits.float()), masks).double()
    all_reduce_sum(ious)
    all_reduce_sum(losses)
    batch_means = [ious[s : s + VAL_BATCH].mean().item() for s in range(0, n, VAL_BATCH)]
    return {
        "val_loss": losses.mean().item(),
        "val_iou": ious.mean().item(),
        "val_iou_batch": float(np.mean(batch_means)),
    }


def _nondeterministic_ops(caught: list[warnings.WarningMessage]) -> list[str]:
    found = {
        str(w.message).split(" does not have a deterministic")[0]
        for w in caught
        if "deterministic" in str(w.message)
    }
    return sorted(found)


class _Logits(torch.nn.Module):
    """The training pass as ``forward`` (so DDP can wrap it): logits, plus side outputs.

    With deep supervision it returns ``model.side_logits`` (a list, main first).
    """

    def __init__(self, model: torch.nn.Module, deep_supervision: bool) -> None:
        super().__init__()
        self.model = model
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.deep_supervision:
            return self.model.side_logits(x)
        return self.model.logits(x)


def training_loss(
    logits: torch.Tensor | list[torch.Tensor], masks: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """The recipe's loss; side outputs score against the mask area-pooled to their size.

    Pooling the target (soft labels) instead of upsampling the logits keeps deep
    supervision almost free on the CPU.
    """
    if not isinstance(logits, list):
        return saliency_loss(logits, masks, cfg.loss)
    main, *sides = logits
    side_losses = [
        saliency_loss(side, F.adaptive_avg_pool2d(masks, side.shape[2:]), cfg.loss)
        for side in sides
    ]
    return (
        saliency_loss(main, masks, cfg.loss)
        + cfg.deep_supervision * torch.stack(side_losses).mean()
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """(scheduler, steps per optimizer step?): the anchor's per-epoch cosine, or warm-up + cosine.

    ``warmup-cosine`` rises linearly from 0 over ``warmup_epochs`` and then follows a
    cosine to 0 at the last step, updated every step (short schedules need it).
    """
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.epochs, eta_min=0.0
        ), False
    if cfg.schedule != "warmup-cosine":
        raise UserInputError(f"unknown schedule '{cfg.schedule}' (cosine, warmup-cosine)")
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True


def epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Augmentation RNG for one (epoch, rank): resumable with no RNG state to carry."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7_919 + rank)


def epoch_order(n: int, seed: int, epoch: int, info: DistInfo) -> list[int]:
    """This rank's shuffled sample indices for ``epoch`` (DistributedSampler, seed + epoch)."""
    sampler = DistributedSampler(
        range(n), num_replicas=info.world, rank=info.rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return list(sampler)


class _Timed:
    """Iterate ``items`` and add up the time spent producing them (batch assembly)."""

    def __init__(self, items: Iterator) -> None:
        self.items, self.seconds = iter(items), 0.0

    def __iter__(self) -> _Timed:
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self.items)
        finally:
            self.seconds += time.perf_counter() - t0


def train_one_epoch(
    step_model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DecodedSet | MixedSet,
    augment: TrainAugment | CropMix,
    cfg: TrainConfig,
    rt: Runtime,
    epoch: int,
    device: torch.device,
    info: DistInfo,
    after_step: Callable[[], None] | None = None,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict[str, float]:
    """One pass over this rank's share of the training set; returns loss and speed.

    ``after_step`` runs after every optimizer step (the EMA update);
    ``step_scheduler`` steps after every optimizer step (per-step schedules).
    """
    step_model.train()
    per_rank_batch = cfg.batch_size // info.world
    order = epoch_order(len(data), cfg.seed, epoch, info)
    batches = augment.batches(
        data, order, per_rank_batch, epoch_generator(cfg.seed, epoch, info.rank)
    )
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(rt.amp))
    timed = _Timed(batches)
    t0 = time.perf_counter()
    compute = 0.0
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen, shown = 0, {"loss": float("nan")}

    def status(_: object) -> str:
        rate = seen * info.world / max(time.perf_counter() - t0, 1e-9)
        return f"loss {shown['loss']:.4f}  {rate:.0f} img/s"

    n_batches = math.ceil(len(order) / per_rank_batch)
    with progress.Bar(
        timed,
        length=n_batches,
        label=f"epoch {epoch}/{cfg.epochs}",
        quiet=rt.quiet or not info.is_main,
        show=status,
    ) as bar:
        for step, (images, masks) in enumerate(bar):
            t_step = time.perf_counter()
            x = normalize(images.to(device, non_blocking=True))
            x = x.contiguous(memory_format=torch.channels_last)
            with amp:
                logits = step_model(x)
            loss = training_loss(logits, masks.to(device, non_blocking=True), cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step_scheduler is not None:
                step_scheduler.step()
            if after_step is not None:
                after_step()
            loss_sum += loss.detach().double() * len(images)
            seen += len(images)
            if step % 10 == 0 or step == n_batches - 1:
                shown["loss"] = loss_sum.item() / seen
            compute += time.perf_counter() - t_step
    totals = all_reduce_sum(
        torch.stack([loss_sum, torch.tensor(float(seen), dtype=torch.float64, device=device)])
    )
    seconds = time.perf_counter() - t0
    return {
        "train_loss": (totals[0] / totals[1]).item(),
        "img_per_s": totals[1].item() / seconds,
        "train_seconds": seconds,
        # Where the epoch went: batch assembly (crop, flip, stack), forward + backward +
        # step, and what is left: the progress display and loop overhead.
        "assemble_s": timed.seconds,
        "compute_s": compute,
        "progress_s": seconds - timed.seconds - compute,
    }


def train(root: str | Path, cfg: TrainConfig, rt: Runtime | None = None) -> TrainResult:
    """Train on the pairs under ``root`` and return the best-validation-IoU weights.

    Runs as one process, or as one rank of a torchrun job (see distributed.py):
    ``cfg.batch_size`` is the global batch, split evenly across ranks.
    """
    started = time.time()  # the wall time export records: decoding and export included
    rt = rt or Runtime()
    root = Path(root)
    info = current()
    device = resolve_device(rt.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    if cfg.batch_size % info.world:
        raise UserInputError(
            f"--batch-size {cfg.batch_size} is not divisible by the "
            f"{info.world} ranks; the global batch is split evenly"
        )
    check_levers(cfg)
    amp, threads = fast_path(rt, device)
    seed_everything(cfg.seed, device)
    quiet = rt.quiet or not info.is_main
    resume_state = checkpoint_to_resume(rt, cfg)
    t_decode = time.perf_counter()
    train_set, val_set, data_info = load_data(root, cfg, rt.workers, quiet)
    data_info["decode_s"] = time.perf_counter() - t_decode
    if device.type == "cuda":  # keep the decoded set on the GPU: augmentation runs there
        train_set, val_set = train_set.to(device), val_set.to(device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_config)
    params = count_parameters(model)
    if info.enabled and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BN over the global batch
    model = model.to(device, memory_format=torch.channels_last)
    step_model: torch.nn.Module = _Logits(model, cfg.deep_supervision > 0)
    if info.enabled:
        # BN statistics stay per rank while training (buffers not broadcast) and are
        # averaged over ranks before each validation: see distributed.average_buffers.
        step_model = DistributedDataParallel(
            step_model,
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,
        )
    optimizer = make_optimizer(model, cfg)
    # The EMA tracks the unwrapped model; DDP keeps its weights identical on every rank.
    ema = make_ema(model, cfg.ema)
    eval_model = ema.module if ema is not None else model  # validated, selected, exported
    steps_per_epoch = math.ceil(
        math.ceil(len(train_set) / info.world) / (cfg.batch_size // info.world)
    )
    scheduler, per_step = make_scheduler(optimizer, cfg, steps_per_epoch)
    env = environment(str(device))
    env.update(
        {"world_size": info.world, "deterministic": device.type == "cpu", "nondeterministic": []}
    )
    env.update(cpu_environment(amp, threads, rt.cpu_isa))

    ckpt_path = rt.checkpoint_dir / checkpoint.NAME if rt.checkpoint_dir else None
    start_epoch, history, best = 1, [], checkpoint.Best()
    if resume_state is not None:
        start_epoch, history, best = _resume(
            resume_state, ckpt_path, data_info, env, model, optimizer, scheduler, ema, quiet
        )
    after_step = (lambda: ema.update_parameters(model)) if ema is not None else None

    last_epoch = cfg.epochs if rt.stop_after_epoch is None else min(cfg.epochs, rt.stop_after_epoch)
    rt = replace(rt, amp=amp)
    augments = cfg.augments()  # the training transform of each crop, built once
    scaled: dict[int, DecodedSet] = {}  # progressive/multi-scale: one rescaled copy per crop
    for epoch in range(start_epoch, last_epoch + 1):
        t0 = time.perf_counter()
        crops = cfg.crops_at(epoch)
        for crop in crops:
            if crop != cfg.max_crop and crop not in scaled:
                scaled[crop] = train_set.rescaled(crop + TRAIN_MARGIN)
        sets = [scaled.get(crop, train_set) for crop in crops]
        if len(crops) == 1:
            epoch_set, augment = sets[0], augments[crops[0]]
        else:
            epoch_set = MixedSet(tuple(sets))
            augment = CropMix(tuple(augments[c] for c in crops))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stats = train_one_epoch(
                step_model,
                optimizer,
                epoch_set,
                augment,
                cfg,
                rt,
                epoch,
                device,
                info,
                after_step,
                scheduler if per_step else None,
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
            env["nondeterministic"] = sorted(
                set(env["nondeterministic"]) | set(_nondeterministic_ops(caught))
            )
        lr = optimizer.param_groups[0]["lr"]
        if not per_step:
            scheduler.step()
        average_buffers(model)
        if ema is not None:
            average_buffers(eval_model)  # per-rank BN statistics feed the EMA buffers too
        t_val = time.perf_counter()
        metrics = validate(eval_model, val_set, cfg.loss, device)
        t_val = time.perf_counter() - t_val
        if metrics["val_iou"] > best.val_iou:
            best = checkpoint.Best(
                epoch,
                metrics["val_iou"],
                metrics["val_iou_batch"],
                {k: v.detach().cpu().clone() for k, v in eval_model.state_dict().items()},
            )
        history.append(
            {
                "epoch": epoch,
                "train_loss": stats["train_loss"],
                **metrics,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
                "img_per_s": stats["img_per_s"],
                "crop": max(crops),
                **({"crops": list(crops)} if len(crops) > 1 else {}),
                "timing": {
                    "assemble_s": stats["assemble_s"],
                    "compute_s": stats["compute_s"],
                    "progress_s": stats["progress_s"],
                    "validate_s": t_val,
                    "checkpoint_s": 0.0,
                },
            }
        )
        if not quiet:
            _print_epoch(history[-1], cfg.epochs, best.epoch == epoch)
        if ckpt_path and info.is_main:
            state = checkpoint.Checkpoint(
                config=cfg,
                epoch=epoch,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                history=history,
                best=best,
                data=data_info,
                environment=env,
                ema=ema.state_dict() if ema is not None else None,
            )
            t_ckpt = time.perf_counter()
            state.save(ckpt_path)
            # Known only after the write: the next checkpoint carries it.
            history[-1]["timing"]["checkpoint_s"] = time.perf_counter() - t_ckpt
        barrier()  # no rank runs ahead of the checkpoint

    if best.state is None:
        raise UserInputError(
            "no epoch was trained (is --epochs >= 1 and the checkpoint unfinished?)"
        )
    return TrainResult(
        config=cfg,
        best_state=copy.deepcopy(best.state),
        best_epoch=best.epoch,
        best_val_iou=best.val_iou,
        best_val_iou_batch=best.val_iou_batch,
        history=history,
        data=data_info,
        environment=env,
        finished=last_epoch == cfg.epochs,
        extra={"params": params, "started": started},
    )


def checkpoint_to_resume(rt: Runtime, cfg: TrainConfig) -> checkpoint.Checkpoint | None:
    """The checkpoint to continue from (None for a fresh run), checked before any work.

    A fresh run never overwrites an existing checkpoint, a resumed one must use the
    same recipe, and under torchrun every rank must see the same checkpoint folder.
    """
    if rt.checkpoint_dir is None:
        return None
    path = rt.checkpoint_dir / checkpoint.NAME
    exists = torch.tensor([int(path.exists())] * 2)
    all_reduce_sum(exists)
    if 0 < int(exists[0]) < current().world:
        raise UserInputError(
            f"{path}: only some ranks see this checkpoint; "
            "--checkpoint-dir must be shared by all nodes"
        )
    if not exists[0]:
        return None
    if not rt.resume:
        raise UserInputError(
            f"{path}: a checkpoint is already there; pass --resume to continue "
            "it, or choose another --checkpoint-dir"
        )
    state = checkpoint.Checkpoint.load(path)
    if not state.config.same_weights_recipe(cfg):
        raise UserInputError(
            f"{path}: checkpoint was made with a different recipe; "
            "pass the same options or another --checkpoint-dir"
        )
    return state


def _resume(
    state: checkpoint.Checkpoint,
    path: Path,
    data_info: dict[str, Any],
    env: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: AveragedModel | None,
    quiet: bool,
) -> tuple[int, list, checkpoint.Best]:
    """Load a checkpoint into the live objects; returns (next epoch, history, best).

    Refuses other data than the checkpoint was trained on, and keeps the earlier
    slices' record of non-deterministic kernels in ``env``.
    """
    if state.data["digest"] not in digest_aliases(data_info["digest"]):
        raise UserInputError(
            f"{path}: checkpoint was trained on other data (digest "
            f"{state.data['digest'][:12]}..., this folder "
            f"{data_info['digest'][:12]}...)"
        )
    previous = state.environment
    for key, flag in (
        ("amp", "--amp/--no-amp"),
        ("threads", "--threads"),
        ("cpu_isa", "--cpu-isa"),
    ):
        # Checkpoints from before the pin existed ran native kernels.
        was = previous.get(key, "native" if key == "cpu_isa" else env[key])
        if was != env[key]:
            raise UserInputError(
                f"{path}: checkpoint was trained with {key} {was}, this run has "
                f"{env[key]}; pass the same {flag} to continue it bit-exactly"
            )
    env["nondeterministic"] = sorted(
        set(env["nondeterministic"]) | set(previous["nondeterministic"])
    )
    env["deterministic"] = env["deterministic"] and previous["deterministic"]
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    if ema is not None:
        ema.load_state_dict(state.ema)
    if not quiet:
        progress.note(f"resumed from {path} after epoch {state.epoch}")
    return state.epoch + 1, state.history, state.best


def _print_epoch(h: dict[str, Any], epochs: int, is_best: bool) -> None:
    progress.note(
        f"epoch {h['epoch']}/{epochs}  train_loss {h['train_loss']:.4f}  "
        f"val_loss {h['val_loss']:.4f}  val_iou {h['val_iou']:.4f} "
        f"(batch {h['val_iou_batch']:.4f})  {h['img_per_s']:.0f} img/s  {h['seconds']:.1f}s"
        + ("  *best" if is_best else "")
    )
