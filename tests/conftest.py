"""Shared fixtures. Tests run offline; real-weights and real-photo cases need ../shared."""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # the tests never reach the network, whatever the machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VGG16 = SHARED / "weights" / "vgg16_imagenet_features.safetensors"
PHOTOS = SHARED / "data" / "photos"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def vgg_path() -> Path:
    if not VGG16.is_file():
        pytest.skip(f"needs the shared VGG16 weights at {VGG16} (the ../shared folder is absent)")
    return VGG16


@pytest.fixture(scope="session")
def nct(vgg_path):
    from colorizer import NeuralColorTransfer

    return NeuralColorTransfer.from_pretrained(vgg_path, device="cpu")
