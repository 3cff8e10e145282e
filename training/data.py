"""Training data: random crops of photos, recoloured so that the style image decides the answer.

Every sample is a pure function of (seed, sample index): which photo, where the crops are, the
flips and the recolouring. Resuming at step n therefore continues with exactly the samples an
uninterrupted run would have seen, however many processes or workers load them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import snapshot_download
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from colorizer.color import lab_to_rgb, luminance, rgb_to_lab, rotate_chroma
from colorizer.hub import is_repo_id
from colorizer.images import ImageError, load_image, to_tensor

IMAGE_PATTERNS = ["*.jpg", "*.jpeg", "*.png", "*.JPG", "*.JPEG", "*.PNG"]


def resolve_data(spec: str) -> Path:
    """A local image folder, or a Hub dataset repo id whose image files are downloaded (and cached)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if not is_repo_id(spec):
        raise FileNotFoundError(f"no image folder at {spec!r} (nor is it a Hub dataset id 'owner/name')")
    return Path(snapshot_download(spec, repo_type="dataset", allow_patterns=IMAGE_PATTERNS))


def load_photos(paths: list[Path], long_side: int) -> list[Tensor]:
    """Decode and downscale every photo once: uint8 [3, h, w] tensors, long side at most ``long_side``.

    Unreadable files are skipped with a note rather than stopping a long run.
    """
    photos = []
    for path in paths:
        try:
            img = load_image(path, name=str(path))
        except ImageError as err:
            logging.getLogger("training").warning("skipping %s", err)
            continue
        img.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
        photos.append(to_tensor(img).mul(255).round().to(torch.uint8))
    if not photos:
        raise ValueError("no readable training images")
    return photos


class RecolorCrops(Dataset):
    """Samples {gray [1,c,c], target [3,c,c], style [3,s,s]} from in-memory photos.

    target: a random square crop (25-100% of the short side, resized to ``crop``), flipped at
    random, its Lab chroma rotated by a random angle and scaled with probability ``recolor_prob``;
    gray: its luminance; style: another random crop (70-100% of each side) of the same recoloured
    photo, flipped independently, at ``style_size`` squared. The gray input alone cannot tell the
    colours: the style can.
    """

    def __init__(
        self,
        photos: list[Tensor],
        length: int,
        *,
        crop: int = 128,
        style_size: int = 128,
        recolor_prob: float = 1.0,
        chroma_scale: tuple[float, float] = (0.7, 1.3),
        seed: int = 0,
    ):
        self.photos = photos
        self.length = length
        self.crop = crop
        self.style_size = style_size
        self.recolor_prob = recolor_prob
        self.chroma_scale = chroma_scale
        self.seed = seed
        self._order: tuple[int, Tensor] | None = None

    def __len__(self) -> int:
        return self.length

    def _photo_index(self, index: int) -> int:
        # A fresh permutation of the photos for every pass over them (an epoch).
        epoch, pos = divmod(index, len(self.photos))
        if self._order is None or self._order[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._order = (epoch, torch.randperm(len(self.photos), generator=gen))
        return int(self._order[1][pos])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        photo = self.photos[self._photo_index(index)].float().div(255)
        target = _random_crop(photo, self.crop, gen, min_fraction=0.25, square=True)
        # Most of the photo, as a style image is at inference; its aspect does not matter for colours.
        style = _random_crop(photo, self.style_size, gen, min_fraction=0.7, square=False)
        if _uniform(gen, 0, 1) < self.recolor_prob:
            degrees = _uniform(gen, -180, 180)
            scale = _uniform(gen, *self.chroma_scale)
            target, style = (lab_to_rgb(rotate_chroma(rgb_to_lab(x), degrees, scale)) for x in (target, style))
        return {"gray": luminance(target), "target": target, "style": style}


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _random_crop(img: Tensor, size: int, gen: torch.Generator, *, min_fraction: float, square: bool) -> Tensor:
    """A random crop of ``img`` [3, h, w], flipped at random, resized to ``size`` x ``size``.

    square: a square covering ``min_fraction``..1 of the short side; otherwise ``min_fraction``..1
    of each side independently (the aspect ratio is then not kept).
    """
    h, w = img.shape[-2:]
    if square:
        ch = cw = max(1, round(min(h, w) * _uniform(gen, min_fraction, 1.0)))
    else:
        ch, cw = (max(1, round(n * _uniform(gen, min_fraction, 1.0))) for n in (h, w))
    top = int(torch.randint(h - ch + 1, (), generator=gen))
    left = int(torch.randint(w - cw + 1, (), generator=gen))
    crop = img[:, top : top + ch, left : left + cw]
    if _uniform(gen, 0, 1) < 0.5:
        crop = crop.flip(-1)
    crop = F.interpolate(
        crop[None], size=(size, size), mode="bilinear", antialias=max(ch, cw) > size, align_corners=False
    )
    return crop[0].clamp(0, 1)
