"""The network of the style colorizer: a style encoder, AdaIN blocks and a small UNet.

Shapes: gray [B, 1, H, W] in [0, 1] (H, W multiples of 16), style image [B, 3, h, w] in [0, 1]
of any size. The style image is reduced to a ``style_dim`` vector; every AdaIN block maps that
vector to a per-channel scale and shift of an instance-normalized feature map. The style's tone
curve (its mean colour at each gray level, :func:`measure_tone`) is the output's starting point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .color import luminance

ENCODER_WIDTHS = (16, 32, 64, 128, 128)  # full, 1/2, 1/4, 1/8, 1/16 resolution
DECODER_WIDTHS = (64, 32, 16, 16)  # 1/8, 1/4, 1/2, full resolution
STYLE_WIDTHS = (64, 128, 256, 512)


class StyleEncoder(nn.Module):
    """Five 3x3 stride-2 convolutions, a global average and a standardization: RGB -> [B, style_dim]."""

    def __init__(self, style_dim: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in STYLE_WIDTHS:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        # No ReLU after the last convolution: a rectified style vector can die at exactly zero,
        # the collapse the seed project ran into.
        layers.append(nn.Conv2d(channels, style_dim, 3, stride=2, padding=1))
        self.net = nn.Sequential(*layers)
        # Nothing inside normalizes this stack, so under Adam its output grew by orders of magnitude
        # and became nearly the same vector for every image (the style ignored). Standardizing
        # each component over the batch keeps it at unit scale and makes it differ between images.
        self.norm = nn.BatchNorm1d(style_dim, affine=False)

    def forward(self, rgb: Tensor) -> Tensor:
        return self.norm(self.net(rgb * 2 - 1).mean(dim=(2, 3)))


def _hats(gray: Tensor, knots: int) -> Tensor:
    """Linear-interpolation weights of gray [B, 1, H, W] on ``knots`` levels over [0, 1]: [B, K, H, W], summing to 1."""
    levels = torch.linspace(0, 1, knots, device=gray.device, dtype=gray.dtype)
    return (1 - (gray.clamp(0, 1) - levels[:, None, None]).abs() * (knots - 1)).clamp(min=0)


def measure_tone(rgb: Tensor, knots: int = 8, prior: float = 0.01) -> Tensor:
    """The style's tone curve: its mean RGB offset from gray at ``knots`` gray levels, [B, 3, H, W] -> [B, 3, K].

    Every pixel counts towards the two levels around its gray value (linear weights). A level with
    few pixels leans towards the image's overall mean offset, with the weight of ``prior`` times
    the pixel count, so a style with no shadows still gives its shadows a plausible colour.
    """
    gray = luminance(rgb)
    offset = rgb - gray
    hats = _hats(gray, knots)
    sums = torch.einsum("bkhw,bchw->bck", hats, offset)
    counts = hats.sum(dim=(2, 3))[:, None]  # [B, 1, K]
    pseudo = prior * gray.shape[-2] * gray.shape[-1]  # pixels of one image
    return (sums + pseudo * offset.mean(dim=(2, 3))[:, :, None]) / (counts + pseudo)


def apply_tone(gray: Tensor, tone: Tensor) -> Tensor:
    """Each pixel's offset on the tone curve ``tone`` [B, 3, K], interpolated at its gray level: [B, 3, H, W]."""
    return torch.einsum("bck,bkhw->bchw", tone, _hats(gray, tone.shape[-1]))


class AdaIN(nn.Module):
    """Instance-normalize (no affine), then scale and shift each channel from the style vector."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.scale = nn.Linear(style_dim, channels)
        self.shift = nn.Linear(style_dim, channels)
        with torch.no_grad():  # start as a plain instance norm: scale ~1, shift ~0
            self.scale.weight.mul_(0.1)
            self.scale.bias.fill_(1.0)
            self.shift.weight.mul_(0.1)
            self.shift.bias.zero_()

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        x = F.instance_norm(x)
        return x * self.scale(style)[:, :, None, None] + self.shift(style)[:, :, None, None]


def conv_units(channels_in: int, width: int, count: int, dropout: float) -> nn.Sequential:
    """``count`` units of 3x3 conv -> ReLU -> BatchNorm -> Dropout."""
    layers: list[nn.Module] = []
    for i in range(count):
        layers += [
            nn.Conv2d(channels_in if i == 0 else width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(width),
            nn.Dropout(dropout),
        ]
    return nn.Sequential(*layers)


class AdaINUNet(nn.Module):
    """Gray image + style vector + style tone curve -> RGB.

    The encoder's stages (two conv units each, max-pool between) end in AdaIN; ``bottom_stages``
    more 128-channel stages run at 1/16. Each decoder step is a 4x4 stride-2 transposed conv,
    AdaIN, concatenation with the skip, a 1x1 fusion conv and three conv units. The final 1x1
    conv predicts a correction (zero at start) to the style's tone curve (:func:`measure_tone`),
    so training begins at "each gray level takes the style's mean colour at that level" instead of
    at noise, and the network learns what that lookup misses: which colour goes where.
    """

    def __init__(self, style_dim: int = 32, bottom_stages: int = 3, dropout: float = 0.1):
        super().__init__()
        self.encoder = nn.ModuleList()
        self.encoder_adain = nn.ModuleList()
        channels = 1
        for width in ENCODER_WIDTHS + (ENCODER_WIDTHS[-1],) * bottom_stages:
            self.encoder.append(conv_units(channels, width, 2, dropout))
            self.encoder_adain.append(AdaIN(width, style_dim))
            channels = width
        self.up = nn.ModuleList()
        self.up_adain = nn.ModuleList()
        self.fuse = nn.ModuleList()
        self.decoder = nn.ModuleList()
        skips = ENCODER_WIDTHS[-2::-1]  # 128 (1/8), 64, 32, 16 (full)
        for width, skip in zip(DECODER_WIDTHS, skips):
            self.up.append(nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1))
            self.up_adain.append(AdaIN(width, style_dim))
            self.fuse.append(nn.Conv2d(width + skip, width, 1))
            self.decoder.append(conv_units(width, width, 3, dropout))
            channels = width
        self.head = nn.Conv2d(channels, 3, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, gray: Tensor, style: Tensor, tone: Tensor) -> Tensor:
        """gray [B, 1, H, W], style vector [B, style_dim], tone knots [B, 3, K] -> RGB [B, 3, H, W] (not clamped)."""
        skips = []
        x = gray * 2 - 1
        levels = len(ENCODER_WIDTHS)
        for i, (stage, adain) in enumerate(zip(self.encoder, self.encoder_adain)):
            if 0 < i < levels:
                x = F.max_pool2d(x, 2)
            x = adain(stage(x), style)
            if i < levels - 1:
                skips.append(x)
        for up, adain, fuse, stage, skip in zip(self.up, self.up_adain, self.fuse, self.decoder, reversed(skips)):
            x = adain(up(x), style)
            x = stage(fuse(torch.cat([x, skip], dim=1)))
        return gray + apply_tone(gray, tone) + self.head(x)
