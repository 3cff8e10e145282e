"""Artistic colorization: a gray image coloured in the style of reference images, in one forward pass.

``StyleColorizer`` is the AdaIN UNet of :mod:`colorizer.adain_unet` with the Hugging Face Hub
integration (``save_pretrained``/``from_pretrained``/``push_to_hub``) and the full-resolution
pipeline of :meth:`StyleColorizer.colorize`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from .adain_unet import AdaINUNet, StyleEncoder, measure_tone
from .color import lab_to_rgb, luminance, rgb_to_lab
from .config import TransferConfig
from .devices import resolve_device
from .hub import WeightsNotFoundError, is_repo_id
from .images import ImageInput, load_image, to_tensor

MODEL_ENV = "COLORIZER_STYLE_MODEL"
BUNDLED = Path(__file__).resolve().parent / "weights" / "style-colorizer"
_HINT = f"Pass a checkpoint folder or Hub repo id, or set {MODEL_ENV}."
_STRIP_ROWS = 512  # full-resolution recombination runs in strips of this many rows to bound memory
# The working size is capped like Neural Color Transfer's: the cost grows with its square, and beyond
# the cap a request only wastes time (the chroma is upsampled onto the full-resolution lightness anyway).
_WORKING_SIZE = TransferConfig.options()["working_size"].metadata

MODEL_CARD = """---
{{ card_data }}
---

# StyleColorizer

An AdaIN UNet that colorizes a grayscale image in the colour style of a reference image (a painting
or a photo) in one forward pass, from the `colorizer` Python package.

```python
from colorizer import StyleColorizer

model = StyleColorizer.from_pretrained("{{ repo_id | default("path/to/this/folder", true) }}")
model.colorize("gray.jpg", "painting.jpg").save("out.png")
```

## Training

{{ training | default("Not recorded.", true) }}

## Validation

{{ metrics | default("Not recorded.", true) }}
"""


class StyleColorizer(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="colorizer",
    license="mit",
    pipeline_tag="image-to-image",
    tags=["colorization", "style-transfer", "adain", "unet"],
    model_card_template=MODEL_CARD,
):
    """Style encoder + AdaIN UNet. The ``__init__`` arguments are the config saved in config.json.

    Args:
        style_dim: size of the style vector.
        bottom_stages: extra 128-channel stages at 1/16 resolution.
        dropout: dropout after every conv unit (training only).
        style_size: short side the style image is resized to before encoding.
        working_size: default long side the UNet runs at in :meth:`colorize`.
        tone_knots: gray levels of the style's tone curve (see :func:`~colorizer.adain_unet.measure_tone`).
    """

    def __init__(
        self,
        style_dim: int = 32,
        bottom_stages: int = 3,
        dropout: float = 0.1,
        style_size: int = 128,
        working_size: int = 512,
        tone_knots: int = 8,
    ):
        super().__init__()
        self.style_size = style_size
        self.working_size = working_size
        self.tone_knots = tone_knots
        self.style_encoder = StyleEncoder(style_dim)
        self.unet = AdaINUNet(style_dim, bottom_stages, dropout)

    def forward(self, gray: Tensor, style: Tensor) -> Tensor:
        """gray [B, 1, H, W] (H, W multiples of 16), style RGB [B, 3, h, w] -> RGB [B, 3, H, W]."""
        return self.unet(gray, self.style_encoder(style), measure_tone(style, self.tone_knots))

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike | None = None, *, device: str | None = None, **kwargs
    ) -> StyleColorizer:
        """Load a checkpoint folder or Hub repo id; None: ``$COLORIZER_STYLE_MODEL``, else the bundled one.

        Only ``model.safetensors`` is read. Returns the model in eval mode on ``device`` (default CPU).
        """
        spec = os.fspath(pretrained_model_name_or_path or os.environ.get(MODEL_ENV) or BUNDLED)
        if not Path(spec).is_dir() and not is_repo_id(spec):
            raise WeightsNotFoundError(f"no StyleColorizer checkpoint folder at {spec!r}. {_HINT}")
        try:
            return super().from_pretrained(spec, map_location=str(resolve_device(device or "cpu")), **kwargs)
        except (EntryNotFoundError, HfHubHTTPError) as err:
            raise WeightsNotFoundError(
                f"could not get model.safetensors of {spec!r} (offline, not in the cache, or not on the Hub). {_HINT}"
            ) from err

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        **model_kwargs,
    ) -> StyleColorizer:
        # Replaces the mixin's loader, which falls back to pickled weights and loads non-strictly.
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            path = Path(model_id) / constants.SAFETENSORS_SINGLE_FILE
            if not path.is_file():
                raise WeightsNotFoundError(f"{model_id} has no {path.name}. {_HINT}")
        else:
            path = hf_hub_download(
                model_id,
                constants.SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        try:
            state = load_file(path)
        except (SafetensorError, OSError) as err:
            raise WeightsNotFoundError(f"{path} is not a readable safetensors file ({err}). {_HINT}") from err
        try:
            model.load_state_dict(state, strict=True)  # float16 files are cast on copy
        except RuntimeError as err:
            raise WeightsNotFoundError(f"{path} is not a StyleColorizer checkpoint of this config: {err}") from err
        return model.to(map_location).eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_styles(
        self, styles: Sequence[Image.Image], weights: Sequence[float] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Style vector [style_dim] and tone curve [3, tone_knots] of style images, mixed by ``weights`` (default equal)."""
        if weights is None:
            weights = [1.0] * len(styles)
        if len(weights) != len(styles):
            raise ValueError(f"got {len(weights)} style weights for {len(styles)} style images")
        w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
        if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("style weights must be non-negative numbers with a positive sum")
        vectors, tones = [], []
        for img in styles:
            scale = self.style_size / min(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            small = to_tensor(img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), self.device)[None]
            vectors.append(self.style_encoder(small)[0])
            tones.append(measure_tone(small, self.tone_knots)[0])
        mix = (w / w.sum()).to(vectors[0])
        return torch.einsum("n,nd->d", mix, torch.stack(vectors)), torch.einsum("n,nck->ck", mix, torch.stack(tones))

    @torch.inference_mode()
    def colorize(
        self,
        content: ImageInput,
        style: ImageInput | Sequence[ImageInput],
        *,
        style_weights: Sequence[float] | None = None,
        strength: float = 1.0,
        working_size: int | None = None,
        device: str | torch.device | None = None,
        max_pixels: int | None = None,
    ) -> Image.Image:
        """Colorize ``content`` (colour or gray) in the colours of ``style`` (one image or several).

        The UNet runs at ``working_size`` (64-4096, like the transfer's; default the model's) on the
        long side (aspect kept, sides multiples of 16); its chroma, upsampled, is put on the
        content's own full-resolution lightness, so the result has exactly the content's size and
        detail. ``strength`` 0 gives the gray image, 1 the full colorization. Several styles are
        mixed by ``style_weights``. Raises ``ImageError`` for unusable images and ``ValueError``
        for bad options, before any work; ``RuntimeError`` rather than return a non-finite result.
        """
        # Not `working_size or ...`: an explicit 0 is an error, not the default.
        strength, working_size = check_options(strength, self.working_size if working_size is None else working_size)
        if device is not None:
            self.to(resolve_device(device))
        self.eval()
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise ValueError("give at least one style image")
        content_img = load_image(content, name="content image", max_pixels=max_pixels)
        style_imgs = [
            load_image(s, name=f"style image {i + 1}" if len(styles) > 1 else "style image", max_pixels=max_pixels)
            for i, s in enumerate(styles)
        ]
        vector, tone = self.encode_styles(style_imgs, style_weights)

        w, h = content_img.size
        scale = min(1.0, working_size / max(w, h))  # never upsample: small images run as they are
        size = (max(16, round(w * scale / 16) * 16), max(16, round(h * scale / 16) * 16))
        small = to_tensor(content_img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), self.device)
        rgb = self.unet(luminance(small)[None], vector[None], tone[None]).clamp(0, 1)
        if not torch.isfinite(rgb).all():  # a broken checkpoint; never hand back a black image as a result
            raise RuntimeError("the colorizer produced non-finite values; is the checkpoint corrupt?")
        chroma = rgb_to_lab(rgb)[:, 1:] * strength
        chroma = F.interpolate(chroma, size=(h, w), mode="bilinear", align_corners=False)[0]
        return _with_lightness_of(content_img, chroma)


def check_options(strength: object, working_size: object | None) -> tuple[float, int | None]:
    """:meth:`StyleColorizer.colorize`'s numeric options, checked like :class:`TransferConfig`'s (type, range,
    finiteness), so a caller can fail at once, before loading anything. None as ``working_size``: the model's."""
    if isinstance(strength, bool) or not isinstance(strength, Real) or not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"strength must be a number between 0 and 1, got {strength!r}")
    if working_size is None:
        return float(strength), None
    low, high = _WORKING_SIZE["low"], _WORKING_SIZE["high"]
    if isinstance(working_size, bool) or not isinstance(working_size, Integral) or not low <= working_size <= high:
        raise ValueError(f"working_size must be an integer between {low} and {high}, got {working_size!r}")
    return float(strength), int(working_size)


def _with_lightness_of(img: Image.Image, chroma: Tensor) -> Image.Image:
    """RGB image with ``img``'s CIE lightness and the given (a, b) chroma [2, H, W]."""
    src = np.array(img)  # a writable copy: torch.from_numpy refuses read-only arrays
    out = np.empty_like(src)
    for top in range(0, src.shape[0], _STRIP_ROWS):
        rows = slice(top, top + _STRIP_ROWS)
        strip = torch.from_numpy(src[rows]).to(chroma.device).permute(2, 0, 1).float().div_(255)
        lab = torch.cat([rgb_to_lab(strip)[:1], chroma[:, rows]], dim=0)
        rgb = lab_to_rgb(lab).mul_(255).round_().byte()
        out[rows] = rgb.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(out, "RGB")
