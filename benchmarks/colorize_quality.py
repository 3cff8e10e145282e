"""Quality of the StyleColorizer on the shared protocol: ``python -m benchmarks.colorize_quality``.

Cases colorize (source gray(X), style a mirrored crop of X) and restyle (source gray(X), style a
mirrored crop of a chroma-rotated X, truth that rotated X) on the held-out photos, scored by mean
CIEDE2000 and PSNR against the truth. For scale it also scores the gray input itself, a global
Lab mean/std transfer, a lightness-conditioned chroma lookup (each pixel gets the mean chroma of
the style's pixels of similar lightness), the network untrained (its output layer starts at
zero, so it returns the style's tone curve: where training starts), and the network fed one
fixed, unrelated style for every photo (if the network ignored its style input, that row would
score like the real one).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.baselines import lightness_lookup, reinhard
from colorizer.evaluation import benchmark_photos, make_case, score
from colorizer.paths import EXAMPLES
from colorizer.style_colorizer import StyleColorizer

KINDS = ("colorize", "restyle")
FIXED_STYLE = EXAMPLES / "starry_night.jpg"


def run(
    model: StyleColorizer, photos: list[Path], working_size: int | None, fixed_style: Path
) -> tuple[dict[str, dict[str, list]], list[float]]:
    """({method: {kind: [(dE00, PSNR), ...]}} over the photos, the network's seconds per image)."""
    untrained = StyleColorizer(style_size=model.style_size, tone_knots=model.tone_knots).to(model.device)
    methods = {
        "gray input (no colour)": lambda c: c.source,
        "global Lab mean/std transfer (Reinhard)": lambda c: reinhard(c.source, c.reference),
        "lightness-conditioned chroma lookup": lambda c: lightness_lookup(c.source, c.reference),
        "StyleColorizer untrained (the style's tone curve)": lambda c: untrained.colorize(
            c.source, c.reference, working_size=working_size
        ),
        "StyleColorizer": lambda c: model.colorize(c.source, c.reference, working_size=working_size),
        f"StyleColorizer, fixed unrelated style ({fixed_style.name})": lambda c: model.colorize(
            c.source, fixed_style, working_size=working_size
        ),
    }
    results: dict[str, dict[str, list]] = {m: {k: [] for k in KINDS} for m in methods}
    seconds = []
    for path in photos:
        for kind in KINDS:
            case = make_case(path, kind)
            for name, method in methods.items():
                tic = time.perf_counter()
                out = method(case)
                if name == "StyleColorizer":
                    seconds.append(time.perf_counter() - tic)
                results[name][kind].append(score(out, case.truth))
    return results, seconds


def table(results: dict[str, dict[str, list]], n: int) -> str:
    lines = [
        f"| method ({n} held-out photos) | colorize dE00 | colorize PSNR | restyle dE00 | restyle PSNR |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, per_kind in results.items():
        cells = []
        for kind in KINDS:
            de, psnr = zip(*per_kind[kind])
            cells += [f"{statistics.mean(de):.2f}", f"{statistics.mean(psnr):.2f} dB"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder or Hub repo (default: the bundled checkpoint)")
    p.add_argument("--limit", type=int, help="use only the first N photos")
    p.add_argument("--working-size", type=int, help="long side the network runs at (default: the model's)")
    p.add_argument("--fixed-style", type=Path, default=FIXED_STYLE, help="the unrelated style of the control row")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    model = StyleColorizer.from_pretrained(args.model, device=args.device)
    photos = benchmark_photos(args.limit)
    results, seconds = run(model, photos, args.working_size, args.fixed_style)
    print(table(results, len(photos)))
    print(
        f"\nworking size {args.working_size or model.working_size}, device {args.device}, "
        f"{torch.get_num_threads()} threads; median {statistics.median(seconds):.3f} s per 512 px image"
    )


if __name__ == "__main__":
    main()
