"""Run ``python app.py`` as a real server on a free local port.

For benchmarks/app_load.py and the app tests (through tests/live_app.py): it lives here because
the tests may import the benchmarks, never the reverse.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from colorizer.paths import ROOT


@dataclass
class LiveApp:
    url: str
    pid: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict[str, str] | None = None, start_timeout: float = 180.0) -> Iterator[LiveApp]:
    """Start app.py with ``env`` added to this process's environment; stop it on exit.

    Example clicks only fill the inputs (COLORIZER_CACHE_EXAMPLES=off) unless ``env`` says otherwise: a test
    that clicks an example then runs it at its own settings, and no cached example competes for the CPU."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.NamedTemporaryFile("wb", prefix="app-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
            cwd=ROOT, env={"COLORIZER_CACHE_EXAMPLES": "off", **os.environ, **(env or {})},
            stdout=log, stderr=subprocess.STDOUT,
        )
    app = LiveApp(url, proc.pid, Path(log.name))
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode} before serving:\n{app.log_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not serve {url} within {start_timeout:.0f} s:\n{app.log_text()}")
            time.sleep(0.5)
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        app.log.unlink(missing_ok=True)
