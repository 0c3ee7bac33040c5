"""A tiny U-Net for salient-object detection that runs at any input size.

Upsampling is ConvTranspose (k2 s2) only: no Resize/Upsample/interpolate ever
enters the graph. Any H x W >= 1 works because pooling uses ``ceil_mode`` and each
upsampled map is cropped back to its skip connection's size, so the output is
always [N, 1, H, W]. For H, W multiples of 2**depth this is exactly the anchor's
network (same layers, same 112,841 parameters at the default widths).
"""

from __future__ import annotations

import torch
from torch import nn

from sod_train.model.config import UNetConfig


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


def sep_block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (+BN+ReLU), pointwise 1x1 (+BN+ReLU): MobileNet's separable unit.

    Both convolutions are followed by a BatchNorm inside one Sequential, so export
    folds both. A stride-2 depthwise conv with padding 1 gives ceil(H/2) x ceil(W/2),
    like the anchor's ceil-mode pooling, so any input size works.
    """
    pad = dilation
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, pad, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """``x + f(x)`` (one Add in the graph): lets deeper levels train fast from scratch."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SepContext(nn.Module):
    """Residual sum of parallel dilated separable branches: wide context for few weights."""

    def __init__(self, channels: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(sep_block(channels, channels, 1, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for branch in self.branches:
            out = out + branch(x)
        return out


class LiteUNet(nn.Module):
    """The efficient family: strided stem, separable levels, dilated context, ConvTranspose.

    Level 0 is a plain stride-2 3x3 stem (nothing else runs at full resolution but
    the head), each further level halves the size with a stride-2 separable block
    and adds ``blocks[i]`` residual separable blocks; the deepest level ends in a
    multi-dilation context block. The decoder upsamples with ConvTranspose k2 s2,
    crops to the skip, *adds* the skip (cheaper than concatenation at the same
    width) and refines with one separable block. The head is a ConvTranspose to
    full resolution, cropped to the input, then ReLU and a 3x3 convolution to one
    logit (``refine`` channels), or with ``refine`` 0 a ConvTranspose straight to
    the logit. Side heads (1x1 convolutions on each decoder level) exist for deep
    supervision during training only; ``forward`` never uses them, so they never
    reach the exported graph.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        blocks = config.blocks or (1,) * len(widths)
        if len(blocks) != len(widths):
            raise ValueError(f"blocks {blocks} needs one entry per width {widths}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.levels = nn.ModuleList()
        for i in range(1, len(widths)):
            layers = [sep_block(widths[i - 1], widths[i], stride=2)]
            layers += [Residual(sep_block(widths[i], widths[i])) for _ in range(blocks[i])]
            self.levels.append(nn.Sequential(*layers))
        self.context = SepContext(widths[-1], config.dilations)
        self.ups = nn.ModuleList()
        self.fuses = nn.ModuleList()
        self.sides = nn.ModuleList()
        for i in reversed(range(len(widths) - 1)):
            self.ups.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2, bias=False))
            self.fuses.append(sep_block(widths[i], widths[i]))
            self.sides.append(nn.Conv2d(widths[i], 1, 1))
        out = config.refine or 1
        self.head_up = nn.ConvTranspose2d(widths[0], out, 2, stride=2)
        self.head = nn.Conv2d(out, 1, 3, padding=1) if config.refine else None

    def _decode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = [self.stem(x)]
        for level in self.levels:
            skips.append(level(skips[-1]))
        y = self.context(skips[-1])
        decoded = []
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips[:-1]), strict=True):
            y = fuse(crop_to(up(y), skip) + skip)
            decoded.append(y)
        logit = crop_to(self.head_up(y), x)
        if self.head is not None:
            logit = self.head(torch.relu(logit))
        return logit, decoded

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid saliency logits [N, 1, H, W]."""
        return self._decode(x)[0]

    def side_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[main logits at H x W, then one coarser logit map per decoder level, deepest first].

        Training only (deep supervision); the loss upsamples the coarse maps itself.
        """
        main, decoded = self._decode(x)
        return [main, *(side(y) for side, y in zip(self.sides, decoded, strict=True))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Saliency map in [0, 1], same H x W as the input."""
        return torch.sigmoid(self.logits(x))


def build_model(config: UNetConfig | None = None) -> nn.Module:
    """The network a config describes: the one constructor every caller uses."""
    config = config or UNetConfig()
    if config.arch == "anchor":
        return TinyUNet(config)
    if config.arch == "lite":
        return LiteUNet(config)
    raise ValueError(f"unknown architecture '{config.arch}' (anchor, lite)")
