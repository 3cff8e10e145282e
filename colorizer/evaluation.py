"""The evaluation protocol: photos, the fixed split, cases and scores.

One protocol for every benchmark (``benchmarks/``) and for training's validation (``training/``),
so that a training run's validation scores and the benchmarks' numbers mean the same thing.

For a colour photo X:
- recolor:      source = X with its Lab chroma rotated (60-180 degrees) and scaled; reference = a
                mirrored 75-90% crop of X; truth = X.
- colorize:     source = gray(X); same reference; truth = X.
- restyle:      source = gray(X); reference = a mirrored crop of a chroma-rotated X; truth = that rotated X.
- regrade-self: source = X; reference = a mirrored 75-90% crop of g(X); truth = g(X), where g is a
                random global grade that changes tone as well as colour (:func:`random_grade`).
- multi-reference: source = X with its chroma rotated; references = the left 55% and the right 55%
                of X, each mirrored; truth = X. ``multi-reference-left`` is the same with the left
                part alone: objects missing from it must take their colours from the other part.
For two different photos a, b of one scene (``pairs.csv``, both directions):
- regrade:      source = a; reference = g(b); truth = g(a), the same grade g for both photos. The
                references are other photos, so this measures colour transfer, not recovering a
                crop; where a and b were taken in different light, no method can reach the truth.
- colorize-pair: source = gray(a); reference = b; truth = a: colorizing a gray photo from another
                photo of the scene, as a user would.
Outputs are scored against the truth by mean CIEDE2000 (lower is better) and PSNR.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from .color import delta_e_2000, lab_to_rgb, luminance, rgb_to_lab, rotate_chroma
from .images import load_image, to_pil, to_tensor
from .paths import EXAMPLES, SHARED_PAIRS, SHARED_PHOTOS

CASES = ("recolor", "colorize", "restyle")
PHOTO_CASES = (*CASES, "regrade-self", "multi-reference", "multi-reference-left")
PAIR_CASES = ("regrade", "colorize-pair")


def validation_split(paths: list[Path], root: Path, every: int = 8) -> tuple[list[Path], list[Path]]:
    """Split into (train, validation) by a hash of the relative path: fixed forever, ~1/every held out."""

    def held_out(p: Path) -> bool:
        return int(hashlib.sha1(p.relative_to(root).as_posix().encode()).hexdigest(), 16) % every == 0

    paths = sorted(paths)
    return [p for p in paths if not held_out(p)], [p for p in paths if held_out(p)]


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def benchmark_photos(limit: int | None = None) -> list[Path]:
    """Held-out photos of ../shared (when present), else the colour photos among the examples."""
    if SHARED_PHOTOS.is_dir():
        _, val = validation_split(image_files(SHARED_PHOTOS), SHARED_PHOTOS)
        photos = [p for p in val if not _is_grayish(p)]
    else:
        photos = [p for p in image_files(EXAMPLES) if p.stem not in _PAINTINGS]
    return photos[:limit] if limit else photos


_PAINTINGS = {"starry_night", "van_gogh_bridge", "night_cafe", "mona_lisa"}


def _is_grayish(path: Path) -> bool:
    lab = rgb_to_lab(to_tensor(Image.open(path).convert("RGB")))
    return bool(lab[1:].norm(dim=0).mean() < 5)


@dataclass
class Case:
    name: str
    kind: str
    source: Image.Image
    references: list[Image.Image]
    truth: Image.Image

    @property
    def reference(self) -> Image.Image:
        """The first (for most cases the only) reference."""
        return self.references[0]


def _gray(rgb: torch.Tensor) -> Image.Image:
    """The gray version of an RGB image [3, H, W], as an RGB image (its lightness, no chroma)."""
    return to_pil(luminance(rgb).expand(3, -1, -1))


def _photo(path: Path, long_side: int) -> Image.Image:
    photo = load_image(path)
    photo.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return photo


def make_case(path: Path, kind: str, seed: int = 0, long_side: int = 512) -> Case:
    """Build one case of the protocol from a photo, deterministically from (path, kind, seed)."""
    # The two multi-reference kinds share their draws, so that they differ only in the references.
    rng = random.Random(f"{path.name}/{kind.removesuffix('-left')}/{seed}")
    photo = _photo(path, long_side)
    x = to_tensor(photo)
    lab = rgb_to_lab(x)
    rotated = to_pil(lab_to_rgb(rotate_chroma(lab, rng.choice((-1, 1)) * rng.uniform(60, 180), rng.uniform(0.6, 1.3))))
    gray = _gray(x)
    if kind == "recolor":
        source, ref_from, truth = rotated, photo, photo
    elif kind == "colorize":
        source, ref_from, truth = gray, photo, photo
    elif kind == "restyle":
        twin = to_pil(lab_to_rgb(rotate_chroma(lab, rng.choice((-1, 1)) * rng.uniform(60, 180), rng.uniform(0.8, 1.3))))
        source, ref_from, truth = gray, twin, twin
    elif kind == "regrade-self":
        graded = random_grade(rng)(photo)
        source, ref_from, truth = photo, graded, graded
    elif kind in ("multi-reference", "multi-reference-left"):
        w, h = photo.size
        part = round(0.55 * w)
        left = ImageOps.mirror(photo.crop((0, 0, part, h)))
        right = ImageOps.mirror(photo.crop((w - part, 0, w, h)))
        refs = [left, right] if kind == "multi-reference" else [left]
        return Case(path.stem, kind, rotated, refs, photo)
    else:
        raise ValueError(f"unknown case {kind!r}; choose from {PHOTO_CASES}")
    return Case(path.stem, kind, source, [_mirrored_crop(ref_from, rng)], truth)


def pair_groups(path: Path = SHARED_PAIRS) -> dict[tuple[Path, Path], str]:
    """The photo pairs (a, b) of ``pairs.csv``, each in both directions, in file order -> their group."""
    groups = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            a, b = path.parent / row["a"], path.parent / row["b"]
            groups[a, b] = groups[b, a] = row["group"]
    return groups


def photo_pairs(path: Path = SHARED_PAIRS) -> list[tuple[Path, Path]]:
    """The (a, b) photo pairs of ``pairs.csv``, each in both directions."""
    return list(pair_groups(path))


def make_pair_case(a: Path, b: Path, kind: str = "regrade", seed: int = 0, long_side: int = 512) -> Case:
    """A case (``PAIR_CASES``) of two photos of one scene; regrade's grade depends on the unordered pair and seed."""
    source, other = _photo(a, long_side), _photo(b, long_side)
    name = f"{a.parent.name}/{a.stem}->{b.parent.name}/{b.stem}"  # several photos of a landmark share a stem
    if kind == "colorize-pair":
        return Case(name, kind, _gray(to_tensor(source)), [other], source)
    if kind != "regrade":
        raise ValueError(f"unknown case {kind!r}; choose from {PAIR_CASES}")
    rng = random.Random("/".join(sorted((a.name, b.name))) + f"/regrade/{seed}")
    grade = random_grade(rng)
    return Case(name, "regrade", source, [grade(other)], grade(source))


def random_grade(rng: random.Random):
    """A random global colour grade, as a colourist might apply: a function from image to image.

    In Lab with L scaled to [0, 1]: a tone curve (gamma 0.65-1.5, then an S-curve of contrast
    +-0.25, then black point 0-0.12 and white point 0.85-1), chroma rotated +-70 degrees and scaled
    0.5-1.5, and split toning (tints of up to 15 in a and b, weighted to the shadows and to the
    highlights).
    """
    gamma, contrast = rng.uniform(0.65, 1.5), rng.uniform(-0.25, 0.25)
    black, white = rng.uniform(0, 0.12), rng.uniform(0.85, 1)
    hue, saturation = rng.uniform(-70, 70), rng.uniform(0.5, 1.5)
    shadow, highlight = ([rng.uniform(-15, 15) for _ in range(2)] for _ in range(2))

    def grade(img: Image.Image) -> Image.Image:
        lab = rgb_to_lab(to_tensor(img))
        y = (lab[0] / 100).clamp(0, 1) ** gamma
        y = y - contrast * torch.sin(2 * math.pi * y) / (2 * math.pi)  # monotone for |contrast| < 1
        y = black + (white - black) * y
        out = rotate_chroma(lab, hue, saturation)
        out[0] = 100 * y
        for c in (1, 2):
            out[c] += shadow[c - 1] * (1 - y) ** 2 + highlight[c - 1] * y**2
        return to_pil(lab_to_rgb(out))

    return grade


def _mirrored_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    f = rng.uniform(0.75, 0.9)
    cw, ch = round(w * f), round(h * f)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return ImageOps.mirror(img.crop((x, y, x + cw, y + ch)))


def score(output: Image.Image, truth: Image.Image) -> tuple[float, float]:
    """(mean CIEDE2000, PSNR in dB) of ``output`` against ``truth`` (resized to the truth's size)."""
    if output.size != truth.size:
        output = output.resize(truth.size, Image.Resampling.BICUBIC)
    a, b = to_tensor(output), to_tensor(truth)
    de = delta_e_2000(rgb_to_lab(a), rgb_to_lab(b)).mean().item()
    mse = (a - b).pow(2).mean().clamp(min=1e-10)
    return de, (10 * torch.log10(1 / mse)).item()
