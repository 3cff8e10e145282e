"""Speed and memory of Neural Color Transfer per stage.

    python -m benchmarks.nct_speed [--repeats 3] [--vgg PATH] [--device cpu|cuda]

Each configuration runs in a fresh process (so peak memory is its own): working sizes 256, 512 and
1024 with one reference, 3 references at 512, and a 12-megapixel source at 512 (the source is 4:3
throughout, 640x480 or 4000x3000, so the last two differ only in the output resolution). Reports median
seconds per stage, the ratio of the whole run to one VGG forward pass (to relu5_1) of the source at
the same working size, and peak memory (process RSS on the CPU, allocated memory on a GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from PIL import Image

from colorizer.paths import EXAMPLES, SHARED_VGG16

CONFIGS = {
    "256, 1 ref": (256, 1, None),
    "512, 1 ref": (512, 1, None),
    "1024, 1 ref": (1024, 1, None),
    "512, 3 refs": (512, 3, None),
    "512, 1 ref, 12 MP source": (512, 1, (4000, 3000)),  # same 4:3 shape as the others: same working size
}
STAGES = ("features", "matching", "voting", "model fit", "upsample", "total")


def run_one(name: str, repeats: int, vgg: str | None, device: str | None) -> dict:
    from colorizer import NeuralColorTransfer

    size, n_refs, source_size = CONFIGS[name]
    nct = NeuralColorTransfer.from_pretrained(vgg, device=device)
    source = Image.open(EXAMPLES / "mountain_lake.jpg").convert("RGB").resize(source_size or (640, 480))
    refs = [Image.open(EXAMPLES / f).convert("RGB") for f in ("alpine_dusk.jpg", "coast_sunset.jpg", "ochre_hills.jpg")[:n_refs]]
    runs = [nct.transfer(source, refs, working_size=size).timings for _ in range(repeats)]

    from colorizer.images import to_tensor
    from colorizer.nct import working_shape

    h, w = working_shape(source.size, size)
    x = to_tensor(source.resize((w, h), Image.Resampling.BILINEAR), nct.device)[None]
    vgg_times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            nct.vgg(x)
            if nct.device.type == "cuda":
                torch.cuda.synchronize()
            vgg_times.append(time.perf_counter() - t)
    med = {s: statistics.median(r.get(s, 0.0) for r in runs) for s in STAGES}
    peak = (torch.cuda.max_memory_allocated() if nct.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"name": name, "median": med, "vgg": statistics.median(vgg_times), "peak_gb": peak / 1e9,
            "device": str(nct.device), "vgg_name": nct.vgg.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vgg", default=str(SHARED_VGG16) if SHARED_VGG16.is_file() else None)
    parser.add_argument("--device")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats, args.vgg, args.device)))
        return

    rows = []
    for name in args.configs:
        cmd = [sys.executable, "-m", "benchmarks.nct_speed", "--one", name, "--repeats", str(args.repeats)]
        cmd += [f"--vgg={args.vgg}"] if args.vgg else []
        cmd += [f"--device={args.device}"] if args.device else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
        print(f"done: {name}", file=sys.stderr, flush=True)
    print(f"\nmedian of {args.repeats} runs, {rows[0]['device']}, {rows[0]['vgg_name']}\n")
    print("| config | " + " | ".join(STAGES) + " | one VGG pass | total / VGG pass | peak memory |")
    print("| --- |" + " ---: |" * (len(STAGES) + 3))
    for r in rows:
        m = r["median"]
        cells = [f"{m[s]:.2f}" for s in STAGES]
        print(f"| {r['name']} | " + " | ".join(cells) + f" | {r['vgg']:.2f} | {m['total'] / r['vgg']:.1f}x | {r['peak_gb']:.2f} GB |")


if __name__ == "__main__":
    main()
