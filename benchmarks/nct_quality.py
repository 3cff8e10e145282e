"""Quality of Neural Color Transfer against baselines on the shared protocol (see protocol.py).

    python -m benchmarks.nct_quality [--photos 12] [--vgg PATH] [--levels-picture docs/images/nct_levels.jpg]

Prints a markdown table of mean CIEDE2000 (lower is better) and PSNR per case and method.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw

from colorizer import NeuralColorTransfer

from .baselines import reinhard, vgg_nearest_neighbour
from .protocol import CASES, ROOT, benchmark_photos, make_case, score

DEFAULT_VGG = ROOT.parent / "shared" / "weights" / "vgg16_imagenet_features.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12, help="how many held-out photos (default 12)")
    parser.add_argument("--vgg", default=str(DEFAULT_VGG) if DEFAULT_VGG.is_file() else None)
    parser.add_argument("--working-size", type=int, default=512)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--transfer-lightness", action="store_true", help="run ours with keep_lightness=False (the paper's full Lab model)")
    parser.add_argument("--levels-picture", type=Path, help="save the five levels of the first case here")
    args = parser.parse_args()

    nct = NeuralColorTransfer.from_pretrained(args.vgg)
    options = dict(working_size=args.working_size, keep_lightness=not args.transfer_lightness)
    photos = benchmark_photos(args.photos)
    methods = {
        "unchanged source": lambda c: c.source,
        "Reinhard (global Lab mean/std)": lambda c: reinhard(c.source, c.reference),
        "VGG relu3_1 nearest neighbour": lambda c: vgg_nearest_neighbour(nct.vgg, c.source, c.reference),
        "Neural Color Transfer (ours)": lambda c: nct.transfer(c.source, c.reference, **options).image,
    }
    scores = {(m, k): [] for m in methods for k in args.cases}
    start = time.perf_counter()
    for path in photos:
        for kind in args.cases:
            case = make_case(path, kind)
            for method, run in methods.items():
                scores[method, kind].append(score(run(case), case.truth))
            print(f"{case.name:>28} {kind:>8}: " + "  ".join(f"{scores[m, kind][-1][0]:5.2f}" for m in methods), flush=True)

    print(f"\n{len(photos)} held-out photos, long side 512, VGG {nct.vgg.name}, {time.perf_counter() - start:.0f} s\n")
    print("| method | " + " | ".join(f"{k} ΔE00 / PSNR" for k in args.cases) + " |")
    print("| --- |" + " --- |" * len(args.cases))
    for method in methods:
        cells = []
        for kind in args.cases:
            de = statistics.mean(s[0] for s in scores[method, kind])
            psnr = statistics.mean(s[1] for s in scores[method, kind])
            cells.append(f"{de:.2f} / {psnr:.1f} dB")
        print(f"| {method} | " + " | ".join(cells) + " |")

    if args.levels_picture:
        case = make_case(photos[0], args.cases[0])
        result = nct.transfer(case.source, case.reference, **options)
        save_strip([case.source, case.reference, *result.levels, result.image],
                   ["source", "reference", "L5", "L4", "L3", "L2", "L1", "result"], args.levels_picture)


def save_strip(images: list[Image.Image], labels: list[str], path: Path, height: int = 160) -> None:
    """Save images side by side, each scaled to ``height`` and labelled."""
    tiles = [im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS) for im in images]
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), height + 18), "white")
    draw, x = ImageDraw.Draw(strip), 0
    for tile, label in zip(tiles, labels):
        strip.paste(tile, (x, 18))
        draw.text((x + 4, 3), label, fill="black")
        x += tile.width + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path, quality=88)


if __name__ == "__main__":
    main()
