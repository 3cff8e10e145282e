"""The training program: data, a few steps with checkpoint/resume/export, trackers, LPIPS weights, the Hub upload."""

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from safetensors import safe_open
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from colorizer.color import luminance, rgb_to_lab
from colorizer.paths import EXAMPLES, ROOT
from colorizer.style_colorizer import StyleColorizer
from training import train
from training.data import RecolorCrops, load_photos, resolve_data
from training.train import main, parse_args, recalibrate_batchnorm

# Tiny and fast: 32 px crops of the example images (8 train, 6 held out by the fixed split).
FAST = [
    "--image-size",
    "64",
    "--crop-size",
    "32",
    "--style-size",
    "32",
    "--batch-size",
    "2",
    "--working-size",
    "64",
    "--val-images",
    "1",
    "--lpips-weight",
    "0",
    "--log-every",
    "1",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for path in EXAMPLES.glob("*.jpg"):
        shutil.copy(path, folder / path.name)
    return folder


def test_samples_are_deterministic_and_recoloured(data_dir):
    photos = load_photos(sorted(data_dir.glob("*.jpg"))[:3], 64)
    a = RecolorCrops(photos, 10, crop=32, style_size=16, recolor_prob=1.0, seed=3)
    b = RecolorCrops(photos, 10, crop=32, style_size=16, recolor_prob=1.0, seed=3)
    s = a[7]
    assert s["gray"].shape == (1, 32, 32) and s["target"].shape == (3, 32, 32) and s["style"].shape == (3, 16, 16)
    assert all(torch.equal(s[k], b[7][k]) for k in s)  # a pure function of (seed, index): exact resume
    assert not torch.equal(s["target"], a[8]["target"])
    assert torch.allclose(s["gray"], luminance(s["target"]))
    plain = RecolorCrops(photos, 10, crop=32, style_size=16, recolor_prob=0.0, seed=3)[7]
    assert torch.allclose(plain["gray"], s["gray"], atol=0.03)  # recolouring keeps the lightness ...
    assert (rgb_to_lab(plain["target"])[1:] - rgb_to_lab(s["target"])[1:]).abs().mean() > 1  # ... not the chroma


def test_resolve_data_errors(tmp_path):
    assert resolve_data(str(tmp_path)) == tmp_path
    with pytest.raises(FileNotFoundError, match="no image folder"):
        resolve_data(str(tmp_path / "missing"))


def _logged_steps(run: Path) -> dict[str, list[int]]:
    """The steps at which each scalar reached TensorBoard (accelerate's tracker, under OUTPUT_DIR/logs)."""
    events = EventAccumulator(str(run / "logs" / "style-colorizer")).Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_train_checkpoint_resume_export(data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="training")
    common = ["--data", str(data_dir), *FAST, "--steps", "4", "--checkpoint-every", "2", "--val-every", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # A checkpoint every step, of which accelerate keeps the newest 2 (--keep-checkpoints' default).
    assert main([*common, "--checkpoint-every", "1", "--output-dir", str(straight)]) == 0
    assert main([*common, "--output-dir", str(resumed), "--steps", "2"]) == 0  # stops at step 2 ...
    assert main([*common, "--output-dir", str(resumed), "--resume", "latest"]) == 0  # ... and goes on to 4

    checkpoints = straight / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_2", "checkpoint_3"]
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["checkpoint_0", "checkpoint_1"]
    assert json.loads((checkpoints / "checkpoint_3" / "trainer_state.json").read_text())["step"] == 4
    # Exact resume: the same weights and optimizer state as the uninterrupted run.
    for name in ("model.safetensors", "optimizer.bin"):
        a = (checkpoints / "checkpoint_3" / name).read_bytes()
        assert a == (resumed / "checkpoints" / "checkpoint_1" / name).read_bytes(), name

    best = straight / "best"
    assert sorted(p.name for p in best.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    with safe_open(best / "model.safetensors", "pt") as f:
        assert f.get_tensor("unet.head.weight").dtype == torch.float16
        assert f.get_tensor("style_encoder.norm.running_var").dtype == torch.float32  # beyond float16's range
    assert json.loads((best / "config.json").read_text())["working_size"] == 64
    card = (best / "README.md").read_text()
    assert "| colorize |" in card and "| restyle |" in card and "step" in card and "mixed precision no" in card
    model = StyleColorizer.from_pretrained(best)
    assert model.colorize(EXAMPLES / "coast_day.jpg", EXAMPLES / "night_cafe.jpg").size == (512, 256)

    logged = _logged_steps(straight)
    assert logged["val/colorize_de00"] == logged["val/restyle_de00"] == [2, 4]
    assert logged["train/loss"] == logged["train/lr"] == [1, 2, 3, 4]  # --log-every 1
    assert (straight / "samples" / "step_0000004.jpg").is_file()
    assert "validation step 4" in caplog.text

    # --steps 0: score and export a checkpoint without training it.
    again = tmp_path / "again"
    assert main([*common, "--init-from", str(best), "--steps", "0", "--output-dir", str(again)]) == 0
    assert "validation step 0" in caplog.text and _logged_steps(again)["val/colorize_de00"] == [0]
    assert (again / "best" / "model.safetensors").is_file() and not (again / "checkpoints").exists()


def test_precision_and_trackers_default_to_accelerate(monkeypatch, capsys):
    args = parse_args(["--data", "photos"])
    assert args.mixed_precision is None  # accelerate's configuration decides (see test_two_process_run)
    assert args.log_with == ["tensorboard"] and parse_args(["--data", "photos", "--log-with"]).log_with == []
    # accelerate would drop a tracker whose package is missing, silently: refused here instead.
    monkeypatch.setattr(train, "get_available_trackers", lambda: [])
    with pytest.raises(SystemExit):
        parse_args(["--data", "photos"])
    assert "--log-with tensorboard: its package is not installed" in capsys.readouterr().err


def test_batchnorm_recalibration_is_an_exact_average(data_dir):
    photos = load_photos(sorted(data_dir.glob("*.jpg"))[:4], 64)
    batches = list(torch.utils.data.DataLoader(RecolorCrops(photos, 12, crop=32, style_size=32), batch_size=4))
    torch.manual_seed(0)
    model = StyleColorizer().train()
    recalibrate_batchnorm(model, batches)
    assert model.training and model.style_encoder.norm.momentum == 0.1  # left as training needs it
    with torch.no_grad():
        features = torch.cat([model.style_encoder.net(b["style"] * 2 - 1).mean(dim=(2, 3)) for b in batches])
    assert torch.allclose(model.style_encoder.norm.running_mean, features.mean(0), atol=1e-5)
    deep = model.unet.decoder[-1][2]  # the last BatchNorm: dropout, if left on, would change its statistics
    first = deep.running_var.clone()
    recalibrate_batchnorm(model, batches)
    assert torch.equal(deep.running_var, first)


def test_two_process_run(data_dir, tmp_path):
    """Data-parallel training in two processes (gloo on the CPU), as accelerate runs it on several GPUs.

    In bf16 set as `accelerate launch --mixed_precision bf16` sets it (ACCELERATE_MIXED_PRECISION):
    without --mixed-precision, the launcher's choice holds.
    """
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_MIXED_PRECISION": "bf16"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "training.train", "--data", str(data_dir), *FAST, "--steps", "2", "--val-every", "2"]
    cmd += ["--checkpoint-every", "2", "--output-dir", str(out)]
    run = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "'processes': 2" in run.stderr and "'mixed_precision': 'bf16'" in run.stderr
    ckpt = out / "checkpoints" / "checkpoint_0"
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()
    assert "mixed precision bf16" in (out / "best" / "README.md").read_text()
    model = StyleColorizer.from_pretrained(out / "best")
    assert model.colorize(EXAMPLES / "coast_day.jpg", EXAMPLES / "night_cafe.jpg").size == (512, 256)


def test_process_count_mismatch_is_refused(data_dir, tmp_path, monkeypatch):
    # What `accelerate launch --multi_gpu` does on a machine without GPUs: N processes, each alone.
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="ACCELERATE_USE_CPU=1 torchrun"):
        main(["--data", str(data_dir), *FAST, "--steps", "1", "--output-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_lpips_with_shared_vgg16(vgg_path):
    from safetensors.torch import load_file

    from training.perceptual import build_lpips

    lp = build_lpips("vgg", str(vgg_path))
    conv = lp.net.slice3.get_submodule("14")  # features.14, conv3_3
    assert torch.equal(conv.weight, load_file(vgg_path)["features.14.weight"].float())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert lp(x, x, normalize=True).abs().max() < 1e-6
    assert (lp(x, x.flip(-1), normalize=True) > 0).all()
    assert not any(p.requires_grad for p in lp.parameters())


def test_lpips_backbone_needs_vgg(tmp_path):
    from training.perceptual import build_lpips

    with pytest.raises(ValueError, match="net='vgg'"):
        build_lpips("alex", str(tmp_path / "w.safetensors"))


class _StandInHub(BaseHTTPRequestHandler):
    """The part of the Hub's HTTP API that uploads and dataset downloads use; records what arrives.

    Uploads: ``create_repo`` and ``upload_folder``. Downloads: ``snapshot_download`` of the dataset
    ``DATASET`` (repo info, file tree, then HEAD and GET of each file at one commit).
    """

    DATASET = "someone/photos"
    COMMIT = "b" * 40
    log: ClassVar[list[dict]] = []
    dataset_files: ClassVar[dict[str, bytes]] = {}

    def _reply(self, code: int, body: bytes, headers: dict[str, str], send_body: bool = True):
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _serve_dataset(self, send_body: bool):
        self.log.append({"method": self.command, "path": self.path})
        path = self.path.split("?")[0]
        api, files = f"/api/datasets/{self.DATASET}", self.dataset_files
        if path.startswith(f"{api}/revision/"):
            info = {"id": self.DATASET, "sha": self.COMMIT, "siblings": [{"rfilename": n} for n in files]}
            return self._reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, send_body)
        if path.startswith(f"{api}/tree/"):
            tree = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in files.items()
            ]
            return self._reply(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, send_body)
        name = path.removeprefix(f"/datasets/{self.DATASET}/resolve/{self.COMMIT}/")
        if name in files:
            etag = f'"{hashlib.sha1(files[name]).hexdigest()}"'
            return self._reply(200, files[name], {"X-Repo-Commit": self.COMMIT, "ETag": etag}, send_body)
        self._reply(404, b"{}", {"Content-Type": "application/json"}, send_body)

    def do_GET(self):
        self._serve_dataset(send_body=True)

    def do_HEAD(self):
        self._serve_dataset(send_body=False)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        entry = {"path": self.path, "auth": self.headers.get("Authorization")}
        if self.path == "/api/repos/create":
            payload = json.loads(body)
            reply = {"url": f"http://{self.headers['Host']}/{payload['organization']}/{payload['name']}"}
        elif self.path == "/api/validate-yaml":
            reply = {}
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            reply = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        elif "/commit/" in self.path:
            entry["lines"] = [json.loads(line) for line in body.splitlines() if line.strip()]
            repo = self.path.split("/api/models/")[1].split("/commit/")[0]
            reply = {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40}
        else:
            self.send_error(404)
            self.log.append(entry)
            return
        self.log.append(entry)
        self._reply(200, json.dumps(reply).encode(), {"Content-Type": "application/json"})

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def hub_server(data_dir):
    _StandInHub.log = []
    _StandInHub.dataset_files = {p.name: p.read_bytes() for p in sorted(data_dir.iterdir())}
    _StandInHub.dataset_files["README.md"] = b"# photos"  # not an image: never downloaded
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _StandInHub.log
    server.shutdown()
    server.server_close()


def test_push_to_hub_uploads_the_best_checkpoint(data_dir, tmp_path, hub_server):
    endpoint, log = hub_server
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=endpoint, HF_TOKEN="hf_standin_token", HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "training.train",
        "--data",
        str(data_dir),
        *FAST,
        "--steps",
        "2",
        "--val-every",
        "2",
        "--checkpoint-every",
        "2",
        "--output-dir",
        str(out),
        "--push-to-hub",
        "someone/style-test",
    ]
    run = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]

    paths = [e["path"] for e in log]
    assert paths[0] == "/api/repos/create"
    assert any(p.startswith("/api/models/someone/style-test/commit/main") for p in paths)
    assert all(e["auth"] == "Bearer hf_standin_token" for e in log)
    commit = next(e for e in log if "/commit/" in e["path"])
    files = {
        line["value"]["path"]: base64.b64decode(line["value"]["content"])
        for line in commit["lines"]
        if line["key"] == "file"
    }
    best = out / "best"
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert all(files[name] == (best / name).read_bytes() for name in files)
    assert b"someone/style-test" in files["README.md"]  # the card's usage names the repo


def test_hub_dataset_is_downloaded_and_trained_on(data_dir, tmp_path, hub_server):
    endpoint, log = hub_server
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "training.train", "--data", _StandInHub.DATASET, *FAST, "--steps", "1"]
    cmd += ["--val-every", "1", "--checkpoint-every", "1", "--output-dir", str(out)]
    run = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]

    images = sorted(n for n in _StandInHub.dataset_files if n.endswith(".jpg"))
    fetched = sorted(e["path"].rsplit("/", 1)[1] for e in log if e["method"] == "GET" and "/resolve/" in e["path"])
    assert fetched == images  # every image once, the README not at all
    assert f"{_StandInHub.DATASET} (8 training photos; the fixed validation split's 6 photos held out)" in run.stderr
    assert (out / "best" / "model.safetensors").is_file()
