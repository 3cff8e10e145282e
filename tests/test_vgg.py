import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from colorizer.hub import WeightsNotFoundError, resolve_weights
from colorizer.vgg import VGGFeatures
from training.torchvision_compat import torchvision

# VGG19's layout ("E") with narrow layers, so a test model is small.
_NARROW_E = [4, 4, "M", 6, 6, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"]


def _torchvision_vgg19(path):
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(_NARROW_E)
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(path))
    return features.eval()


def test_vgg19_structure_matches_torchvision(tmp_path):
    features = _torchvision_vgg19(tmp_path / "vgg19.safetensors")
    ours = VGGFeatures.from_file(tmp_path / "vgg19.safetensors").eval()
    assert ours.name == "vgg19"
    x = torch.rand(1, 3, 64, 48)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        got = ours(x)
        for k, idx in zip(range(1, 6), [1, 6, 11, 20, 29]):  # relu{k}_1 in torchvision's VGG19
            expected = features[: idx + 1]((x - mean) / std)
            assert torch.allclose(got[k], expected, atol=1e-5), k


@pytest.mark.parametrize("level, convs", [(1, 1), (2, 3), (3, 5), (4, 9), (5, 13)])
def test_a_pass_stops_at_the_deepest_level_asked_for(tmp_path, level, convs):
    """relu{L}_1 alone runs the convolutions up to it, no further, and equals the full pass's."""
    _torchvision_vgg19(tmp_path / "vgg19.safetensors")
    vgg = VGGFeatures.from_file(tmp_path / "vgg19.safetensors").eval()
    ran = []
    for block in vgg.blocks:
        for conv in block:
            conv.register_forward_hook(lambda *_: ran.append(1))
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        alone = vgg(x, levels=(level,))
        assert len(ran) == convs
        assert torch.equal(alone[level], vgg(x)[level])


def test_shared_vgg16(vgg_path):
    vgg = VGGFeatures.from_file(vgg_path).eval()
    assert vgg.name == "vgg16"
    with torch.no_grad():
        out = vgg(torch.rand(1, 3, 64, 64), levels=(2, 5))
    assert sorted(out) == [2, 5]
    assert out[2].shape == (1, 128, 32, 32) and out[5].shape == (1, 512, 4, 4)
    assert out[5].min() >= 0  # taken after the ReLU, not the raw convolution


def test_env_variable_and_bad_files(tmp_path, monkeypatch):
    _torchvision_vgg19(tmp_path / "w.safetensors")
    monkeypatch.setenv("COLORIZER_VGG", str(tmp_path / "w.safetensors"))
    assert VGGFeatures.from_pretrained().name == "vgg19"
    (tmp_path / "w.pth").write_bytes(b"pickle")
    with pytest.raises(WeightsNotFoundError, match="only safetensors"):
        VGGFeatures.from_pretrained(tmp_path / "w.pth")
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        VGGFeatures.from_pretrained(tmp_path / "missing.safetensors")
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="does not look like VGG"):
        VGGFeatures.from_pretrained(tmp_path / "other.safetensors")


def test_offline_without_cache_fails_fast_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="COLORIZER_VGG"):
        VGGFeatures.from_pretrained("colorizer-tests/no-such-vgg")


def test_hub_cache_is_used_offline(tmp_path):
    # A Hub cache laid out as huggingface_hub writes it; offline, the file must come from there.
    snapshot = tmp_path / "models--timm--vgg19.tv_in1k" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "models--timm--vgg19.tv_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--vgg19.tv_in1k" / "refs" / "main").write_text("a" * 40)
    _torchvision_vgg19(snapshot / "model.safetensors")
    code = "from colorizer.vgg import VGGFeatures; print(VGGFeatures.from_pretrained().name)"
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path), HF_HUB_OFFLINE="1")
    env.pop("COLORIZER_VGG", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "vgg19"
    assert resolve_weights(snapshot) == snapshot / "model.safetensors"


def test_repo_ids_and_paths_are_told_apart(tmp_path):
    from colorizer.hub import is_repo_id

    assert is_repo_id("timm/vgg19.tv_in1k") and is_repo_id("owner/name@refs/pr/1")
    for path in ("./w/x", "/abs/x", "~/x", "weights", "a/b/c", "dir/w.safetensors", "dir/w.pth", str(tmp_path)):
        assert not is_repo_id(path), path


def test_features_in_the_fast_precision_stay_close_to_float32(vgg_path):
    """The precision picked for this CPU (bfloat16 where it is native) gives nearly the float32 features."""
    import torch.nn.functional as F
    from PIL import Image

    from colorizer.devices import feature_dtype
    from colorizer.images import to_tensor
    from colorizer.paths import EXAMPLES

    dtype = feature_dtype(torch.device("cpu"))
    assert feature_dtype(torch.device("cuda")) == torch.float16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert dtype == (torch.bfloat16 if native else torch.float32)
    x = to_tensor(Image.open(EXAMPLES / "mountain_lake.jpg").convert("RGB").resize((128, 96)), "cpu")[None]
    with torch.inference_mode():
        exact = VGGFeatures.from_file(vgg_path).eval()(x)
        fast = VGGFeatures.from_file(vgg_path).to(dtype).eval()(x)
    for level in exact:
        cosine = (F.normalize(exact[level].float(), dim=1) * F.normalize(fast[level].float(), dim=1)).sum(1)
        assert cosine.mean() > 0.9995 and cosine.min() > 0.99, level
