"""Reading, validating and writing images: every input goes through ``load_image``.

Whatever arrives (a path, bytes, a PIL image or an array; 8, 16 or 32 bit; gray, palette, CMYK,
with alpha or an EXIF orientation) comes out as an upright 8-bit RGB PIL image, or an
``ImageError`` whose message says what is wrong with it. Nothing is guessed: data whose black and
white levels cannot be told (negative values, floats beyond 0-1, NaN) and files holding several
images (animated GIFs, multi-page TIFFs) are refused, not silently turned into a wrong picture.
"""

from __future__ import annotations

import io
import os
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Largest accepted image, in pixels; override per call or with ``COLORIZER_MAX_PIXELS``.
DEFAULT_MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "COLORIZER_MAX_PIXELS"
MIN_SIDE = 16
MAX_ASPECT = 5.0
#: Floats within one 8-bit step of 0-1 are rounding, not another scale: they are clipped.
_FLOAT_SLACK = 1 / 255


class ImageError(ValueError):
    """An image that cannot be read, or written where asked; the message says why, for a person."""


def max_pixels_default() -> int:
    """The pixel cap: ``$COLORIZER_MAX_PIXELS`` when set, else ``DEFAULT_MAX_PIXELS``."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
    try:
        return check_max_pixels(int(raw))
    except ValueError:
        raise ValueError(f"${MAX_PIXELS_ENV} must be a positive whole number of pixels, not {raw!r}") from None


def check_max_pixels(max_pixels: int | None) -> int:
    """The pixel cap to use: None means the default; anything but a positive integer is refused."""
    if max_pixels is None:
        return max_pixels_default()
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive whole number of pixels, got {max_pixels!r}")
    return int(max_pixels)


def load_image(src: ImageInput, *, name: str = "image", max_pixels: int | None = None) -> Image.Image:
    """Open, validate and normalise an image to upright 8-bit RGB.

    Alpha is composited over white; 16- and 32-bit data is scaled (not clipped) to 8 bits.
    Raises ``ImageError`` for anything that is not one complete, reasonably sized image, and
    ``ValueError`` for a ``max_pixels`` that is not a positive integer.
    """
    limit = check_max_pixels(max_pixels)
    img = _open(src, name, limit)
    _check_pixels(img.size, limit, name)
    try:
        _check_single_frame(img, name)
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"{name} could not be decoded ({err}); is the file truncated or corrupt?") from err
    rgb = _to_rgb(img, name)
    check_geometry(rgb, name=name)
    return rgb


def _open(src: ImageInput, name: str, limit: int) -> Image.Image:
    if src is None:
        raise ImageError(f"no {name} was given (got None)")
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src, name, limit)
    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    elif not isinstance(src, (str, os.PathLike)):
        raise ImageError(f"{name} must be a file path, bytes, a PIL image or a numpy array, not {type(src).__name__}")
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


def _check_pixels(size: tuple[int, int], limit: int, name: str) -> None:
    w, h = size
    if w * h > limit:
        raise ImageError(f"{name} is {w}x{h} = {w * h:,} pixels, over the limit of {limit:,} pixels")


def _check_single_frame(img: Image.Image, name: str) -> None:
    """Refuse files that hold several images: which one was meant cannot be told.

    MPO (a camera JPEG with a preview or second view) is the exception: its first frame is the
    photo by definition, and ordinary JPEG readers show exactly that.
    """
    if getattr(img, "is_animated", False) and img.format != "MPO":
        raise ImageError(
            f"{name} holds {img.n_frames} images (an animated {img.format} or a multi-page file); "
            "save the one you want as a single image"
        )


def _from_array(arr: np.ndarray, name: str, limit: int) -> Image.Image:
    """An HxW, HxWx1, HxWx3 or HxWx4 array as a PIL image, its values scaled to 8 bits (see ``_to_uint8``)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        channels_first = arr.ndim == 3 and arr.shape[0] in (1, 3, 4)
        hint = "; channels come last (use arr.transpose(1, 2, 0))" if channels_first else ""
        raise ImageError(f"{name}: an array image must be HxW, HxWx3 or HxWx4, not {arr.shape}{hint}")
    _check_pixels((arr.shape[1], arr.shape[0]), limit, name)
    if arr.size == 0:
        raise ImageError(f"{name} is an empty array of shape {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(_to_uint8(arr, name)))


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Pixel values to 8 bits, by the one scale the data can mean; refuse data with no such scale.

    uint8 is kept; bool is black and white; uint16 is 16-bit (0-65535). Other integers are read
    by the smallest of 8, 16 or 32 bits that holds their largest value (``int64`` arrays of 0-255
    from numpy arithmetic, 32-bit TIFFs that hold 8- or 16-bit data); negative values are refused.
    Floats must lie in 0-1: a 0-255 float array would otherwise come out white.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # either byte order (PIL's I;16B is big-endian)
        return _scaled(arr, 65535)
    if np.issubdtype(arr.dtype, np.integer):
        return _scaled(arr, _integer_peak(arr, name))
    if np.issubdtype(arr.dtype, np.floating):
        return _scaled(_unit_floats(arr, name), 1.0)
    raise ImageError(f"{name}: an array of {arr.dtype} is not an image; use uint8 (0-255), uint16 or floats in 0-1")


def _integer_peak(arr: np.ndarray, name: str) -> int:
    """The white level of integer pixel data of unknown depth (see ``_to_uint8``)."""
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise ImageError(f"{name} has negative pixel values (down to {low}); black must be 0")
    for peak in (255, 65535, min(2**32 - 1, np.iinfo(arr.dtype).max)):  # int32 (PIL's mode I) peaks at 2**31 - 1
        if high <= peak:
            return peak
    raise ImageError(f"{name} has pixel values up to {high}, beyond 32 bits; scale it to uint16 or floats in 0-1")


def _unit_floats(arr: np.ndarray, name: str) -> np.ndarray:
    """Float pixel data checked to be finite and in 0-1 (rounding slack clipped)."""
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ImageError(f"{name} has NaN or infinite pixel values")
    low, high = arr.min(), arr.max()
    if low < -_FLOAT_SLACK or high > 1 + _FLOAT_SLACK:
        hint = " (divide it by 255, or pass uint8)" if high <= 255 and low >= 0 else ""
        raise ImageError(f"{name}: float pixel values must lie in 0-1, these span {low:g} to {high:g}{hint}")
    return np.clip(arr, 0.0, 1.0)


def _scaled(arr: np.ndarray, peak: float) -> np.ndarray:
    return (arr.astype(np.float64) * (255.0 / peak) + 0.5).astype(np.uint8)


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit gray, 32-bit integers and floats: PIL's convert("L") would clip, not scale.
        img = Image.fromarray(_to_uint8(np.asarray(img), name))
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
    # Laid out channel by channel: the recolouring of a 12 MP source reads its strips 0.2 s faster so.
    return arr.to(device).permute(2, 0, 1).to(torch.float32, memory_format=torch.contiguous_format).div_(255)


def to_pil(rgb: Tensor) -> Image.Image:
    """Float tensor [3, H, W] in [0, 1] -> RGB PIL image."""
    # One float temporary, rounded in place, then bytes: a 12 MP image in 0.1 s where a fresh map per
    # step (clamp, scale, round, cast, then a copy for PIL) took 0.5 s.
    arr = rgb.detach().float().mul(255).clamp_(0, 255).round_().to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(arr.cpu().numpy(), "RGB")


def check_output_path(path: str | os.PathLike, mode: str = "RGB") -> str:
    """Fail before any work when an image of ``mode`` could not be written at ``path``; returns PIL's format name.

    The folder must exist and be writable, the path must not be a folder, and its suffix must name a
    format PIL can write such an image in (a trial encode: ``.xbm`` and ``.palm`` hold only bilevel
    or palette images, some formats have no writer installed).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ImageError(f"output folder {folder} does not exist")
    if path.is_dir():
        raise ImageError(f"output {path} is a folder; give a file name such as {path / 'result.png'}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot tell the image format of {path.name!r}; use e.g. .png or .jpg")
    try:
        Image.new(mode, (MIN_SIDE, MIN_SIDE)).save(io.BytesIO(), format=fmt)
    except Exception as err:  # each plugin fails its own way (OSError, ValueError, KeyError, ...)
        raise ImageError(f"cannot write {mode} images as {path.suffix} ({fmt}: {err}); use e.g. .png or .jpg") from err
    _check_writable(folder)
    return fmt


def _check_writable(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only test that holds for root, read-only mounts and ACLs alike."""
    probe = _temp_beside(folder / "probe")
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as err:
        raise ImageError(f"cannot write to the output folder {folder} ({err.strerror or err})") from err


def _temp_beside(path: Path) -> Path:
    """A hidden, unused file name in ``path``'s folder (a rename from there into ``path`` is atomic)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def save_image(img: Image.Image, path: str | os.PathLike) -> None:
    """Write atomically: the file appears complete or not at all."""
    save_images({path: img})


def save_images(images: Mapping[str | os.PathLike, Image.Image]) -> None:
    """Write several images all or nothing.

    Every path is checked first, then each image is encoded to a hidden temporary file beside its
    target; only when all are written are they renamed into place (a rename within a folder does
    not fail half-way), and on any failure the temporary files are removed. The files get the
    usual permissions of the umask, as any new file would.
    """
    jobs = [(Path(p), img, check_output_path(p, img.mode)) for p, img in images.items()]
    pending: list[tuple[Path, Path]] = []
    try:
        for path, img, fmt in jobs:
            tmp = _temp_beside(path)
            with open(tmp, "xb") as f:  # not tempfile.mkstemp, whose files are always 0600
                pending.append((tmp, path))
                img.save(f, format=fmt)
        while pending:
            tmp, path = pending[0]
            os.replace(tmp, path)
            pending.pop(0)
    finally:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
