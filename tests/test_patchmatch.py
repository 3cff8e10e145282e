import itertools

import pytest
import torch
import torch.nn.functional as F

from colorizer.patchmatch import (
    bidirectional_patchmatch, brute_force_nnf, exact_bidirectional, jump_schedule, patchmatch, shared_projection,
    upsample_nnf,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def unit_features(c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed)), dim=0)


def identity(h: int, w: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))


def naive_distance(a: torch.Tensor, b: torch.Tensor, nnf: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Mean squared feature distance over clamped patch cells, one pixel at a time."""
    (_, h, w), (_, ht, wt), r = a.shape, b.shape, patch_size // 2
    out = torch.zeros(h, w, dtype=torch.float64)
    for y, x in itertools.product(range(h), range(w)):
        qy, qx = nnf[:, y, x].tolist()
        for dy, dx in itertools.product(range(-r, r + 1), repeat=2):
            pa = a[:, min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)].double()
            pb = b[:, min(max(qy + dy, 0), ht - 1), min(max(qx + dx, 0), wt - 1)].double()
            out[y, x] += (pa - pb).square().sum() / patch_size**2
    return out


@pytest.mark.parametrize("patch_size", [1, 3, 5])
def test_distance_matches_naive_reference(patch_size):
    a, b = unit_features(4, 6, 7, 0), unit_features(4, 5, 8, 1)
    nnf, dist = patchmatch(a, b, patch_size=patch_size, iterations=2, generator=torch.Generator().manual_seed(0))
    assert nnf.dtype == torch.long and nnf.shape == (2, 6, 7) and dist.shape == (6, 7)
    assert nnf[0].max() < 5 and nnf[1].max() < 8 and nnf.min() >= 0
    torch.testing.assert_close(dist.double(), naive_distance(a, b, nnf, patch_size), atol=1e-5, rtol=0)


def test_brute_force_is_exhaustive_minimum():
    a, b = unit_features(4, 6, 7, 2), unit_features(4, 5, 8, 3)
    nnf, dist = brute_force_nnf(a, b)
    torch.testing.assert_close(dist.double(), naive_distance(a, b, nnf, 3), atol=1e-5, rtol=0)
    every = torch.stack([naive_distance(a, b, torch.tensor([qy, qx]).view(2, 1, 1).expand(2, 6, 7), 3)
                         for qy, qx in itertools.product(range(5), range(8))])
    torch.testing.assert_close(dist.double(), every.amin(0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [None, 1])  # one product, or one source row at a time
def test_exact_fields_both_ways_from_one_pass(chunk, monkeypatch):
    if chunk is not None:
        monkeypatch.setattr("colorizer.patchmatch._MATMUL_CHUNK", chunk)
    a, b = unit_features(8, 7, 9, 11), unit_features(8, 6, 10, 12)
    st, ts, dist = exact_bidirectional(a, b)
    forward, forward_dist = brute_force_nnf(a, b)
    backward, _ = brute_force_nnf(b, a)
    assert torch.equal(st, forward) and torch.equal(ts, backward)
    torch.testing.assert_close(dist, forward_dist)


def test_patchmatch_close_to_exact_on_perturbed_shift():
    a = unit_features(16, 24, 24, 4)
    noise = torch.randn(16, 24, 24, generator=torch.Generator().manual_seed(5))
    b = F.normalize(torch.roll(a, (3, -5), dims=(1, 2)) + 0.2 * noise, dim=0)
    _, exact = brute_force_nnf(a, b)
    _, dist = patchmatch(a, b, iterations=16, generator=torch.Generator().manual_seed(0))
    assert (dist <= exact + 1e-4).float().mean() >= 0.95
    assert (dist >= exact - 1e-5).all()  # nothing beats the exhaustive search


def test_descriptors_spanning_every_dimension_give_exact_distances():
    """With as many principal components as a patch has numbers, the projection is a rotation."""
    a, b = unit_features(4, 6, 7, 0), unit_features(4, 5, 8, 1)
    nnf, dist = patchmatch(a, b, iterations=2, dims=4 * 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(dist.double(), naive_distance(a, b, nnf, 3), atol=1e-5, rtol=0)


def test_descriptors_find_the_match_of_noisy_shallow_features():
    """Few principal components of smooth, correlated features (like relu1_1's) still find the shift."""
    low_rank = F.conv2d(torch.randn(1, 6, 40, 40, generator=torch.Generator().manual_seed(3)),
                        torch.ones(6, 1, 3, 3) / 9, groups=6, padding=1)[0]
    mix = torch.randn(64, 6, generator=torch.Generator().manual_seed(4))
    canvas = torch.einsum("kc,chw->khw", mix, low_rank)
    noise = 0.05 * torch.randn(64, 40, 40, generator=torch.Generator().manual_seed(5))
    a, b = F.normalize(canvas, dim=0), F.normalize(torch.roll(canvas, (3, -5), dims=(1, 2)) + noise, dim=0)
    nnf, dist = patchmatch(a, b, iterations=8, dims=16, generator=torch.Generator().manual_seed(0))
    expected = identity(40, 40) + torch.tensor([3, -5]).view(2, 1, 1)
    ys, xs = slice(1, 36), slice(6, 39)  # both patches unclamped and clear of the roll's seam
    assert (nnf == expected).all(0)[ys, xs].float().mean() > 0.95
    assert (dist >= 0).all() and dist.shape == (40, 40)


def test_bidirectional_fields_share_one_distance():
    """One precomputed distance serves both directions: the fields equal two one-way searches'."""
    a, b = unit_features(8, 10, 12, 9), unit_features(8, 11, 9, 10)
    st, ts, dist = bidirectional_patchmatch(a, b, iterations=3, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    one_way, one_way_dist = patchmatch(a, b, iterations=3, generator=generator)
    other_way, _ = patchmatch(b, a, iterations=3, generator=generator)
    assert torch.equal(st, one_way) and torch.equal(dist, one_way_dist) and torch.equal(ts, other_way)


@pytest.mark.parametrize("dims", [None, 4 * 9])
@pytest.mark.parametrize("chunk", [None, 360])
def test_context_adds_its_weighted_disagreement_to_the_distance(dims, chunk, monkeypatch):
    """A context on the maps' own grid, of fewer channels than its projection keeps, adds exactly
    weight * |context_a(p) - context_b(q)|^2: in exact mode and in full-rank descriptor mode.

    Candidates are gathered a chunk at a time (cache-sized on a CPU); with 360 floats a chunk, the
    42 pixels take several chunks of 9-18 rows and a partial last one, which change no distance."""
    if chunk is not None:
        monkeypatch.setattr("colorizer.patchmatch._CHUNK", chunk)
    a, b = unit_features(4, 6, 7, 0), unit_features(4, 5, 8, 1)
    ca, cb = unit_features(3, 6, 7, 2), unit_features(3, 5, 8, 3)
    nnf, dist = patchmatch(a, b, iterations=2, dims=dims, context=(ca, cb), context_weight=0.7,
                           generator=torch.Generator().manual_seed(0))
    disagreement = (ca - cb[:, nnf[0], nnf[1]]).square().sum(0).double()
    torch.testing.assert_close(dist.double(), naive_distance(a, b, nnf, 3) + 0.7 * disagreement, atol=1e-5, rtol=0)


def test_shared_projection_keeps_the_variance_of_the_exact_principal_axes():
    """Subspace iteration against the covariance's eigenvectors, on cells with a decaying spectrum."""
    g = torch.Generator().manual_seed(3)
    scale = 0.8 ** torch.arange(96.0)  # variance falls off along 96 random directions
    mix = torch.linalg.qr(torch.randn(96, 96, generator=g)).Q
    a, b = ((mix @ (scale[:, None] * torch.randn(96, n, generator=g))).view(96, n // 40, 40) for n in (1600, 1200))
    rows = torch.cat([a.flatten(1).T, b.flatten(1).T])
    rows = rows - rows.mean(0)
    exact = torch.linalg.eigh(rows.T @ rows)[1][:, -12:]
    pa, pb = shared_projection(a, b, dims=12)
    projected = torch.cat([pa.flatten(1).T, pb.flatten(1).T])
    kept = (projected - projected.mean(0)).square().sum() / (rows @ exact).square().sum()
    assert 0.999 < kept <= 1 + 1e-5, kept


def test_shared_projection_keeps_distances_when_it_keeps_every_axis():
    a, b = unit_features(6, 4, 5, 0), unit_features(6, 3, 7, 1)
    pa, pb = shared_projection(a, b, dims=6)
    assert pa.shape == (6, 4, 5) and pb.shape == (6, 3, 7)

    def cross(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x[:, :, :, None, None] - y[:, None, None]).square().sum(0)

    torch.testing.assert_close(cross(pa, pb), cross(a, b), atol=1e-5, rtol=0)


def test_context_chooses_between_two_copies_of_a_texture():
    """The target holds a texture twice; a coarse context (one cell per half) says which half means
    what the source does. The features alone cannot tell the copies apart; with the context, the
    matches land in the right half."""
    texture = unit_features(8, 12, 12, 4)
    target = torch.cat([texture, texture], dim=2)
    context = (torch.tensor([1.0, 0.0]).view(2, 1, 1), torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(2, 1, 2))
    interior = (slice(1, 11), slice(1, 11))

    def right_half(**kw) -> float:
        nnf, _ = patchmatch(texture, target, iterations=6, generator=torch.Generator().manual_seed(1), **kw)
        return (nnf[1][interior] >= 12).float().mean().item()

    assert right_half(context=context) > 0.95
    assert right_half() < 0.5


def test_patchmatch_recovers_translation():
    canvas = unit_features(8, 26, 26, 6)
    a, b = canvas[:, :20, :20], canvas[:, 2:22, 3:23]  # b(q) = a(q + (2, 3))
    nnf, dist = patchmatch(a, b, iterations=12, generator=torch.Generator().manual_seed(1))
    # interior: the whole patch lies unclamped in both maps
    ys, xs = slice(3, 19), slice(4, 19)
    expected = identity(20, 20) - torch.tensor([2, 3]).view(2, 1, 1)
    assert torch.equal(nnf[:, ys, xs], expected[:, ys, xs])
    assert dist[ys, xs].max() < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_for_a_seed(device):
    a, b = unit_features(8, 12, 10, 7).to(device), unit_features(8, 9, 11, 8).to(device)
    runs = [patchmatch(a, b, iterations=3, generator=torch.Generator(device).manual_seed(3)) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_init_is_respected():
    a, b = unit_features(8, 10, 12, 9), unit_features(8, 11, 9, 10)
    exact, exact_dist = brute_force_nnf(a, b)
    nnf, dist = patchmatch(a, b, exact, iterations=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nnf, exact)
    torch.testing.assert_close(dist, exact_dist)
    with pytest.raises(ValueError):
        patchmatch(a, b, exact[:, :5])


def noisy_roll(a: torch.Tensor, shift: tuple[int, int], seed: int, noise: float = 0.2) -> torch.Tensor:
    """``a`` circularly shifted (b(p + shift) = a(p)), plus noise, renormalised."""
    n = torch.randn(a.shape, generator=torch.Generator().manual_seed(seed))
    return F.normalize(torch.roll(a, shift, dims=(1, 2)) + noise * n, dim=0)


def exact_fraction(dist: torch.Tensor, exact: torch.Tensor) -> float:
    """Share of pixels whose match is as good as the exhaustive search's (to 1e-4)."""
    return (dist <= exact + 1e-4).float().mean().item()


def test_jump_schedule():
    assert jump_schedule(24, 32) == [16, 8, 4, 2, 1]  # 16 + 8 + ... + 1 = 31 spans the map
    assert jump_schedule(33, 20) == [32, 16, 8, 4, 2, 1]
    assert jump_schedule(384, 512) == [256, 128, 64, 32, 16, 8, 4, 2, 1]
    assert jump_schedule(1, 1) == jump_schedule(2, 1) == [1]
    assert jump_schedule(100, 100, max_jump=8) == jump_schedule(100, 100, max_jump=13) == [8, 4, 2, 1]
    with pytest.raises(ValueError):
        jump_schedule(8, 8, max_jump=0)


# The two tests below run the pipeline's schedule (nct: 6 iterations from a random field at L5, then
# 1 iteration of radius 4 around the upsampled field) on textured features: every cell distinct, so
# only an exact hit counts and matches must spread by propagation. (Smooth features would not test
# this: there the random search's shrinking radius homes in on a match by itself.) Each test also
# runs one-cell propagation (max_jump=1, the former algorithm) and checks that it fails: were it to
# pass, the test would no longer tell whether matches travel across the map.


def test_random_start_finds_a_far_shift_in_the_coarsest_level_schedule():
    fractions = {}
    for seed in range(3):
        a = unit_features(64, 24, 32, 20 + seed)  # an L5-sized map
        b = noisy_roll(a, (9, 15), 30 + seed)  # matches 9 and 15 cells away, wrapping around
        _, exact = brute_force_nnf(a, b)
        for max_jump in (None, 1):
            _, dist = patchmatch(a, b, iterations=6, max_jump=max_jump, generator=torch.Generator().manual_seed(seed))
            fractions.setdefault(max_jump, []).append(exact_fraction(dist, exact))
    assert min(fractions[None]) >= 0.95, fractions
    assert sum(fractions[1]) / 3 < 0.9, fractions


def test_refinement_repairs_a_band_the_coarse_level_got_wrong():
    h, w, shift = 48, 64, (6, 14)
    a = unit_features(64, h, w, 40)
    b = noisy_roll(a, shift, 41)
    _, exact = brute_force_nnf(a, b)
    # The coarse maps are the fine ones pooled, except that a band of coarse columns looks like target
    # content 6 coarse cells further right: the exact coarse field there is 12 fine cells off, out of
    # reach of the radius-4 search. The correct shift survives left and right of the band.
    coarse_a, coarse_b = (F.normalize(F.avg_pool2d(x, 2), dim=0) for x in (a, b))
    decoy = torch.roll(coarse_b, (-shift[0] // 2, -shift[1] // 2 - 6), dims=(1, 2))
    coarse_a[:, :, 8:24] = decoy[:, :, 8:24]
    coarse, _ = brute_force_nnf(coarse_a, coarse_b)
    init = upsample_nnf(coarse, (h, w), (h, w))
    assert exact_fraction(patchmatch(a, b, init, iterations=0)[1], exact) < 0.5
    fractions = {}
    for max_jump in (None, 1):
        _, dist = patchmatch(a, b, init, iterations=1, search_radius=4, max_jump=max_jump,
                             generator=torch.Generator().manual_seed(0))
        fractions[max_jump] = exact_fraction(dist, exact)
    assert fractions[None] >= 0.95 and fractions[1] < 0.6, fractions


def test_upsample_identity_is_identity():
    assert torch.equal(upsample_nnf(identity(5, 6), (10, 12), (10, 12)), identity(10, 12))


def test_upsample_sends_children_to_children():
    nnf = torch.stack([torch.full((3, 4), 2), torch.full((3, 4), 1)])  # everything matches (2, 1)
    up = upsample_nnf(nnf, (6, 8), (8, 10), prev_target_size=(4, 5))
    assert torch.equal(up[:, ::2, ::2], torch.tensor([4, 2]).view(2, 1, 1).expand(2, 3, 4))
    assert torch.equal(up[:, 1::2, 1::2], torch.tensor([5, 3]).view(2, 1, 1).expand(2, 3, 4))
    # coordinates beyond the new target are clamped into it
    far = upsample_nnf(torch.full((2, 2, 2), 1), (4, 4), (3, 3), prev_target_size=(2, 2))
    assert far.max() == 2


def test_long_jumps_on_a_map_much_wider_than_high():
    a, b = unit_features(4, 6, 40, 7), unit_features(4, 6, 40, 8)
    nnf, dist = patchmatch(a, b, iterations=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(dist.double(), naive_distance(a, b, nnf, 3), atol=1e-5, rtol=0)
