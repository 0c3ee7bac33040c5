"""A tiny U-Net for salient-object detection that runs at any input size.

Upsampling is ConvTranspose (k2 s2) only: no Resize/Upsample/interpolate ever
enters the graph. Any H x W >= 1 works because pooling uses ``ceil_mode`` and each
upsampled map is cropped back to its skip connection's size, so the output is
always [N, 1, H, W]. For H, W multiples of 2**depth this is exactly the anchor's
network (same layers, same 112,841 parameters at the default widths).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


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

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """Inverse of :meth:`to_dict`; dicts written before a field existed get its default."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias), BatchNorm, ReLU; BN is folded at export."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1 convolution (no biases), BatchNorm, ReLU.

    ``cin * 9 + cin * cout`` weights instead of ``cin * cout * 9``; the BatchNorm
    follows the pointwise convolution, so export folds it there.
    """

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def conv_block(cin: int, cout: int, dilation: int = 1, separable: bool = False) -> nn.Sequential:
    """The 3x3 building block: plain ConvBNReLU, or its depthwise-separable form."""
    return (SeparableConvBNReLU if separable else ConvBNReLU)(cin, cout, dilation)


class ContextBlock(nn.Module):
    """Sum of parallel dilated 3x3 branches (one branch = a plain bottleneck)."""

    def __init__(self, channels: int, dilations: tuple[int, ...], separable: bool = False) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            conv_block(channels, channels, d, separable) for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


def crop_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Crop ``x`` (bottom/right) to the spatial size of ``like``.

    Exports as Shape + Slice; a no-op when the sizes already agree.
    """
    return x[:, :, : like.shape[2], : like.shape[3]]


class TinyUNet(nn.Module):
    """Encoder of ConvBNReLU pairs + max-pooling, ConvTranspose decoder, 1x1 sigmoid head."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        widths, sep = self.config.widths, self.config.separable
        self.encoders = nn.ModuleList()
        cin = 3
        for level, w in enumerate(widths):
            # The very first convolution sees the RGB input: always a plain one.
            first = conv_block(cin, w, separable=sep and level > 0)
            self.encoders.append(nn.Sequential(first, conv_block(w, w, separable=sep)))
            cin = w
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.bottleneck = ContextBlock(widths[-1], self.config.dilations, sep)
        # Decoder level i upsamples to the resolution of encoder i and outputs the
        # width of encoder i-1 (half of encoder 0 at the top), as in the anchor.
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        cin = widths[-1]
        for i in reversed(range(len(widths))):
            cout = widths[i - 1] if i > 0 else max(1, widths[0] // 2)
            self.ups.append(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False))
            self.decoders.append(conv_block(cout + widths[i], cout, separable=sep))
            cin = cout
        self.head = nn.Conv2d(cin, 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid saliency logits [N, 1, H, W]; the training loss uses these."""
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([crop_to(up(x), skip), skip], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Saliency map in [0, 1], same H x W as the input."""
        return torch.sigmoid(self.logits(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
