"""Command line: ``python -m colorizer transfer|colorize ... -o OUT.png``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from .config import TransferConfig
from .hub import WeightsNotFoundError
from .images import ImageError, save_image


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_output(args.output)
        outputs = args.run(args)
        for path, image in outputs.items():
            save_image(image, path)
    except (ImageError, WeightsNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {', '.join(map(str, outputs))}", file=sys.stderr)
    return 0


def _transfer(args: argparse.Namespace) -> dict[Path, Image.Image]:
    from .nct import NeuralColorTransfer

    options = {name: getattr(args, name) for name in TransferConfig.options() if getattr(args, name) is not None}
    config = TransferConfig().with_options(**options)  # bad options fail here, before the weights load
    nct = NeuralColorTransfer.from_pretrained(args.vgg, device=args.device)
    result = nct.transfer(
        args.source,
        args.references,
        config,
        max_pixels=args.max_pixels,
        progress=None if args.quiet else lambda step, total, msg: print(f"[{step}/{total}] {msg}", file=sys.stderr),
    )
    if not args.quiet:
        print(", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()), file=sys.stderr)
    outputs = {args.output: result.image}
    if args.save_levels:
        for level, img in result.levels.items():
            outputs[args.output.with_name(f"{args.output.stem}_L{level}{args.output.suffix}")] = img
    return outputs


def _colorize(args: argparse.Namespace) -> dict[Path, Image.Image]:
    from .style_colorizer import StyleColorizer

    model = StyleColorizer.from_pretrained(args.model, device=args.device)
    return {args.output: model.colorize(
        args.content,
        args.styles,
        style_weights=args.weights,
        strength=args.strength,
        working_size=args.working_size,
        max_pixels=args.max_pixels,
    )}


def _check_output(path: Path) -> None:
    """Fail before any work when the result could not be written."""
    if not path.parent.is_dir():
        raise ValueError(f"output folder {path.parent} does not exist")
    if path.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"cannot tell the image format of {path.name!r}; use e.g. .png or .jpg")


def _shown(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorizer", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("transfer", help="Neural Color Transfer from one or more reference photos")
    p.add_argument("source", help="image to recolour (a gray image is colorized)")
    p.add_argument("references", nargs="+", help="reference image(s) to take colours from")
    p.add_argument("--vgg", help="VGG weights: .safetensors file or Hub repo (default: $COLORIZER_VGG, else timm/vgg19.tv_in1k)")
    for name, f in TransferConfig.options().items():
        flag, helptext = "--" + name.replace("_", "-"), f"{f.metadata['help']} (default: {_shown(f.default)})"
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=helptext)
        elif name == "levels":
            p.add_argument(flag, type=int, nargs="+", help=helptext)
        else:
            p.add_argument(flag, type=int if f.type == "int" else float, help=helptext)
    p.add_argument("--save-levels", action="store_true", help="also write OUT_L5.png .. OUT_L1.png")
    _common(p)
    p.set_defaults(run=_transfer)

    p = sub.add_parser("colorize", help="colorize an image in the colour style of one or more style images (AdaIN UNet)")
    p.add_argument("content", help="image to colorize (a colour image is converted to gray first)")
    p.add_argument("styles", nargs="+", help="style image(s): paintings or photos whose colours to use")
    p.add_argument("--model", help="checkpoint folder or Hub repo (default: $COLORIZER_STYLE_MODEL, else the bundled one)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per style image for mixing them (default: equal)")
    p.add_argument("--strength", type=float, default=1.0, help="0 keeps the gray image, 1 is the full colorization")
    p.add_argument("--working-size", type=int, help="long side the network runs at (default: the model's, 512)")
    _common(p)
    p.set_defaults(run=_colorize)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="output image file (.png, .jpg, ...)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    p.add_argument("--max-pixels", type=int, help="reject larger images (default 40 MP, or $COLORIZER_MAX_PIXELS)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
