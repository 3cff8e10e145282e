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
