"""The multigrid preconditioner: Galerkin coarse grids, and a symmetric positive definite V-cycle."""

import pytest
import torch
import torch.nn.functional as F

from colorizer.multigrid import _DIRECT_CELLS, BlockMultigrid, _Grid


def random_system(h: int, w: int, channels: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Blocks that are SPD per pixel, and WLS-like link weights spanning orders of magnitude."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(channels, h, w, generator=g, dtype=torch.float64)
    data = torch.rand(channels, h, w, generator=g, dtype=torch.float64)
    prior = 0.01 * torch.rand(channels, h, w, generator=g, dtype=torch.float64)
    wx, wy = (10 ** (4 * torch.rand(h, w, generator=g, dtype=torch.float64) - 1) for _ in range(2))
    return data * s.square() + prior, data * s, data, wx, wy


def dense(grid: _Grid, shape: tuple[int, ...]) -> torch.Tensor:
    """The operator of a grid as a dense matrix, column by column."""
    n = torch.Size(shape).numel()
    return torch.stack([grid.apply(e.view(shape)).flatten() for e in torch.eye(n, dtype=torch.float64)], 1)


@pytest.mark.parametrize("h, w", [(6, 8), (5, 7)])
def test_coarse_grid_is_the_galerkin_operator(h, w):
    grid = _Grid(*random_system(h, w))
    coarse = grid.coarsened()
    ch, cw = coarse.wx.shape
    assert (ch, cw) == ((h + 1) // 2, (w + 1) // 2)

    def prolong(x):  # piecewise constant over 2x2 cells, cropped to the fine grid
        return x.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :h, :w]

    fine_shape, coarse_shape = (2, 2, h, w), (2, 2, ch, cw)
    p = torch.stack([prolong(e.view(coarse_shape)).flatten()
                     for e in torch.eye(torch.Size(coarse_shape).numel(), dtype=torch.float64)], 1)
    galerkin = p.T @ dense(grid, fine_shape) @ p
    torch.testing.assert_close(dense(coarse, coarse_shape), galerkin)


def test_dense_matrices_are_the_operator_per_channel():
    grid = _Grid(*random_system(5, 7, channels=2))
    a = dense(grid, (2, 2, 5, 7)).view(2, 2, 35, 2, 2, 35)  # (a|b, channel, cell) x (a|b, channel, cell)
    per_channel = grid.dense().view(2, 2, 35, 2, 35)
    for c in range(2):
        torch.testing.assert_close(per_channel[c], a[:, c, :, :, c])
        torch.testing.assert_close(a[:, c, :, :, 1 - c], torch.zeros_like(per_channel[c]))


def test_smallest_grid_is_solved_exactly():
    system = random_system(8, 8, channels=2)
    m, grid = BlockMultigrid(*system), _Grid(*system)
    assert len(m.grids) == 1
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(m(grid.apply(x)), x)


def test_v_cycle_is_symmetric_positive_definite():
    system = random_system(12, 10)
    m = BlockMultigrid(*system)
    n = 2 * 2 * 12 * 10
    columns = torch.stack([m(e.view(2, 2, 12, 10)).flatten() for e in torch.eye(n, dtype=torch.float64)], 1)
    torch.testing.assert_close(columns, columns.T)
    assert torch.linalg.eigvalsh(columns).min() > 0


def test_v_cycle_preconditions_far_better_than_block_jacobi():
    """Condition number of M^-1 A: the V-cycle's against block Jacobi's, on stiff WLS-like weights."""
    system = random_system(16, 16)
    grid = _Grid(*system)
    shape = (2, 2, 16, 16)
    a = dense(grid, shape)
    eye = torch.eye(a.shape[0], dtype=torch.float64)

    def condition(precondition) -> float:
        m = torch.stack([precondition(e.view(shape)).flatten() for e in eye], 1)
        # M^-1 A is similar to the symmetric A^1/2 M^-1 A^1/2: real, positive eigenvalues.
        ev = torch.linalg.eigvals(m @ a).real
        return (ev.max() / ev.min()).item()

    jacobi, multigrid = condition(grid.jacobi), condition(BlockMultigrid(*system))
    assert multigrid < jacobi / 20, (multigrid, jacobi)


def test_pads_odd_grids_down_to_the_coarsest():
    m = BlockMultigrid(*random_system(37, 23, channels=1))
    sizes = [tuple(g.wx.shape) for g in m.grids]
    assert sizes[0] == (37, 23) and sizes[-1][0] * sizes[-1][1] <= _DIRECT_CELLS < sizes[-2][0] * sizes[-2][1]
    r = F.pad(torch.ones(2, 1, 35, 21, dtype=torch.float64), (1, 1, 1, 1))
    assert torch.isfinite(m(r)).all()


def test_v_cycle_of_some_channels_is_the_v_cycle_restricted_to_them():
    m = BlockMultigrid(*random_system(13, 11, channels=3))
    r = torch.randn(2, 3, 13, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    keep = torch.tensor([0, 2])
    torch.testing.assert_close(m.channels(keep)(r[:, keep]), m(r)[:, keep])
