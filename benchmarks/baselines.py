"""Reference points for the quality benchmark: global Reinhard transfer and a naive VGG nearest neighbour."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from colorizer.color import is_gray, lab_to_rgb, luminance, rgb_to_lab
from colorizer.images import to_pil, to_tensor
from colorizer.patchmatch import brute_force_nnf
from colorizer.vgg import VGGFeatures


def reinhard(source: Image.Image, reference: Image.Image) -> Image.Image:
    """Match the global Lab mean and standard deviation (Reinhard et al. 2001); a gray source keeps its lightness."""
    src, ref = to_tensor(source), to_tensor(reference)
    s, r = rgb_to_lab(src).flatten(1), rgb_to_lab(ref).flatten(1)
    out = (s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True).clamp(min=1e-6) * r.std(1, keepdim=True) + r.mean(1, keepdim=True)
    if is_gray(src):
        out[0] = s[0]
    return to_pil(lab_to_rgb(out.view(3, *src.shape[1:])))


@torch.inference_mode()
def vgg_nearest_neighbour(vgg: VGGFeatures, source: Image.Image, reference: Image.Image) -> Image.Image:
    """Brute-force per-pixel nearest neighbour on relu3_1 (1/4 resolution); chroma copied, lightness kept."""
    src, ref = to_tensor(source), to_tensor(reference)
    gray = is_gray(src)
    see = (lambda x: luminance(x).expand(3, -1, -1)) if gray else (lambda x: x)
    fs = F.normalize(vgg(see(src)[None], (3,))[3][0], dim=0)
    fr = F.normalize(vgg(see(ref)[None], (3,))[3][0], dim=0)
    nnf, _ = brute_force_nnf(fs, fr, patch_size=1)
    ref_lab = F.interpolate(rgb_to_lab(ref)[None], size=fr.shape[-2:], mode="area")[0]
    ab = ref_lab[1:, nnf[0], nnf[1]]
    ab = F.interpolate(ab[None], size=src.shape[-2:], mode="bilinear", align_corners=False)[0]
    return to_pil(lab_to_rgb(torch.cat([rgb_to_lab(src)[:1], ab])))
