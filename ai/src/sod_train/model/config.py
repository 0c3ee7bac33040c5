"""The network's shape: a torch-free dataclass the recipe, the checkpoint and the CLI share."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The training losses (sod_train.model.losses): BCE + Dice (the anchor's), BCE + soft IoU,
# and F3Net's boundary-weighted structure loss.
LOSSES = ("bce+dice", "bce+iou", "structure")


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the network. ``widths`` gives one encoder level per entry.

    ``dilations`` > (1,) turns the bottleneck into a multi-dilation context block
    (parallel 3x3 convolutions summed), a cheap way to see more context.
    ``separable`` makes every 3x3 convolution but the first (on the RGB input)
    depthwise-separable (up to 9x fewer weights per layer), so a deeper or wider
    encoder fits the same parameter budget.
    """

    widths: tuple[int, ...] = (16, 32, 48)
    dilations: tuple[int, ...] = (1,)
    separable: bool = False
    arch: str = "anchor"  # "anchor" (TinyUNet) or "lite" (LiteUNet)
    blocks: tuple[int, ...] = ()  # lite: residual blocks per level (default 1 each)
    refine: int = 8  # lite: channels of the full-resolution head (0: ConvTranspose to 1)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """Inverse of :meth:`to_dict`; dicts written before a field existed get its default."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
