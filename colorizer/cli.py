"""Command line: ``python -m colorizer transfer|batch|colorize ...``.

Bad input (options, images, the output path, the device, the weights) fails before any computation
with one line on stderr and exit status 2; a computation that fails (e.g. weights too weak to
determine the colour model in float32) prints one line too, with status 1. The output files are written
all together or not at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from PIL import Image

from .config import LEVELS, TransferConfig
from .devices import resolve_device
from .hub import WeightsNotFoundError
from .images import ImageError, check_max_pixels, check_output_path, save_images

def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_common(args)
        outputs = args.run(args)
        save_images(outputs)
    except (ImageError, WeightsNotFoundError, ValueError) as err:
        return _fail(err, 2)
    except RuntimeError as err:  # e.g. weights too weak to determine the colour model
        return _fail(err, 1)
    if outputs and not args.quiet:
        print(f"wrote {', '.join(map(str, outputs))}", file=sys.stderr)
    return getattr(args, "status", 0)


def _fail(err: Exception, status: int) -> int:
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, whatever the message
    return status


def _transfer(args: argparse.Namespace) -> dict[Path, Image.Image]:
    from .nct import NeuralColorTransfer

    config = _config(args)  # bad options fail here, before the weights load
    nct = NeuralColorTransfer.from_pretrained(args.vgg, device=args.device)
    result = nct.transfer(
        args.source,
        args.references,
        config,
        max_pixels=args.max_pixels,
        progress=None if args.quiet else lambda step, total, msg: print(f"[{step}/{total}] {msg}", file=sys.stderr),
    )
    if args.profile:
        print(_profile_table(result.timings), file=sys.stderr)
    elif not args.quiet:
        print(", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()), file=sys.stderr)
    outputs = {args.output: result.image}
    if args.save_levels:
        outputs.update({_level_path(args.output, level): img for level, img in result.levels.items()})
    return outputs


def _batch(args: argparse.Namespace) -> dict[Path, Image.Image]:
    """Writes its outputs itself, one by one, so that a run can be resumed; returns nothing to write."""
    from .nct import NeuralColorTransfer, batch_sources

    config = _config(args)
    sources = [p for s in args.sources for p in batch_sources(s)]  # folders expanded, before the weights load
    nct = NeuralColorTransfer.from_pretrained(args.vgg, device=args.device)
    result = nct.transfer_batch(
        sources, args.references, args.output_dir, config, max_pixels=args.max_pixels,
        progress=None if args.quiet else lambda done, total, msg: print(f"[{done}/{total}] {msg}", file=sys.stderr),
    )
    for path, why in result.failed.items():
        print(f"failed: {path}: {why}", file=sys.stderr)
    if not args.quiet:
        per_minute = 60 * len(result.written) / result.seconds if result.written else 0.0
        print(f"{len(result.written)} written, {len(result.skipped)} done before, {len(result.failed)} failed "
              f"in {result.seconds:.0f} s ({per_minute:.1f} images/min) -> {args.output_dir}", file=sys.stderr)
    args.status = 1 if result.failed else 0
    return {}


def _colorize(args: argparse.Namespace) -> dict[Path, Image.Image]:
    from .style_colorizer import StyleColorizer, check_options

    check_options(args.strength, args.working_size)  # before the model loads
    model = StyleColorizer.from_pretrained(args.model, device=args.device)
    return {args.output: model.colorize(
        args.content,
        args.styles,
        style_weights=args.weights,
        strength=args.strength,
        working_size=args.working_size,
        max_pixels=args.max_pixels,
    )}


def _check_common(args: argparse.Namespace) -> None:
    """Fail before any work when the results could not be written, or the pixel cap or the device is unusable."""
    for path in _output_paths(args):
        check_output_path(path)
    check_max_pixels(args.max_pixels)
    if args.device is not None:
        resolve_device(args.device)


def _config(args: argparse.Namespace) -> TransferConfig:
    options = {name: getattr(args, name) for name in TransferConfig.options() if getattr(args, name) is not None}
    return TransferConfig().with_options(**options)


def _output_paths(args: argparse.Namespace) -> list[Path]:
    """Every file the command would write (a batch checks its folder itself)."""
    if hasattr(args, "output_dir"):
        return []
    paths = [args.output]
    if getattr(args, "save_levels", False):
        paths += [_level_path(args.output, level) for level in args.levels or LEVELS]
    return paths


def _profile_table(timings: dict[str, float]) -> str:
    """Seconds and share of the total per stage, slowest first: where the time goes on this machine."""
    total = timings["total"]
    stages = sorted(((k, v) for k, v in timings.items() if k != "total"), key=lambda kv: -kv[1])
    rows = [f"{'stage':<12} {'seconds':>8} {'share':>6}"]
    rows += [f"{k:<12} {v:8.2f} {100 * v / total:5.1f}%" for k, v in stages]
    rows.append(f"{'total':<12} {total:8.2f}")
    return "\n".join(rows)


def _level_path(output: Path, level: int) -> Path:
    return output.with_name(f"{output.stem}_L{level}{output.suffix}")


def _shown(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error of the command (argparse prints the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m colorizer", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("transfer", help="Neural Color Transfer from one or more reference photos")
    p.add_argument("source", help="image to recolour (a gray image is colorized)")
    p.add_argument("references", nargs="+", help="reference image(s) to take colours from")
    _transfer_options(p)
    p.add_argument("--save-levels", action="store_true", help="also write OUT_L5.png .. OUT_L1.png")
    p.add_argument("--profile", action="store_true", help="print the seconds spent per stage (features, matching, "
                   "voting, model fit, upsample) as a table")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image file (.png, .jpg, ...)")
    _common(p)
    p.set_defaults(run=_transfer)

    p = sub.add_parser("batch", help="Neural Color Transfer of many photos to the same reference(s); resumable")
    p.add_argument("sources", nargs="+", help="images to recolour, or folders of them")
    p.add_argument("-r", "--references", nargs="+", required=True, help="reference image(s), read once for all")
    _transfer_options(p)
    p.add_argument("-o", "--output-dir", type=Path, required=True,
                   help="folder for the results, OUT_DIR/<source name>.png; sources already done there are skipped")
    _common(p)
    p.set_defaults(run=_batch)

    p = sub.add_parser("colorize", help="colorize an image in the colour style of one or more style images (AdaIN UNet)")
    p.add_argument("content", help="image to colorize (a colour image is converted to gray first)")
    p.add_argument("styles", nargs="+", help="style image(s): paintings or photos whose colours to use")
    p.add_argument("--model", help="checkpoint folder or Hub repo (default: $COLORIZER_STYLE_MODEL, else the bundled one)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per style image for mixing them (default: equal)")
    p.add_argument("--strength", type=float, default=1.0, help="0 keeps the gray image, 1 is the full colorization")
    p.add_argument("--working-size", type=int, help="long side the network runs at (default: the model's, 512)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image file (.png, .jpg, ...)")
    _common(p)
    p.set_defaults(run=_colorize)
    return parser


def _transfer_options(p: argparse.ArgumentParser) -> None:
    """The VGG weights, and one flag per field of TransferConfig, under the same names."""
    p.add_argument("--vgg", help="VGG weights: .safetensors file or Hub repo (default: $COLORIZER_VGG, else timm/vgg19.tv_in1k)")
    for name, f in TransferConfig.options().items():
        flag, helptext = "--" + name.replace("_", "-"), f"{f.metadata['help']} (default: {_shown(f.default)})"
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=helptext)
        elif name == "levels":
            p.add_argument(flag, type=int, nargs="+", help=helptext)
        else:
            p.add_argument(flag, type=int if f.type == "int" else float, help=helptext)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    p.add_argument("--max-pixels", type=int,
                   help="reject images with more pixels than this (default 40000000, or $COLORIZER_MAX_PIXELS)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
