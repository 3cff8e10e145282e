"""Local linear colour model of He et al. 2019 (E = E_d + lambda_l E_l + lambda_nl E_nl), solved by PCG.

Per pixel p and channel c the output is T_c(p) = a_c(p) S_c(p) + b_c(p), and (a, b) minimise

    E = rho sum_p conf(p) |T(p) - G(p)|^2                                        data
      + sum_p sum_{q in N4(p)} w_pq (|a_p - a_q|^2 + |b_p - b_q|^2)             local smoothness
      + rho lambda_nonlocal sum_p sum_{q in NL(p)} w'_pq |T(p) - T(q)|^2          non-local consistency
      + rho lambda_detail sum_p (sd_S(p)^2 + delta^2) |a_p - a_0|^2                detail

- w_pq = lambda_local / (|l_p - l_q|^alpha + eps) are the weights of weighted-least-squares
  smoothing (Farbman et al. 2008) on the source's lightness l in [0, 1], as in the official
  implementation: ~10^3 in flat regions, ~lambda_local across strong edges. The coefficients are
  then nearly constant inside each region of the source, so T keeps the source's own detail and
  cannot copy the structure of the guidance (with weak weights, a = 1, b = G - S reproduces any
  guidance, the reference's structure included).
- rho is the number of working-resolution pixels that one cell of the solve grid stands for. The
  data, non-local and prior terms are sums over pixels and grow with it; the smoothness term is a
  Dirichlet energy, which does not change when a smooth field is resampled. Weighting the per-pixel
  terms by rho makes every level solve the same continuous energy (the official implementation
  likewise scales its data term by the pixel ratio).
- The detail term departs from the paper. A least-squares fit of a blurred target (the voted
  guidance) on a sharp source shrinks the slope a toward 0 (regression dilution): the source's
  detail and contrast are washed out where a is nearly constant per region. (a - 1) sd_S, with
  sd_S the source's standard deviation over 3x3 windows, is the detail the model adds or removes
  at p; the term makes that cost, so a departs from 1 only where the guidance's evidence outweighs
  it. It fades where the source is flat, where a cannot matter; delta^2 (delta, the noise floor)
  keeps a defined where a channel of the source is constant (a gray source's chroma). The official
  implementation instead starts each level's iterations from the local statistics ratio
  a = sd_G / sd_S and stops early; on this project's benchmark (``benchmarks/nct_quality.py``)
  a pull toward that ratio, or toward the ratio over wider windows, scored no better than this.
- A gray source has no chroma to transform: the paper's per-channel model would leave T_c = b_c,
  the guidance's chroma smoothed along the lightness. Its chroma channels are instead regressed
  on its lightness, S_c = l, as in colorization by optimisation (Levin et al. 2004: colour is
  locally a linear function of intensity). The source has no chroma contrast of its own to keep,
  so its detail weights keep only their floor delta^2 and a_0 = 0: a stays defined where the
  lightness is flat and is otherwise free (with the full term, the chroma that follows a leafy
  texture's lightness lost half its slope). On the colorize and restyle cases (6 photos) this
  bettered 2.96 -> 2.86 and 3.56 -> 3.45 (tests/test_nct.py has the texture).
- w'_pq = exp(-|S_p - S_q|^2 / (2 sigma^2)) over the k nearest pixels in colour within the same
  cluster of deep features (:mod:`colorizer.neighbors`).

E is quadratic and separable over channels: the normal equations of all channels are solved side
by side by one matrix-free conjugate gradient with per-channel step sizes, preconditioned by a
multigrid V-cycle (:mod:`colorizer.multigrid`); a channel leaves the iteration once it converges.
"""

import copy
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .guided_filter import box_filter
from .multigrid import BlockMultigrid, edges_from_links, grid_laplacian

log = logging.getLogger(__name__)

# One offset per unordered 4-neighbour pair: (dy, dx) with the second pixel at p + (dy, dx).
_OFFSETS = ((0, 1), (1, 0))


def _pair_slices(dy: int, dx: int) -> tuple[tuple, tuple]:
    """Index tuples (p, q) over [..., H, W] selecting all in-image pairs with q = p + (dy, dx)."""
    return (..., slice(0, -dy or None), slice(0, -dx or None)), (..., slice(dy, None), slice(dx, None))


def smoothness_weights(lightness: Tensor, lambda_local: float, alpha: float, eps: float) -> Tensor:
    """WLS link weights [4, H, W] from lightness [H, W] in [0, 1], laid out by :func:`edges_from_links`."""

    def link(step: Tensor) -> Tensor:
        return lambda_local / (step.abs().pow(alpha) + eps)

    wx = F.pad(link(lightness[:, 1:] - lightness[:, :-1]), (0, 1))
    wy = F.pad(link(lightness[1:] - lightness[:-1]), (0, 0, 0, 1))
    return edges_from_links(wx, wy)


def detail_weights(source: Tensor, delta: float) -> Tensor:
    """Weights [C, H, W] of the detail term: the source's local variance over 3x3 windows, plus delta^2."""
    return (box_filter(source.square(), 1) - box_filter(source, 1).square()).clamp_min(0) + delta**2


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


def energy(a: Tensor, b: Tensor, source: Tensor, guidance: Tensor, confidence: Tensor, edge: Tensor, *,
           detail: Tensor, lambda_detail: float, lambda_nonlocal: float = 2.0,
           neighbors: tuple[Tensor, Tensor] | None = None, rho: float = 1.0, slope_prior: float = 1.0) -> Tensor:
    """E (module docstring) for a, b [C, H, W]; edge from :func:`smoothness_weights`, detail from
    :func:`detail_weights`, ``slope_prior`` is a_0."""
    t = a * source + b
    e = rho * ((confidence * (t - guidance).square()).sum()
               + lambda_detail * (detail * (a - slope_prior).square()).sum())
    for (dy, dx), w in zip(_OFFSETS, edge):
        p, q = _pair_slices(dy, dx)
        e = e + (w[p] * ((a[p] - a[q]).square() + (b[p] - b[q]).square())).sum()
    if neighbors is not None:
        index, weight = neighbors
        flat = t.reshape(t.shape[0], -1).t()
        e = e + rho * lambda_nonlocal * (weight[..., None] * (flat[:, None] - flat[index]).square()).sum()
    return e


class _NormalEquations:
    """Hessian / 2 of E as an operator on x = (a, b) [2, C, H, W], with its preconditioner.

    ``fit`` [C, H, W] weighs |T - .|^2 per pixel (the data term, plus the non-local term's diagonal);
    ``adjacency`` (scaled by ``nonlocal_scale``) holds the non-local term's links; ``prior`` [C, H, W]
    weighs the detail term.
    """

    def __init__(self, source: Tensor, fit: Tensor, prior: Tensor, edge: Tensor, adjacency: Tensor | None,
                 nonlocal_scale: float) -> None:
        self.source, self.fit, self.prior, self.edge = source, fit, prior, edge
        self.adjacency, self.nonlocal_scale = adjacency, nonlocal_scale
        self.local_degree = edge.sum(0)
        # The local part of the Hessian (per-pixel 2x2 blocks in (a, b) plus the WLS Laplacian) is
        # what makes the system stiff; a multigrid V-cycle on it preconditions the whole.
        self.precondition = BlockMultigrid(fit * source.square() + prior, fit * source, fit, edge[0], edge[1])

    def __call__(self, x: Tensor) -> Tensor:
        a, b = x
        t = torch.addcmul(b, a, self.source)
        data = self.fit * t
        if self.adjacency is not None:
            nl = (self.adjacency @ t.reshape(t.shape[0], -1).t()).t().reshape(t.shape)
            data.sub_(nl, alpha=self.nonlocal_scale)
        out = grid_laplacian(x, self.edge, self.local_degree)
        out[0].addcmul_(self.source, data).addcmul_(self.prior, a)
        out[1].add_(data)
        return out

    def channels(self, keep: Tensor) -> "_NormalEquations":
        """The equations of the channels ``keep`` alone (channels do not interact; the links are shared)."""
        equations = copy.copy(self)
        equations.source, equations.fit, equations.prior = self.source[keep], self.fit[keep], self.prior[keep]
        equations.precondition = self.precondition.channels(keep)
        return equations


def fit_local_linear(source: Tensor, guidance: Tensor, confidence: Tensor, edge: Tensor, *,
                     detail: Tensor, lambda_detail: float, lambda_nonlocal: float = 2.0,
                     neighbors: tuple[Tensor, Tensor] | None = None, rho: float = 1.0,
                     init: tuple[Tensor, Tensor] | None = None, slope_prior: float = 1.0, max_iter: int = 300,
                     tol: float = 1e-2) -> tuple[Tensor, Tensor]:
    """Minimise E (module docstring) over a, b [C, H, W] by preconditioned conjugate gradient.

    source, guidance [C, H, W], confidence [H, W], edge [4, H, W] (from :func:`smoothness_weights`)
    and detail [C, H, W] (from :func:`detail_weights`) share a device and float dtype; neighbors is the
    (index, weight) pair of :func:`colorizer.neighbors.nonlocal_neighbors`; ``slope_prior`` is a_0, the
    slope the detail term pulls toward (module docstring). Iterates from init
    (default a = a_0, b = the offset of the local means) until, in every channel, the preconditioned residual norm
    sqrt(r^T M^-1 r) is below tol times that of the right-hand side, or for max_iter iterations.
    A channel stops iterating as soon as it meets tol: the channels' systems are independent.
    """
    conf = rho * confidence.expand_as(source)
    prior = rho * lambda_detail * detail
    fit, adjacency = conf, None
    if neighbors is not None:
        adjacency, nl_degree = _nonlocal_graph(neighbors[0], neighbors[1].to(source.dtype))
        fit = conf + rho * lambda_nonlocal * nl_degree.reshape(source.shape[1:])
    hessian = _NormalEquations(source, fit, prior, edge, adjacency, rho * lambda_nonlocal)

    def dot(u: Tensor, v: Tensor) -> Tensor:
        """Per-channel inner products, shaped [C, 1, 1] to scale [2, C, H, W] tensors."""
        return (u * v).sum((0, 2, 3))[:, None, None]

    tiny = torch.finfo(source.dtype).tiny
    rhs = torch.stack([source * conf * guidance + slope_prior * prior, conf * guidance])
    scale = dot(rhs, hessian.precondition(rhs))
    if init is None:
        init = (torch.full_like(source, slope_prior), box_filter(guidance, 1) - slope_prior * box_filter(source, 1))
    solution = torch.stack(init).to(source)
    x = solution.clone()
    r = rhs - hessian(x)
    d = hessian.precondition(r)
    rz = dot(r, d)
    active = torch.arange(source.shape[0], device=source.device)  # channels still iterating
    stopped = [max_iter] * source.shape[0]
    it = 0
    while it < max_iter:
        done = (rz <= tol**2 * scale).flatten()
        if bool(done.any()):
            solution[:, active[done]] = x[:, done]
            for c in active[done].tolist():
                stopped[c] = it
            if bool(done.all()):
                break
            # Converged channels leave the iteration: the later iterations cost only what is left.
            keep = (~done).nonzero().flatten()
            x, r, d, rz, scale, active = x[:, keep], r[:, keep], d[:, keep], rz[keep], scale[keep], active[keep]
            hessian = hessian.channels(keep)
        ad = hessian(d)
        alpha = rz / dot(d, ad).clamp(min=tiny)  # the clamps only guard against 0 / 0
        x.addcmul_(d, alpha)
        r.addcmul_(ad, alpha, value=-1)
        z = hessian.precondition(r)
        rz_new = dot(r, z)
        d = torch.addcmul(z, d, rz_new / rz.clamp(min=tiny))
        rz = rz_new
        it += 1
    else:  # max_iter reached: the channels still iterating end where they got
        solution[:, active] = x
    log.debug("fit_local_linear: %d PCG iterations at %dx%d (per channel: %s)", it, *source.shape[1:], stopped)
    return solution[0], solution[1]
