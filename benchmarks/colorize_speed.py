"""Speed of the StyleColorizer: ``python -m benchmarks.colorize_speed``.

Colorization: median seconds and peak memory for a 1024x768 and a 4000x3000 content image (in
memory, one style image). Peak memory is the process's peak resident size during the call (Linux
VmHWM, reset before each call) on the CPU, or torch's peak allocation on CUDA.
Training: images per second of full training steps (data sampling, forward, loss, backward,
AdamW) at 128 px crops, batch 8, with MSE only and with MSE + LPIPS (64 px, shared VGG16 trunk).
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image

from benchmarks.protocol import EXAMPLES, image_files
from colorizer.images import load_image
from colorizer.style_colorizer import StyleColorizer

SIZES = ((1024, 768), (4000, 3000))
SHARED_VGG16 = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg16_imagenet_features.safetensors"


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


def training_speed(device: torch.device, steps: int) -> list[str]:
    """Markdown rows: loss | images/s, for the training step of training/train.py."""
    from training.data import RecolorCrops, load_photos
    from training.perceptual import build_lpips
    from training.train import training_loss

    photos = load_photos(image_files(EXAMPLES), 384)
    batch_size = 8
    loader = torch.utils.data.DataLoader(RecolorCrops(photos, (steps + 1) * batch_size), batch_size=batch_size)
    variants = [("MSE", 0.0, None)]
    if SHARED_VGG16.is_file():
        variants.append(("MSE + LPIPS (64 px, VGG16 trunk)", 0.001, build_lpips("vgg", str(SHARED_VGG16)).to(device)))
    rows = []
    for name, weight, perceptual in variants:
        model = StyleColorizer().to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        args = SimpleNamespace(mse_weight=1.0, lpips_weight=weight, lpips_size=64)
        times = []
        batches = iter(loader)
        for i in range(steps + 1):  # the first step is a warm-up
            tic = time.perf_counter()
            batch = {k: v.to(device) for k, v in next(batches).items()}  # data sampling counts, as in training
            loss, _, _ = training_loss(model, perceptual, batch, args)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - tic)
        rows.append(f"| {name} | {batch_size / statistics.median(times):.2f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder or Hub repo (default: the bundled checkpoint)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--runs", type=int, default=5, help="timed colorizations per size")
    p.add_argument("--train-steps", type=int, default=6, help="timed training steps per loss (0: skip)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = f"{device}" + (
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads"
    )

    model = StyleColorizer.from_pretrained(args.model, device=str(device))
    print(f"Colorize, {where}, working size {model.working_size}, median of {args.runs}:\n")
    print("| content | median time | peak memory | added by the call |\n| --- | --- | --- | --- |")
    print("\n".join(colorize_speed(model, args.runs)))
    if args.train_steps:
        print(f"\nTraining steps, {where}, 128 px crops, batch 8, median of {args.train_steps} steps:\n")
        print("| loss | images/s |\n| --- | --- |")
        print("\n".join(training_speed(device, args.train_steps)))


if __name__ == "__main__":
    main()
