"""Reading, validating and writing images: every input goes through ``load_image``.

Whatever arrives (a path, bytes, a PIL image or an array; 8 or 16 bit; gray, palette, CMYK,
with alpha or an EXIF orientation) comes out as an upright 8-bit RGB PIL image, or an
``ImageError`` whose message says what is wrong with it.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Largest accepted image, in pixels; override per call or with ``COLORIZER_MAX_PIXELS``.
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 16
MAX_ASPECT = 5.0


class ImageError(ValueError):
    """An input that cannot be used as an image; the message says why, for a person."""


def max_pixels_default() -> int:
    return int(os.environ.get("COLORIZER_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def load_image(src: ImageInput, *, name: str = "image", max_pixels: int | None = None) -> Image.Image:
    """Open, validate and normalise an image to upright 8-bit RGB.

    Alpha is composited over white; 16-bit data is scaled (not clipped) to 8 bits.
    Raises ``ImageError`` for anything that is not a complete, reasonably sized image.
    """
    limit = max_pixels or max_pixels_default()
    img = _open(src, name)
    w, h = img.size
    if w * h > limit:
        raise ImageError(f"{name} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {limit / 1e6:.1f} MP")
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{name} could not be decoded ({err}); is the file truncated or corrupt?") from err
    rgb = _to_rgb(img)
    check_geometry(rgb, name=name)
    return rgb


def _open(src: ImageInput, name: str) -> Image.Image:
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src, name)
    if isinstance(src, bytes):
        src = io.BytesIO(src)
    elif not Path(src).is_file():
        raise ImageError(f"{name}: no such file: {src}")
    try:
        with warnings.catch_warnings():
            # Our own pixel cap decides, with a clearer message than PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(src)
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name} is far too large to process ({err})") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{name} is not an image file that can be read (PNG, JPEG, WebP, TIFF, ...)") from err


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: an array image must be HxW, HxWx3 or HxWx4, not {arr.shape}")
    if arr.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(arr.dtype, np.floating) else 255.0 / np.iinfo(arr.dtype).max
        arr = (np.clip(arr.astype(np.float64) * scale, 0, 255) + 0.5).astype(np.uint8)
    return Image.fromarray(arr)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit gray (and 32-bit int/float); PIL's convert("L") would clip, not scale.
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if img.mode == "F" else 65535.0
        img = Image.fromarray((np.clip(arr / peak, 0, 1) * 255 + 0.5).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def check_geometry(img: Image.Image, *, name: str = "image") -> None:
    """Reject images too small to analyse or with an extreme aspect ratio."""
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name} is {w}x{h}; both sides must be at least {MIN_SIDE} px")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ImageError(f"{name} is {w}x{h}; aspect ratios beyond {MAX_ASPECT:g}:1 are not supported")


def to_tensor(img: Image.Image, device: torch.device | str | None = None) -> Tensor:
    """RGB PIL image -> float tensor [3, H, W] in [0, 1]."""
    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
    return arr.to(device).permute(2, 0, 1).float().div_(255)


def to_pil(rgb: Tensor) -> Image.Image:
    """Float tensor [3, H, W] in [0, 1] -> RGB PIL image."""
    arr = rgb.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def save_image(img: Image.Image, path: str | os.PathLike) -> None:
    """Write atomically: the file appears complete or not at all."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot tell the image format from the file name {path.name!r}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
