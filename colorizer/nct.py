"""Neural Color Transfer (He et al., "Progressive Color Transfer with Dense Semantic Correspondences").

``transfer`` prepares the images (working size, the references' VGG features, the source's
feature clusters), then runs one level at a time, coarse to fine, for L = 5..1 (``_level``):
match VGG relu{L}_1 features of the current result against each reference both ways with
PatchMatch (kept on the same meaning by the deeper layers' features, ``_deep_context``), vote the
references' colours into a guidance image, fit a local linear colour model ``T = a * S + b`` in
Lab to that guidance, and apply it to the source. Each level starts from the coarser level's
fields and model. Options and constants: :class:`colorizer.config.TransferConfig`.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .color import is_gray, lab_to_rgb, luminance, rgb_to_lab
from .config import TransferConfig
from .devices import feature_dtype, resolve_device
from .guided_filter import guided_filter, guided_upsample
from .images import ImageError, ImageInput, check_output_path, load_image, save_image, to_pil, to_tensor
from .local_linear import detail_weights, fit_local_linear, smoothness_weights
from .neighbors import feature_clusters, nonlocal_neighbors
from .patchmatch import bidirectional_patchmatch, exact_bidirectional, shared_projection, upsample_nnf
from .vgg import VGGFeatures
from .voting import bds_vote

#: Coarsest-level grid must keep at least this many cells on its short side.
_MIN_CELLS = 4

ProgressCallback = Callable[[int, int, str], None]
LevelCallback = Callable[[int, Image.Image], None]


@dataclass
class TransferOutput:
    """Result of :meth:`NeuralColorTransfer.transfer`."""

    image: Image.Image
    """The source recoloured, RGB, at the source's full resolution."""
    levels: dict[int, Image.Image] = field(default_factory=dict)
    """Level number -> the result after that level (coarsest first), at the working resolution, full strength."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage, and ``total``."""


@dataclass
class BatchOutput:
    """Result of :meth:`NeuralColorTransfer.transfer_batch`."""

    written: list[Path] = field(default_factory=list)
    """Outputs written by this run."""
    skipped: list[Path] = field(default_factory=list)
    """Outputs that existed already (a resumed run), left as they were."""
    failed: dict[Path, str] = field(default_factory=dict)
    """Source -> why it could not be transferred."""
    seconds: float = 0.0


@dataclass
class _References:
    """The references at the working size, read once for any number of sources."""

    rgbs: list[Tensor]
    labs: list[Tensor]  # normalised Lab, as the source's
    feats: dict[bool, list[dict[int, Tensor]]] = field(default_factory=dict)  # gray source? -> features per ref


@dataclass
class _Scene:
    """What every level reads: the source at working and full size, the references' features and colours."""

    source_full: Tensor  # RGB [3, H, W] at full resolution
    source_rgb: Tensor  # RGB at the working resolution
    source_lab: Tensor  # normalised Lab (L in [0, 1], a and b about [-1, 1]) at the working resolution
    first: int  # first Lab channel transferred: 0 for full colour, 1 keeps lightness
    gray: bool
    source_feats: dict[int, Tensor]  # the source's features: relu5_1 and relu4_1, and every level's for a gray source
    ref_feats: list[dict[int, Tensor]]
    deep_contexts: list[tuple[Tensor, Tensor]]  # per reference: the matching context from L3 on (_deep_context)
    ref_labs: list[Tensor]
    clusters: Tensor | None  # k-means labels of the source's relu5_1 cells, shared by all levels; None: gray
    generator: torch.Generator


@dataclass
class _State:
    """What one level hands to the next."""

    current: Tensor  # the result so far, RGB at the working resolution
    fields: list[tuple[Tensor, Tensor] | None]  # per reference: NNFs source->reference, reference->source
    coeffs: Tensor | None = None  # the model's a and b, stacked [2 * channels, h, w]
    evidence: Tensor | None = None  # per reference: matching costs summed over the levels so far


class NeuralColorTransfer:
    """Photo-to-photo colour transfer through dense semantic correspondences."""

    def __init__(self, vgg: VGGFeatures, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        """``dtype`` is the VGG's precision; None picks the fastest exact-enough one for the device
        (:func:`colorizer.devices.feature_dtype`). Everything after the VGG runs in float32."""
        self.device = resolve_device(device)
        self.vgg = vgg.to(self.device, dtype or feature_dtype(self.device)).eval().requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls, vgg: str | os.PathLike | None = None, device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> "NeuralColorTransfer":
        """Load the VGG: a local safetensors file or Hub repo; None: ``$COLORIZER_VGG``, else the Hub's VGG19."""
        return cls(VGGFeatures.from_pretrained(vgg), device, dtype)

    @torch.inference_mode()
    def transfer(
        self,
        source: ImageInput,
        references: ImageInput | Sequence[ImageInput],
        config: TransferConfig | None = None,
        *,
        max_pixels: int | None = None,
        progress: ProgressCallback | None = None,
        on_level: LevelCallback | None = None,
        **options,
    ) -> TransferOutput:
        """Recolour ``source`` with the colours of ``references`` (one image or several).

        Options are the fields of :class:`TransferConfig`, given as a config, as keywords, or both
        (keywords win). A gray source is colorized: its lightness is kept. After each level,
        ``progress(step, total, message)`` is called, and ``on_level(level, image)`` with the result
        so far (at the working size), e.g. to show the method refine as it runs.
        """
        config = (config or TransferConfig()).with_options(**options)
        refs = self._references(references, config, max_pixels)
        src = load_image(source, name="source", max_pixels=max_pixels)
        return self._run(src, refs, config, progress, on_level)

    def transfer_batch(
        self,
        sources: str | os.PathLike | Sequence[str | os.PathLike],
        references: ImageInput | Sequence[ImageInput],
        output_dir: str | os.PathLike,
        config: TransferConfig | None = None,
        *,
        max_pixels: int | None = None,
        progress: ProgressCallback | None = None,
        **options,
    ) -> BatchOutput:
        """Recolour many photos with the same references, writing ``output_dir/<source name>.png``.

        ``sources`` is a folder (its image files, sorted) or a list of files. The references are
        read and their features computed once. A source whose output already exists is skipped,
        so an interrupted run resumes where it stopped (outputs are written atomically: one that
        exists is complete). A source that cannot be read or transferred is reported in
        ``failed`` and the rest go on. ``progress(done, total, message)`` is called after each
        source, with the time left in the message.
        """
        config = (config or TransferConfig()).with_options(**options)
        paths = batch_sources(sources)
        out_dir = Path(output_dir)
        targets = {path: out_dir / f"{path.stem}.png" for path in paths}
        if len(set(targets.values())) < len(targets):
            raise ValueError("two sources share a file name (stem); their outputs would collide")
        out_dir.mkdir(parents=True, exist_ok=True)
        check_output_path(out_dir / "probe.png")  # a read-only folder fails now, not after the first image
        refs = self._references(references, config, max_pixels)
        result = BatchOutput()
        start, computed = time.perf_counter(), 0
        for done, (path, target) in enumerate(targets.items(), start=1):
            if target.exists():
                result.skipped.append(target)
            else:
                try:
                    src = load_image(path, name=str(path), max_pixels=max_pixels)
                    save_image(self._run(src, refs, config, None, None).image, target)
                    result.written.append(target)
                except (ImageError, RuntimeError, OSError) as err:  # this file, not the batch
                    result.failed[path] = " ".join(str(err).split())
                computed += 1
            if progress is not None:
                rate = (time.perf_counter() - start) / max(computed, 1)
                left = rate * sum(not t.exists() for t in list(targets.values())[done:])
                progress(done, len(targets), f"{path.name}: {_status(result, path, target)}, about {left:.0f} s left")
        result.seconds = time.perf_counter() - start
        return result

    def _references(self, references: ImageInput | Sequence[ImageInput], config: TransferConfig,
                    max_pixels: int | None) -> "_References":
        refs = list(references) if isinstance(references, (list, tuple)) else [references]
        if not refs:
            raise ImageError("at least one reference image is needed")
        imgs = [load_image(r, name=f"reference {i + 1}", max_pixels=max_pixels) for i, r in enumerate(refs)]
        rgbs = [_resize(to_tensor(r, self.device), working_shape(r.size, config.working_size)) for r in imgs]
        return _References(rgbs=rgbs, labs=[rgb_to_lab(r) / 100 for r in rgbs])

    def _run(self, src_img: Image.Image, refs: "_References", config: TransferConfig,
             progress: ProgressCallback | None, on_level: LevelCallback | None) -> TransferOutput:
        """The method on one loaded source: prepare, the levels coarse to fine, the full-resolution output."""
        timer = _Timer(self.device)
        scene = self._prepare(src_img, refs, config, timer)
        state = _State(current=scene.source_rgb, fields=[None] * len(refs.rgbs))
        levels = {}
        for step, level in enumerate(config.levels, start=1):
            state = self._level(scene, state, level, config, timer)
            levels[level] = to_pil(state.current)
            if on_level is not None:
                on_level(level, levels[level])
            if progress is not None:
                progress(step, len(config.levels), f"level {level} done")
        with timer("upsample"):
            image = to_pil(_apply(state.coeffs, scene.source_full, scene.first, scene.gray, config.strength,
                                  config.strip_rows))
        return TransferOutput(image=image, levels=levels, timings=dict(timer.seconds, total=timer.total()))

    def _prepare(self, src_img: Image.Image, refs: "_References", config: TransferConfig,
                 timer: "_Timer") -> _Scene:
        """The source at the working size; the references' features (once per kind of source); its clusters
        (a colour source's: a gray one has no non-local term)."""
        src_full = to_tensor(src_img, self.device)
        gray = is_gray(src_full)
        src_rgb = _resize(src_full, working_shape(src_img.size, config.working_size))
        gen = torch.Generator(self.device).manual_seed(config.seed)
        with timer("features"):
            # relu5_1 and relu4_1 are also the matching context (TransferConfig.context_weight).
            every = tuple(sorted({5, 4, *config.levels}, reverse=True))
            if gray not in refs.feats:
                # A gray source cannot be matched on colour: the references are seen in gray too.
                refs.feats[gray] = [self._features(luminance(r).expand(3, -1, -1) if gray else r, every)
                                    for r in refs.rgbs]
            # relu5_1 of a colour source drives the non-local clusters. A gray source keeps its lightness,
            # so what the VGG sees of it never changes: one pass serves every level.
            src_feats = self._features(src_rgb, every if gray else (5, 4))
        with timer("matching"):
            deep_contexts = [_deep_context(src_feats, feats) for feats in refs.feats[gray]]
        clusters = None
        if not gray:
            with timer("model fit"):
                clusters = feature_clusters(src_feats[5], config.clusters, generator=gen)
        return _Scene(
            source_full=src_full, source_rgb=src_rgb, source_lab=rgb_to_lab(src_rgb) / 100,
            first=0 if config.transfer_lightness and not gray else 1, gray=gray, source_feats=src_feats,
            ref_feats=refs.feats[gray], deep_contexts=deep_contexts, ref_labs=refs.labs, clusters=clusters,
            generator=gen,
        )

    def _level(self, scene: _Scene, state: _State, level: int, config: TransferConfig, timer: "_Timer") -> _State:
        """One level of the method: match, vote a guidance, fit the local linear model, apply it."""
        # 1. Features of the current result. The first level sees the source itself, and so does every
        # level of a gray source (its lightness is kept): their features were computed once.
        with timer("features"):
            if (scene.gray or state.coeffs is None) and level in scene.source_feats:
                feat_s = scene.source_feats[level]
            else:
                feat_s = self._features(state.current, (level,))[level]
        h, w = feat_s.shape[-2:]

        # 2-3. Both nearest-neighbour fields per reference, and the references' colours voted through them.
        fields, guides, distances = [], [], []
        for feats, lab, previous, deep in zip(scene.ref_feats, scene.ref_labs, state.fields, scene.deep_contexts):
            feat_r = feats[level]
            with timer("matching"):
                # The context of a level: the deep layers coarser than it.
                context = (scene.source_feats[5], feats[5]) if level >= 4 else deep
                st, ts, dist = self._match(feat_s, feat_r, previous, level, config, scene.generator, context)
            with timer("voting"):
                guides.append(bds_vote(_resize(lab, feat_r.shape[-2:]), st, ts, completeness=config.completeness))
            fields.append((st, ts))
            distances.append(dist)
        src_lab = _resize(scene.source_lab, (h, w))
        distances = torch.stack(distances)
        # The coarse levels' semantic features tell which reference holds an object; the shallow
        # features of the fine levels match texture anywhere. So the choice weighs every level so far.
        evidence = distances if state.evidence is None else distances + _resize(state.evidence, (h, w))
        guide, dist = _select_reference(src_lab, torch.stack(guides), evidence, distances)

        # 4. The local linear model, fitted to the guidance on the transferred channels only.
        with timer("model fit"):
            c = scene.first
            # A gray source's chroma is regressed on its lightness, with no contrast of its own to keep
            # (colorizer/local_linear.py): the detail term keeps only its floor.
            if scene.gray:
                source, slope_prior = src_lab[:1].expand(2, -1, -1).contiguous(), 0.0
                detail = torch.full_like(source, config.detail_delta**2)
            else:
                source, slope_prior = src_lab[c:], 1.0
                detail = detail_weights(source, config.detail_delta)
            guide = guide[c:]
            # Patch distances of unit ReLU features lie in [0, 2]: 1 - d / 2 is the mean cosine similarity,
            # less half the context's disagreement where a coarser field was refined.
            confidence = (1 - dist / 2).clamp_min(1e-6)
            edge = smoothness_weights(src_lab[0], config.lambda_local, config.wls_alpha, config.wls_eps)
            # A gray source has no colour to link its pixels by: pixels of one lightness are not one material
            # (TransferConfig.lambda_nonlocal), so its model has no non-local term.
            neighbors = None if scene.gray else nonlocal_neighbors(
                scene.clusters, src_lab, k=config.neighbors, sigma=config.nonlocal_sigma)
            init = None if state.coeffs is None else _resize(state.coeffs, (h, w)).chunk(2)
            rho = scene.source_rgb[0].numel() / (h * w)
            a, b = fit_local_linear(
                source, guide, confidence, edge, detail=detail,
                lambda_detail=config.lambda_detail, lambda_nonlocal=config.lambda_nonlocal, neighbors=neighbors,
                rho=rho, init=init, slope_prior=slope_prior, tol=config.solver_tolerance,
            )
            coeffs = torch.cat([a, b])

        # 5. Applied to the source at the working resolution: the next level's input.
        with timer("upsample"):
            current = _apply(coeffs, scene.source_rgb, scene.first, scene.gray, 1.0, config.strip_rows,
                             scene.source_lab)
        return _State(current=current, fields=fields, coeffs=coeffs, evidence=evidence)

    def _features(self, rgb: Tensor, levels: Sequence[int]) -> dict[int, Tensor]:
        feats = self.vgg(rgb.unsqueeze(0), tuple(levels))
        # Left channels-last, as the VGG wrote them: matching reads a cell's feature vector as a row
        # and projects patches by a channels-last convolution. Reordering them to [C, H, W] took as
        # long as the VGG pass itself at L1 (0.9 s for a 768x1024 map).
        return {k: _unit_cells(v[0].float()) for k, v in feats.items()}

    def _match(
        self, feat_s: Tensor, feat_r: Tensor, previous: tuple[Tensor, Tensor] | None, level: int,
        config: TransferConfig, gen: torch.Generator, context: tuple[Tensor, Tensor],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Both nearest-neighbour fields S->R and R->S, starting from the coarser level's; and S->R's distances.

        ``context`` (deep features of source and reference) steers the refinement of a coarser field.
        """
        size_s, size_r = tuple(feat_s.shape[-2:]), tuple(feat_r.shape[-2:])
        dims = config.search_dims_at(level)
        # Where whole patches are compared, the first level's fields are found exactly in one product.
        if previous is None and dims is None and size_s[0] * size_s[1] * size_r[0] * size_r[1] <= config.exact_pairs:
            return exact_bidirectional(feat_s, feat_r)
        if previous is None:
            init_st = init_ts = radius = jump = None
        else:
            init_st = upsample_nnf(previous[0], size_s, size_r)
            init_ts = upsample_nnf(previous[1], size_r, size_s)
            radius, jump = config.refine_radius, config.refine_jump_at(level)
        return bidirectional_patchmatch(
            feat_s, feat_r, init_st, init_ts, dims=dims,
            context=None if previous is None else context, context_weight=config.context_weight,
            iterations=config.iterations_at(level), search_radius=radius, max_jump=jump, generator=gen,
        )


def _unit_cells(x: Tensor) -> Tensor:
    """x [C, H, W] with every cell's feature vector scaled to unit length, in place (as F.normalize,
    without its second map as large as x: 40% faster on a relu1_1 map)."""
    return x.div_(torch.linalg.vector_norm(x, dim=0, keepdim=True).clamp_min_(1e-12))


def _deep_context(source: dict[int, Tensor], reference: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
    """relu5_1 (upsampled) and relu4_1 of both images, stacked and projected onto their shared principal axes."""
    def stack(feats: dict[int, Tensor]) -> Tensor:
        return torch.cat([_resize(feats[5], feats[4].shape[-2:]), feats[4]])
    return shared_projection(stack(source), stack(reference))


def _select_reference(src_lab: Tensor, guides: Tensor, evidence: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
    """Pick, per pixel, the reference of least ``evidence`` (a cost), after edge-aware smoothing.

    Returns the chosen reference's guidance and its matching ``costs``.

    This is cost-volume filtering (Hosni et al.): filtering each reference's matching cost with a
    guided filter steered by the source makes the labels piecewise constant along its edges, the
    role the MRF's smoothness term plays in the paper.
    """
    if len(guides) == 1:
        return guides[0], costs[0]
    smooth = guided_filter(src_lab, evidence, radius=max(1, src_lab.shape[-1] // 32), eps=1e-3)
    label = smooth.argmin(0, keepdim=True)
    guide = guides.gather(0, label.unsqueeze(1).expand(-1, guides.shape[1], -1, -1))[0]
    return guide, costs.gather(0, label)[0]


def _apply(coeffs: Tensor, rgb: Tensor, first: int, gray: bool, strength: float, strip_rows: int,
           lab: Tensor | None = None) -> Tensor:
    """Upsample the model's coefficients to ``rgb``'s size, guided by it, and recolour it.

    ``coeffs`` holds a and b for Lab channels ``first``..2 (1: chroma only); for a ``gray`` source
    they apply to its lightness. ``strength`` blends
    the transformed channels from the source (0) to the full transfer (1). ``lab``: ``rgb``'s
    normalised Lab where it is known already (the working-size source). The colour conversions
    run in strips of rows so that a 12-megapixel image stays in cache instead of streaming through
    memory a dozen times; the guided filter is steered by RGB, so no full-size Lab image is held.
    (The official implementation smooths bilinearly upsampled coefficients with a WLS solve at full
    resolution instead; the guided filter is the fast edge-aware stand-in for it.)
    """
    (h, w), (height, width) = coeffs.shape[-2:], rgb.shape[-2:]
    if (height, width) != (h, w):
        if height <= h and width <= w:
            # Matching ran finer than the image itself (a small source at a large working size): a
            # pixel's model is the mean of the finer cells it covers.
            coeffs = F.interpolate(coeffs[None], size=(height, width), mode="area")[0]
        else:
            radius = max(1, w // 64)
            if radius >= 8 and h % 2 == 0 and w % 2 == 0:
                # The filter's own coefficients are means over its window: fitted on a grid half as fine
                # (He & Sun's subsampling), the output moves 0.04 CIEDE2000 on average and the fit
                # takes a quarter of the time.
                coeffs, radius = F.interpolate(coeffs[None], scale_factor=0.5, mode="area")[0], radius // 2
            coeffs = guided_upsample(rgb, coeffs, radius=radius, eps=1e-4)
    a, b = coeffs.chunk(2)
    out = torch.empty_like(rgb)
    for r in range(0, rgb.shape[-2], strip_rows):
        rows = slice(r, r + strip_rows)
        strip = rgb_to_lab(rgb[:, rows]) / 100 if lab is None else lab[:, rows].clone()
        chans = strip[first:]
        regressor = strip[:1] if gray else chans
        strip[first:] = torch.lerp(chans, a[:, rows] * regressor + b[:, rows], strength)
        out[:, rows] = lab_to_rgb(strip * 100)
    # lab_to_rgb clamps to [0, 1], so only NaN can be wrong, and the sum is NaN exactly then: one pass,
    # where isfinite(out).all() wrote two temporaries as large as a 12 MP image (0.1 s).
    if not torch.isfinite(out.sum()):
        raise RuntimeError("the colour model produced non-finite values; try other options (e.g. smaller weights)")
    return out


def batch_sources(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The image files of a folder (sorted, not recursive), or the given files; none at all is an error."""
    if isinstance(sources, (str, os.PathLike)) and Path(sources).is_dir():
        paths = sorted(p for p in Path(sources).iterdir() if p.suffix.lower() in Image.registered_extensions())
    else:
        paths = [Path(p) for p in ([sources] if isinstance(sources, (str, os.PathLike)) else sources)]
    if not paths:
        raise ImageError(f"no image files in {sources}")
    return paths


def _status(result: BatchOutput, path: Path, target: Path) -> str:
    if path in result.failed:
        return f"failed ({result.failed[path]})"
    return "skipped (done before)" if target in result.skipped else "done"


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
