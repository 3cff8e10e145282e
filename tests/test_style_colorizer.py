"""StyleColorizer: the network, the Hub round trip, the full-resolution pipeline, the CLI, the bundled weights."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from colorizer.cli import main as cli
from colorizer.color import delta_e_2000, is_gray, luminance, rgb_to_lab
from colorizer.hub import WeightsNotFoundError
from colorizer.images import ImageError, load_image, to_pil, to_tensor
from colorizer.style_colorizer import BUNDLED, MODEL_ENV, StyleColorizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PHOTO, PAINTING, OTHER_PAINTING = EXAMPLES / "coast_day.jpg", EXAMPLES / "starry_night.jpg", EXAMPLES / "mona_lisa.jpg"


@pytest.fixture(scope="module")
def random_model() -> StyleColorizer:
    """Untrained weights, with a non-zero output layer so the style reaches the output."""
    torch.manual_seed(0)
    model = StyleColorizer(working_size=128)
    torch.nn.init.normal_(model.unet.head.weight, std=0.2)
    return model.eval()


@pytest.fixture(scope="module")
def saved(random_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    random_model.save_pretrained(folder, model_card_kwargs={"training": "unit test"})
    return folder


def _array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_shapes_and_parameter_count():
    model = StyleColorizer()
    n = sum(p.numel() for p in model.parameters())
    assert 3.4e6 < n < 3.7e6  # "about 3.5 M"
    assert model.style_encoder(torch.rand(2, 3, 70, 50)).shape == (2, 32)
    assert model(torch.rand(2, 1, 64, 96), torch.rand(2, 3, 40, 60)).shape == (2, 3, 64, 96)
    gray = torch.rand(2, 1, 32, 32)
    assert torch.equal(model(gray, torch.rand(2, 3, 32, 32)), gray.expand(2, 3, 32, 32))  # starts at the gray image


def test_tone_curve_interpolates_its_knots():
    torch.manual_seed(0)
    unet = StyleColorizer(tone_knots=3).unet  # knots at gray 0, 0.5, 1
    tint = StyleColorizer(tone_knots=1).unet  # one knot: the same offset at every gray level
    for layer in (unet.style_tone, tint.style_tone):  # zero at initialization; make the knots differ
        torch.nn.init.normal_(layer.weight)
    style = torch.randn(1, 32)
    knots = unet.style_tone(style).view(1, 3, 3)
    gray = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4)
    curve = unet.tone_curve(gray, style)[0, :, 0]  # [3 channels, 4 pixels]
    expected = torch.stack([knots[0, :, 0], knots[0, :, :2].mean(-1), knots[0, :, 1], knots[0, :, 2]], dim=1)
    assert torch.allclose(curve, expected, atol=1e-6)
    assert torch.allclose(tint.tone_curve(gray, style), tint.style_tone(style)[:, :, None, None].expand(1, 3, 1, 4))


def test_eval_mode_is_deterministic(random_model):
    model = StyleColorizer(working_size=128)
    model.load_state_dict(random_model.state_dict())
    model.train()  # colorize must switch dropout and batch statistics off by itself
    a = model.colorize(PHOTO, PAINTING)
    assert not model.training
    assert np.array_equal(_array(a), _array(model.colorize(PHOTO, PAINTING)))


def test_save_and_load_round_trip(random_model, saved):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((saved / "config.json").read_text())["working_size"] == 128
    assert "unit test" in (saved / "README.md").read_text()
    loaded = StyleColorizer.from_pretrained(saved)
    assert not loaded.training and loaded.working_size == 128
    assert np.array_equal(_array(loaded.colorize(PHOTO, PAINTING)), _array(random_model.colorize(PHOTO, PAINTING)))


def test_env_var_and_bad_checkpoints(saved, tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(saved))
    assert StyleColorizer.from_pretrained().working_size == 128
    with pytest.raises(WeightsNotFoundError, match="no StyleColorizer checkpoint"):
        StyleColorizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(WeightsNotFoundError):  # offline and not cached
        StyleColorizer.from_pretrained("nobody/no-such-colorizer")
    pickled = tmp_path / "pickled"  # pickled weights are never loaded
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    torch.save(StyleColorizer().state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(WeightsNotFoundError, match="model.safetensors"):
        StyleColorizer.from_pretrained(pickled)


def test_full_resolution_keeps_the_content_lightness(random_model):
    rng = np.random.default_rng(0)
    content = Image.fromarray(rng.integers(0, 256, (301, 457), dtype=np.uint8)).convert("RGB")  # fine detail everywhere
    out = random_model.colorize(content, PAINTING, working_size=64)
    assert out.size == content.size
    lab_in, lab_out = rgb_to_lab(to_tensor(content)), rgb_to_lab(to_tensor(out))
    assert not is_gray(to_tensor(out))
    # Out-of-gamut colours are clipped, which moves lightness a little; otherwise it is the input's.
    assert (lab_out[0] - lab_in[0]).abs().median() < 0.5


def test_strength_and_colour_input(random_model):
    gray = random_model.colorize(PHOTO, PAINTING, strength=0.0)
    assert is_gray(to_tensor(gray))
    full = random_model.colorize(PHOTO, PAINTING)
    half = random_model.colorize(PHOTO, PAINTING, strength=0.5)
    chroma = [rgb_to_lab(to_tensor(x))[1:].norm(dim=0).mean().item() for x in (gray, half, full)]
    assert chroma[0] < 1 < chroma[1] < chroma[2]
    # A colour content is treated as its gray version.
    grayed = to_pil(luminance(to_tensor(load_image(PHOTO))).expand(3, -1, -1))
    diff = np.abs(_array(random_model.colorize(grayed, PAINTING)) - _array(full))
    assert diff.mean() < 1.5


def test_style_mixing_and_bad_options(random_model):
    a = random_model.colorize(PHOTO, PAINTING)
    assert np.array_equal(
        _array(random_model.colorize(PHOTO, [PAINTING, OTHER_PAINTING], style_weights=[2, 0])), _array(a)
    )
    mixed = random_model.colorize(PHOTO, [PAINTING, OTHER_PAINTING])
    assert not np.array_equal(_array(mixed), _array(a))
    for kwargs, match in [
        ({"strength": 1.5}, "strength"),
        ({"working_size": 8}, "working size"),
        ({"style_weights": [1, 1]}, "2 style weights for 1"),
        ({"style_weights": [-1]}, "non-negative"),
    ]:
        with pytest.raises(ValueError, match=match):
            random_model.colorize(PHOTO, PAINTING, **kwargs)
    with pytest.raises(ImageError, match="style image"):
        random_model.colorize(PHOTO, b"not an image")


def test_cli(saved, tmp_path):
    out = tmp_path / "out.png"
    assert (
        cli(
            [
                "colorize",
                str(PHOTO),
                str(PAINTING),
                str(OTHER_PAINTING),
                "--weights",
                "1",
                "3",
                "--model",
                str(saved),
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    assert Image.open(out).size == load_image(PHOTO).size
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    failed = tmp_path / "failed.png"
    assert cli(["colorize", str(bad), str(PAINTING), "--model", str(saved), "-o", str(failed)]) == 2
    assert cli(["colorize", str(PHOTO), str(PAINTING), "--model", str(tmp_path / "none"), "-o", str(failed)]) == 2
    assert not failed.exists() and not list(tmp_path.glob(".failed*"))


def test_bundled_checkpoint_uses_the_style():
    with safe_open(BUNDLED / "model.safetensors", "pt") as f:
        assert f.get_tensor("unet.head.weight").dtype == torch.float16
    assert (BUNDLED / "model.safetensors").stat().st_size < 10e6
    model = StyleColorizer.from_pretrained()  # the bundled checkpoint, offline
    outs = [
        to_tensor(model.colorize(PHOTO, style, working_size=256))
        for style in (PAINTING, EXAMPLES / "desert_crater.jpg")
    ]
    assert model.colorize(PHOTO, PAINTING).size == load_image(PHOTO).size
    # Two very different styles give clearly different colours.
    assert delta_e_2000(rgb_to_lab(outs[0]), rgb_to_lab(outs[1])).mean() > 3
