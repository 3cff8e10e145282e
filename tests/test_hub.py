"""Weights from the Hub without a network: fail at once, say why and what to do; never wait out retries.

Each case runs in a fresh process (huggingface_hub reads HF_ENDPOINT when imported) against a real
socket on this machine: a closed port stands for a Hub that cannot be reached, a small HTTP server
for one that answers.
"""

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from colorizer.paths import EXAMPLES, ROOT

# Resolves each repo id given, printing the path or the error, then the seconds it all took.
_RESOLVE = """
import sys, time
from colorizer.hub import WeightsNotFoundError, resolve_weights
start = time.monotonic()
for repo in sys.argv[1:]:
    try:
        print(resolve_weights(repo))
    except WeightsNotFoundError as err:
        print(err)
print(f"{time.monotonic() - start:.2f}")
"""
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _online_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    """Not offline, an empty Hub cache, the Hub at ``endpoint`` and reached directly (no proxy)."""
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"))
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "COLORIZER_VGG", *_PROXY_VARIABLES):
        env.pop(name, None)
    return env


def _resolve(env: dict[str, str], *repos: str) -> tuple[list[str], float]:
    proc = subprocess.run([sys.executable, "-c", _RESOLVE, *repos], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    *lines, seconds = proc.stdout.strip().splitlines()
    return lines, float(seconds)


def _closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused, as with a Hub out of reach."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoSuchRepo(BaseHTTPRequestHandler):
    """Answers like the Hub for a repository that does not exist."""

    def do_HEAD(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


class _StandInHub(ThreadingHTTPServer):
    """A local Hub that knows no repository, counting the connections made to it and the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _NoSuchRepo)
        self.connections = 0
        self.requests: list[str] = []

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1  # called once per accepted connection, in the serving thread
        return True


@pytest.fixture
def stand_in_hub():
    server = _StandInHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_unreachable_hub_fails_at_once(tmp_path):
    port = _closed_port()
    lines, seconds = _resolve(_online_env(tmp_path, f"http://127.0.0.1:{port}"), "colorizer-tests/no-such-vgg")
    # Left to itself huggingface_hub retries before it gives up, sleeping 23 s in all between its tries.
    assert seconds < 10
    assert "not in the local cache" in lines[0] and f"cannot be reached (http://127.0.0.1:{port}" in lines[0]


def test_unreachable_hub_still_uses_the_cache(tmp_path):
    env = _online_env(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    repo = Path(env["HF_HOME"]) / "hub" / "models--colorizer-tests--cached"
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("a" * 40) / "model.safetensors").write_bytes(b"weights")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    lines, _ = _resolve(env, "colorizer-tests/cached")
    assert Path(lines[0]).read_bytes() == b"weights"


def test_reachable_hub_is_asked_and_probed_once(tmp_path, stand_in_hub):
    endpoint = f"http://127.0.0.1:{stand_in_hub.server_address[1]}"
    lines, _ = _resolve(_online_env(tmp_path, endpoint), "colorizer-tests/a", "colorizer-tests/b")
    assert all("on the Hugging Face Hub has no model.safetensors" in line for line in lines), lines
    # One HEAD per file, no retries (huggingface_hub may also fetch a registry of its own from /api).
    files = [r for r in stand_in_hub.requests if "/resolve/" in r]
    assert files == [f"HEAD /colorizer-tests/{r}/resolve/main/model.safetensors" for r in "ab"]
    # Every request comes on a connection of its own (HTTP/1.0); the one connection more, sending
    # nothing, is the reachability probe: made once for both files.
    assert stand_in_hub.connections == len(stand_in_hub.requests) + 1


def test_cli_says_where_to_get_vgg_and_how_to_pass_it(tmp_path):
    env = _online_env(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "colorizer", "transfer", EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg",
         "-o", out], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot be reached" in proc.stderr and "timm/vgg19.tv_in1k" in proc.stderr
    assert "--vgg PATH" in proc.stderr and "COLORIZER_VGG=PATH" in proc.stderr
    assert "../shared" not in proc.stderr and "vgg=" not in proc.stderr
    assert not out.exists()
