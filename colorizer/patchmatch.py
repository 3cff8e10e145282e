"""PatchMatch (Barnes et al. 2009) between deep feature maps, vectorised in torch.

Feature maps are ``[C, H, W]``. A nearest-neighbour field (NNF) from a source to a target is a
``long`` tensor ``[2, H, W]`` holding the absolute (y, x) of each source pixel's match in the
target. The patch distance between the patch centred at p in A and at q in B is the mean over
the ``patch_size**2`` cells d of ``||A(p+d) - B(q+d)||^2``, with coordinates clamped into the
image (replicate borders); for unit feature vectors it lies in [0, 4]. A ``context`` (a coarser,
more semantic pair of maps) adds ``context_weight * ||a(p) - b(q)||^2`` of the two maps' cells
under p and q (see ``_PatchCost``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_CHUNK = 1 << 18  # floats gathered per chunk (1 MB): stays in cache, yet few enough ops
_MATMUL_CHUNK = 1 << 24  # distance-matrix entries per brute-force matmul (64 MB)
_DESCRIPTOR_CELL_DIMS = 16  # cell projection behind the descriptors of ``dims`` (see _PatchCost)
_CONTEXT_DIMS = 16  # principal components kept of a context map's cells
_POWER_ITERATIONS = 4  # of the subspace iteration behind the principal axes


def _replicate_pad(x: Tensor, r: int) -> Tensor:
    return F.pad(x[None], (r, r, r, r), mode="replicate")[0] if r else x


def _patch_rows(x: Tensor, patch_size: int) -> Tensor:
    """[C, H, W] -> [H*W, C*patch_size**2]: each row a whole clamped patch."""
    return F.unfold(_replicate_pad(x, patch_size // 2)[None], patch_size)[0].T.contiguous()


def _principal_axes(a: Tensor, b: Tensor, dims: int) -> Tensor:
    """[D, dims] orthonormal axes of largest variance of the rows of ``a`` and ``b`` [N, D].

    By subspace iteration (Halko et al. 2011) on twice as many axes, from a fixed random start:
    for the deep context (D = 1024) the whole eigendecomposition of the covariance took 170 ms at
    512 px and this takes 45 ms, keeping 99.98% of the variance the exact axes keep. Where
    2 * dims >= D the iterated subspace is the whole space and the axes are exact.
    """
    x = torch.cat([a[:: max(1, a.shape[0] // 2048)], b[:: max(1, b.shape[0] // 2048)]])
    x = x - x.mean(0)
    generator = torch.Generator(x.device).manual_seed(0)
    basis = torch.randn(x.shape[1], min(2 * dims, x.shape[1]), generator=generator, device=x.device, dtype=x.dtype)
    for _ in range(_POWER_ITERATIONS):
        basis = torch.linalg.qr(x.T @ (x @ basis)).Q
    projected = x @ basis
    return basis @ torch.linalg.eigh(projected.T @ projected)[1][:, -min(dims, x.shape[1]) :]


def _projected_patches(a: Tensor, b: Tensor, patch_size: int, dims: int) -> tuple[Tensor, Tensor]:
    """Every clamped patch of ``a`` and ``b`` [C, H, W] projected onto the ``dims`` principal axes
    of all their patches, divided by ``patch_size``, as rows [H*W, dims]: the squared difference
    of two rows is then the projected distance (a mean over the patch's cells).

    The axes come from a sample of patches; the projection of every patch is one convolution,
    which never builds the [H*W, C*patch_size**2] matrix of all patches.
    """
    r, k = patch_size // 2, patch_size
    padded = [_replicate_pad(x, r) for x in (a, b)]
    samples = []
    for x, (_, h, w) in zip(padded, (a.shape, b.shape)):
        # The rows _principal_axes would keep of the full patch matrix: every n-th pixel.
        pix = torch.arange(0, h * w, max(1, h * w // 2048), device=x.device)
        d = torch.arange(k, device=x.device)
        ys, xs = (pix // w)[:, None, None] + d[:, None], (pix % w)[:, None, None] + d
        samples.append(x[:, ys, xs].transpose(0, 1).flatten(1))  # [n, C*k*k], F.unfold's order
    axes = _principal_axes(*samples, dims) / patch_size
    weight = axes.T.reshape(-1, a.shape[0], k, k)
    # In channels-last, oneDNN's native layout, the convolution is 3x faster on a CPU and its
    # output already lies in memory as the [H*W, dims] rows.
    return tuple(F.conv2d(x[None].contiguous(memory_format=torch.channels_last), weight)[0].flatten(1).T.contiguous()
                 for x in padded)


def shared_projection(a: Tensor, b: Tensor, dims: int = _CONTEXT_DIMS) -> tuple[Tensor, Tensor]:
    """Two maps [C, H, W] (of any sizes) projected onto the ``dims`` principal axes of all their cells."""
    axes = _principal_axes(a.flatten(1).T, b.flatten(1).T, dims)
    # A matrix product reads channels-last maps as they lie (einsum would copy them to [C, H*W] first).
    return tuple((axes.T @ x.flatten(1)).view(-1, *x.shape[1:]) for x in (a, b))


@dataclass
class _Side:
    """One feature map as the patch distance reads it."""

    width: int
    low: Tensor | None = None  # descriptors only: [H*W, dims (+ context dims)], the projected patch / patch_size, then the context
    rows: Tensor | None = None  # exact only: replicate-padded map, channel-last [(H+2r)*(W+2r), C]
    offsets: Tensor | None = None  # flat offsets in ``rows`` of the k*k cells around a patch centre
    centre: Tensor | None = None  # [H*W]: flat index in ``rows`` of each pixel
    norm: Tensor | None = None  # [H*W]: mean squared norm of each patch's cells
    context: Tensor | None = None  # exact only: [H*W, _CONTEXT_DIMS], the context under each pixel


def _exact_side(x: Tensor, r: int, context: Tensor | None) -> _Side:
    (_, h, w), dev = x.shape, x.device
    d = torch.arange(-r, r + 1, device=dev)
    ys, xs = torch.arange(h, device=dev)[:, None], torch.arange(w, device=dev)
    return _Side(
        width=w, context=context,
        rows=_replicate_pad(x, r).flatten(1).T.contiguous(),  # a gathered row is one feature vector
        offsets=(d[:, None] * (w + 2 * r) + d).flatten(),
        centre=((ys + r) * (w + 2 * r) + xs + r).flatten(),
        norm=_patch_norms(x, r).flatten(),
    )


class _PatchCost:
    """Patch distance of arbitrary (source pixel, target match) pairs, by gathers.

    Exact (``dims=None``): with replicate padding a clamped patch cell is a fixed flat-index offset
    from the patch centre, so one gather of ``k*k`` rows per pixel fetches a whole patch; the
    distance is expanded as ``|a|^2 + |b|^2 - 2 a.b`` with the squared-norm terms box-filtered
    once. (A lower bound from projected patches once screened the candidates first; it rejected
    1% of them, refining L4 at 512 and 1024 as well as searching L5 from random fields at 1600,
    and cost more than it saved.)

    Descriptors (``dims``): both maps' patches are projected onto principal axes, first each
    cell's channels, then the whole patch, and the distance is the projected one: ``dims``
    numbers per pixel in place of ``k*k*C``. On shallow layers a few axes hold most of the
    variance, and what the projection drops is mostly noise that exact matching would fit.

    Context (``context``: two maps [C', h', w'] of any size, e.g. relu5_1 of both images): their
    cells, projected onto shared principal axes and bilinearly resampled to the two grids, add
    ``context_weight * ||a(p) - b(q)||^2`` to every distance.
    Shallow features match texture wherever it looks alike (a tree's leaves, a cloud's edge); the
    context keeps each match on the part of the other image that means the same thing.
    """

    def __init__(self, source: Tensor, target: Tensor, patch_size: int, dims: int | None = None,
                 context: tuple[Tensor, Tensor] | None = None, context_weight: float = 1.0) -> None:
        if patch_size % 2 != 1:
            raise ValueError(f"patch_size must be odd, got {patch_size}")
        self.k2, self.exact, self.device = patch_size**2, dims is None, source.device
        ctx_a = ctx_b = None
        if context is not None:
            ca, cb = (c * context_weight**0.5 for c in shared_projection(*context))
            ctx_a, ctx_b = _resampled_rows(ca, source.shape[-2:]), _resampled_rows(cb, target.shape[-2:])
        if self.exact:
            r = patch_size // 2
            self.src, self.tgt = _exact_side(source, r, ctx_a), _exact_side(target, r, ctx_b)
            return
        low_a, low_b = _projected_patches(*shared_projection(source, target, _DESCRIPTOR_CELL_DIMS), patch_size, dims)
        if context is not None:
            # Appended to the descriptors: one gather serves the projected distance and the context.
            low_a, low_b = torch.cat([low_a, ctx_a], 1), torch.cat([low_b, ctx_b], 1)
        self.src, self.tgt = _Side(source.shape[-1], low_a), _Side(target.shape[-1], low_b)

    def swapped(self) -> "_PatchCost":
        """The same distance from target to source, sharing every precomputed array."""
        other = object.__new__(_PatchCost)
        other.k2, other.exact, other.device, other.src, other.tgt = self.k2, self.exact, self.device, self.tgt, self.src
        return other

    def __call__(self, pix: Tensor, qy: Tensor, qx: Tensor) -> Tensor:
        """Distance between source pixels ``pix`` (flat indices) and target pixels (qy, qx)."""
        a, b, q = self.src, self.tgt, qy * self.tgt.width + qx
        if not self.exact:
            return _row_distances(a.low, pix, b.low, q)
        ca, cb = a.centre[pix], b.centre[q]
        channels = a.rows.shape[1]
        dot = torch.empty(pix.numel(), dtype=a.rows.dtype, device=a.rows.device)
        step = max(1, _CHUNK // (self.k2 * channels))
        for s in range(0, pix.numel(), step):
            ga = a.rows.index_select(0, (ca[s : s + step, None] + a.offsets).flatten())
            gb = b.rows.index_select(0, (cb[s : s + step, None] + b.offsets).flatten())
            dot[s : s + step] = ga.mul_(gb).view(-1, self.k2 * channels).sum(1)
        dist = (a.norm[pix] + b.norm[q] - (2 / self.k2) * dot).clamp_min_(0)  # rounding can dip below zero
        if a.context is not None:
            dist += _row_distances(a.context, pix, b.context, q)
        return dist


def _row_distances(a: Tensor, rows_a: Tensor, b: Tensor, rows_b: Tensor) -> Tensor:
    """Squared distances between the rows ``a[rows_a]`` and ``b[rows_b]``.

    On a CPU, in chunks gathered into two reused buffers: gathering every row at once writes (and
    first touches) arrays as large as the maps, several times slower than working in cache. A GPU
    takes them in one go.
    """
    n, dims = rows_a.numel(), a.shape[1]
    step = max(1, n) if a.is_cuda else max(1, _CHUNK // dims)
    out = a.new_empty(n)
    buf_a, buf_b = a.new_empty(min(step, n), dims), b.new_empty(min(step, n), dims)
    for s in range(0, n, step):
        e = min(s + step, n)
        diff = torch.index_select(a, 0, rows_a[s:e], out=buf_a[: e - s])
        diff.sub_(torch.index_select(b, 0, rows_b[s:e], out=buf_b[: e - s]))
        torch.sum(diff.square_(), 1, out=out[s:e])
    return out


def _resampled_rows(x: Tensor, size: tuple[int, int]) -> Tensor:
    """[C, h, w] bilinearly resampled to ``size``, as [H*W, C] rows."""
    return F.interpolate(x[None], size=tuple(size), mode="bilinear", align_corners=False)[0].flatten(1).T.contiguous()


def jump_schedule(h: int, w: int, max_jump: int | None = None) -> list[int]:
    """Propagation distances, largest first: powers of two from ``max_jump`` (rounded down) to 1.

    The default ``max_jump`` is the largest power of two below ``max(h, w)``: jumps
    ``2^k, ..., 2, 1`` sum to ``2^(k+1) - 1 >= max(h, w) - 1``, so within one iteration a match
    can be handed, coherently shifted, from any pixel to any other (jump flooding).
    """
    if max_jump is None:
        max_jump = 1 << max(0, (max(h, w) - 1).bit_length() - 1)
    if max_jump < 1:
        raise ValueError(f"max_jump must be >= 1, got {max_jump}")
    return [1 << i for i in range(max_jump.bit_length() - 1, -1, -1)]


def _propagated(nnf: Tensor, dy: int, dx: int) -> Tensor:
    """Candidate field q(p) = nnf(p + delta) - delta; pixels whose neighbour is outside keep theirs."""
    cand = nnf.clone()
    h, w = nnf.shape[1:]
    dst_y, src_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    dst_x, src_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    shift = torch.tensor([dy, dx], device=nnf.device).view(2, 1, 1)
    cand[:, dst_y, dst_x] = nnf[:, src_y, src_x] - shift
    return cand


def patchmatch(
    source: Tensor,
    target: Tensor,
    init: Tensor | None = None,
    *,
    patch_size: int = 3,
    iterations: int = 4,
    search_radius: int | None = None,
    generator: torch.Generator | None = None,
    max_jump: int | None = None,
    dims: int | None = None,
    context: tuple[Tensor, Tensor] | None = None,
    context_weight: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Approximate NNF from ``source`` [C,H,W] to ``target`` [C,Ht,Wt].

    ``init`` is a starting NNF (e.g. from :func:`upsample_nnf`); None draws a random one from
    ``generator`` (which must live on the inputs' device). Each iteration propagates matches from
    the 4 neighbours at distances ``max_jump``, ..., 4, 2, 1 (jump flooding, as in Deep Image
    Analogy; the default spans the map, see :func:`jump_schedule`; ``max_jump=1`` is classic
    one-cell propagation), then random-searches around the current match with a radius halving
    from ``search_radius`` (default ``max(Ht, Wt)``) down to 1. Each jump distance costs 4
    candidate passes, so a smaller ``max_jump`` trades reach for speed. ``dims``: compare patches
    by their first ``dims`` principal components instead of exactly; ``context``: a pair of
    coarser maps whose disagreement under p and q, times ``context_weight``, adds to the distance
    (see ``_PatchCost``). Returns (nnf [2,H,W] long, distance [H,W]).
    """
    cost = _PatchCost(source, target, patch_size, dims, context, context_weight)
    search = dict(iterations=iterations, search_radius=search_radius, generator=generator, max_jump=max_jump)
    return _search(cost, source.shape[1:], target.shape[1:], init, **search)


def bidirectional_patchmatch(
    source: Tensor,
    target: Tensor,
    init_st: Tensor | None = None,
    init_ts: Tensor | None = None,
    *,
    patch_size: int = 3,
    dims: int | None = None,
    context: tuple[Tensor, Tensor] | None = None,
    context_weight: float = 1.0,
    **search,
) -> tuple[Tensor, Tensor, Tensor]:
    """Both NNFs, source->target and target->source, sharing one precomputed patch distance.

    ``dims`` and ``context`` (given as (source's, target's)) as in :func:`patchmatch`; ``search``
    takes its search options. Returns (nnf_st, nnf_ts, distance of nnf_st).
    """
    cost = _PatchCost(source, target, patch_size, dims, context, context_weight)
    st, dist = _search(cost, source.shape[1:], target.shape[1:], init_st, **search)
    ts, _ = _search(cost.swapped(), target.shape[1:], source.shape[1:], init_ts, **search)
    return st, ts, dist


def _search(
    cost: _PatchCost, size: tuple[int, int], target_size: tuple[int, int], init: Tensor | None, *,
    iterations: int = 4, search_radius: int | None = None, generator: torch.Generator | None = None,
    max_jump: int | None = None,
) -> tuple[Tensor, Tensor]:
    """PatchMatch's propagation and random search under ``cost`` (see :func:`patchmatch`)."""
    (h, w), (ht, wt) = size, target_size
    dev = cost.device
    if init is None:
        nnf = torch.stack([torch.randint(0, n, (h, w), generator=generator, device=dev) for n in (ht, wt)])
    elif init.shape != (2, h, w):
        raise ValueError(f"init must have shape (2, {h}, {w}), got {tuple(init.shape)}")
    else:
        nnf = init.to(device=dev, dtype=torch.long).clone(memory_format=torch.contiguous_format)
    limit = torch.tensor([ht - 1, wt - 1], device=dev).view(2, 1, 1)
    dist = cost(torch.arange(h * w, device=dev), nnf[0].flatten(), nnf[1].flatten())
    flat_nnf = nnf.view(2, -1)  # a view, so updates land in nnf

    def improve(cand: Tensor) -> None:
        cand = torch.minimum(cand.clamp_min(0), limit).view(2, -1)
        # unchanged candidates are common (coherent fields) and cannot be strictly better
        pix = (cand != flat_nnf).any(0).nonzero().flatten()
        d = cost(pix, cand[0, pix], cand[1, pix])
        better = d < dist[pix]
        pix = pix[better]
        flat_nnf[:, pix] = cand[:, pix]
        dist[pix] = d[better]

    radius = search_radius or max(ht, wt)
    jumps = jump_schedule(h, w, max_jump)
    for _ in range(iterations):
        for s in jumps:
            for dy, dx in ((0, s), (0, -s), (s, 0), (-s, 0)):
                if abs(dy) < h and abs(dx) < w:  # a long jump may fit along one side only
                    improve(_propagated(nnf, dy, dx))
        r = radius
        while r >= 1:
            improve(nnf + torch.randint(-r, r + 1, nnf.shape, generator=generator, device=dev))
            r //= 2
    return nnf, dist.view(h, w)


def upsample_nnf(
    nnf: Tensor,
    size: tuple[int, int],
    target_size: tuple[int, int],
    *,
    prev_target_size: tuple[int, int] | None = None,
) -> Tensor:
    """Nearest-upsample an NNF to source ``size`` and rescale its matches to ``target_size``.

    A child pixel keeps its position inside the parent cell, so a 2x upsample sends the 4
    children of p to the 4 children of nnf(p). The old target grid is ``prev_target_size``; by
    default it is assumed to have been scaled by the same factor as the source.
    """
    (h, w), (H, W), (Ht, Wt) = nnf.shape[1:], size, target_size
    dev = nnf.device
    sy, sx = (Ht / prev_target_size[0], Wt / prev_target_size[1]) if prev_target_size else (H / h, W / w)
    ys, xs = torch.arange(H, device=dev), torch.arange(W, device=dev)
    py, px = ys * h // H, xs * w // W
    # relative position of each child's centre inside its parent cell, in [0, 1)
    fy, fx = (ys + 0.5) * h / H - py, (xs + 0.5) * w / W - px
    parent = nnf[:, py[:, None], px[None, :]].to(torch.float64)
    y = ((parent[0] + fy[:, None]) * sy).floor().long().clamp_(0, Ht - 1)
    x = ((parent[1] + fx[None, :]) * sx).floor().long().clamp_(0, Wt - 1)
    return torch.stack([y, x])


def brute_force_nnf(source: Tensor, target: Tensor, *, patch_size: int = 3) -> tuple[Tensor, Tensor]:
    """Exact NNF under the patch distance, by chunked matmuls over all patch pairs.

    Memory is ``patch_size**2`` times the feature maps; meant for small maps and baselines.
    """
    best, sq_dist = _nearest_rows(_patch_rows(source, patch_size), _patch_rows(target, patch_size))
    return _as_field(best, target.shape[-1], source.shape[1:]), _as_distance(sq_dist, patch_size, source.shape[1:])


def exact_bidirectional(source: Tensor, target: Tensor, *, patch_size: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """Both exact NNFs, source->target and target->source, from one pass over all patch pairs.

    Each entry of the distance matrix serves both directions: its row minimum for one, its column
    minimum for the other. Two patches' inner product is the sum of their cells' inner products at
    the same offsets, a diagonal of the cells' similarity matrix: so the matrix product is taken
    over cells (C numbers each), not patches (C * patch_size**2), and the patch_size**2 diagonals
    are added. Returns (nnf_st, nnf_ts, distance of nnf_st), as :func:`bidirectional_patchmatch`.
    """
    r, p = patch_size // 2, patch_size
    (_, h, w), (_, ht, wt) = source.shape, target.shape
    cells_s, cells_t = _replicate_pad(source, r), _replicate_pad(target, r)  # clamped patches, as _patch_rows
    norm_s, norm_t = (_patch_norms(x, r) * p**2 for x in (source, target))  # sums over the patch's cells
    flat_t = cells_t.flatten(1)
    best_st = torch.empty(h * w, dtype=torch.long, device=source.device)
    sq_dist = torch.empty(h * w, dtype=source.dtype, device=source.device)
    best_ts = torch.zeros(ht * wt, dtype=torch.long, device=source.device)
    best_ts_dist = torch.full((ht * wt,), float("inf"), dtype=source.dtype, device=source.device)
    rows = max(1, _MATMUL_CHUNK // ((w + 2 * r) * flat_t.shape[1]) - 2 * r)  # source rows per chunk
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        sim = (cells_s[:, y0:y1 + 2 * r].flatten(1).T @ flat_t).view(y1 - y0 + 2 * r, w + 2 * r, ht + 2 * r, wt + 2 * r)
        d = norm_s[y0:y1, :, None, None] + norm_t
        for dy in range(p):
            for dx in range(p):
                d.sub_(sim[dy:dy + y1 - y0, dx:dx + w, dy:dy + ht, dx:dx + wt], alpha=2)
        d = d.view((y1 - y0) * w, ht * wt)
        row = d.min(1)
        best_st[y0 * w:y1 * w], sq_dist[y0 * w:y1 * w] = row.indices, row.values
        col = d.min(0)
        better = col.values < best_ts_dist
        best_ts_dist = torch.where(better, col.values, best_ts_dist)
        best_ts = torch.where(better, col.indices + y0 * w, best_ts)
    return _as_field(best_st, wt, (h, w)), _as_field(best_ts, w, (ht, wt)), _as_distance(sq_dist, patch_size, (h, w))


def _patch_norms(x: Tensor, r: int) -> Tensor:
    """Mean squared norm of the cells of every clamped (2r+1)^2 patch of x [C, H, W]: [H, W]."""
    return F.avg_pool2d(_replicate_pad(x.square().sum(0, keepdim=True), r)[None], 2 * r + 1, stride=1)[0, 0]


def _nearest_rows(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """For each row of ``a``, the index of its nearest row of ``b`` and the squared distance to it."""
    a_norm, b_norm = a.square().sum(1), b.square().sum(1)
    best = torch.empty(a.shape[0], dtype=torch.long, device=a.device)
    sq_dist = torch.empty(a.shape[0], dtype=a.dtype, device=a.device)
    step = max(1, _MATMUL_CHUNK // b.shape[0])
    for s in range(0, a.shape[0], step):
        # |a|^2 is constant per row: the row minimum does without it
        row = torch.addmm(b_norm, a[s : s + step], b.T, alpha=-2).min(1)
        best[s : s + step] = row.indices
        sq_dist[s : s + step] = row.values + a_norm[s : s + step]
    return best, sq_dist


def _as_field(best: Tensor, target_width: int, size: tuple[int, int]) -> Tensor:
    """Flat target indices as an NNF [2, H, W]."""
    return torch.stack([best // target_width, best % target_width]).view(2, *size)


def _as_distance(sq_dist: Tensor, patch_size: int, size: tuple[int, int]) -> Tensor:
    """Squared distances of whole patches as the mean over their cells, as ``_PatchCost`` gives them."""
    return (sq_dist / patch_size**2).clamp_min(0).view(*size)  # rounding can dip below zero for identical patches
