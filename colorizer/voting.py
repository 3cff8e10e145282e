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


def _coherence_votes(rows: Tensor, size: tuple[int, int], target_size: tuple[int, int], nnf: Tensor, r: int) -> Tensor:
    """Each source patch at p votes rows(nnf(p) + d) onto p + d, |d| <= r: the sums per source pixel [H*W, K].

    The source grid is regular, so for each offset d the votes are a gather from the target and a
    shifted addition on the source (into a frame of r cells, folded back onto the border pixels
    the clamped cells stand for): 4-5x faster on a CPU than one scatter of every vote.
    """
    (h, w), (ht, wt) = size, target_size
    frame = rows.new_zeros(h + 2 * r, w + 2 * r, rows.shape[1])
    for dy in range(-r, r + 1):
        ty = (nnf[0] + dy).clamp_(0, ht - 1) * wt
        for dx in range(-r, r + 1):
            votes = rows.index_select(0, (ty + (nnf[1] + dx).clamp_(0, wt - 1)).flatten())
            frame[r + dy:r + dy + h, r + dx:r + dx + w] += votes.view(h, w, -1)
    frame[r] += frame[:r].sum(0)
    frame[r + h - 1] += frame[r + h:].sum(0)
    frame[:, r] += frame[:, :r].sum(1)
    frame[:, r + w - 1] += frame[:, r + w:].sum(1)
    return frame[r:r + h, r:r + w].reshape(h * w, -1)


def _completeness_votes(acc: Tensor, size: tuple[int, int], rows: Tensor, target_size: tuple[int, int],
                        nnf: Tensor, r: int) -> None:
    """Each target patch at q votes rows(q + d) onto nnf(q) + d on the source, |d| <= r, added to acc [H*W, K]."""
    (h, w), (ht, wt) = size, target_size
    d = torch.arange(-r, r + 1, device=acc.device)
    dy, dx = d.repeat_interleave(2 * r + 1)[:, None], d.repeat(2 * r + 1)[:, None]
    ys, xs = torch.arange(ht, device=acc.device), torch.arange(wt, device=acc.device)
    qy, qx = ys.repeat_interleave(wt), xs.repeat(ht)
    # all patch cells at once: [cells, pixels] index tensors, a single gather and scatter
    sy, sx = (nnf[0].flatten() + dy).clamp_(0, h - 1), (nnf[1].flatten() + dx).clamp_(0, w - 1)
    ty, tx = (qy + dy).clamp_(0, ht - 1), (qx + dx).clamp_(0, wt - 1)
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
    acc = _coherence_votes(rows / (h * w), (h, w), (ht, wt), nnf_st, r)
    if nnf_ts is not None and completeness > 0:
        _completeness_votes(acc, (h, w), rows * (completeness / (ht * wt)), (ht, wt), nnf_ts, r)
    # every source pixel holds at least its own coherence vote, so the weight is positive
    return (acc[:, :k] / acc[:, k:]).T.reshape(k, h, w)
