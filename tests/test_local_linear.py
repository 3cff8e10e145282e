import logging
import math

import pytest
import torch

from colorizer.config import TransferConfig
from colorizer.local_linear import detail_weights, energy, fit_local_linear, smoothness_weights
from colorizer.neighbors import feature_clusters, nonlocal_neighbors

D = torch.float64
CONSTANTS = TransferConfig()  # the method's WLS exponent and floor, and the detail term's noise floor


def small_problem(h: int = 5, w: int = 6, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(3, h, w, generator=g, dtype=D)
    source[1:] -= 0.5
    guidance = torch.rand(3, h, w, generator=g, dtype=D)
    confidence = torch.rand(h, w, generator=g, dtype=D)
    confidence[confidence < 0.3] = 0
    index = torch.randint(0, h * w, (h * w, k), generator=g)
    weight = torch.rand(h * w, k, generator=g, dtype=D)
    return source, guidance, confidence, (index, weight)


def dense_reference(source, guidance, confidence, neighbors, *, lambda_local, lambda_nonlocal, lambda_detail, rho,
                    slope_prior=1.0, alpha=CONSTANTS.wls_alpha, eps=CONSTANTS.wls_eps):
    """Least-squares rows of E written out term by term; unknowns ordered like stack([a, b]).flatten()."""
    c_count, h, w = source.shape
    n = h * w
    s, gd, cf = source.reshape(c_count, n), guidance.reshape(c_count, n), confidence.reshape(n)
    lightness = source[0].reshape(n)
    detail = detail_weights(source, CONSTANTS.detail_delta).reshape(c_count, n)
    rows, rhs = [], []

    def row(coefs: dict[int, float], weight: float, target: float = 0.0) -> None:
        r = torch.zeros(2 * c_count * n, dtype=D)
        for var, value in coefs.items():
            r[var] += value
        rows.append(math.sqrt(weight) * r)
        rhs.append(math.sqrt(weight) * target)

    def a(c: int, p: int) -> int:
        return c * n + p

    def b(c: int, p: int) -> int:
        return (c_count + c) * n + p

    for c in range(c_count):
        for p in range(n):
            row({a(c, p): s[c, p].item(), b(c, p): 1.0}, rho * cf[p].item(), gd[c, p].item())
            row({a(c, p): 1.0}, rho * lambda_detail * detail[c, p].item(), slope_prior)
            y, x = divmod(p, w)
            for dy, dx in ((0, 1), (1, 0)):  # each unordered 4-neighbour pair once
                if y + dy < h and x + dx < w:
                    q = (y + dy) * w + x + dx
                    wpq = lambda_local / (abs(lightness[p] - lightness[q]).item() ** alpha + eps)
                    row({a(c, p): 1.0, a(c, q): -1.0}, wpq)
                    row({b(c, p): 1.0, b(c, q): -1.0}, wpq)
            for q, wq in zip(neighbors[0][p].tolist(), neighbors[1][p].tolist()):
                coefs = {a(c, p): s[c, p].item(), b(c, p): 1.0}
                coefs[a(c, q)] = coefs.get(a(c, q), 0.0) - s[c, q].item()
                coefs[b(c, q)] = coefs.get(b(c, q), 0.0) - 1.0
                row(coefs, rho * lambda_nonlocal * wq)
    jac, target = torch.stack(rows), torch.tensor(rhs, dtype=D)
    x = torch.linalg.solve(jac.t() @ jac, jac.t() @ target)
    a_ref, b_ref = x.reshape(2, c_count, h, w)
    return a_ref, b_ref, (jac @ x - target).square().sum()


def _terms(source, lambda_local):
    """The smoothness weights and detail weights, as the pipeline builds them."""
    edge = smoothness_weights(source[0], lambda_local, CONSTANTS.wls_alpha, CONSTANTS.wls_eps)
    return edge, detail_weights(source, CONSTANTS.detail_delta)


def fit(source, guidance, confidence, *, lambda_local=0.125, lambda_detail=0.05, **kwargs):
    edge, detail = _terms(source, lambda_local)
    return fit_local_linear(source, guidance, confidence, edge, detail=detail, lambda_detail=lambda_detail, **kwargs)


def total_energy(a, b, source, guidance, confidence, *, lambda_local=0.125, lambda_detail=0.05, **kwargs):
    edge, detail = _terms(source, lambda_local)
    return energy(a, b, source, guidance, confidence, edge, detail=detail, lambda_detail=lambda_detail, **kwargs)


@pytest.mark.parametrize("with_neighbors", [True, False])
@pytest.mark.parametrize("channels", [3, 2])
@pytest.mark.parametrize("slope_prior", [1.0, 0.0])  # 0: a gray source's chroma regressed on its lightness
def test_matches_dense_least_squares_solution(with_neighbors, channels, slope_prior):
    source, guidance, confidence, neighbors = small_problem()
    source, guidance = source[3 - channels:], guidance[3 - channels:]
    weights = dict(lambda_local=0.125, lambda_nonlocal=2.0, lambda_detail=0.05, rho=4.0, slope_prior=slope_prior)
    if not with_neighbors:
        neighbors = (neighbors[0][:, :0], neighbors[1][:, :0])
    a_ref, b_ref, e_ref = dense_reference(source, guidance, confidence, neighbors, **weights)
    nb = neighbors if with_neighbors else None
    a, b = fit(source, guidance, confidence, neighbors=nb, tol=1e-12, max_iter=4000, **weights)
    torch.testing.assert_close(a, a_ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(b, b_ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(total_energy(a, b, source, guidance, confidence, neighbors=nb, **weights), e_ref,
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(total_energy(a_ref, b_ref, source, guidance, confidence, neighbors=nb, **weights),
                               e_ref, rtol=1e-10, atol=0)


def test_energy_decreases_from_init():
    source, guidance, confidence, neighbors = small_problem(12, 10, k=4, seed=1)
    g = torch.Generator().manual_seed(2)
    init = (1 + 0.3 * torch.randn(3, 12, 10, generator=g, dtype=D), 0.3 * torch.randn(3, 12, 10, generator=g, dtype=D))
    for start in (init, (torch.ones_like(source), torch.zeros_like(source))):
        before = total_energy(*start, source, guidance, confidence, neighbors=neighbors)
        fitted = fit(source, guidance, confidence, neighbors=neighbors, init=start, max_iter=5)
        assert total_energy(*fitted, source, guidance, confidence, neighbors=neighbors) < before


def test_reproduces_guidance_that_is_an_affine_function_of_the_source():
    source = small_problem(16, 20)[0]
    guidance = 2 * source + 0.1
    a, b = fit(source, guidance, torch.ones(16, 20, dtype=D), lambda_detail=0.0, tol=1e-10, max_iter=3000)
    torch.testing.assert_close(a * source + b, guidance, atol=1e-6, rtol=0)


def test_constant_channels_of_a_gray_source_stay_well_posed():
    source, guidance, confidence, neighbors = small_problem(10, 10)
    source[1:] = 0.0
    a, b = fit(source, guidance, confidence, neighbors=neighbors, tol=1e-10, max_iter=3000)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    # There a only meets the smoothness and a pull toward 1: it stays 1, and T = b.
    torch.testing.assert_close(a[1:], torch.ones_like(a[1:]))


def test_warm_start_from_the_solution_stops_immediately(caplog):
    source, guidance, confidence, neighbors = small_problem(12, 12, k=4)
    exact = fit(source, guidance, confidence, neighbors=neighbors, tol=1e-12, max_iter=4000)
    with caplog.at_level(logging.DEBUG, logger="colorizer.local_linear"):
        again = fit(source, guidance, confidence, neighbors=neighbors, init=exact)
    assert "fit_local_linear: 0 PCG iterations" in caplog.text
    torch.testing.assert_close(again, exact)


def test_each_channel_stops_at_its_own_tolerance(caplog):
    """Channels are independent systems: fitted together, each ends where it ends when fitted alone."""
    source, guidance, confidence, neighbors = small_problem(16, 20, k=4, seed=5)
    guidance[0] = 2 * source[0] + 0.1  # an easy channel, which converges first
    edge, detail = _terms(source, 0.125)
    options = dict(lambda_detail=0.05, neighbors=neighbors, tol=1e-3)
    with caplog.at_level(logging.DEBUG, logger="colorizer.local_linear"):
        a, b = fit_local_linear(source, guidance, confidence, edge, detail=detail, **options)
    stopped = caplog.text.split("per channel: ")[1].split(")")[0]
    assert len(set(stopped.strip("[]").split(", "))) > 1, stopped
    for c in range(3):
        alone = fit_local_linear(source[c:c + 1], guidance[c:c + 1], confidence, edge, detail=detail[c:c + 1],
                                 **options)
        torch.testing.assert_close((a[c:c + 1], b[c:c + 1]), alone, atol=1e-12, rtol=0)


def test_float32_with_real_neighbours_is_close_to_converged_float64():
    g = torch.Generator().manual_seed(3)
    source = torch.rand(3, 40, 48, generator=g)
    source[1:] -= 0.5
    guidance = 1.2 * source + 0.05 * torch.randn(3, 40, 48, generator=g)
    confidence = torch.rand(40, 48, generator=g)
    neighbors = nonlocal_neighbors(feature_clusters(torch.rand(8, 5, 6, generator=g), 3), source)
    a, b = fit(source, guidance, confidence, neighbors=neighbors, tol=1e-4, max_iter=2000)
    a64, b64 = fit(source.double(), guidance.double(), confidence.double(),
                   neighbors=(neighbors[0], neighbors[1].double()), tol=1e-9, max_iter=4000)
    assert a.dtype == torch.float32
    assert ((a * source + b).double() - (a64 * source.double() + b64)).abs().max() < 2e-3


def test_flat_source_stays_flat_where_the_guidance_has_structure():
    """The ghost test: a flat source region must not take the guidance's texture, only its colour."""
    g = torch.Generator().manual_seed(4)
    h, w = 32, 32
    source = torch.zeros(3, h, w, dtype=D)
    source[0] = 0.6 + 0.002 * torch.randn(h, w, generator=g, dtype=D)  # a flat wall, with sensor noise
    source[0, :, 16:] = 0.2  # and a dark region beside it: a real edge
    stripes = 0.15 * torch.sign(torch.sin(torch.arange(w, dtype=D) * 1.3))  # the reference's structure
    guidance = torch.stack([source[0] * 0.8 + 0.1 + stripes, torch.full((h, w), 0.3, dtype=D) + stripes,
                            torch.full((h, w), -0.2, dtype=D)])
    a, b = fit(source, guidance, torch.ones(h, w, dtype=D), tol=1e-8, max_iter=4000)
    out = a * source + b
    for half in (slice(0, 16), slice(16, None)):
        region, src = out[:, 2:-2, half][:, :, 2:-2], source[:, 2:-2, half][:, :, 2:-2]
        # colour moved to the guidance's mean ...
        means = guidance[:, :, half].mean((1, 2))
        assert (region.mean((1, 2)) - means).abs().max() < 0.03
        # ... but the stripes did not come with it: the spread stays near the source's
        assert (region.std((1, 2)) - src.std((1, 2))).abs().max() < 0.01, region.std((1, 2))
