import io

import numpy as np
import pytest
from PIL import Image

from colorizer.images import ImageError, load_image, save_image, to_pil, to_tensor


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


def test_arrays_are_accepted():
    assert load_image(np.zeros((20, 30), np.uint16)).size == (30, 20)
    assert load_image(np.ones((20, 30, 3), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageError, match="array"):
        load_image(np.zeros((20, 30, 2), np.uint8))


def test_save_is_atomic(tmp_path):
    path = tmp_path / "out.png"
    with pytest.raises(ImageError):
        save_image(_gradient(), tmp_path / "out.unknown")

    with pytest.raises(OSError):  # a real encoder failure half-way: JPEG cannot hold alpha
        save_image(Image.new("RGBA", (32, 32)), tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []
