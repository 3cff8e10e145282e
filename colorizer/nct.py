"""Neural Color Transfer (He et al., "Progressive Color Transfer with Dense Semantic Correspondences").

Coarse to fine, for L = 5..1: match VGG relu{L}_1 features of the current result against each
reference both ways with PatchMatch, vote the references' colours into a guidance image, fit a
local linear colour model ``T = a * S + b`` in Lab to that guidance, and apply it, upsampled with
a guided filter, to the source. Each level starts from the coarser level's fields and model.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .color import is_gray, lab_to_rgb, luminance, rgb_to_lab
from .guided_filter import guided_filter, guided_upsample
from .images import ImageError, ImageInput, load_image, to_pil, to_tensor
from .local_linear import fit_local_linear
from .neighbors import nonlocal_neighbors
from .patchmatch import patchmatch, upsample_nnf
from .vgg import VGGFeatures
from .voting import bds_vote

#: PatchMatch iterations per level: coarse levels start from random fields, fine ones are refined.
_ITERATIONS = {5: 6, 4: 3, 3: 2, 2: 1, 1: 1}
#: Random-search radius (in cells of that level) once a coarser field exists.
_REFINE_RADIUS = 4
#: Rows per strip when recolouring a full-resolution image.
_STRIP_ROWS = 64
#: Coarsest-level grid must keep at least this many cells on its short side.
_MIN_CELLS = 4

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class TransferOutput:
    """Result of :meth:`NeuralColorTransfer.transfer`."""

    image: Image.Image
    """The source recoloured, RGB, at the source's full resolution."""
    levels: list[Image.Image] = field(default_factory=list)
    """The intermediate result after each level run (coarsest first), at the working resolution."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage, and ``total``."""


class NeuralColorTransfer:
    """Photo-to-photo colour transfer through dense semantic correspondences."""

    def __init__(self, vgg: VGGFeatures, device: torch.device | str | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # Half precision halves the VGG's cost on a GPU; on a CPU float32 is faster.
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.vgg = vgg.to(self.device, dtype).eval().requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls, vgg: str | os.PathLike | None = None, device: torch.device | str | None = None
    ) -> "NeuralColorTransfer":
        """Load the VGG: a local safetensors file or Hub repo; None: ``$COLORIZER_VGG``, else the Hub's VGG19."""
        return cls(VGGFeatures.from_pretrained(vgg), device)

    @torch.inference_mode()
    def transfer(
        self,
        source: ImageInput,
        references: ImageInput | Sequence[ImageInput],
        *,
        working_size: int = 512,
        levels: Sequence[int] = (5, 4, 3, 2, 1),
        completeness: float = 2.0,
        lambda_local: float = 0.125,
        lambda_nonlocal: float = 2.0,
        clusters: int = 10,
        neighbors: int = 8,
        strength: float = 1.0,
        keep_lightness: bool = True,
        seed: int = 0,
        max_pixels: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferOutput:
        """Recolour ``source`` with the colours of ``references`` (one image or several).

        A gray source is colorized: its lightness is kept and only chroma is transferred.
        ``working_size`` is the long side matching runs at; the output is always full resolution.
        ``levels`` are the VGG levels to run, coarse to fine (a subset of 5..1).
        ``strength`` blends from the source (0) to the full transfer (1).
        ``keep_lightness`` (default) transfers chroma only, as is always done for a gray source;
        ``False`` fits the paper's model on all three Lab channels, lightness included.
        ``progress(step, total, message)`` is called after each level.
        """
        levels = _check_options(levels, working_size, strength, completeness, lambda_local, lambda_nonlocal)
        refs = list(references) if isinstance(references, (list, tuple)) else [references]
        if not refs:
            raise ImageError("at least one reference image is needed")
        src_img = load_image(source, name="source", max_pixels=max_pixels)
        ref_imgs = [load_image(r, name=f"reference {i + 1}", max_pixels=max_pixels) for i, r in enumerate(refs)]

        timer = _Timer(self.device)
        gen = torch.Generator(self.device).manual_seed(seed)
        src_full = to_tensor(src_img, self.device)
        gray = is_gray(src_full)
        first = 1 if gray or keep_lightness else 0  # the first Lab channel transferred: 1 keeps lightness
        size = working_shape(src_img.size, working_size)
        src_rgb = _resize(src_full, size)
        src_lab = rgb_to_lab(src_rgb) / 100  # normalised Lab: L in [0, 1], a, b about [-1, 1]

        with timer("features"):
            ref_rgbs = [_resize(to_tensor(r, self.device), working_shape(r.size, working_size)) for r in ref_imgs]
            # A gray source cannot be matched on colour: the references are seen in gray too.
            ref_feats = [self._features(luminance(r).expand(3, -1, -1) if gray else r, levels) for r in ref_rgbs]
            ref_labs = [rgb_to_lab(r) / 100 for r in ref_rgbs]
            # relu5_1 of the source drives the non-local clusters. A gray source keeps its lightness,
            # so what the VGG sees of it never changes: one pass serves every level.
            src_feats = self._features(src_rgb, tuple(sorted({5, *levels}, reverse=True)) if gray else (5,))

        current = src_rgb
        fields: list[tuple[Tensor, Tensor] | None] = [None] * len(refs)
        coeffs: Tensor | None = None
        outputs: list[Image.Image] = []
        for step, level in enumerate(levels, start=1):
            known = src_feats if gray or step == 1 else {}
            with timer("features"):
                feat_s = known[level] if level in known else self._features(current, (level,))[level]
            h, w = feat_s.shape[-2:]
            guides, costs = [], []
            for i, (feats, lab) in enumerate(zip(ref_feats, ref_labs)):
                feat_r = feats[level]
                with timer("matching"):
                    fields[i] = self._match(feat_s, feat_r, fields[i], level, gen)
                with timer("voting"):
                    st, ts = fields[i]
                    lab_r = _resize(lab, feat_r.shape[-2:])
                    guides.append(bds_vote(lab_r, st, ts, completeness=completeness))
                    rebuilt = F.normalize(bds_vote(feat_r, st, ts, completeness=completeness), dim=0)
                    costs.append((feat_s - rebuilt).pow(2).sum(0) / 4)
            src_lab_l = _resize(src_lab, (h, w))
            guide, cost = _select_reference(src_lab_l, torch.stack(guides), torch.stack(costs))

            with timer("model fit"):
                nl = nonlocal_neighbors(src_feats[5], src_lab_l, clusters=clusters, k=neighbors, generator=gen)
                init = None if coeffs is None else _resize(coeffs, (h, w)).chunk(2)
                a, b = fit_local_linear(
                    src_lab_l, guide, (1 - cost).clamp(0, 1),
                    lambda_local=lambda_local, lambda_nonlocal=lambda_nonlocal, neighbors=nl, init=init,
                )
                coeffs = torch.cat([a, b])

            with timer("upsample"):
                current = _apply(coeffs, src_rgb, strength, first)
                outputs.append(to_pil(current))
            if progress is not None:
                progress(step, len(levels), f"level {level} done")

        with timer("upsample"):
            result = to_pil(_apply(coeffs, src_full, strength, first))
        timings = dict(timer.seconds, total=timer.total())
        return TransferOutput(image=result, levels=outputs, timings=timings)

    def _features(self, rgb: Tensor, levels: Sequence[int]) -> dict[int, Tensor]:
        feats = self.vgg(rgb.unsqueeze(0), tuple(levels))
        return {k: F.normalize(v[0].float(), dim=0) for k, v in feats.items()}

    def _match(
        self, feat_s: Tensor, feat_r: Tensor, previous: tuple[Tensor, Tensor] | None, level: int, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Both nearest-neighbour fields S->R and R->S, starting from the coarser level's."""
        size_s, size_r = tuple(feat_s.shape[-2:]), tuple(feat_r.shape[-2:])
        if previous is None:
            init_st = init_ts = radius = None
        else:
            init_st = upsample_nnf(previous[0], size_s, size_r)
            init_ts = upsample_nnf(previous[1], size_r, size_s)
            radius = _REFINE_RADIUS
        iters = _ITERATIONS[level]
        st, _ = patchmatch(feat_s, feat_r, init_st, iterations=iters, search_radius=radius, generator=gen)
        ts, _ = patchmatch(feat_r, feat_s, init_ts, iterations=iters, search_radius=radius, generator=gen)
        return st, ts


def _select_reference(src_lab: Tensor, guides: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
    """Pick, per pixel, the reference that matches best, after edge-aware smoothing of the costs.

    This is cost-volume filtering (Hosni et al.): filtering each reference's matching cost with a
    guided filter steered by the source makes the labels piecewise constant along its edges, the
    role the MRF's smoothness term plays in the paper.
    """
    if len(guides) == 1:
        return guides[0], costs[0]
    smooth = guided_filter(src_lab, costs, radius=max(1, src_lab.shape[-1] // 32), eps=1e-3)
    label = smooth.argmin(0, keepdim=True)
    guide = guides.gather(0, label.unsqueeze(1).expand(-1, guides.shape[1], -1, -1))[0]
    return guide, costs.gather(0, label)[0]


def _apply(coeffs: Tensor, rgb: Tensor, strength: float, first: int) -> Tensor:
    """Upsample the model's coefficients to ``rgb``'s size, guided by it, and recolour it.

    Only Lab channels ``first``.. are transformed (1: chroma only). The colour conversions run in
    strips of rows so that a 12-megapixel image stays in cache instead of streaming through memory
    a dozen times; the guided filter is steered by RGB, so no full-size Lab image is ever held.
    """
    a, b = coeffs.chunk(2)
    ab = torch.cat([a[first:], b[first:]])
    if ab.shape[-2:] != rgb.shape[-2:]:
        ab = guided_upsample(rgb, ab, radius=max(1, ab.shape[-1] // 64), eps=1e-4)
    a, b = ab.chunk(2)
    out = torch.empty_like(rgb)
    for r in range(0, rgb.shape[-2], _STRIP_ROWS):
        rows = slice(r, r + _STRIP_ROWS)
        lab = rgb_to_lab(rgb[:, rows]) / 100
        chans = lab[first:]
        lab[first:] = torch.lerp(chans, a[:, rows] * chans + b[:, rows], strength)
        out[:, rows] = lab_to_rgb(lab * 100)
    return out


def working_shape(size: tuple[int, int], working_size: int) -> tuple[int, int]:
    """(H, W) that matching runs at: long side near ``working_size``, sides multiples of 16 (five VGG levels)."""
    w, h = size
    scale = working_size / max(w, h)
    scale = max(scale, 16 * _MIN_CELLS / min(w, h))
    return max(16 * _MIN_CELLS, round(h * scale / 16) * 16), max(16 * _MIN_CELLS, round(w * scale / 16) * 16)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.unsqueeze(0), size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _check_options(levels, working_size, strength, *weights) -> tuple[int, ...]:
    levels = tuple(int(l) for l in levels)
    if not levels or any(l not in range(1, 6) for l in levels) or list(levels) != sorted(set(levels), reverse=True):
        raise ValueError(f"levels must be distinct values from 5 down to 1, coarse to fine; got {levels}")
    if not 64 <= working_size <= 4096:
        raise ValueError(f"working_size must be between 64 and 4096, got {working_size}")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if any(w < 0 for w in weights):
        raise ValueError("completeness and smoothness weights must be non-negative")
    return levels


class _Timer:
    """Accumulates wall-clock seconds per stage (synchronising the GPU so its time is counted)."""

    def __init__(self, device: torch.device):
        self.device, self.start = device, time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[stage] += time.perf_counter() - t

    def total(self) -> float:
        return time.perf_counter() - self.start
