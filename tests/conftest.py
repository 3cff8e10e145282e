"""Shared fixtures. Tests run offline; real-weights and real-photo cases need ../shared."""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # the tests never reach the network, whatever the machine

# After the line above: importing colorizer imports huggingface_hub, which reads HF_HUB_OFFLINE once.
from colorizer.paths import SHARED_VGG16  # noqa: E402


@pytest.fixture(scope="session")
def vgg_path() -> Path:
    if not SHARED_VGG16.is_file():
        pytest.skip(f"needs the shared VGG16 weights at {SHARED_VGG16} (the ../shared folder is absent)")
    return SHARED_VGG16


def save_tiny_vgg16(path: Path, width: int = 8) -> Path:
    """A VGG16-shaped network (torchvision's key layout) with ``width`` random channels per layer, as safetensors."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    weights, index, channels = {}, 0, 3
    for block, convs in enumerate((2, 2, 3, 3, 3)):
        index += block > 0  # the max-pool before every block but the first
        for _ in range(convs):
            weights[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3, generator=gen) / (3 * channels**0.5)
            weights[f"features.{index}.bias"] = torch.full((width,), 0.01)
            index, channels = index + 2, width  # a convolution and its ReLU
    save_file(weights, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_vgg_path(tmp_path_factory) -> Path:
    """Random weights: enough to run the whole pipeline offline, not to judge its quality."""
    return save_tiny_vgg16(tmp_path_factory.mktemp("vgg") / "tiny_vgg16.safetensors")


@pytest.fixture(scope="session")
def any_vgg_path(tiny_vgg_path) -> Path:
    """The shared VGG16 when ../shared is present, else the tiny random one: for tests of mechanics, not quality."""
    return SHARED_VGG16 if SHARED_VGG16.is_file() else tiny_vgg_path


@pytest.fixture(scope="session")
def any_nct(any_vgg_path):
    from colorizer import NeuralColorTransfer

    return NeuralColorTransfer.from_pretrained(any_vgg_path, device="cpu")


@pytest.fixture(scope="session")
def nct(vgg_path):
    from colorizer import NeuralColorTransfer

    return NeuralColorTransfer.from_pretrained(vgg_path, device="cpu")


@pytest.fixture(scope="session")
def live_app(vgg_path, tmp_path_factory):
    """app.py serving on a free local port with the shared VGG; a 2 MP pixel cap keeps the cap cheap to test."""
    from benchmarks.live_app import running_app

    env = {
        "COLORIZER_VGG": str(vgg_path),
        "COLORIZER_MAX_PIXELS": "2000000",
        "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio")),
    }
    with running_app(env) as app:
        yield app
