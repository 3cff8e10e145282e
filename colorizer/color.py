"""Colour science in torch: sRGB <-> CIELab (D65), chroma rotation, gray, and CIEDE2000.

All functions take channel-first tensors ``[..., 3, H, W]`` (any leading batch dims) and work
on any device. sRGB values are in [0, 1]; Lab uses the usual scale (L in [0, 100]).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# sRGB (D65) -> XYZ, rows X, Y, Z (IEC 61966-2-1).
_RGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)
_WHITE_D65 = torch.tensor((0.95047, 1.0, 1.08883), dtype=torch.float64)
# XYZ relative to the white point, and back: the white point folded into the matrices.
_RGB_TO_XYZW = _RGB_TO_XYZ / _WHITE_D65[:, None]
_XYZW_TO_RGB = torch.linalg.inv(_RGB_TO_XYZW)
# (f(X/Xn), f(Y/Yn), f(Z/Zn)) -> (L* + 16, a*, b*) is linear.
_F_TO_LAB = torch.tensor([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]], dtype=torch.float64)
_LAB_TO_F = torch.linalg.inv(_F_TO_LAB)
_EPS = 216 / 24389  # CIE's (6/29)^3
_KAPPA = 24389 / 27

# The conversions below run on every pixel of a 12-megapixel output: their chains of arithmetic
# work in place on a fresh temporary (each pass over a new one costs about as much as the
# arithmetic), never on a tensor autograd may have saved, so they stay differentiable.


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    """Apply a 3x3 matrix along the channel dimension (-3)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x), x)


def srgb_to_linear(rgb: Tensor) -> Tensor:
    curve = rgb.clamp(min=0).add_(0.055).div_(1.055).pow_(2.4)
    return torch.where(rgb <= 0.04045, rgb / 12.92, curve)


def linear_to_srgb(lin: Tensor) -> Tensor:
    curve = lin.clamp(min=0).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(lin <= 0.0031308, lin * 12.92, curve)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] -> CIELab (D65)."""
    t = _mix(_RGB_TO_XYZW, srgb_to_linear(rgb))
    f = t.clamp(min=_EPS).pow_(1 / 3)
    lab = _mix(_F_TO_LAB, torch.where(t > _EPS, f, t.mul(_KAPPA / 116).add_(16 / 116)))
    lab.narrow(-3, 0, 1).sub_(16)
    return lab


def lab_to_rgb(lab: Tensor, clamp: bool = True) -> Tensor:
    """CIELab (D65) -> sRGB, clamped to [0, 1] unless ``clamp=False``."""
    f = _mix(_LAB_TO_F, lab).add_(16 / 116)  # L* + 16 -> f + 16/116 in every channel
    t = torch.where(f > 6 / 29, f**3, f.mul(116 / _KAPPA).sub_(16 / _KAPPA))
    rgb = linear_to_srgb(_mix(_XYZW_TO_RGB, t))
    return rgb.clamp_(0, 1) if clamp else rgb


def luminance(rgb: Tensor) -> Tensor:
    """Gray version of an sRGB image that keeps its CIE lightness: [..., 1, H, W] in [0, 1]."""
    lab = rgb_to_lab(rgb)
    return lab_to_rgb(torch.cat([lab[..., :1, :, :], torch.zeros_like(lab[..., 1:, :, :])], dim=-3))[..., :1, :, :]


def is_gray(rgb: Tensor, tolerance: float = 2 / 255) -> bool:
    """True when every pixel has R = G = B (within ``tolerance``)."""

    def gray(x: Tensor) -> bool:
        return bool((x.amax(dim=-3) - x.amin(dim=-3)).max() <= tolerance)

    # Every 8th pixel of every 8th row settles a colour photo without reading it all (0.1 s at 12 MP).
    return gray(rgb[..., ::8, ::8]) and gray(rgb)


def rotate_chroma(lab: Tensor, degrees: float, scale: float = 1.0) -> Tensor:
    """Rotate the (a, b) chroma plane by ``degrees`` and scale it; lightness is kept."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    L, a, b = lab.unbind(-3)
    return torch.stack([L, scale * (c * a - s * b), scale * (s * a + c * b)], dim=-3)


def delta_e_2000(lab1: Tensor, lab2: Tensor) -> Tensor:
    """Per-pixel CIEDE2000 colour difference (Sharma, Wu, Dalal 2005) -> [..., H, W]."""
    L1, a1, b1 = lab1.double().unbind(-3)
    L2, a2, b2 = lab2.double().unbind(-3)
    c_bar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(c1p * c2p == 0, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh) / 2)

    L_bar = (L1 + L2) / 2
    cp_bar = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = torch.where(
        (h1p - h2p).abs() > 180, torch.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum
    ) / 2
    h_bar = torch.where(c1p * c2p == 0, h_sum, h_bar)
    T = (
        1
        - 0.17 * torch.cos(torch.deg2rad(h_bar - 30))
        + 0.24 * torch.cos(torch.deg2rad(2 * h_bar))
        + 0.32 * torch.cos(torch.deg2rad(3 * h_bar + 6))
        - 0.20 * torch.cos(torch.deg2rad(4 * h_bar - 63))
    )
    d_theta = 30 * torch.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (L_bar - 50) ** 2 / torch.sqrt(20 + (L_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * T
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    de = torch.sqrt(
        (dL / s_l) ** 2 + (dC / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dC / s_c) * (dH / s_h)
    )
    return de.to(lab1.dtype)
