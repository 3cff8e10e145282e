import torch

from colorizer.color import delta_e_2000, is_gray, lab_to_rgb, luminance, rgb_to_lab, rotate_chroma


def test_lab_round_trip():
    rgb = torch.rand(2, 3, 17, 19, generator=torch.Generator().manual_seed(0))
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < 1e-4


def test_lab_known_values():
    # White, black and sRGB red in D65 Lab (reference values from the CIE formulas).
    rgb = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).view(3, 1, 3)
    lab = rgb_to_lab(rgb)[:, 0]
    assert torch.allclose(lab[:, 0], torch.tensor([100.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(lab[:, 1], torch.zeros(3), atol=0.01)
    assert torch.allclose(lab[:, 2], torch.tensor([53.24, 80.09, 67.20]), atol=0.05)


def test_delta_e_2000_reference_pairs():
    # Pairs from Sharma, Wu & Dalal (2005), table 1.
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
    ]
    lab1 = torch.tensor([p[0] for p in pairs]).T.reshape(3, 1, -1)
    lab2 = torch.tensor([p[1] for p in pairs]).T.reshape(3, 1, -1)
    expected = torch.tensor([p[2] for p in pairs])
    assert torch.allclose(delta_e_2000(lab1, lab2)[0], expected, atol=1e-3)


def test_rotate_chroma_and_gray():
    rgb = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    lab = rgb_to_lab(rgb)
    turned = rotate_chroma(lab, 90, scale=0.5)
    assert torch.equal(turned[0], lab[0])
    assert torch.allclose(turned[1], -0.5 * lab[2]) and torch.allclose(turned[2], 0.5 * lab[1])
    gray = luminance(rgb)
    assert gray.shape == (1, 8, 8) and is_gray(gray.expand(3, -1, -1)) and not is_gray(rgb)
    assert (rgb_to_lab(gray.expand(3, -1, -1))[0] - lab[0]).abs().max() < 0.05


def test_lab_conversions_are_differentiable():
    """They work in place for speed, never on what autograd saved: gradients stay exact."""
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 4, 5, dtype=torch.float64, generator=g)
    rgb[:, 0, :2] = 0.01  # the linear segments of the sRGB and Lab curves
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb.requires_grad_(),))
    lab = rgb_to_lab(rgb.detach())
    lab[0, 0, :2] = 3.0
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, clamp=False), (lab.requires_grad_(),))


def test_is_gray_sees_a_single_coloured_pixel_off_its_sample_grid():
    rgb = torch.full((3, 20, 30), 0.5)
    assert is_gray(rgb)
    rgb[0, 3, 5] = 0.6  # not on the every-8th-pixel sample
    assert not is_gray(rgb)
