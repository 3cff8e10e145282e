"""Local linear colour model of He et al. 2019 (E = E_d + lambda_l E_l + lambda_nl E_nl), solved by PCG.

Per pixel p and Lab channel c the output is T_c(p) = a_c(p) S_c(p) + b_c(p), and (a, b) minimise

    E = sum_p conf(p) |T(p) - G(p)|^2
      + lambda_local    sum_p sum_{q in N8(p)} w_pq (|a_p - a_q|^2 + |b_p - b_q|^2)
      + lambda_nonlocal sum_p sum_{q in NL(p)} w'_pq |T(p) - T(q)|^2
      + eps sum_p |a_p - 1|^2,

with w_pq = exp(-|S(p) - S(q)|^2 / (2 sigma^2)). As in the paper the local sum runs over every
pixel and each of its 8 neighbours, so an unordered pair appears twice. E is quadratic and
separable over channels: the three normal-equation systems are solved side by side by one
matrix-free conjugate gradient with per-channel step sizes.
"""

import logging
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

# One offset per unordered 8-neighbour pair: (dy, dx) with the second pixel at p + (dy, dx).
_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _pair_slices(dy: int, dx: int) -> tuple[tuple, tuple]:
    """Index tuples (p, q) over [..., H, W] selecting all in-image pairs with q = p + (dy, dx)."""
    rows_p, rows_q = slice(0, -dy or None), slice(dy, None)
    cols_p, cols_q = (slice(0, -dx or None), slice(dx, None)) if dx >= 0 else (slice(-dx, None), slice(0, dx))
    return (..., rows_p, cols_p), (..., rows_q, cols_q)


def _edge_weights(source: Tensor, sigma: float) -> Tensor:
    """Weights [8, H, W] towards the neighbour at +offset (first 4) and -offset (last 4), 0 off-image."""
    edge = source.new_zeros(8, *source.shape[1:])
    for i, (dy, dx) in enumerate(_OFFSETS):
        p, q = _pair_slices(dy, dx)
        w = torch.exp(-(source[p] - source[q]).square().sum(0) / (2 * sigma**2))
        edge[i][p] = w
        edge[i + 4][q] = w
    return edge


def _laplacian(x: Tensor, edge: Tensor, degree: Tensor) -> Tensor:
    """Graph Laplacian of the weighted 8-neighbour grid (degree = edge.sum(0)) applied to x [..., H, W]."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    out = x * degree
    for i, (dy, dx) in enumerate(_OFFSETS):
        out.addcmul_(edge[i], padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w], value=-1)
        out.addcmul_(edge[i + 4], padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w], value=-1)
    return out


def _nonlocal_graph(index: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetrised kNN adjacency W + W^T as a CSR matrix [N, N], and its row sums [N].

    The half-gradient of sum_p sum_j weight[p, j] |t_p - t_index[p, j]|^2 is then
    degree * t - adjacency @ t, one sparse product per CG iteration. Row p of the matrix
    holds p's own k links followed by the links pointing at p; only the latter need sorting.
    """
    n, k = index.shape
    links, w = index.flatten(), weight.flatten()
    targets, origin = torch.sort(links.int())
    targets = targets.long()
    in_count = torch.bincount(links, minlength=n)
    crow = torch.zeros(n + 1, dtype=torch.long, device=index.device)
    crow[1:] = (in_count + k).cumsum(0)
    # Sorted incoming link i of row r goes to crow[r] + k + (i - first sorted link of r).
    first = in_count.cumsum(0) - in_count
    in_pos = (crow[:-1] + k - first)[targets] + torch.arange(links.numel(), device=index.device)
    out_pos = (crow[:-1, None] + torch.arange(k, device=index.device)).flatten()
    cols = torch.empty(2 * links.numel(), dtype=torch.int32, device=index.device)
    vals = torch.empty(2 * links.numel(), dtype=weight.dtype, device=index.device)
    cols[out_pos], vals[out_pos] = links.int(), w
    cols[in_pos], vals[in_pos] = (origin // k).int(), w[origin]
    degree = weight.sum(1).index_add_(0, links, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        adjacency = torch.sparse_csr_tensor(crow.int(), cols, vals, (n, n))
    return adjacency, degree


def energy(a: Tensor, b: Tensor, source: Tensor, guidance: Tensor, confidence: Tensor, *,
           lambda_local: float = 0.125, lambda_nonlocal: float = 2.0,
           neighbors: tuple[Tensor, Tensor] | None = None, sigma: float = 0.1, eps: float = 1e-4) -> Tensor:
    """Value of E (module docstring) for coefficients a, b [3, H, W]."""
    t = a * source + b
    e = (confidence * (t - guidance).square()).sum() + eps * (a - 1).square().sum()
    for (dy, dx), w in zip(_OFFSETS, _edge_weights(source, sigma)):
        p, q = _pair_slices(dy, dx)
        e = e + 2 * lambda_local * (w[p] * ((a[p] - a[q]).square() + (b[p] - b[q]).square())).sum()
    if neighbors is not None:
        index, weight = neighbors
        flat = t.reshape(3, -1).t()
        e = e + lambda_nonlocal * (weight[..., None] * (flat[:, None] - flat[index]).square()).sum()
    return e


def fit_local_linear(source: Tensor, guidance: Tensor, confidence: Tensor, *,
                     lambda_local: float = 0.125, lambda_nonlocal: float = 2.0,
                     neighbors: tuple[Tensor, Tensor] | None = None, sigma: float = 0.1, eps: float = 1e-4,
                     init: tuple[Tensor, Tensor] | None = None, max_iter: int = 200,
                     tol: float = 2e-2) -> tuple[Tensor, Tensor]:
    """Minimise E (module docstring) over a, b [3, H, W] by preconditioned conjugate gradient.

    source, guidance [3, H, W] and confidence [H, W] share a device and float dtype;
    neighbors is the (index, weight) pair of nonlocal_neighbors. Iterates from init (default
    a = 1, b = 0) until, in every channel, the preconditioned residual norm sqrt(r^T M^-1 r)
    is below tol times that of the right-hand side, or for max_iter iterations.
    """
    conf = confidence.expand_as(source)
    edge = 2 * lambda_local * _edge_weights(source, sigma)
    local_degree = edge.sum(0)
    fit = conf
    if neighbors is not None:
        adjacency, nl_degree = _nonlocal_graph(neighbors[0], neighbors[1].to(source.dtype))
        fit = conf + lambda_nonlocal * nl_degree.reshape(source.shape[1:])

    def apply(x: Tensor) -> Tensor:
        """Hessian / 2 of E times x = (a, b) [2, 3, H, W]."""
        a, b = x
        t = torch.addcmul(b, a, source)
        data = fit * t
        if neighbors is not None:
            data.sub_((adjacency @ t.reshape(3, -1).t()).t().reshape(t.shape), alpha=lambda_nonlocal)
        out = _laplacian(x, edge, local_degree)
        out[0].addcmul_(source, data).add_(a, alpha=eps)
        out[1].add_(data)
        return out

    # Block-Jacobi: the per-pixel 2x2 blocks in (a, b) couple strongly through S, invert them exactly.
    d_aa = fit * source.square() + local_degree + eps
    d_ab = fit * source
    d_bb = fit + local_degree
    det = (d_aa * d_bb - d_ab.square()).clamp(min=torch.finfo(source.dtype).tiny)
    inv_aa, inv_ab, inv_bb = d_bb / det, -d_ab / det, d_aa / det

    def precondition(r: Tensor) -> Tensor:
        z = torch.empty_like(r)
        torch.addcmul(inv_aa * r[0], inv_ab, r[1], out=z[0])
        torch.addcmul(inv_bb * r[1], inv_ab, r[0], out=z[1])
        return z

    def dot(u: Tensor, v: Tensor) -> Tensor:
        """Per-channel inner products, shaped [3, 1, 1] to scale [2, 3, H, W] tensors."""
        return (u * v).sum((0, 2, 3))[:, None, None]

    tiny = torch.finfo(source.dtype).tiny
    rhs = torch.stack([source * conf * guidance + eps, conf * guidance])
    scale = dot(rhs, precondition(rhs))
    x = torch.stack(init if init is not None else (torch.ones_like(source), torch.zeros_like(source))).to(source)
    r = rhs - apply(x)
    d = precondition(r)
    rz = dot(r, d)
    it = 0
    while it < max_iter and not bool((rz <= tol**2 * scale).all()):
        ad = apply(d)
        alpha = rz / dot(d, ad).clamp(min=tiny)  # 0 for channels that converged exactly (d = 0)
        x.addcmul_(d, alpha)
        r.addcmul_(ad, alpha, value=-1)
        z = precondition(r)
        rz_new = dot(r, z)
        d = torch.addcmul(z, d, rz_new / rz.clamp(min=tiny))
        rz = rz_new
        it += 1
    log.debug("fit_local_linear: %d PCG iterations at %dx%d, relative residual %s", it, *source.shape[1:],
              (rz / scale).sqrt().flatten().tolist())
    return x[0], x[1]
