import math

import torch

from colorizer.neighbors import nonlocal_neighbors


def halves_features(h: int = 8, w: int = 8) -> torch.Tensor:
    """Deep features whose two k-means clusters are the left and right halves of the image."""
    features = torch.zeros(4, h, w)
    features[0, :, : w // 2] = 1.0
    features[1, :, w // 2:] = 1.0
    return features


def lab_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    smooth = torch.stack([0.5 + 0.3 * torch.sin(6 * x) * torch.cos(4 * y), 0.3 * torch.cos(5 * x + 2 * y),
                          0.2 * torch.sin(3 * y - x)])
    return smooth + 0.03 * torch.randn(3, h, w, generator=g)


def test_shapes_weights_and_no_self_links():
    colors = lab_image(20, 26)
    index, weight = nonlocal_neighbors(torch.rand(16, 5, 7), colors, clusters=3, k=8, sigma=0.2)
    n = 20 * 26
    assert index.shape == weight.shape == (n, 8) and index.dtype == torch.long
    assert (index != torch.arange(n)[:, None]).all()
    flat = colors.reshape(3, -1).t()
    d2 = (flat[index] - flat[:, None]).square().sum(2)
    torch.testing.assert_close(weight, torch.exp(-d2 / (2 * 0.2**2)))


def test_neighbours_stay_in_their_cluster_and_are_near_exact_knn():
    # The same colours on both halves: the exact unrestricted kNN would cross the cluster border.
    half = lab_image(32, 16)
    colors = torch.cat([half, half], 2)
    k = 8
    index, _ = nonlocal_neighbors(halves_features(), colors, clusters=2, k=k)
    side = (torch.arange(32 * 32) % 32) >= 16
    assert (side[index] == side[:, None]).all()

    flat = colors.reshape(3, -1).t()
    dist = torch.cdist(flat, flat)
    dist[side[:, None] != side[None]] = math.inf
    dist.fill_diagonal_(math.inf)
    exact = dist.topk(k, largest=False).values
    approx = dist.gather(1, index)
    assert approx.mean() < 1.5 * exact.mean()
    recall = (index[:, :, None] == dist.topk(k, largest=False).indices[:, None]).any(2).float().mean()
    assert recall > 0.5


def test_deterministic():
    colors, features = lab_image(24, 24), torch.rand(8, 6, 6)
    first = nonlocal_neighbors(features, colors, clusters=4)
    second = nonlocal_neighbors(features, colors, clusters=4)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    seeded = nonlocal_neighbors(features, colors, clusters=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first[0], seeded[0])


def test_small_cluster_leaves_empty_slots_pointing_at_self():
    features = torch.zeros(2, 4, 4)
    features[0] = 1.0
    features[:, 0, 0] = torch.tensor([0.0, 1.0])  # one cell = 2x2 pixels of its own cluster
    colors = lab_image(8, 8)
    index, weight = nonlocal_neighbors(features, colors, clusters=2, k=8)
    lonely = torch.tensor([0, 1, 8, 9])
    own = torch.arange(64)[:, None].expand(64, 8)
    for p in lonely:
        linked = weight[p] > 0
        assert linked.sum() == 3 and set(index[p][linked].tolist()) == set(lonely.tolist()) - {int(p)}
        assert (index[p][~linked] == own[p][~linked]).all()
    others = torch.ones(64, dtype=torch.bool)
    others[lonely] = False
    assert (weight[others] > 0).all()
