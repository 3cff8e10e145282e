"""Bidirectional-similarity voting (Simakov et al. 2008), as used by He et al. (TOG 2019).

An image on the source grid is rebuilt from a target image through nearest-neighbour fields
(``long`` [2, H, W] of absolute (y, x) matches, see :mod:`colorizer.patchmatch`). Every matched
pair of patches votes, cell by cell, the target colour onto the source pixel under it.

Border convention: as in the patch distance, patch cells are clamped into their image (replicate
borders), so each patch casts exactly ``patch_size**2`` votes and a border pixel also receives
the votes of the clamped cells that fall outside the image.
"""

from __future__ import annotations

import torch
from torch import Tensor


def warp(target_image: Tensor, nnf: Tensor) -> Tensor:
    """Per-pixel lookup: ``target_image`` [K, Ht, Wt] read at ``nnf`` [2, H, W] -> [K, H, W]."""
    return target_image[:, nnf[0], nnf[1]]


def _grid(h: int, w: int, device: torch.device) -> Tensor:
    """The identity field [2, h, w]."""
    ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


def _splat(
    acc: Tensor, size: tuple[int, int], rows: Tensor, target_size: tuple[int, int],
    on_source: Tensor, on_target: Tensor, r: int,
) -> None:
    """Each pair (p on the source grid, q on the target) votes rows(q+d) onto acc(p+d), |d| <= r."""
    (h, w), (ht, wt) = size, target_size
    d = torch.arange(-r, r + 1, device=acc.device)
    dy, dx = d.repeat_interleave(2 * r + 1)[:, None], d.repeat(2 * r + 1)[:, None]
    # all patch cells at once: [cells, pixels] index tensors, a single gather and scatter
    sy, sx = (on_source[0].flatten() + dy).clamp_(0, h - 1), (on_source[1].flatten() + dx).clamp_(0, w - 1)
    ty, tx = (on_target[0].flatten() + dy).clamp_(0, ht - 1), (on_target[1].flatten() + dx).clamp_(0, wt - 1)
    acc.index_add_(0, (sy * w + sx).flatten(), rows.index_select(0, (ty * wt + tx).flatten()))


def bds_vote(
    target_image: Tensor,
    nnf_st: Tensor,
    nnf_ts: Tensor | None = None,
    *,
    completeness: float = 2.0,
    patch_size: int = 3,
) -> Tensor:
    """Rebuild an image [K, H, W] on the source grid from ``target_image`` [K, Ht, Wt].

    Coherence: every source patch at p votes the target patch at ``nnf_st(p)`` [2, H, W].
    Completeness (if ``nnf_ts`` [2, Ht, Wt] is given): every target patch at q votes itself onto
    the source patch at ``nnf_ts(q)``. Each pixel gets the weighted mean of its votes, coherence
    votes weighted 1/(H*W) and completeness votes ``completeness``/(Ht*Wt).
    """
    k, ht, wt = target_image.shape
    h, w = nnf_st.shape[1:]
    r = patch_size // 2
    # channel-last rows with a trailing 1, so one scatter sums both the votes and their weights
    rows = torch.cat([target_image.flatten(1).T, target_image.new_ones(ht * wt, 1)], 1)
    acc = target_image.new_zeros(h * w, k + 1)
    _splat(acc, (h, w), rows / (h * w), (ht, wt), _grid(h, w, nnf_st.device), nnf_st, r)
    if nnf_ts is not None and completeness > 0:
        _splat(acc, (h, w), rows * (completeness / (ht * wt)), (ht, wt), nnf_ts, _grid(ht, wt, nnf_ts.device), r)
    # every source pixel holds at least its own coherence vote, so the weight is positive
    return (acc[:, :k] / acc[:, k:]).T.reshape(k, h, w)
