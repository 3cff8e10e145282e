import math

import torch

from colorizer.neighbors import _first_argmax, feature_clusters, nonlocal_neighbors


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
    features = torch.rand(16, 5, 7, generator=torch.Generator().manual_seed(0))
    index, weight = nonlocal_neighbors(feature_clusters(features, 3), colors, k=8, sigma=0.2)
    n = 20 * 26
    assert index.shape == weight.shape == (n, 8) and index.dtype == torch.long
    # A pixel links to itself only where its cluster has too few pixels, and then with weight 0 (documented).
    own = index == torch.arange(n)[:, None]
    assert own.float().mean() < 0.05 and (weight[own] == 0).all()
    flat = colors.reshape(3, -1).t()
    d2 = (flat[index] - flat[:, None]).square().sum(2)
    torch.testing.assert_close(weight, torch.exp(-d2 / (2 * 0.2**2)))


def test_neighbours_stay_in_their_cluster_and_are_near_exact_knn():
    # The same colours on both halves: the exact unrestricted kNN would cross the cluster border.
    half = lab_image(32, 16)
    colors = torch.cat([half, half], 2)
    k = 8
    index, _ = nonlocal_neighbors(feature_clusters(halves_features(32, 32), 2), colors, k=k)
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
    first = nonlocal_neighbors(feature_clusters(features, 4), colors)
    second = nonlocal_neighbors(feature_clusters(features, 4), colors)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    seeded = feature_clusters(features, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(feature_clusters(features, 4), seeded)


def test_upsampled_clusters_follow_the_image_edges_not_the_cell_grid():
    # Two clusters of cells split down the middle of a 4-cell-wide grid; the image's own edge is off the
    # cell grid (at column 13 of 32): the labels must follow the image.
    features = halves_features(8, 4)
    colors = torch.zeros(3, 32, 32)
    colors[0, :, 13:] = 1.0
    index, _ = nonlocal_neighbors(feature_clusters(features, 2), colors, k=4)
    right = torch.arange(32 * 32) % 32 >= 13
    assert (right[index] == right[:, None]).all()


def test_small_cluster_leaves_empty_slots_pointing_at_self():
    features = torch.zeros(2, 8, 8)
    features[0] = 1.0
    features[:, :2, :2] = torch.tensor([0.0, 1.0])[:, None, None]  # 2x2 pixels of their own cluster
    colors = lab_image(8, 8)
    index, weight = nonlocal_neighbors(feature_clusters(features, 2), colors, k=8)
    lonely = torch.tensor([0, 1, 8, 9])
    own = torch.arange(64)[:, None].expand(64, 8)
    for p in lonely:
        linked = weight[p] > 0
        assert linked.sum() == 3 and set(index[p][linked].tolist()) == set(lonely.tolist()) - {int(p)}
        assert (index[p][~linked] == own[p][~linked]).all()
    others = torch.ones(64, dtype=torch.bool)
    others[lonely] = False
    assert (weight[others] > 0).all()


def test_first_argmax_is_torch_argmax_ties_included():
    x = torch.randint(0, 3, (7, 9, 11), generator=torch.Generator().manual_seed(0)).float()  # many ties
    assert torch.equal(_first_argmax(x), x.argmax(0))
