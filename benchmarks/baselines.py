"""Reference points for the quality benchmarks: Reinhard's global transfer, the ``color-matcher`` package's
global transfers, a lightness lookup, a VGG nearest neighbour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorizer.color import is_gray, lab_to_rgb, luminance, rgb_to_lab
from colorizer.images import to_pil, to_tensor
from colorizer.patchmatch import brute_force_nnf
from colorizer.vgg import VGGFeatures


def reinhard(source: Image.Image, reference: Image.Image) -> Image.Image:
    """Match each Lab channel's global mean and standard deviation (Reinhard et al. 2001).

    A gray source keeps its lightness and takes the reference's mean chroma: its own chroma is
    float noise (std ~1e-5), which dividing by that std would blow up into random colour.
    """
    src, ref = to_tensor(source), to_tensor(reference)
    s, r = rgb_to_lab(src).flatten(1), rgb_to_lab(ref).flatten(1)
    mu_s, sd_s = s.mean(1, keepdim=True), s.std(1, keepdim=True)
    mu_r, sd_r = r.mean(1, keepdim=True), r.std(1, keepdim=True)
    gain = torch.where(sd_s > 0.5, sd_r / sd_s.clamp(min=0.5), torch.zeros_like(sd_s))  # no spread: nothing to stretch
    out = (s - mu_s) * gain + mu_r
    if is_gray(src):
        out[0] = s[0]
    return to_pil(lab_to_rgb(out.view(3, *src.shape[1:])))


def color_matcher(source: Image.Image, reference: Image.Image, method: str) -> Image.Image:
    """A global transfer of the ``color-matcher`` package (Hahne), e.g. ``"hm-mvgd-hm"`` or ``"mkl"``.

    Images go in as float RGB in [0, 1]; the result is clipped to [0, 1]. A gray source keeps its
    lightness and takes only the result's chroma, as :func:`reinhard` does: the truth of a colorize
    case keeps the source's lightness, and rank-based histogram matching of a gray image's three
    equal channels would change it.

    Quirk of color-matcher 0.6.0: ``ColorMatcher().transfer(method=...)`` binds the MVGD solver in the
    constructor, so without a method there it always solves MKL, and ``"hm-mvgd-hm"`` runs as
    histogram matching, MKL, histogram matching (exactly ``"hm-mkl-hm"``). The analytical MVGD solver
    (chosen by ``ColorMatcher(method="hm-mvgd-hm")``) regresses pixel against pixel and refuses images
    of different sizes, so it cannot take a reference that is another photo. This is the package's
    documented call, which is what its users get.
    """
    try:
        from color_matcher import ColorMatcher
    except ImportError as e:
        raise ImportError(
            "the color-matcher baselines need the benchmark extra: pip install -e .[bench] "
            "(or pip install -r requirements-bench.txt)"
        ) from e
    src = np.asarray(source.convert("RGB"), dtype=np.float64) / 255
    ref = np.asarray(reference.convert("RGB"), dtype=np.float64) / 255
    out = np.real(ColorMatcher().transfer(src=src, ref=ref, method=method))  # eig() may return complex dtype
    result = Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8))
    src_rgb = to_tensor(source)
    if is_gray(src_rgb):
        lab = rgb_to_lab(to_tensor(result))
        lab[0] = rgb_to_lab(src_rgb)[0]
        result = to_pil(lab_to_rgb(lab))
    return result


def side_by_side(images: Sequence[Image.Image]) -> Image.Image:
    """Several references as one image for the single-reference baselines: pasted left to right, each
    scaled to the first one's height (the parts of a protocol case already share it). Global methods
    then see the pooled pixels of all references and nearest neighbours can come from any of them."""
    if len(images) == 1:
        return images[0]
    height = images[0].height
    parts = [im if im.height == height else im.resize((round(im.width * height / im.height), height),
                                                      Image.Resampling.LANCZOS) for im in images]
    joined = Image.new("RGB", (sum(p.width for p in parts), height))
    x = 0
    for part in parts:
        joined.paste(part.convert("RGB"), (x, 0))
        x += part.width
    return joined


def lightness_lookup(source: Image.Image, reference: Image.Image, bins: int = 16, sigma: float = 6.0) -> Image.Image:
    """Each source pixel gets the reference's mean chroma at its lightness (Gaussian bins in L); lightness kept."""
    src, ref = rgb_to_lab(to_tensor(source)), rgb_to_lab(to_tensor(reference))
    centers = torch.linspace(0, 100, bins)

    def bin_weights(lightness: torch.Tensor) -> torch.Tensor:  # [bins, N], columns sum to 1
        w = torch.exp(-((lightness.flatten()[None] - centers[:, None]) ** 2) / (2 * sigma**2))
        return w / w.sum(0, keepdim=True).clamp(min=1e-12)

    w_ref = bin_weights(ref[0])
    chroma_per_bin = (w_ref @ ref[1:].flatten(1).T) / w_ref.sum(1, keepdim=True).clamp(min=1e-12)  # [bins, 2]
    chroma = (chroma_per_bin.T @ bin_weights(src[0])).view(2, *src.shape[1:])
    return to_pil(lab_to_rgb(torch.cat([src[:1], chroma])))


@torch.inference_mode()
def vgg_nearest_neighbour(vgg: VGGFeatures, source: Image.Image, reference: Image.Image) -> Image.Image:
    """Brute-force per-pixel nearest neighbour on relu3_1 (1/4 resolution); chroma copied, lightness kept."""
    src, ref = to_tensor(source), to_tensor(reference)
    gray = is_gray(src)
    see = (lambda x: luminance(x).expand(3, -1, -1)) if gray else (lambda x: x)
    fs = F.normalize(vgg(see(src)[None], (3,))[3][0].float(), dim=0)
    fr = F.normalize(vgg(see(ref)[None], (3,))[3][0].float(), dim=0)
    nnf, _ = brute_force_nnf(fs, fr, patch_size=1)
    ref_lab = F.interpolate(rgb_to_lab(ref)[None], size=fr.shape[-2:], mode="area")[0]
    ab = ref_lab[1:, nnf[0], nnf[1]]
    ab = F.interpolate(ab[None], size=src.shape[-2:], mode="bilinear", align_corners=False)[0]
    return to_pil(lab_to_rgb(torch.cat([rgb_to_lab(src)[:1], ab])))
