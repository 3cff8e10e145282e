"""Training throughput: ``python -m training.speed [--steps 6] [--device cpu|cuda] [--threads N]``.

Images per second of full training steps (data sampling, forward, loss, backward, AdamW) of
training/train.py at 128 px crops, batch 8, with MSE only and, when the shared VGG16 is present,
with MSE + LPIPS (64 px, that VGG16 as LPIPS' trunk). Prints a markdown table. It lives with
training, not in benchmarks/, because the benchmarks depend on the colorizer package alone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch

from colorizer.devices import describe_device
from colorizer.evaluation import image_files
from colorizer.paths import EXAMPLES, SHARED_VGG16
from colorizer.style_colorizer import StyleColorizer
from training.data import RecolorCrops, load_photos
from training.perceptual import build_lpips
from training.train import training_loss

BATCH_SIZE = 8


def training_speed(device: torch.device, steps: int) -> list[str]:
    """Markdown rows: loss | images/s."""
    photos = load_photos(image_files(EXAMPLES), 384)
    loader = torch.utils.data.DataLoader(RecolorCrops(photos, (steps + 1) * BATCH_SIZE), batch_size=BATCH_SIZE)
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
        rows.append(f"| {name} | {BATCH_SIZE / statistics.median(times):.2f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m training.speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=6, help="timed training steps per loss")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = describe_device(device)
    print(f"Training steps, {where}, 128 px crops, batch {BATCH_SIZE}, median of {args.steps} steps:\n")
    print("| loss | images/s |\n| --- | --- |")
    print("\n".join(training_speed(device, args.steps)))


if __name__ == "__main__":
    main()
