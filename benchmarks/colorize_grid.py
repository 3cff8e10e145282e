"""Picture grid: one gray photo colorized in the style of several paintings.

``python -m benchmarks.colorize_grid [-o docs/images/colorize_grid.jpg]``. Top row: the original
photo, then the style paintings; bottom row: the gray input, then each colorization. The photo is
``examples/coast_day.jpg`` (held out of training by the fixed split); the paintings are
public-domain works from ``../shared/data/art``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from colorizer.color import luminance
from colorizer.images import load_image, to_pil, to_tensor
from colorizer.paths import EXAMPLES, ROOT, SHARED_ART
from colorizer.style_colorizer import StyleColorizer

PAINTINGS = (
    "opencv/starry_night.jpg",
    "gcompris_vangogh/Van_Gogh_The_Night_Cafe.jpg",
    "gcompris_vangogh/VincentVanGogh0012.jpg",
    "gcompris_vangogh/VincentVanGogh0013.jpg",
    "gcompris_vangogh/Eglise_dAuvers-sur-Oise.jpg",
    "mvtb/monalisa.jpg",
)
CELL = 256


def _fit(img: Image.Image, height: int) -> Image.Image:
    """``img`` scaled to fit a CELL x height box, centred on white."""
    img = img.copy()
    img.thumbnail((CELL - 4, height - 4), Image.Resampling.LANCZOS)
    box = Image.new("RGB", (CELL, height), "white")
    box.paste(img, ((CELL - img.width) // 2, (height - img.height) // 2))
    return box


def make_grid(model: StyleColorizer, photo: Path, paintings: list[Path]) -> Image.Image:
    original = load_image(photo)
    gray = to_pil(luminance(to_tensor(original)).expand(3, -1, -1))
    styles = [load_image(p) for p in paintings]
    results = [model.colorize(gray, s) for s in styles]
    top_h, bottom_h = 200, round(CELL * original.height / original.width) + 4
    grid = Image.new("RGB", (CELL * (len(styles) + 1), top_h + bottom_h), "white")
    for i, (top, bottom) in enumerate(zip([original, *styles], [gray, *results])):
        grid.paste(_fit(top, top_h), (i * CELL, 0))
        grid.paste(_fit(bottom, bottom_h), (i * CELL, top_h))
    return grid


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "images" / "colorize_grid.jpg")
    p.add_argument("--model", help="checkpoint folder or Hub repo (default: the bundled checkpoint)")
    p.add_argument("--photo", type=Path, default=EXAMPLES / "coast_day.jpg")
    args = p.parse_args(argv)
    missing = [name for name in PAINTINGS if not (SHARED_ART / name).is_file()]
    if missing:
        raise SystemExit(f"needs the paintings of {SHARED_ART} (missing {missing[0]})")
    model = StyleColorizer.from_pretrained(args.model)
    grid = make_grid(model, args.photo, [SHARED_ART / name for name in PAINTINGS])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.output, quality=85, optimize=True)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
