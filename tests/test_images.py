import io
import os
import stat
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from colorizer.images import ImageError, check_output_path, load_image, save_image, save_images, to_pil, to_tensor


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def _gradient(w=64, h=48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)
    return Image.fromarray(np.stack(np.broadcast_arrays(x[None, :], x[None, ::-1], np.full((h, 1), 90, np.uint8)), -1))


def test_plain_rgb_round_trip(tmp_path):
    img = _gradient()
    path = tmp_path / "a.png"
    save_image(img, path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == img.size
    assert np.array_equal(np.asarray(out), np.asarray(img))
    assert np.array_equal(np.asarray(to_pil(to_tensor(out))), np.asarray(img))


def test_to_pil_clamps_and_rounds_whatever_the_layout():
    x = torch.linspace(-0.5, 1.5, 3 * 5 * 7, dtype=torch.float64).view(3, 5, 7).float()
    expected = np.clip(np.round(x.numpy() * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    channels_last = x.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # as to_tensor lays an image out
    for rgb in (x, channels_last):
        assert np.array_equal(np.asarray(to_pil(rgb)), expected)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"this is not an image", "not an image"),
        (b"", "not an image"),
    ],
)
def test_not_an_image(data, match):
    with pytest.raises(ImageError, match=match):
        load_image(data)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_truncated_file():
    data = _png_bytes(_gradient(200, 150), format="JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_pixel_cap_is_checked_before_decoding():
    data = _png_bytes(Image.new("RGB", (3000, 2000)))
    with pytest.raises(ImageError, match="over the limit"):
        load_image(data, max_pixels=5_000_000)
    assert load_image(data, max_pixels=6_000_000).size == (3000, 2000)


def test_too_small_and_extreme_aspect():
    with pytest.raises(ImageError, match="at least"):
        load_image(Image.new("RGB", (1, 1)))
    with pytest.raises(ImageError, match="aspect"):
        load_image(Image.new("RGB", (1200, 100)))


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 16, 32))
    out = np.asarray(load_image(_png_bytes(rgba)))
    assert tuple(out[5, 5]) == (0, 0, 255) and tuple(out[5, 25]) == (255, 255, 255)


def test_palette_and_cmyk():
    pal = _gradient().convert("P", palette=Image.ADAPTIVE, colors=16)
    assert load_image(_png_bytes(pal)).mode == "RGB"
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    out = np.asarray(load_image(_png_bytes(cmyk, format="JPEG")))
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60


def test_16_bit_gray_is_scaled_not_clipped():
    arr = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))
    out = np.asarray(load_image(_png_bytes(Image.fromarray(arr))))
    assert out.shape == (40, 64, 3) and out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert 120 <= out[0, 32, 0] <= 135  # mid-gray, not clipped to white


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 30), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 30))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_png_bytes(img, format="JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (30, 60)
    arr = np.asarray(out).mean(axis=2)
    assert arr[:8].mean() > 200 and arr[-8:].mean() < 50  # the left stripe is now on top


@pytest.mark.parametrize(
    "array, pixel",
    [
        (np.zeros((20, 30), np.uint16), 0),
        (np.full((20, 30), 65535, np.uint16), 255),  # uint16 is 16-bit data: scaled, not clipped
        (np.full((20, 30), 32768, ">u2"), 128),  # in either byte order
        (np.full((20, 30, 3), 200, np.int64), 200),  # integers in 0-255 (numpy arithmetic's int64) are 8-bit
        (np.full((20, 30), 1000, np.int32), 4),  # beyond 255: 16-bit
        (np.full((20, 30), 2**31 - 1, np.int32), 255),  # beyond 65535: the dtype's own range
        (np.ones((20, 30, 3), np.float32), 255),  # floats are 0-1
        (np.full((20, 30), 1.002), 255),  # rounding slack just past 1 is clipped
        (np.full((20, 30), 0.5, np.float16), 128),
        (np.ones((20, 30), bool), 255),  # black and white
        (np.full((20, 30, 1), 7, np.uint8), 7),
    ],
    ids=lambda v: f"{v.dtype}{list(v.shape)}" if isinstance(v, np.ndarray) else str(v),
)
def test_unambiguous_arrays_are_converted(array, pixel):
    out = np.asarray(load_image(array))
    assert out.shape == (20, 30, 3) and (out == pixel).all()


@pytest.mark.parametrize(
    "src, match",
    [
        (None, "no image was given"),
        (42, "must be a file path, bytes, a PIL image or a numpy array, not int"),
        ([[0, 255]], "not list"),
        (np.zeros((20, 30, 2), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.zeros((3, 20, 30), np.uint8), "channels come last"),
        (np.zeros(30, np.uint8), "HxW"),
        (np.zeros((0, 0, 3), np.uint8), "empty array"),
        (np.full((20, 30), np.nan, np.float32), "NaN or infinite"),
        (np.full((20, 30, 3), np.inf), "NaN or infinite"),
        (np.full((20, 30, 3), 200.0), "must lie in 0-1.*divide it by 255"),  # 0-255 floats would come out white
        (np.full((20, 30), -0.5), "must lie in 0-1"),
        (np.full((20, 30), -3, np.int64), "negative pixel values"),
        (np.full((20, 30), 2**40, np.int64), "beyond 32 bits"),
        (np.zeros((20, 30), np.complex64), "complex64 is not an image"),
        (np.zeros((20, 30), object), "object is not an image"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, np.ndarray) else f"{v.dtype}{list(v.shape)}",
)
def test_bad_inputs_are_refused_with_a_reason(src, match):
    with pytest.raises(ImageError, match=match):
        load_image(src)


@pytest.mark.parametrize("max_pixels", [0, -1, 1.5, "5", True])
def test_max_pixels_must_be_a_positive_integer(max_pixels):
    with pytest.raises(ValueError, match="max_pixels must be a positive whole number"):
        load_image(_gradient(), max_pixels=max_pixels)


def test_pixel_cap_message_gives_the_counts():
    with pytest.raises(ImageError, match=r"64x48 = 3,072 pixels, over the limit of 3,071 pixels"):
        load_image(_gradient(), max_pixels=3071)
    assert load_image(_gradient(), max_pixels=3072).size == (64, 48)


def test_32_bit_tiff_is_scaled_by_the_range_it_uses(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 64), (32, 1))
    for peak in (255, 65535, 2**31 - 1):  # 8- or 16-bit data in a 32-bit file, and full 32-bit data
        path = tmp_path / f"ramp{peak}.tif"
        Image.fromarray((ramp * peak).astype(np.int32)).save(path)
        assert Image.open(path).mode == "I"
        out = np.asarray(load_image(path))[0, :, 0]
        assert out[0] == 0 and out[-1] == 255 and 120 <= out[32] <= 135, peak


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "PNG"])
def test_files_with_several_images_are_refused(fmt):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    data = _png_bytes(frames[0], format=fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match=f"holds 2 images .*{fmt}"):
        load_image(data)
    assert load_image(_png_bytes(frames[0], format=fmt)).size == (32, 32)  # a single frame is fine


def test_output_path_checks(tmp_path):
    (tmp_path / "folder.png").mkdir()
    for path, match in [
        (tmp_path / "missing" / "o.png", "does not exist"),
        (tmp_path / "folder.png", "is a folder"),
        (tmp_path / "o.unknown", "cannot tell the image format"),
        (tmp_path / "o.xbm", "cannot write RGB images as .xbm"),
        (Path("/proc/o.png"), "cannot write to the output folder"),  # even for root
    ]:
        with pytest.raises(ImageError, match=match):
            check_output_path(path)
    assert check_output_path(tmp_path / "o.JPG") == "JPEG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.png"]  # the writability probe left nothing


def test_save_is_atomic(tmp_path):
    with pytest.raises(ImageError):
        save_image(_gradient(), tmp_path / "out.unknown")
    with pytest.raises(ImageError, match="RGBA"):  # JPEG cannot hold alpha: found before writing
        save_image(Image.new("RGBA", (32, 32)), tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_save_images_writes_all_or_nothing(tmp_path):
    # The second file fails in its encoder, after the first was written: WebP sides stop at 16383 px.
    images = {tmp_path / "a.png": _gradient(), tmp_path / "b.webp": Image.new("RGB", (16384, 16))}
    with pytest.raises(ValueError, match="WebP"):
        save_images(images)
    assert list(tmp_path.iterdir()) == []
    save_images({tmp_path / "a.png": _gradient(), tmp_path / "b.webp": _gradient()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.webp"]


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save_image(_gradient(), tmp_path / "out.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o640  # 0o666 less the umask, not 0o600
