"""StyleColorizer: the network, the Hub round trip, the full-resolution pipeline, the CLI, the bundled weights."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from colorizer.cli import main as cli
from colorizer.adain_unet import apply_tone, measure_tone
from colorizer.color import delta_e_2000, is_gray, luminance, rgb_to_lab
from colorizer.hub import WeightsNotFoundError
from colorizer.images import ImageError, load_image, to_pil, to_tensor
from colorizer.paths import EXAMPLES
from colorizer.style_colorizer import BUNDLED, MODEL_ENV, StyleColorizer

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
    gray, style = torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32)
    # Untrained, the output is the gray image moved along the style's tone curve; a gray style leaves it gray.
    assert torch.allclose(model(gray, style), gray + apply_tone(gray, measure_tone(style, model.tone_knots)))
    assert torch.allclose(model(gray, luminance(style).expand(2, 3, 32, 32)), gray.expand(2, 3, 32, 32), atol=1e-5)


def test_tone_curve_interpolates_its_knots():
    knots = torch.tensor([[[0.0, 0.2, -0.1]]]).expand(1, 3, 3)  # at gray 0, 0.5, 1
    gray = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 5)
    curve = apply_tone(gray, knots)[0, 0, 0]
    assert torch.allclose(curve, torch.tensor([0.0, 0.1, 0.2, 0.05, -0.1]))
    tint = torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1)  # one knot: the same offset at every level
    assert torch.allclose(apply_tone(gray, tint), tint[..., None].expand(1, 3, 1, 5))


def test_tone_curve_measures_the_style_colour_of_each_lightness():
    dark_red, light_blue = torch.tensor([0.45, 0.15, 0.15]), torch.tensor([0.55, 0.7, 0.95])
    style = torch.cat([dark_red.view(3, 1, 1).expand(3, 8, 16), light_blue.view(3, 1, 1).expand(3, 8, 16)], 1)[None]
    tone = measure_tone(style, knots=5)
    gray = luminance(style)
    offset = apply_tone(gray, tone)  # each pixel's colour, read back off the curve at its gray level
    dark, light = offset[0, :, 0, 0], offset[0, :, -1, 0]
    assert dark[0] > 0.05 and dark[2] < -0.05  # red where the style is dark
    assert light[2] > 0.05 and light[0] < -0.05  # blue where it is light
    uniform = measure_tone(dark_red.view(1, 3, 1, 1).expand(1, 3, 4, 4), knots=5)
    # Levels the style lacks fall back on its mean colour: a one-colour style tints every level alike.
    assert torch.allclose(uniform, (dark_red - luminance(dark_red.view(3, 1, 1)).flatten()).view(1, 3, 1).expand(1, 3, 5))


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
    with pytest.raises(ImageError, match="style image"):
        random_model.colorize(PHOTO, b"not an image")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strength": 1.5}, "strength must be a number between 0 and 1"),
        ({"strength": float("nan")}, "strength"),
        ({"strength": "0.5"}, "strength"),
        ({"strength": None}, "strength"),
        ({"working_size": 8}, "working_size must be an integer between 64 and 4096"),
        ({"working_size": 99999}, "working_size must be an integer between 64 and 4096"),  # capped like transfer's
        ({"working_size": 0}, "working_size"),  # not the default in disguise
        ({"working_size": "512"}, "working_size"),
        ({"working_size": 512.5}, "working_size"),
        ({"working_size": True}, "working_size"),
        ({"style_weights": [1, 1]}, "2 style weights for 1"),
        ({"style_weights": [-1]}, "non-negative"),
        ({"style_weights": [float("nan")]}, "non-negative"),
        ({"max_pixels": 0}, "max_pixels"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_bad_options_fail_before_any_work(random_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_model.colorize(PHOTO, PAINTING, **kwargs)


@pytest.mark.parametrize(
    "content, match",
    [(None, "no content image was given"), (np.full((64, 64), np.nan), "content image has NaN"), (7, "not int")],
)
def test_bad_content_images(random_model, content, match):
    with pytest.raises(ImageError, match=match):
        random_model.colorize(content, PAINTING)


def test_broken_checkpoints_fail_clearly(saved, tmp_path):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text((saved / "config.json").read_text())
    (garbage / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsNotFoundError, match="not a readable safetensors file"):
        StyleColorizer.from_pretrained(garbage)
    nan_model = StyleColorizer(working_size=64).eval()
    torch.nn.init.constant_(nan_model.unet.head.weight, float("nan"))
    with pytest.raises(RuntimeError, match="non-finite"):  # never a black image as the result
        nan_model.colorize(PHOTO, PAINTING)


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


@pytest.mark.parametrize("device, words", [("banana", "unknown device"), ("cuda:7", "not available on this machine")])
def test_a_device_this_machine_lacks_is_refused_at_once(device, words):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    from colorizer import NeuralColorTransfer
    from colorizer.vgg import VGGFeatures

    with pytest.raises(ValueError, match=words):
        StyleColorizer.from_pretrained(device=device)
    with pytest.raises(ValueError, match=words):
        NeuralColorTransfer(VGGFeatures([[torch.nn.Conv2d(3, 4, 3)]] * 5), device=device)
