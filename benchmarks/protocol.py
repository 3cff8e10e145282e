"""The evaluation protocol shared by every benchmark: photos, the fixed split, cases and scores.

For a colour photo X:
- recolor:  source = X with its Lab chroma rotated (60-180 degrees) and scaled; reference = a
            mirrored 75-90% crop of X; truth = X.
- colorize: source = gray(X); same reference; truth = X.
- restyle:  source = gray(X); reference = a mirrored crop of a chroma-rotated X; truth = that rotated X.
Outputs are scored against the truth by mean CIEDE2000 (lower is better) and PSNR.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from colorizer.color import delta_e_2000, lab_to_rgb, luminance, rgb_to_lab, rotate_chroma
from colorizer.images import load_image, to_pil, to_tensor

ROOT = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "photos"
EXAMPLES = ROOT / "examples"
CASES = ("recolor", "colorize", "restyle")


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
    reference: Image.Image
    truth: Image.Image


def make_case(path: Path, kind: str, seed: int = 0, long_side: int = 512) -> Case:
    """Build one case of the protocol from a photo, deterministically from (path, kind, seed)."""
    rng = random.Random(f"{path.name}/{kind}/{seed}")
    photo = load_image(path)
    photo.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    x = to_tensor(photo)
    lab = rgb_to_lab(x)
    rotated = to_pil(lab_to_rgb(rotate_chroma(lab, rng.choice((-1, 1)) * rng.uniform(60, 180), rng.uniform(0.6, 1.3))))
    gray = to_pil(luminance(x).expand(3, -1, -1))
    if kind == "recolor":
        source, ref_from, truth = rotated, photo, photo
    elif kind == "colorize":
        source, ref_from, truth = gray, photo, photo
    elif kind == "restyle":
        twin = to_pil(lab_to_rgb(rotate_chroma(lab, rng.choice((-1, 1)) * rng.uniform(60, 180), rng.uniform(0.8, 1.3))))
        source, ref_from, truth = gray, twin, twin
    else:
        raise ValueError(f"unknown case {kind!r}; choose from {CASES}")
    return Case(path.stem, kind, source, _mirrored_crop(ref_from, rng), truth)


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
