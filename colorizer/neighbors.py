"""Non-local neighbourhoods for the colour-transfer energy of He et al. 2019 (its E_nl term).

Pixels are grouped by k-means on deep features; inside each group every pixel is linked to
its k nearest pixels in Lab colour. Exact kNN is quadratic in the group size, so we use
shifted space-filling curves (Chan 1998; Liao et al. 2001): pixels are sorted by
(cluster, Morton code of quantised colour) for a few diagonally shifted copies of the colour
grid; the pixels within a small window of each sorted order are the candidates, and the k
closest of those (exact distances, duplicates removed) are kept. One Z-order alone misses
neighbours across the boundaries of its octree cells; the shifted copies put such pairs in
a common cell of some curve.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from .guided_filter import guided_upsample

_BITS = 16  # per colour coordinate: 3 * 16 Morton bits + cluster id fit in an int64


def _nearest_center(x: Tensor, centers: Tensor) -> Tensor:
    return (centers.square().sum(1) - 2 * x @ centers.t()).argmin(1)


def _kmeans(x: Tensor, clusters: int, iters: int, generator: torch.Generator) -> Tensor:
    """Labels [n] of k-means (k-means++ seeding, then Lloyd iterations) on the rows of x [n, d]."""
    first = torch.randint(x.shape[0], (1,), generator=generator, device=x.device)
    centers = x[first]
    d2 = (x - centers).square().sum(1)
    for _ in range(1, clusters):
        # The tiny floor keeps sampling defined when fewer distinct points than clusters remain.
        pick = torch.multinomial(d2 + 1e-12, 1, generator=generator)
        centers = torch.cat([centers, x[pick]])
        d2 = torch.minimum(d2, (x - x[pick]).square().sum(1))
    for _ in range(iters):
        labels = _nearest_center(x, centers)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=clusters).unsqueeze(1)
        centers = torch.where(counts > 0, sums / counts.clamp(min=1), centers)
    return _nearest_center(x, centers)


def _first_argmax(x: Tensor) -> Tensor:
    """``x.argmax(0)`` of x [K, H, W] (the first of equal maxima), by a running maximum over the K maps:
    on a CPU torch's reduction over the outer dimension took 70-140 ms for ten 768x1024 maps, this 9-18."""
    best, index = x[0].clone(), torch.zeros(x.shape[1:], dtype=torch.long, device=x.device)
    for k in range(1, x.shape[0]):
        index.masked_fill_(x[k] > best, k)
        torch.maximum(best, x[k], out=best)
    return index


def _spread_bits(v: Tensor) -> Tensor:
    """Move bit i of v (< 2^21) to bit 3i, so that three spread coordinates interleave."""
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    return (v | (v << 2)) & 0x1249249249249249


def _zorder_knn(colors: Tensor, labels: Tensor, k: int, window: int, shift: float) -> tuple[Tensor, Tensor]:
    """k nearest among the `window` pixels before and after each pixel in one shifted Z-order.

    colors [3, N], labels [N]. Returns squared distances and indices [N, k] (inf and -1 where
    fewer than k candidates of the same cluster exist). Distances are computed on the sorted
    arrays, where the candidates at a fixed offset are a shifted slice, not a gather. The
    results are laid out a pixel per row, so that reordering them moves whole rows.
    """
    n = colors.shape[1]
    lo = colors.min(1, keepdim=True).values
    span = (colors.max(1, keepdim=True).values - lo).max().clamp(min=1e-12)
    # Coordinates use the lower half of the grid so that the shifted copy still fits in it.
    grid = ((colors - lo) / span * (2 ** (_BITS - 1) - 1)).long() + int(shift * 2 ** (_BITS - 1))
    key = (labels << (3 * _BITS)) | _spread_bits(grid[0]) | (_spread_bits(grid[1]) << 1) | (_spread_bits(grid[2]) << 2)
    order = torch.argsort(key, stable=True)
    xs, ls, pixel = colors[:, order], labels[order], order.int()  # int32 halves the cost of deduplication
    d2 = torch.full((2 * window, n), float("inf"), dtype=colors.dtype, device=colors.device)
    candidate = torch.full((2 * window, n), -1, dtype=torch.int32, device=colors.device)
    for o in range(1, min(window, n - 1) + 1):
        dist = (xs[:, o:] - xs[:, :-o]).square().sum(0).masked_fill(ls[o:] != ls[:-o], float("inf"))
        d2[window + o - 1, :-o], candidate[window + o - 1, :-o] = dist, pixel[o:]  # neighbour at +o
        d2[window - o, o:], candidate[window - o, o:] = dist, pixel[:-o]  # the same pairs seen from the other end
    d2, col = d2.t().topk(k, dim=1, largest=False, sorted=False)
    index = candidate.t().gather(1, col).masked_fill_(torch.isinf(d2), -1)
    # Back from sorted positions to pixels.
    rank = torch.empty_like(order).index_put_((order,), torch.arange(n, device=colors.device))
    return d2.index_select(0, rank), index.index_select(0, rank)


def feature_clusters(features: Tensor, clusters: int = 10, *, iters: int = 10,
                     generator: torch.Generator | None = None) -> Tensor:
    """k-means labels [h, w] of the cells of deep features [C, h, w] (each cell L2-normalised).

    Computed once per image: every level's non-local neighbourhoods use the same clusters.
    The default generator is seeded with 0, so results are deterministic.
    """
    c, h, w = features.shape
    if generator is None:
        generator = torch.Generator(device=features.device).manual_seed(0)
    cells = F.normalize(features.reshape(c, -1).t().float(), dim=1)
    return _kmeans(cells, min(clusters, h * w), iters, generator).reshape(h, w)


def nonlocal_neighbors(clusters: Tensor, colors: Tensor, *, k: int = 8, sigma: float = 0.1, window: int = 6,
                       shifts: int = 3) -> tuple[Tensor, Tensor]:
    """k approximate nearest colour neighbours of every pixel within its deep-feature cluster.

    clusters [h, w] are labels from :func:`feature_clusters` (upsampled guided by the colours) and colors
    [3, H, W] the colours at the solve resolution (normalised Lab). The kNN search looks at
    `window` pixels on each side in `shifts` Z-orders, shifted by j / shifts of the colour range
    (odd `shifts`: a dyadic shift such as 1/2 leaves the finer octree levels unchanged). Returns
    index [H*W, k] (flat pixel indices, never the pixel itself) and weight [H*W, k] =
    exp(-d^2 / (2 sigma^2)) with d the colour distance; slots left empty because a cluster has
    too few pixels point at the pixel itself with weight 0.
    """
    if 2 * window < k or shifts % 2 == 0:
        raise ValueError("need 2 * window >= k and an odd number of shifts")
    _, height, width = colors.shape
    if clusters.shape != (height, width):
        # Upsampled along the image's edges, not the feature grid's: nearest upsampling would cut
        # clusters into blocks of the cell size, and the non-local term would print those blocks.
        one_hot = F.one_hot(clusters, int(clusters.max()) + 1).permute(2, 0, 1).to(colors.dtype)
        clusters = _first_argmax(guided_upsample(colors, one_hot, radius=1, eps=1e-3))
    labels = clusters.flatten()

    pix = colors.reshape(3, -1)
    found = [_zorder_knn(pix, labels, k, window, j / shifts) for j in range(shifts)]
    d2 = torch.cat([d for d, _ in found], dim=1)
    index = torch.cat([i for _, i in found], dim=1)
    # A pixel found by several curves must count once: drop it from all lists but the first.
    for j in range(1, shifts):
        current = index[:, j * k:(j + 1) * k]
        repeat = torch.zeros_like(current, dtype=torch.bool)
        for e in range(j * k):
            repeat |= current == index[:, e:e + 1]
        d2[:, j * k:(j + 1) * k].masked_fill_(repeat, float("inf"))
    d2, slot = d2.topk(k, dim=1, largest=False, sorted=False)
    index = index.gather(1, slot)
    empty = torch.isinf(d2)
    index = torch.where(empty, torch.arange(pix.shape[1], device=pix.device)[:, None], index.long())
    weight = torch.exp(-d2 / (2 * sigma**2)).masked_fill(empty, 0.0)
    return index, weight
