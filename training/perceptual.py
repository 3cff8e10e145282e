"""The LPIPS loss, with the backbone weights as an option.

``backbone=None`` is the standard ``lpips.LPIPS(net=...)``: it downloads torchvision's ImageNet
backbone and uses the package's learned heads (needs internet once). With ``backbone`` set to a
VGG16 ``features.N`` safetensors file (or a Hub repo holding one), those weights go into
LPIPS' VGG trunk and the distance is the plain normalized-feature one (``lpips=False``): the
learned heads were fitted to torchvision's own VGG16 and do not fit other weights.
"""

from __future__ import annotations

import warnings

import torch
from safetensors.torch import load_file
from torch import nn

from colorizer.hub import resolve_weights
from training.torchvision_compat import torchvision  # noqa: F401  (lpips imports torchvision: this first)


def build_lpips(net: str = "vgg", backbone: str | None = None) -> nn.Module:
    """A frozen LPIPS module in eval mode; call it as ``module(pred, target, normalize=True)`` on [0, 1] images."""
    import lpips  # here, not at the top: import sorting must not move it above torchvision_compat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's notes on the deprecated `pretrained` flag
        if backbone is None:
            model = lpips.LPIPS(net=net, verbose=False)
        else:
            if net != "vgg":
                raise ValueError(f"custom LPIPS backbone weights need net='vgg', not {net!r}")
            model = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, lpips=False, verbose=False)
            _load_vgg16(model.net, backbone)
    return model.eval().requires_grad_(False)


def _load_vgg16(trunk: nn.Module, spec: str) -> None:
    state = load_file(resolve_weights(spec, hint="--lpips-backbone takes a VGG16 'features.N' safetensors file."))
    convs = [
        (name, m)
        for s in range(1, 6)
        for name, m in getattr(trunk, f"slice{s}").named_children()
        if isinstance(m, nn.Conv2d)
    ]
    missing = [name for name, _ in convs if f"features.{name}.weight" not in state]
    if missing:
        raise ValueError(f"{spec} is not VGG16 'features.N' weights (no features.{missing[0]}.weight)")
    with torch.no_grad():
        for name, conv in convs:
            conv.weight.copy_(state[f"features.{name}.weight"])
            conv.bias.copy_(state[f"features.{name}.bias"])
