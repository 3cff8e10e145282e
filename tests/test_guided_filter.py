import pytest
import torch
import torch.nn.functional as F

from colorizer.guided_filter import box_filter, guided_filter, guided_upsample


def naive_box(x: torch.Tensor, r: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = x[..., max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean((-2, -1))
    return out


@pytest.mark.parametrize("shape,r", [((2, 7, 9), 2), ((5, 3), 4), ((1, 1, 1), 3), ((3, 6, 6), 0), ((4, 10), 20)])
def test_box_filter_matches_naive_window_mean(shape, r):
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(box_filter(x, r), naive_box(x, r))


@pytest.mark.parametrize("channels", [1, 3])
def test_guided_filter_with_itself_as_guide_is_identity(channels):
    x = torch.rand(channels, 40, 50, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(guided_filter(x, x, 3, 1e-8), x, atol=1e-4, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_guided_filter_keeps_step_edge(channels):
    g = torch.Generator().manual_seed(2)
    guide = torch.zeros(channels, 32, 32)
    guide[..., 16:] = 1.0
    src = guide[:1] + 0.05 * torch.randn(1, 32, 32, generator=g)
    out = guided_filter(guide, src, 4, 1e-3)
    # A box filter of radius 4 would leave a ramp across columns 12..20.
    assert (out[0, :, 15] - out[0, :, 16]).abs().min() > 0.9
    assert out[0, :, :12].std() < src[0, :, :12].std() / 2  # noise is smoothed within regions


def test_guided_upsample_of_constant_is_constant():
    guide = torch.rand(3, 90, 120, generator=torch.Generator().manual_seed(3))
    src = torch.full((2, 30, 40), 0.7)
    src[1] = -0.2
    out = guided_upsample(guide, src, 2, 1e-3)
    assert out.shape == (2, 90, 120)
    torch.testing.assert_close(out[0], torch.full((90, 120), 0.7), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.full((90, 120), -0.2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("low", [(30, 40), (17, 23)])
def test_guided_upsample_recovers_affine_function_of_guide(low):
    g = torch.Generator().manual_seed(4)
    guide = torch.rand(3, 90, 120, generator=g, dtype=torch.float64)
    m = torch.randn(2, 3, generator=g, dtype=torch.float64)
    c = torch.randn(2, 1, 1, generator=g, dtype=torch.float64)
    guide_lo = F.interpolate(guide[None], size=low, mode="area")[0]
    src = torch.einsum("kc,chw->khw", m, guide_lo) + c
    out = guided_upsample(guide, src, 2, 1e-9)
    torch.testing.assert_close(out, torch.einsum("kc,chw->khw", m, guide) + c, atol=1e-5, rtol=0)


def test_guided_upsample_does_not_depend_on_chunking():
    g = torch.Generator().manual_seed(5)
    guide, src = torch.rand(3, 70, 50, generator=g), torch.rand(4, 9, 11, generator=g)
    whole = guided_upsample(guide, src, 2, 1e-2, chunk_pixels=None)
    for chunk_pixels in (1, 1 << 20):
        torch.testing.assert_close(guided_upsample(guide, src, 2, 1e-2, chunk_pixels=chunk_pixels), whole)
    gray = guided_upsample(guide[:1], src, 2, 1e-2)
    assert gray.shape == (4, 70, 50)
