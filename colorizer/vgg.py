"""The VGG16/VGG19 convolutional base, read from safetensors, giving relu1_1 .. relu5_1.

The network is rebuilt from the weight keys alone (torchvision's ``features.N`` layout): within a
block consecutive convolutions sit two indices apart (conv, ReLU), across a max-pool three. So
VGG16 and VGG19 are told apart, and relu{k}_1 found, from the structure, not from fixed indices.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from .hub import WeightsNotFoundError, resolve_weights

DEFAULT_VGG = "timm/vgg19.tv_in1k"
VGG_ENV = "COLORIZER_VGG"
_HINT = (
    f"Get VGG19 weights in safetensors (model.safetensors of https://huggingface.co/{DEFAULT_VGG}, or any "
    "VGG16/VGG19 'features.N' safetensors file) and pass the file: --vgg PATH on the command line, "
    f"NeuralColorTransfer.from_pretrained(PATH) in Python, or {VGG_ENV}=PATH in the environment (the app reads it)."
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_KEY = re.compile(r"^features\.(\d+)\.(weight|bias)$")


class VGGFeatures(nn.Module):
    """VGG's convolutional blocks up to relu5_1; ``forward`` returns the relu{k}_1 maps asked for."""

    def __init__(self, blocks: list[list[nn.Conv2d]], name: str = "vgg"):
        super().__init__()
        # Channels-last is oneDNN's and cuDNN's native layout: 15-30% faster on either.
        self.blocks = nn.ModuleList(nn.ModuleList(b) for b in blocks).to(memory_format=torch.channels_last)
        self.name = name
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, vgg: str | os.PathLike | None = None) -> "VGGFeatures":
        """Load from a local safetensors file or Hub repo; None: ``$COLORIZER_VGG``, else the Hub's VGG19."""
        spec = vgg or os.environ.get(VGG_ENV) or DEFAULT_VGG
        return cls.from_file(resolve_weights(spec, hint=_HINT))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "VGGFeatures":
        """Build from a safetensors file of VGG 'features.N' weights (VGG16 or VGG19)."""
        try:
            with safe_open(os.fspath(path), framework="pt") as f:
                blocks, convs = _read_blocks(f, Path(path).name)
        except SafetensorError as err:  # garbage or truncated
            raise WeightsNotFoundError(f"{path} is not a readable safetensors file ({err}). {_HINT}") from err
        return cls(blocks, name=f"vgg{convs + 3}")

    def forward(self, rgb: Tensor, levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> dict[int, Tensor]:
        """rgb [B, 3, H, W] in [0, 1] -> {k: relu{k}_1 [B, C_k, H / 2^(k-1), W / 2^(k-1)]}."""
        x = ((rgb.to(self.mean.dtype) - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        out: dict[int, Tensor] = {}
        last = max(levels)
        for k, block in enumerate(self.blocks, start=1):
            if k > 1:
                x = F.max_pool2d(x, 2)
            for j, conv in enumerate(block):
                x = conv(x).relu_()  # in place: a fresh map per layer cost a tenth of the pass
                if j == 0 and k in levels:
                    out[k] = x
                    if k == last:  # stop at relu{last}_1: the rest of its block is never used
                        return out
        return out


def _read_blocks(f, name: str) -> tuple[list[list[nn.Conv2d]], int]:
    """The convolutions up to relu5_1, grouped by block, and how many the file holds."""
    convs = sorted({int(m.group(1)) for k in f.keys() if (m := _KEY.match(k))})
    blocks: list[list[int]] = []
    for i, idx in enumerate(convs):
        if i == 0 or idx - convs[i - 1] == 3:  # a gap of three is a max-pool: a new block
            blocks.append([])
        blocks[-1].append(idx)
    if len(blocks) < 5 or f.get_slice(f"features.{convs[0]}.weight").get_shape()[1] != 3:
        raise ValueError(f"{name} does not look like VGG 'features' weights ({len(convs)} convolutions)")
    # relu5_1 is the deepest layer used: later convolutions are never loaded.
    return [[_conv(f, idx) for idx in block] for block in blocks[:4] + [blocks[4][:1]]], len(convs)


def _conv(f, idx: int) -> nn.Conv2d:
    weight = f.get_tensor(f"features.{idx}.weight").float()
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=weight.shape[2] // 2)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(f.get_tensor(f"features.{idx}.bias").float())
    return conv
