"""Quality of Neural Color Transfer against baselines on the shared protocol (colorizer/evaluation.py).

    python -m benchmarks.nct_quality [--photos 12] [--pairs 44] [--cases recolor regrade ...]
        [--working-size 512] [--vgg PATH] [--set KEY=VALUE ...] [--json PATH]
        [--contact-sheet docs/images/nct_regrade.jpg] [--sheet-rows 6]
        [--levels-picture docs/images/nct_levels.jpg]

For example, the paper's full-Lab model on the real pairs, saved for a later comparison:

    python -m benchmarks.nct_quality --cases regrade --set transfer_lightness=False --json /tmp/full_lab.json

Cases: every photo case (recolor, colorize, restyle, regrade-self, multi-reference,
multi-reference-left) over the first ``--photos`` held-out photos, and the pair cases (regrade,
colorize-pair) over the first ``--pairs`` directed pairs of ``pairs.csv`` (default: all cases, all
pairs). Methods: the unchanged source, Reinhard, color-matcher's hm-mvgd-hm and mkl, a VGG relu3_1
nearest neighbour and ours, run with ``working_size`` and every ``--set`` option (a Python literal,
else a string) as keyword options of ``NeuralColorTransfer.transfer``. Ours gets a multi-reference
case's references as a list; the baselines, which take one reference, get them side by side in one
image (``baselines.side_by_side``), so they see the same pixels. color-matcher is a benchmark-only
dependency: ``pip install -e .[bench]``.

Prints one line per case as it goes, then a markdown table of mean CIEDE2000 (lower is better) and
PSNR per case and method.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from colorizer import NeuralColorTransfer
from colorizer.evaluation import (
    PAIR_CASES, PHOTO_CASES, Case, benchmark_photos, make_case, make_pair_case, pair_groups, photo_pairs, score,
)
from colorizer.paths import SHARED_PAIRS, SHARED_PHOTOS, SHARED_VGG16

from .baselines import color_matcher, reinhard, side_by_side, vgg_nearest_neighbour

ALL_CASES = (*PHOTO_CASES, *PAIR_CASES)
OURS, PEER = "nct", "hm-mvgd-hm"  # the two methods of the contact sheet


@dataclass
class Method:
    key: str  # short name, for the per-case lines and the JSON records
    label: str  # row of the table
    run: Callable[[Case], Image.Image]


@dataclass
class Record:
    case: str
    kind: str
    id: str  # unique across cases (protocol names can repeat: two photos named eiffelTower.jpg)
    method: str
    dE: float
    psnr: float
    seconds: float


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value): a Python literal where it parses as one, else the string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def methods_for(nct: NeuralColorTransfer, options: dict[str, Any]) -> list[Method]:
    """The compared methods; baselines get the references side by side, ours gets the list."""
    return [
        Method("source", "unchanged source", lambda c: c.source),
        Method("reinhard", "Reinhard (global Lab mean/std)", lambda c: reinhard(c.source, side_by_side(c.references))),
        Method("hm-mvgd-hm", "color-matcher hm-mvgd-hm*",
               lambda c: color_matcher(c.source, side_by_side(c.references), "hm-mvgd-hm")),
        Method("mkl", "color-matcher mkl", lambda c: color_matcher(c.source, side_by_side(c.references), "mkl")),
        Method("vgg-nn", "VGG relu3_1 nearest neighbour",
               lambda c: vgg_nearest_neighbour(nct.vgg, c.source, side_by_side(c.references))),
        Method(OURS, "Neural Color Transfer (ours)", lambda c: nct.transfer(c.source, c.references, **options).image),
    ]


def evaluate(case: Case, case_id: str, methods: list[Method]) -> tuple[list[Record], dict[str, Image.Image]]:
    """Run every method on one case; print its line; return the records and the outputs by method key."""
    records, outputs = [], {}
    for method in methods:
        start = time.perf_counter()
        outputs[method.key] = method.run(case)
        seconds = time.perf_counter() - start
        de, psnr = score(outputs[method.key], case.truth)
        records.append(Record(case.name, case.kind, case_id, method.key, de, psnr, seconds))
    print(f"{case.name:>36} {case.kind:>20}: " + "  ".join(f"{r.dE:10.2f}" for r in records)
          + f"  (ours {records[-1].seconds:.1f} s)", flush=True)
    return records, outputs


def sheet_selection(pairs: list[tuple[Path, Path]], groups: dict[tuple[Path, Path], str], rows: int) -> list[int]:
    """Indices of the pairs on the contact sheet: the first pair of each group, then the others, in order."""
    firsts, seen = [], set()
    for i, pair in enumerate(pairs):
        if groups.get(pair) not in seen:
            seen.add(groups.get(pair))
            firsts.append(i)
    return (firsts + [i for i in range(len(pairs)) if i not in firsts])[:rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12, help="held-out photos for the photo cases (default 12)")
    parser.add_argument("--pairs", type=int,
                        help="how many directed pairs of pairs.csv for the pair cases (default all)")
    parser.add_argument("--cases", nargs="+", default=list(ALL_CASES), choices=ALL_CASES, metavar="CASE",
                        help=f"any of {', '.join(ALL_CASES)} (default: all)")
    parser.add_argument("--vgg", default=str(SHARED_VGG16) if SHARED_VGG16.is_file() else None)
    parser.add_argument("--working-size", type=int, default=512)
    parser.add_argument("--set", dest="options", metavar="KEY=VALUE", type=parse_option, action="append", default=[],
                        help="a keyword option of NeuralColorTransfer.transfer for ours (repeatable)")
    parser.add_argument("--json", type=Path, help="save every per-case score here")
    parser.add_argument("--contact-sheet", type=Path, help="save regrade cases at full size here: source, reference, "
                        "ours, hm-mvgd-hm, truth (.jpg: JPEG, else PNG)")
    parser.add_argument("--sheet-rows", type=int, default=6, help="regrade cases on the contact sheet (default 6)")
    parser.add_argument("--levels-picture", type=Path, help="save the levels of the first regrade case (else the "
                        "first photo case) here")
    args = parser.parse_args()
    photo_kinds = [k for k in args.cases if k in PHOTO_CASES]
    pair_kinds = [k for k in args.cases if k in PAIR_CASES]
    run_pairs = bool(pair_kinds)
    if run_pairs and not SHARED_PAIRS.is_file():
        parser.error(f"{', '.join(pair_kinds)} needs {SHARED_PAIRS}")
    if args.contact_sheet and "regrade" not in pair_kinds:
        parser.error("--contact-sheet shows regrade cases: add regrade to --cases")

    nct = NeuralColorTransfer.from_pretrained(args.vgg)
    options = {"working_size": args.working_size, **dict(args.options)}
    methods = methods_for(nct, options)
    photos = benchmark_photos(args.photos) if photo_kinds and args.photos > 0 else []
    pairs = photo_pairs()[: args.pairs] if run_pairs else []
    groups = pair_groups() if run_pairs else {}
    on_sheet = sheet_selection(pairs, groups, args.sheet_rows) if args.contact_sheet else []

    records: list[Record] = []
    sheet: dict[int, tuple[Case, dict[str, Image.Image], dict[str, float]]] = {}
    start = time.perf_counter()
    print(f"{'case':>36} {'kind':>20}: " + "  ".join(f"{m.key:>10}" for m in methods) + "   (mean ΔE00)", flush=True)
    for path in photos:
        for kind in photo_kinds:
            records += evaluate(make_case(path, kind), relative(path), methods)[0]
    for i, (a, b) in enumerate(pairs):
        for kind in pair_kinds:
            case = make_pair_case(a, b, kind)
            case_records, outputs = evaluate(case, f"{relative(a)} -> {relative(b)}", methods)
            records += case_records
            if kind == "regrade" and i in on_sheet:
                sheet[i] = case, outputs, {r.method: r.dE for r in case_records}
    seconds = time.perf_counter() - start

    kinds = [k for k in args.cases if any(r.kind == k for r in records)]
    print(f"\n{len(photos)} held-out photos, {len(pairs)} directed pairs, working size {args.working_size}, "
          f"VGG {nct.vgg.name} on "
          f"{nct.device.type}, options {options}, {seconds:.0f} s\n")
    print(results_table(records, methods, kinds))
    print("\n\\* color-matcher 0.6.0 runs `ColorMatcher().transfer(method='hm-mvgd-hm')` as histogram matching, "
          "MKL, histogram matching (see `baselines.color_matcher`).")
    if {"multi-reference", "multi-reference-left"} <= set(kinds):
        two, left = (statistics.mean(r.dE for r in records if r.kind == k and r.method == OURS)
                     for k in ("multi-reference", "multi-reference-left"))
        gain = 100 * (left - two) / left
        print(f"\nmulti-reference: two references are {abs(gain):.1f}% {'better' if gain >= 0 else 'worse'} than the "
              f"left part alone for ours ({two:.2f} vs {left:.2f} ΔE00)")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(photos=len(photos), pairs=len(pairs), cases=kinds, options=options, vgg=nct.vgg.name,
                    device=nct.device.type, seconds=seconds)
        args.json.write_text(json.dumps(dict(meta=meta, results=[asdict(r) for r in records]), indent=1, default=repr))
    if args.contact_sheet:
        save_contact_sheet([sheet[i] for i in on_sheet], [pairs[i] for i in on_sheet],
                           [groups.get(pairs[i], "") for i in on_sheet], args.contact_sheet)
    if args.levels_picture:
        case = make_pair_case(*pairs[0], pair_kinds[0]) if pairs else make_case(photos[0], photo_kinds[0])
        save_levels_picture(nct, case, options, args.levels_picture)


def relative(path: Path) -> str:
    """A photo's path inside the shared photos (its name when it lies elsewhere)."""
    return path.relative_to(SHARED_PHOTOS).as_posix() if path.is_relative_to(SHARED_PHOTOS) else path.name


def results_table(records: list[Record], methods: list[Method], kinds: list[str]) -> str:
    """Markdown: mean ΔE00 / PSNR per method (rows) and case (columns), and seconds per case."""
    lines = ["| method | " + " | ".join(f"{k} ΔE00 / PSNR" for k in kinds) + " | s / case |",
             "| --- |" + " --- |" * (len(kinds) + 1)]
    for method in methods:
        mine = [r for r in records if r.method == method.key]
        cells = []
        for kind in kinds:
            scores = [r for r in mine if r.kind == kind]
            de, psnr = statistics.mean(r.dE for r in scores), statistics.mean(r.psnr for r in scores)
            cells.append(f"{de:.2f} / {psnr:.1f} dB")
        cells.append(f"{statistics.mean(r.seconds for r in mine):.2f}")
        lines.append(f"| {method.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_contact_sheet(rows: list[tuple[Case, dict[str, Image.Image], dict[str, float]]],
                       pairs: list[tuple[Path, Path]], groups: list[str], path: Path) -> None:
    """One row per regrade case at full size: source | reference | ours | hm-mvgd-hm | truth."""
    images, labels = [], []
    for (case, outputs, de), (a, b), group in zip(rows, pairs, groups):
        images.append([case.source, case.reference, outputs[OURS], outputs[PEER], case.truth])
        labels.append([f"source: {a.parent.name}/{a.stem} ({group})", f"reference: {b.parent.name}/{b.stem}, graded",
                       f"NCT (ours): dE00 {de[OURS]:.2f}",
                       f"color-matcher hm-mvgd-hm: dE00 {de[PEER]:.2f}", "truth: the source, graded"])
    save_grid(images, labels, path, gutter=12)


def save_levels_picture(nct: NeuralColorTransfer, case: Case, options: dict[str, Any], path: Path) -> None:
    """The source, references, the result after each level (coarsest first) and the final result, in a strip."""
    result = nct.transfer(case.source, case.references, **options)
    count = len(case.references)
    refs = ["reference"] if count == 1 else [f"reference {i}" for i in range(1, count + 1)]
    save_strip([case.source, *case.references, *result.levels.values(), result.image],
               ["source", *refs, *(f"L{level}" for level in result.levels), "result"], path)


def save_strip(images: list[Image.Image], labels: list[str], path: Path, height: int = 160) -> None:
    """Save images side by side, each scaled to ``height`` and labelled."""
    save_grid([images], [labels], path, height=height)


def save_grid(rows: list[list[Image.Image]], labels: list[list[str]], path: Path, height: int | None = None,
              gutter: int = 4) -> None:
    """Save rows of images, each labelled above, on white with ``gutter`` px between and around them.

    ``height`` scales every image to it; None keeps every image at its own size (no resampling), centred
    in columns as wide as their widest image. Labels wrap to the column's width. Saved as JPEG
    (quality 90) for a .jpg name, else PNG.
    """
    if height:
        rows = [[im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS) for im in row]
                for row in rows]
    font, line = ImageFont.load_default(size=14), 17
    columns = max(len(row) for row in rows)
    widths = [max(row[c].width for row in rows if c < len(row)) for c in range(columns)]
    texts = [[wrap(label, font, width - 4) for label, width in zip(row_labels, widths)] for row_labels in labels]
    bands = [line * max(len(t) for t in row_texts) + 3 for row_texts in texts]
    heights = [band + max(im.height for im in row) for band, row in zip(bands, rows)]
    sheet = Image.new("RGB", (sum(widths) + gutter * (columns + 1), sum(heights) + gutter * (len(rows) + 1)), "white")
    draw, y = ImageDraw.Draw(sheet), gutter
    for row, row_texts, band, row_height in zip(rows, texts, bands, heights):
        x = gutter
        for im, lines, width in zip(row, row_texts, widths):
            top = y + band - 2 - line * len(lines)  # labels sit just above their image
            for i, text in enumerate(lines):
                draw.text((x + (width - draw.textlength(text, font=font)) // 2, top + i * line), text,
                          fill="black", font=font)
            sheet.paste(im.convert("RGB"), (x + (width - im.width) // 2, y + band))
            x += width + gutter
        y += row_height + gutter
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(path, "JPEG", quality=90)
    else:
        sheet.save(path, "PNG")


def wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` px, at spaces and after slashes (a longer word stays whole)."""
    words = text.replace("/", "/ ").split(" ")
    lines = [""]
    for word in words:
        joined = lines[-1] + ("" if not lines[-1] or lines[-1].endswith("/") else " ") + word
        if lines[-1] and font.getlength(joined) > width:
            lines.append(word)
        else:
            lines[-1] = joined
    return lines


if __name__ == "__main__":
    main()
