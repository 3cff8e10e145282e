"""Speed of the StyleColorizer: ``python -m benchmarks.colorize_speed``.

Median seconds and peak memory of colorization for a 1024x768 and a 4000x3000 content image (in
memory, one style image). Peak memory is the process's peak resident size during the call (Linux
VmHWM, reset before each call) on the CPU, or torch's peak allocation on CUDA. Prints a markdown
table. Training throughput is measured by ``python -m training.speed``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from colorizer.devices import describe_device
from colorizer.images import load_image
from colorizer.paths import EXAMPLES
from colorizer.style_colorizer import StyleColorizer

SIZES = ((1024, 768), (4000, 3000))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak(device: torch.device) -> int:
    """Reset the peak-memory counter; returns the current usage in bytes."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    return _rss_kib("VmRSS") * 1024


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _rss_kib("VmHWM") * 1024


def colorize_speed(model: StyleColorizer, runs: int) -> list[str]:
    """Markdown rows: size | median s | peak memory | added by the call."""
    photo, style = load_image(EXAMPLES / "coast_day.jpg"), load_image(EXAMPLES / "starry_night.jpg")
    rows = []
    for w, h in SIZES:
        content = photo.resize((w, h), Image.Resampling.BICUBIC)
        model.colorize(content, style)  # warm-up
        times, peaks, added = [], [], []
        for _ in range(runs):
            before = _reset_peak(model.device)
            tic = time.perf_counter()
            out = model.colorize(content, style)
            times.append(time.perf_counter() - tic)
            peaks.append(_peak(model.device))
            added.append(peaks[-1] - before)
            assert out.size == (w, h)
        mib = 2**20
        rows.append(
            f"| {w}x{h} | {statistics.median(times):.2f} s | {max(peaks) / mib:.0f} MiB | {max(added) / mib:.0f} MiB |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder or Hub repo (default: the bundled checkpoint)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--runs", type=int, default=5, help="timed colorizations per size")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = describe_device(device)

    model = StyleColorizer.from_pretrained(args.model, device=str(device))
    print(f"Colorize, {where}, working size {model.working_size}, median of {args.runs}:\n")
    print("| content | median time | peak memory | added by the call |\n| --- | --- | --- | --- |")
    print("\n".join(colorize_speed(model, args.runs)))


if __name__ == "__main__":
    main()
