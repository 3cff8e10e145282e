import itertools

import pytest
import torch

from colorizer.voting import bds_vote, warp


def identity(h: int, w: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))


def random_field(h: int, w: int, ht: int, wt: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, ht, (h, w), generator=g), torch.randint(0, wt, (h, w), generator=g)])


def naive_vote(image, nnf_st, nnf_ts, completeness, patch_size):
    """Bidirectional voting one vote at a time, cells clamped into both images."""
    (k, ht, wt), (h, w), r = image.shape, nnf_st.shape[1:], patch_size // 2
    total, weight = torch.zeros(k, h, w, dtype=torch.float64), torch.zeros(h, w, dtype=torch.float64)

    def vote(p, q, wgt):
        for dy, dx in itertools.product(range(-r, r + 1), repeat=2):
            sy, sx = min(max(p[0] + dy, 0), h - 1), min(max(p[1] + dx, 0), w - 1)
            ty, tx = min(max(q[0] + dy, 0), ht - 1), min(max(q[1] + dx, 0), wt - 1)
            total[:, sy, sx] += wgt * image[:, ty, tx].double()
            weight[sy, sx] += wgt

    for y, x in itertools.product(range(h), range(w)):
        vote((y, x), nnf_st[:, y, x].tolist(), 1 / (h * w))
    if nnf_ts is not None:
        for y, x in itertools.product(range(ht), range(wt)):
            vote(nnf_ts[:, y, x].tolist(), (y, x), completeness / (ht * wt))
    return total / weight


def test_identity_fields_return_the_image():
    image = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bds_vote(image, identity(7, 9)), image)
    torch.testing.assert_close(bds_vote(image, identity(7, 9), identity(7, 9), completeness=3.0), image)
    assert torch.equal(warp(image, identity(7, 9)), image)


@pytest.mark.parametrize("patch_size", [1, 3, 5])
def test_matches_naive_voting(patch_size):
    image = torch.rand(2, 3, 6, generator=torch.Generator().manual_seed(0))
    nnf_st, nnf_ts = random_field(4, 5, 3, 6, 0), random_field(3, 6, 4, 5, 1)
    coherence_only = bds_vote(image, nnf_st, nnf_ts, completeness=0.0, patch_size=patch_size)
    torch.testing.assert_close(coherence_only, naive_vote(image, nnf_st, None, 0.0, patch_size).float())
    torch.testing.assert_close(bds_vote(image, nnf_st, patch_size=patch_size), coherence_only)
    both = bds_vote(image, nnf_st, nnf_ts, completeness=2.0, patch_size=patch_size)
    torch.testing.assert_close(both, naive_vote(image, nnf_st, nnf_ts, 2.0, patch_size).float())


def test_constant_image_stays_constant():
    image = torch.full((3, 5, 6), 0.25)
    out = bds_vote(image, random_field(8, 4, 5, 6, 2), random_field(5, 6, 8, 4, 3))
    torch.testing.assert_close(out, torch.full((3, 8, 4), 0.25))


def test_completeness_brings_back_unused_target_colours():
    # coherence: both source pixels copy target pixel 0 (colour 0); the colour 10 at target
    # pixel 3 is used by no source patch, and completeness sends it to source pixel 1
    image = torch.tensor([[[0.0, 0.0, 0.0, 10.0]]])
    nnf_st = torch.tensor([[[0, 0]], [[0, 0]]])
    nnf_ts = torch.tensor([[[0, 0, 0, 0]], [[0, 0, 0, 1]]])
    assert bds_vote(image, nnf_st, nnf_ts, completeness=0.0, patch_size=1).flatten().tolist() == [0.0, 0.0]
    # pixel 1: (0 / 2 + 2 * 10 / 4) / (1 / 2 + 2 * 1 / 4) = 5
    balanced = bds_vote(image, nnf_st, nnf_ts, completeness=2.0, patch_size=1).flatten()
    torch.testing.assert_close(balanced, torch.tensor([0.0, 5.0]))
    stronger = bds_vote(image, nnf_st, nnf_ts, completeness=6.0, patch_size=1).flatten()
    assert stronger[0] == 0 and 5.0 < stronger[1] < 10.0
