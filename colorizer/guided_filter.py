"""Guided image filtering (He, Sun & Tang 2013) and its fast upsampling variant (He & Sun 2015).

All maps are [C, H, W] tensors. The linear coefficients are estimated in float64: (co)variances
are differences of box means of prefix sums (E[I^2] - E[I]^2), which lose most of their digits
in float32 when eps is small. That work only ever happens at the (low) filtering resolution.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def _window_sum(x: Tensor, r: int, dim: int) -> Tensor:
    """Sum over [i - r, i + r] along `dim`, clipped at the borders (r < size), from prefix sums."""
    n = x.shape[dim]
    csum = x.cumsum(dim)
    out = torch.empty_like(csum)
    # sum_i = csum[min(i + r, n - 1)] - csum[i - r - 1] (the latter only when i - r - 1 >= 0).
    out.narrow(dim, 0, n - r).copy_(csum.narrow(dim, r, n - r))
    out.narrow(dim, n - r, r).copy_(csum.narrow(dim, n - 1, 1).expand_as(out.narrow(dim, n - r, r)))
    out.narrow(dim, r + 1, n - r - 1).sub_(csum.narrow(dim, 0, n - r - 1))
    return out


def _window_count(n: int, r: int, x: Tensor) -> Tensor:
    """Number of in-image positions in each clipped window [i - r, i + r], in x's dtype."""
    i = torch.arange(n, device=x.device)
    return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(x.dtype)


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over the (2r+1)^2 window around every pixel of x [..., H, W] (O(1) in r), clipped at borders."""
    h, w = x.shape[-2:]
    ry, rx = min(radius, h - 1), min(radius, w - 1)
    count = _window_count(h, ry, x)[:, None] * _window_count(w, rx, x)
    return _window_sum(_window_sum(x, rx, -1), ry, -2).div_(count)


def _linear_coefficients(guide: Tensor, src: Tensor, radius: int, eps: float) -> tuple[Tensor, Tensor]:
    """Window-averaged coefficients A [Cg, K, h, w], B [K, h, w] (src's dtype), src ~ sum_i A_i guide_i + B."""
    dtype, c = src.dtype, guide.shape[0]
    guide, src = guide.double(), src.double()
    mean_i = box_filter(guide, radius)
    mean_p = box_filter(src, radius)
    cov_ip = box_filter(guide[:, None] * src[None], radius) - mean_i[:, None] * mean_p[None]
    # The guide covariance is symmetric: filter only its upper triangle, then mirror it.
    iu, ju = torch.triu_indices(c, c, device=guide.device)
    upper = box_filter(guide[iu] * guide[ju], radius) - mean_i[iu] * mean_i[ju]
    slot = torch.zeros(c, c, dtype=torch.long, device=guide.device)
    slot[iu, ju] = slot[ju, iu] = torch.arange(len(iu), device=guide.device)
    sigma = upper[slot] + eps * torch.eye(c, dtype=upper.dtype, device=upper.device)[..., None, None]
    if c == 1:
        a = cov_ip / sigma
    elif c == 3:
        # Inverse of the symmetric 3x3 covariance: its columns are cross products of its rows.
        s0, s1, s2 = sigma
        cof = torch.stack([torch.linalg.cross(s1, s2, dim=0), torch.linalg.cross(s2, s0, dim=0),
                           torch.linalg.cross(s0, s1, dim=0)], dim=1)
        det = (s0 * cof[:, 0]).sum(0)
        a = torch.einsum("ijhw,jkhw->ikhw", cof, cov_ip) / det
    else:
        raise ValueError(f"guide must have 1 or 3 channels, got {c}")
    b = mean_p - (a * mean_i[:, None]).sum(0)
    return box_filter(a.to(dtype), radius), box_filter(b.to(dtype), radius)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Edge-preserving filter of src [K, H, W] guided by guide [1 or 3, H, W] (colour version for 3)."""
    a, b = _linear_coefficients(guide, src, radius, eps)
    return torch.einsum("ikhw,ihw->khw", a, guide.to(a.dtype)) + b


def _bilinear_taps(n_in: int, n_out: int) -> tuple[Tensor, Tensor]:
    """Lower source row and weight of the next one (on the CPU), for bilinear resampling n_in -> n_out.

    Same sampling convention as F.interpolate(..., align_corners=False).
    """
    pos = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = pos.floor().long().clamp(max=n_in - 1)
    return i0, pos - i0


def guided_upsample(guide: Tensor, src: Tensor, radius: int, eps: float, chunk_pixels: int | None = 1 << 16) -> Tensor:
    """Fast guided upsampling of a low-res map src [K, h, w] to the resolution of guide [Cg, H, W].

    The coefficients are fitted against the area-downsampled guide (radius in low-res pixels),
    upsampled bilinearly and applied to the full-resolution guide. A large output goes through
    bands of output rows that share the same two low-res source rows (at most `chunk_pixels`
    pixels each): the vertical interpolation is then a broadcast, not a gather, and memory stays
    at about the size of the output. An output at most twice the low-res size per side (bands of
    one or two rows, where a band's overhead outweighs its work) or ``chunk_pixels=None`` is
    upsampled in one go.
    """
    (cg, height, width), (k, h, w) = guide.shape, src.shape
    guide_lo = F.interpolate(guide[None], size=(h, w), mode="area")[0]
    a, b = _linear_coefficients(guide_lo, src, radius, eps)
    coef = torch.cat([a.reshape(cg * k, h, w), b]).to(guide.dtype)
    if chunk_pixels is None or height * width <= 4 * h * w:
        up = F.interpolate(coef[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        return torch.einsum("ikhw,ihw->khw", up[:cg * k].reshape(cg, k, height, width), guide) + up[cg * k:]
    i0, t = _bilinear_taps(h, height)
    t = t.to(guide)[:, None]
    band_starts = (torch.nonzero(i0[1:] != i0[:-1]).flatten() + 1).tolist()
    i0 = i0.tolist()
    rows = max(1, chunk_pixels // width)
    out = torch.empty(k, height, width, dtype=guide.dtype, device=guide.device)
    for s, e in zip([0] + band_starts, band_starts + [height]):
        lo, hi = i0[s], min(i0[s] + 1, h - 1)
        pair = F.interpolate(coef[None, :, [lo, hi]], size=(2, width), mode="bilinear", align_corners=False)[0]
        base, step = pair[:, 0:1], pair[:, 1:2] - pair[:, 0:1]
        for y0 in range(s, e, rows):
            y1 = min(y0 + rows, e)
            up = torch.addcmul(base, step, t[y0:y1])
            up_a = up[:cg * k].reshape(cg, k, y1 - y0, width)
            res = out[:, y0:y1]
            res.copy_(up[cg * k:])
            for i in range(cg):
                res.addcmul_(up_a[i], guide[i, None, y0:y1])
    return out
