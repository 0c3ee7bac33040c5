"""The recipe (:class:`TrainConfig`), how to run it (:class:`Runtime`) and what it yields.

A recipe is everything that decides the weights; it is built once from a preset plus
overrides (:meth:`TrainConfig.from_preset`), and the trainer, the checkpoint, the CLI's
``--help`` and the metrics JSON all read it from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sod_train.errors import UserInputError
from sod_train.model.config import UNetConfig
from sod_train.train.presets import DEFAULT_PRESET, PRESETS

if TYPE_CHECKING:  # torch stays out of the import of a recipe (sod-train --help)
    import torch

    from sod_train.data.augment import TrainAugment

_NET = UNetConfig()  # the network fields' defaults live in UNetConfig


@dataclass(frozen=True)
class TrainConfig:
    """The recipe: everything that decides the weights (devices and paths excluded)."""

    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    crop_size: int = 256
    seed: int = 42
    val_fraction: float = 0.05
    min_val_iou: float = 0.5
    preset: str = "anchor"  # the field defaults below are the anchor's recipe
    widths: tuple[int, ...] = _NET.widths
    dilations: tuple[int, ...] = _NET.dilations
    separable: bool = _NET.separable
    loss: str = "bce+dice"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 = off
    colour_jitter: float = 0.0  # brightness/contrast/saturation factors in [1-s, 1+s]
    scale_jitter: float = 0.0  # square window of side crop * [1-s, 1+s], resized to the crop
    arch: str = _NET.arch  # network family: "anchor" (TinyUNet) or "lite" (LiteUNet)
    blocks: tuple[int, ...] = _NET.blocks  # lite: residual blocks per level
    refine: int = _NET.refine  # lite: full-resolution head channels
    deep_supervision: float = 0.0  # weight of the side outputs' mean loss (lite); 0 = off
    schedule: str = "cosine"  # "cosine" per epoch (the anchor's) or "warmup-cosine" per step
    warmup_epochs: float = 0.0  # warmup-cosine: linear warm-up length
    final_crop: int = 0  # progressive resizing: the last final_epochs train at this crop
    final_epochs: int = 0
    # Multi-scale training: outside the final epochs, each batch's crop is drawn from
    # these sizes (data.augment.CropMix); () = every batch at crop_size.
    mixed_crops: tuple[int, ...] = ()
    val_crop: int = 0  # validation (model selection) crop; 0 = crop_size, as the anchor
    skip_bad: bool = False
    convert_rgb_masks: bool = False
    # The scale normaliser's working size T, added to the graph at export
    # (sod_train.export.normaliser); 0 = none, the old graphs. Chosen on the fold (docs/scale.md).
    working_size: int = 224

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides: Any) -> TrainConfig:
        """The preset's recipe with ``overrides`` (None values ignored) on top."""
        if preset not in PRESETS:
            raise UserInputError(f"unknown preset '{preset}' (known: {', '.join(sorted(PRESETS))})")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(preset=preset, **values)

    @property
    def model_config(self) -> UNetConfig:
        """The network part of the recipe (the fields UNetConfig names)."""
        return UNetConfig(**{f.name: getattr(self, f.name) for f in fields(UNetConfig)})

    def crops_at(self, epoch: int) -> tuple[int, ...]:
        """Training crops of ``epoch`` (1-based): ``final_crop`` in the last ``final_epochs``,
        else ``mixed_crops`` (one drawn per batch) or ``crop_size``."""
        if self.final_crop and epoch > self.epochs - self.final_epochs:
            return (self.final_crop,)
        return self.mixed_crops or (self.crop_size,)

    @property
    def only_final_crop(self) -> bool:
        """True when the final phase covers every epoch (``final_epochs >= epochs``), so
        ``crop_size`` and ``mixed_crops`` are never used."""
        return bool(self.final_crop) and self.final_epochs >= self.epochs

    @property
    def max_crop(self) -> int:
        return max(self.crop_size, *self.mixed_crops, self.final_crop if self.final_epochs else 0)

    @property
    def eval_crop(self) -> int:
        """Validation (model selection) crop: ``val_crop``, else the training crop."""
        return self.val_crop or self.crop_size

    def augments(self) -> dict[int, TrainAugment]:
        """The training transform of every crop this recipe trains at, built once."""
        from sod_train.data.augment import TrainAugment  # torch: only when training

        crops = {c for epoch in range(1, self.epochs + 1) for c in self.crops_at(epoch)}
        return {
            crop: TrainAugment(crop, self.scale_jitter, self.colour_jitter)
            for crop in sorted(crops)
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; refuses fields this version does not know."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise UserInputError(f"recipe fields unknown to this sod-train: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def same_weights_recipe(self, other: TrainConfig) -> bool:
        """True if both recipes train the same weights (the gate, preset name and the
        export-time working size aside)."""
        ignore = {"min_val_iou": 0.0, "preset": "", "working_size": 0}  # export-time only
        return replace(self, **ignore) == replace(other, **ignore)


@dataclass
class Runtime:
    """How and where to run; none of it changes the result on the CPU."""

    device: str = "auto"
    workers: int | None = None  # decode processes; None = every core for big sets
    checkpoint_dir: Path | None = None
    resume: bool = False
    quiet: bool = False
    amp: bool | None = None  # bf16 autocast; None = on where bf16 is native (see cpu.py)
    threads: int | None = None  # torch intra-op threads; None = every core we may use
    cpu_isa: str = "native"  # "avx2" holds the CPU kernels to AVX2 + FMA (see cpu.py)
    stop_after_epoch: int | None = None  # end early (simulates an interruption; time slicing)
    command: str | None = None  # the command line, recorded as build.command in the metrics


@dataclass
class TrainResult:
    """What export needs: the recipe, the best weights and how they were obtained."""

    config: TrainConfig
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_iou: float
    best_val_iou_batch: float
    history: list[dict[str, Any]]
    data: dict[str, Any]
    environment: dict[str, Any]
    finished: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
