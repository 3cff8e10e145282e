"""Load on the live app: concurrent gradio_client calls to /transfer, then to /colorize.

    python -m benchmarks.app_load [--calls 8] [--working-size 512] [--vgg PATH]

Starts app.py on a free local port (as the tests do), makes one warm-up call per endpoint, then
``--calls`` clients call the endpoint at the same moment, each with its own session, as separate
visitors would. Reports per endpoint: calls that succeeded, latency from submit to the downloaded
result (queueing included) as median and max, the burst's wall time, and the server process's peak
resident memory while that endpoint was being called (sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from gradio_client import Client, handle_file

from colorizer.paths import EXAMPLES, SHARED_VGG16

from .live_app import running_app


class PeakRSS:
    """Samples a process's resident memory in a background thread; ``peak`` is the largest seen so far."""

    def __init__(self, pid: int, every: float = 0.02):
        self.process, self.every, self.peak = psutil.Process(pid), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def burst(url: str, calls: int, kwargs: dict, downloads: Path) -> tuple[list[float], list[Exception], float]:
    """``calls`` clients send the same request at once: latencies of those that succeeded, errors, wall time."""
    clients = [Client(url, verbose=False, download_files=downloads) for _ in range(calls)]
    start = threading.Barrier(calls)

    def one(client: Client) -> tuple[float, float] | Exception:
        start.wait()
        t = time.perf_counter()
        try:
            client.predict(**kwargs)
        except Exception as err:  # reported per call, not fatal: the point is to see every outcome
            return err
        return t, time.perf_counter()

    with ThreadPoolExecutor(calls) as pool:
        results = list(pool.map(one, clients))
    spans = [r for r in results if isinstance(r, tuple)]
    wall = max(end for _, end in spans) - min(begin for begin, _ in spans) if spans else float("nan")
    return [end - begin for begin, end in spans], [r for r in results if isinstance(r, Exception)], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--working-size", type=int, default=512, help="NCT working size of the /transfer calls")
    parser.add_argument("--vgg", default=str(SHARED_VGG16) if SHARED_VGG16.is_file() else None)
    args = parser.parse_args()

    names = ("coast_day", "coast_sunset", "starry_night")
    photo, sunset, painting = (handle_file(EXAMPLES / f"{name}.jpg") for name in names)
    endpoints = {
        "/transfer": dict(source=photo, reference=sunset, working_size=args.working_size, api_name="/transfer"),
        "/colorize": dict(content=photo, style=painting, api_name="/colorize"),
    }
    load = os.getloadavg()
    env = {"COLORIZER_VGG": args.vgg} if args.vgg else {}
    with tempfile.TemporaryDirectory() as downloads, running_app(env) as app:
        idle = psutil.Process(app.pid).memory_info().rss
        rows = []
        for name, kwargs in endpoints.items():
            memory = PeakRSS(app.pid)
            alone, errors, _ = burst(app.url, 1, kwargs, Path(downloads))  # warm-up, and one call's latency alone
            if errors:
                raise SystemExit(f"{name} failed on its own: {errors[0]}")
            times, errors, wall = burst(app.url, args.calls, kwargs, Path(downloads))
            memory.stop()
            for err in errors:
                print(f"{name}: failed call: {err!r}")
            rows.append((name, len(times), alone[0], times, wall, memory.peak))

    print(f"\n{args.calls} concurrent calls per endpoint; {psutil.cpu_count()} CPU threads, load average "
          f"{load[0]:.1f} before the run, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"NCT working size {args.working_size}; server RSS after start-up {idle / 2**20:.0f} MiB\n")
    columns = ["endpoint", "succeeded", "one call alone", "median latency", "max latency", "burst wall time",
               "peak server RSS"]
    print("| " + " | ".join(columns) + " |\n| --- |" + " ---: |" * (len(columns) - 1))
    for name, ok, alone, times, wall, peak in rows:
        med, top = (f"{statistics.median(times):.1f} s", f"{max(times):.1f} s") if times else ("-", "-")
        print(f"| {name} | {ok}/{args.calls} | {alone:.1f} s | {med} | {top} | {wall:.1f} s | {peak / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
