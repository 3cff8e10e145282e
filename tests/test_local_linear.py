import logging
import math

import pytest
import torch

from colorizer.local_linear import energy, fit_local_linear
from colorizer.neighbors import nonlocal_neighbors

D = torch.float64


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


def dense_reference(source, guidance, confidence, neighbors, *, lambda_local, lambda_nonlocal, sigma, eps):
    """Least-squares rows of E written out term by term; unknowns ordered like stack([a, b]).flatten()."""
    _, h, w = source.shape
    n = h * w
    s, gd, cf = source.reshape(3, n), guidance.reshape(3, n), confidence.reshape(n)
    rows, rhs = [], []

    def row(coefs: dict[int, float], weight: float, target: float = 0.0) -> None:
        r = torch.zeros(6 * n, dtype=D)
        for var, value in coefs.items():
            r[var] += value
        rows.append(math.sqrt(weight) * r)
        rhs.append(math.sqrt(weight) * target)

    def a(c: int, p: int) -> int:
        return c * n + p

    def b(c: int, p: int) -> int:
        return (3 + c) * n + p

    for c in range(3):
        for p in range(n):
            row({a(c, p): s[c, p].item(), b(c, p): 1.0}, cf[p].item(), gd[c, p].item())
            row({a(c, p): 1.0}, eps, 1.0)
            y, x = divmod(p, w)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w:
                        q = (y + dy) * w + x + dx
                        wpq = math.exp(-(s[:, p] - s[:, q]).square().sum().item() / (2 * sigma**2))
                        row({a(c, p): 1.0, a(c, q): -1.0}, lambda_local * wpq)
                        row({b(c, p): 1.0, b(c, q): -1.0}, lambda_local * wpq)
            for q, wq in zip(neighbors[0][p].tolist(), neighbors[1][p].tolist()):
                coefs = {a(c, p): s[c, p].item(), b(c, p): 1.0}
                coefs[a(c, q)] = coefs.get(a(c, q), 0.0) - s[c, q].item()
                coefs[b(c, q)] = coefs.get(b(c, q), 0.0) - 1.0
                row(coefs, lambda_nonlocal * wq)
    jac, target = torch.stack(rows), torch.tensor(rhs, dtype=D)
    x = torch.linalg.solve(jac.t() @ jac, jac.t() @ target)
    a_ref, b_ref = x.reshape(2, 3, h, w)
    return a_ref, b_ref, (jac @ x - target).square().sum()


@pytest.mark.parametrize("with_neighbors", [True, False])
def test_matches_dense_least_squares_solution(with_neighbors):
    source, guidance, confidence, neighbors = small_problem()
    weights = dict(lambda_local=0.125, lambda_nonlocal=2.0, sigma=0.3, eps=1e-4)
    if not with_neighbors:
        neighbors = (neighbors[0][:, :0], neighbors[1][:, :0])
    a_ref, b_ref, e_ref = dense_reference(source, guidance, confidence, neighbors, **weights)
    nb = neighbors if with_neighbors else None
    a, b = fit_local_linear(source, guidance, confidence, neighbors=nb, tol=1e-12, max_iter=2000, **weights)
    torch.testing.assert_close(a, a_ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(b, b_ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(energy(a, b, source, guidance, confidence, neighbors=nb, **weights), e_ref,
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(energy(a_ref, b_ref, source, guidance, confidence, neighbors=nb, **weights), e_ref,
                               rtol=1e-10, atol=0)


def test_energy_decreases_from_init():
    source, guidance, confidence, neighbors = small_problem(12, 10, k=4, seed=1)
    g = torch.Generator().manual_seed(2)
    init = (1 + 0.3 * torch.randn(3, 12, 10, generator=g, dtype=D), 0.3 * torch.randn(3, 12, 10, generator=g, dtype=D))
    for start in (init, (torch.ones_like(source), torch.zeros_like(source))):
        before = energy(*start, source, guidance, confidence, neighbors=neighbors)
        fitted = fit_local_linear(source, guidance, confidence, neighbors=neighbors, init=start, max_iter=5)
        assert energy(*fitted, source, guidance, confidence, neighbors=neighbors) < before


def test_reproduces_guidance_that_is_an_affine_function_of_the_source():
    source = small_problem(16, 20)[0]
    guidance = 2 * source + 0.1
    a, b = fit_local_linear(source, guidance, torch.ones(16, 20, dtype=D), eps=1e-10, tol=1e-10, max_iter=1000)
    torch.testing.assert_close(a * source + b, guidance, atol=1e-6, rtol=0)


def test_constant_channels_of_a_gray_source_stay_well_posed():
    source, guidance, confidence, neighbors = small_problem(10, 10)
    source[1:] = 0.0
    a, b = fit_local_linear(source, guidance, confidence, neighbors=neighbors, tol=1e-10, max_iter=1000)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    torch.testing.assert_close(a[1:], torch.ones_like(a[1:]))


def test_warm_start_from_the_solution_stops_immediately(caplog):
    source, guidance, confidence, neighbors = small_problem(12, 12, k=4)
    exact = fit_local_linear(source, guidance, confidence, neighbors=neighbors, tol=1e-12, max_iter=2000)
    with caplog.at_level(logging.DEBUG, logger="colorizer.local_linear"):
        again = fit_local_linear(source, guidance, confidence, neighbors=neighbors, init=exact)
    assert "fit_local_linear: 0 PCG iterations" in caplog.text
    torch.testing.assert_close(again, exact)


def test_float32_with_real_neighbours_is_close_to_converged_float64():
    g = torch.Generator().manual_seed(3)
    source = torch.rand(3, 40, 48, generator=g)
    source[1:] -= 0.5
    guidance = 1.2 * source + 0.05 * torch.randn(3, 40, 48, generator=g)
    confidence = torch.rand(40, 48, generator=g)
    neighbors = nonlocal_neighbors(torch.rand(8, 5, 6, generator=g), source, clusters=3)
    a, b = fit_local_linear(source, guidance, confidence, neighbors=neighbors, tol=1e-4)
    a64, b64 = fit_local_linear(source.double(), guidance.double(), confidence.double(),
                                neighbors=(neighbors[0], neighbors[1].double()), tol=1e-9, max_iter=2000)
    assert a.dtype == torch.float32
    assert ((a * source + b).double() - (a64 * source.double() + b64)).abs().max() < 2e-3
