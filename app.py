"""The colorizer web app (and Hugging Face Space): Neural Color Transfer and artistic colorization.

    python app.py [--host 127.0.0.1] [--port 7860]

Two tabs, each backed by one public API endpoint (``/transfer``, ``/colorize``: images in, a PNG out).
Both models load once, at start-up. Without VGG weights the colour transfer tab says how to get them
and the colorization tab, whose checkpoint ships with the package, still works.
"""

from __future__ import annotations

# On a Space, `spaces` lends a GPU per call to the functions marked with it (ZeroGPU); it must be
# imported before torch (directly or through colorizer) to hook CUDA's start-up. Elsewhere it is absent.
try:
    import spaces
except ImportError:
    spaces = None

import argparse
import inspect
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pydantic
import torch
from PIL import Image

from colorizer import NeuralColorTransfer, TransferConfig, TransferOutput, WeightsNotFoundError
from colorizer.color import luminance
from colorizer.config import LEVELS
from colorizer.images import load_image, max_pixels_default, to_pil, to_tensor
from colorizer.paths import EXAMPLES
from colorizer.style_colorizer import StyleColorizer, check_options


def gpu(duration: int | Callable[..., int]) -> Callable[[Callable], Callable]:
    """``@spaces.GPU(duration=...)`` where `spaces` is installed; elsewhere the function is left as it is.

    ``duration`` is the GPU time in seconds to ask for, or a function of the call's arguments that gives it:
    ZeroGPU stops a call that outlasts it, and queues shorter requests ahead of longer ones.
    """
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def transfer_seconds(source: str, refs: list[str], config: TransferConfig) -> int:
    """GPU seconds to ask for one ``run_transfer`` call (it gets the same arguments): the cost grows with the
    square of the working size and with each reference.

    No GPU has timed the transfer yet, so this takes the 2-core CPU timings of the README's speed table as a
    bound (15 s at working size 512 with one reference, 5 s more per further reference), plus 10 s for the
    call's set-up and the full-resolution output: 25 s for the defaults, 110 s at 1024 with three references.
    """
    scale = (config.working_size / 512) ** 2
    return math.ceil(10 + scale * (15 + 5 * (len(refs) - 1)))


COLORIZE_SECONDS = 20  # one forward pass per image: about a second for 12 MP on the CPU


# The library accepts 40 MP; a shared CPU Space keeps each image to 16 MP unless COLORIZER_MAX_PIXELS says otherwise.
MAX_PIXELS = max_pixels_default() if "COLORIZER_MAX_PIXELS" in os.environ else 16_000_000
MAX_WORKING_SIZE = 1024  # matching cost grows with its square: beyond this a request would hog the CPU
QUEUE_SIZE = 32
# Examples are computed on their first click and cached for every later visitor ("off": a click only fills the
# inputs, as the tests want: their runs use other settings).
CACHE_EXAMPLES = os.environ.get("COLORIZER_CACHE_EXAMPLES", "lazy") != "off"
FileData = dict[str, Any] | None  # an image input as Gradio hands it over with preprocess=False
CSS = (
    "#content-image img { filter: grayscale(1); }"  # the colorizer sees only the content's lightness
    '#nct-levels:has(> [aria-label="Empty value"]) { display: none; }'  # no empty box before a run's first level
)
# Gradio 6.31 takes /?view=api as the API page's address but, opened directly, does not load the page's code, so
# nothing shows: press the footer's "Use via API" for the visitor, once the page is there. The button toggles,
# and the page counts as open: the first press closes it (dropping ?view=api), the second opens it.
OPEN_API_PAGE = """() => {
    const wanted = () => new URLSearchParams(window.location.search).get("view") === "api";
    if (!wanted()) return;
    const open = (tries) => {
        const button = [...document.querySelectorAll("footer button, footer a")]
            .find((el) => el.textContent.includes("Use via API"));
        if (!button) {
            if (tries > 0) setTimeout(() => open(tries - 1), 100);
            return;
        }
        button.click();
        if (!wanted()) button.click();
    };
    open(100);
}"""

NCT_PAIRS = [("mountain_lake", "alpine_dusk"), ("coast_day", "coast_sunset"), ("green_hills", "ochre_hills"),
             ("harbour_city", "city_pink_sky"), ("snowy_ridge", "alpine_dusk")]
COLORIZE_PAIRS = [("coast_day", "starry_night"), ("mountain_lake", "van_gogh_bridge"),
                  ("harbour_city", "night_cafe"), ("snowy_ridge", "mona_lisa"), ("desert_crater", "starry_night")]


@dataclass
class Models:
    nct: NeuralColorTransfer | None
    nct_error: str  # why colour transfer is unavailable and how to fix it; empty when it loaded
    colorizer: StyleColorizer


@dataclass
class LevelDone:
    """One level of a transfer finished: the result so far, at the working size."""

    step: int
    total: int
    level: int
    image: Image.Image


def load_models() -> Models:
    """Load both models once (from $COLORIZER_VGG, the Hub or its cache; the bundled colorizer checkpoint)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        nct, error = NeuralColorTransfer.from_pretrained(device=device), ""
    except WeightsNotFoundError as err:
        nct = None
        error = (
            f"Colour transfer is unavailable because its VGG weights could not be loaded: {err} "
            "Then restart the app; with internet access the weights are downloaded once and cached. "
            "Artistic colorization, in the other tab, works without them."
        )
    return Models(nct, error, StyleColorizer.from_pretrained(device=device))


class Refused(gr.Error):
    """An error for the caller's own mistake: its message goes back to them, and no traceback to the log.
    ``param``, where known, names the input at fault (the validator marks that one)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message, print_exception=False)
        self.param = param


def refused(message: str, param: str | None = None) -> Refused:
    return Refused(message, param)


UNCHECKED = object()  # an input Gradio itself refused while preprocessing for the validator


def validator(fn: Callable, check: Callable[..., Any]) -> Callable[..., list[dict]]:
    """An event ``validator`` for ``fn``: runs ``check`` (``fn``'s own checks of images and options, nothing
    computed) on the request's inputs before it joins the queue, so that a mistake comes back at once, marked
    on the input at fault. Positional, in the order of ``fn``'s parameters, like the event's inputs."""
    names = [name for name in inspect.signature(fn).parameters if name != "progress"]

    def validate(*args: Any) -> list[dict]:
        problem = None
        if not any(arg is UNCHECKED for arg in args):  # else the queued run gives Gradio's own message
            try:
                check(*args)
            except gr.Error as err:
                at = getattr(err, "param", None)
                if at not in names:  # the library's messages start with the option's name
                    at = next((n for n in names if err.message.startswith(n)), names[0])
                problem = (at, err.message)
        return [gr.validate(problem is None or name != problem[0], problem[1] if problem and name == problem[0]
                            else "") for name in names[: len(args)]]

    return validate


@contextmanager
def readable_errors() -> Iterator[None]:
    """Show the library's errors to whoever sent the request, never a result: bad images and options
    (``ValueError``, ``ImageError`` among them) as they are, and a failed computation (``RuntimeError``,
    e.g. weights too weak to determine the colour model in float32) as a failure, logged."""
    try:
        yield
    except gr.Error:  # already a message for the caller (and a ValueError: re-wrapped, it would gain quotes)
        raise
    except ValueError as err:
        raise refused(str(err)) from err
    except RuntimeError as err:
        raise gr.Error(f"The computation failed: {err}") from err


def readable_request_errors(demo: gr.Blocks) -> gr.Blocks:
    """Give callers a message when Gradio itself refuses a request, before our functions run.

    Gradio checks each request's files (only uploads: never a path on the server) and its number of
    arguments, and for a refusal sends ``{"error": null}`` and logs a traceback. The checks stay
    Gradio's; this only turns what they raise into a message for the caller.
    """
    preprocess = demo.preprocess_data

    async def checked(block_fn: Any, inputs: list, *args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess(block_fn, inputs, *args, **kwargs)
        except Exception as err:
            if getattr(block_fn, "is_validator_function", False):  # the queued run will say what is wrong
                return [UNCHECKED] * len(block_fn.inputs)
            if isinstance(err, pydantic.ValidationError):  # an image given as something other than an uploaded file
                reason = err.errors()[0]["msg"] if err.errors() else str(err)
                message = f"Each image must be an uploaded file (gradio_client: handle_file(path)): {reason}"
                raise refused(message) from err
            if isinstance(err, ValueError) and not isinstance(err, gr.Error):
                # InvalidPathError (a server path), too few arguments; the first line says which
                raise refused(str(err).splitlines()[0]) from err
            raise

    demo.preprocess_data = checked
    return demo


def _path(file: FileData) -> str | None:
    """The uploaded file's path; Gradio has already checked it is an upload (``readable_request_errors``)."""
    return file["path"] if file else None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):  # float(True) is 1.0: a caller's mix-up, not a number
        raise refused(f"{name} must be a number, not {value!r}", name)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise refused(f"{name} must be a number, not {value!r}", name) from None


def _whole_number(value: Any, name: str) -> int:
    number = _number(value, name)
    if not (math.isfinite(number) and number == int(number)):
        raise refused(f"{name} must be a whole number, not {value!r}", name)
    return int(number)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):  # bool("false") is True: take only true and false
        raise refused(f"{name} must be true or false, not {value!r}", name)
    return value


def _check_image(path: str, name: str, param: str) -> None:
    """Read the image as the library will (format, frames, size), and refuse it now if it is unusable."""
    try:
        load_image(path, name=name, max_pixels=MAX_PIXELS)
    except ValueError as err:
        raise refused(str(err), param) from err


def _levels(value: Any) -> Any:
    """Levels coarse to fine whatever order they were ticked in; anything but a list of integers goes to
    TransferConfig as it is, which says what is wrong with it."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(sorted(value, reverse=True))
    return value


def build_demo(models: Models) -> gr.Blocks:
    """The two-tab UI; its buttons are the public ``/transfer`` and ``/colorize`` endpoints."""

    # On ZeroGPU these run in a forked worker: their arguments are pickled, the models are inherited; the
    # transfer is a generator, whose items (pickled too) come back one by one as the worker yields them.
    @gpu(duration=transfer_seconds)
    def run_transfer(source: str, refs: list[str], config: TransferConfig) -> Iterator[LevelDone | TransferOutput]:
        """Yield a ``LevelDone`` as each level finishes, then the ``TransferOutput``.

        The library hands over each level's image through its ``on_level`` callback, from inside the
        computation, so the computation runs in a thread and this generator hands on what the callback puts
        in a queue.
        """
        events: queue.Queue = queue.Queue()

        def level_done(level: int, image: Image.Image) -> None:
            events.put(LevelDone(config.levels.index(level) + 1, len(config.levels), level, image))

        def work() -> None:
            try:
                events.put(models.nct.transfer(source, refs, config, max_pixels=MAX_PIXELS, on_level=level_done))
            except BaseException as err:  # handed to the caller's thread, which raises it
                events.put(err)

        threading.Thread(target=work, name="transfer", daemon=True).start()
        while True:
            item = events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, TransferOutput):
                return

    @gpu(duration=COLORIZE_SECONDS)
    def run_colorize(content: str, styles: list[str], weights: list[float], strength: float) -> Image.Image:
        return models.colorizer.colorize(
            content, styles, style_weights=weights, strength=strength, max_pixels=MAX_PIXELS
        )

    def transfer_request(
        source: FileData, reference: FileData, working_size: float, levels: list[int], completeness: float,
        lambda_local: float, lambda_nonlocal: float, lambda_detail: float, strength: float,
        reference_2: FileData = None, reference_3: FileData = None, transfer_lightness: bool = True,
        images: bool = False,
    ) -> tuple[str, list[str], TransferConfig]:
        """``transfer``'s checks, nothing computed: the source's path, the references' and the config.
        ``images``: read each image too (as the library will), so a broken one is refused now."""
        if models.nct is None:
            raise refused(models.nct_error)
        refs = [(name, _path(r)) for name, r in
                [("reference", reference), ("reference_2", reference_2), ("reference_3", reference_3)] if r]
        if not source or not refs:
            raise refused("Give a source image and at least one reference image.", "reference" if source else "source")
        size = _whole_number(working_size, "working_size")
        if not 64 <= size <= MAX_WORKING_SIZE:
            raise refused(f"working_size must be between 64 and {MAX_WORKING_SIZE}, not {size}", "working_size")
        with readable_errors():
            config = TransferConfig(
                working_size=size, levels=_levels(levels),
                completeness=_number(completeness, "completeness"), lambda_local=_number(lambda_local, "lambda_local"),
                lambda_nonlocal=_number(lambda_nonlocal, "lambda_nonlocal"),
                lambda_detail=_number(lambda_detail, "lambda_detail"), strength=_number(strength, "strength"),
                transfer_lightness=_flag(transfer_lightness, "transfer_lightness"),
            )
        if images:
            _check_image(_path(source), "source", "source")
            for i, (param, path) in enumerate(refs):
                _check_image(path, f"reference {i + 1}", param)
        return _path(source), [path for _, path in refs], config

    def transfer(
        source: FileData, reference: FileData, working_size: float, levels: list[int], completeness: float,
        lambda_local: float, lambda_nonlocal: float, lambda_detail: float, strength: float,
        reference_2: FileData = None, reference_3: FileData = None, transfer_lightness: bool = True,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[Image.Image | None, dict]]:
        """Recolour a photo with the colours of one to three reference photos (Neural Color Transfer).

        Args:
            source: the image to recolour (a gray image is colorized).
            reference: the image whose colours are taken.
            working_size: long side, in pixels, that matching runs at (64-1024, default 512); the result is full size.
            levels: VGG levels to run, a subset of [5, 4, 3, 2, 1] (coarse to fine; default all five).
            completeness: weight of the reference-to-source votes in the guidance (0-100, default 2).
            lambda_local: local smoothness of the colour model (0-100, default 0.125).
            lambda_nonlocal: consistency among similar pixels of a colour source (0-100, default 2; none for gray).
            lambda_detail: weight of the detail term that keeps the source's local contrast (0-1000, default 5).
            strength: 0 keeps the source, 1 is the full transfer (0-1, default 1).
            reference_2: optional second reference (default none).
            reference_3: optional third reference (default none).
            transfer_lightness: transfer lightness as well as colour (default); False: chroma only.
        Returns:
            The recoloured image as PNG, at the source's size. A streaming caller (gradio_client ``submit``)
            first gets the result after each level, coarse to fine, at the working size; ``predict`` gets
            the final image only.
        """
        source_path, refs, config = transfer_request(
            source, reference, working_size, levels, completeness, lambda_local, lambda_nonlocal, lambda_detail,
            strength, reference_2, reference_3, transfer_lightness,
        )
        size = config.working_size
        with readable_errors():
            total = len(config.levels)
            progress((0, total), desc="Extracting features", unit="levels")
            yield None, {"levels": [], "timing": ""}  # nothing from an earlier run stays on screen
            shown = []
            for item in run_transfer(source_path, refs, config):
                if isinstance(item, TransferOutput):
                    out = item
                    break
                progress((item.step, total), desc=f"Level {item.level} done", unit="levels")
                shown.append((item.image, f"L{item.level}"))
                timing = f"Level {item.level} done ({item.step}/{total})…"
                yield item.image, {"levels": list(shown), "timing": timing}
        stages = " · ".join(f"{k} {v:.1f} s" for k, v in out.timings.items() if k != "total")
        details = {
            "levels": [(img, f"L{level}") for level, img in out.levels.items()],
            "timing": f"**{out.timings['total']:.1f} s** ({stages}) at working size {size}",
        }
        yield out.image, details

    def show_details(details: dict | None) -> tuple[list, str]:
        details = details or {}
        return details.get("levels", []), details.get("timing", "")

    def show_transfer(source: FileData, result: FileData) -> tuple:
        before = load_image(_path(source), name="source", max_pixels=MAX_PIXELS)
        return before, _path(result)

    def colorize(
        content: FileData, style: FileData, style_weight: float, strength: float,
        style_2: FileData = None, style_weight_2: float = 1.0, style_3: FileData = None, style_weight_3: float = 1.0,
    ) -> Image.Image:
        """Colorize an image (colour or gray) in the colours of one to three style images (AdaIN UNet).

        Args:
            content: the image to colorize; only its lightness is used.
            style: the style image (a painting or a photo).
            style_weight: relative weight of the style image (>= 0, default 1; the weights must not all be 0).
            strength: 0 gives the gray image, 1 the full colorization (0-1, default 1).
            style_2: optional second style image (default none).
            style_weight_2: relative weight of the second style image (>= 0, default 1).
            style_3: optional third style image (default none).
            style_weight_3: relative weight of the third style image (>= 0, default 1).
        Returns:
            The colorized image as PNG, at the content's size.
        """
        given = [(s, w) for s, w in [(style, style_weight), (style_2, style_weight_2), (style_3, style_weight_3)] if s]
        if not content or not given:
            raise refused("Give a content image and at least one style image.")
        styles, weights = [_path(s) for s, _ in given], [_number(w, "style weight") for _, w in given]
        with readable_errors():
            return run_colorize(_path(content), styles, weights, _number(strength, "strength"))

    def check_colorize(
        content: FileData, style: FileData, style_weight: float, strength: float,
        style_2: FileData = None, style_weight_2: float = 1.0, style_3: FileData = None, style_weight_3: float = 1.0,
    ) -> None:
        """``colorize``'s checks, nothing computed (for its validator): images, weights and strength."""
        given = [(p, s, w, q) for p, s, w, q in [("style", style, style_weight, "style_weight"),
                                                 ("style_2", style_2, style_weight_2, "style_weight_2"),
                                                 ("style_3", style_3, style_weight_3, "style_weight_3")] if s]
        if not content or not given:
            raise refused("Give a content image and at least one style image.", "style" if content else "content")
        weights = [_number(w, "style weight") for _, _, w, _ in given]
        if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:  # as encode_styles says
            raise refused("style weights must be non-negative numbers with a positive sum", given[0][3])
        with readable_errors():
            check_options(_number(strength, "strength"), None)
        _check_image(_path(content), "content image", "content")
        for i, (param, s, _, _) in enumerate(given):
            _check_image(_path(s), f"style image {i + 1}" if len(given) > 1 else "style image", param)

    def show_colorize(content: FileData, result: FileData) -> tuple[Image.Image, str | None]:
        rgb = load_image(_path(content), name="content image", max_pixels=MAX_PIXELS)
        return to_pil(luminance(to_tensor(rgb)).expand(3, -1, -1)), _path(result)

    def image(label: str, **kwargs) -> gr.Image:
        # Files reach our code undecoded (preprocess=False below): colorizer.images validates them, readably.
        return gr.Image(label=label, type="filepath", sources=["upload", "clipboard"], **kwargs)

    def result_image(elem_id: str) -> gr.Image:
        return gr.Image(label="Result (full resolution)", format="png", interactive=False, elem_id=elem_id)

    def examples(pairs: list[tuple[str, str]], inputs: list[gr.Image], elem_id: str, words: str,
                 fn: Callable, outputs: list[gr.components.Component]) -> gr.Examples:
        """Example pairs, labelled in words. Cached lazily: the first visitor to click one computes it (at the
        default settings), later ones see it at once; COLORIZER_CACHE_EXAMPLES=off only fills the inputs."""
        files = [[str(EXAMPLES / f"{a}.jpg"), str(EXAMPLES / f"{b}.jpg")] for a, b in pairs]
        labels = [f"{a.replace('_', ' ').capitalize()} {words} {b.replace('_', ' ')}" for a, b in pairs]
        cache = CACHE_EXAMPLES
        label = "Examples: click one to see it" if cache else "Examples: click one, then press the button"
        return gr.Examples(files, inputs, outputs=outputs if cache else None, fn=fn if cache else None,
                           cache_examples=cache, cache_mode="lazy" if cache else None, example_labels=labels,
                           label=label, elem_id=elem_id)

    def transfer_example(source: str, reference: str) -> tuple[Image.Image, list, str, tuple]:
        """An example pair at the default settings (for the example cache)."""
        files = {"path": source}, {"path": reference}
        *_, (image, details) = transfer(*files, defaults.working_size, list(defaults.levels), defaults.completeness,
                                        defaults.lambda_local, defaults.lambda_nonlocal, defaults.lambda_detail,
                                        defaults.strength)
        return image, details["levels"], details["timing"], (load_image(source, max_pixels=MAX_PIXELS), image)

    def colorize_example(content: str, style: str) -> tuple[Image.Image, tuple]:
        """An example pair at the default settings (for the example cache)."""
        result = colorize({"path": content}, {"path": style}, 1.0, 1.0)
        return result, (show_colorize({"path": content}, None)[0], result)

    analytics = os.environ.get("GRADIO_ANALYTICS_ENABLED", "False") == "True"  # off unless asked for
    defaults = TransferConfig()
    with gr.Blocks(title="colorizer: colour transfer", analytics_enabled=analytics, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# colorizer\nRecolour a photo like another photo (colour transfer, NCT), or colorize it like a "
                    "painting (artistic colorization, AdaIN UNet).")
        # Short tab names: both fit side by side on a phone (longer ones put the second behind a menu).
        with gr.Tab("Color transfer", id="transfer"):
            if models.nct_error:
                gr.Markdown(f"### Colour transfer is unavailable\n\n{models.nct_error}", elem_id="nct-unavailable")
            with gr.Row():
                with gr.Column():
                    source = image("Source (to recolour)", elem_id="nct-source")
                    reference = image("Reference (colours from)", elem_id="nct-reference")
                    with gr.Accordion("More references (optional)", open=False), gr.Row():
                        reference_2, reference_3 = image("Reference 2"), image("Reference 3")
                    with gr.Accordion("Settings", open=False, elem_id="nct-settings"):
                        nct_settings = [
                            gr.Slider(64, MAX_WORKING_SIZE, defaults.working_size, step=64,
                                      label="Working resolution (long side, px)", elem_id="working-size"),
                            gr.CheckboxGroup([(f"L{v}", v) for v in LEVELS], value=list(defaults.levels),
                                             label="Levels (coarse to fine)"),
                            gr.Slider(0, 10, defaults.completeness, step=0.1, label="Completeness weight"),
                            gr.Slider(0, 2, defaults.lambda_local, step=0.005, label="Local smoothness weight"),
                            gr.Slider(0, 10, defaults.lambda_nonlocal, step=0.1, label="Non-local consistency weight"),
                            gr.Slider(0, 50, defaults.lambda_detail, step=0.5, label="Detail weight"),
                            gr.Slider(0, 1, defaults.strength, step=0.05, label="Strength"),
                        ]
                        transfer_lightness = gr.Checkbox(defaults.transfer_lightness,
                                                         label="Transfer lightness too (off: colour only)")
                    run_nct = gr.Button("Transfer colours", variant="primary", interactive=models.nct is not None)
                with gr.Column():
                    nct_result = result_image(elem_id="nct-result")
                    nct_slider = gr.ImageSlider(label="Before / after", format="png", interactive=False)
                    nct_levels = gr.Gallery(label="Levels L5 → L1 (working resolution)", columns=5, height="auto",
                                            format="png", interactive=False, elem_id="nct-levels")
                    nct_timing = gr.Markdown(elem_id="nct-timing")
            examples(NCT_PAIRS, [source, reference], "nct-examples", "in the colours of", transfer_example,
                     [nct_result, nct_levels, nct_timing, nct_slider])
        with gr.Tab("Artistic colorization", id="colorize"):
            with gr.Row():
                with gr.Column():
                    content = image("Content (colour or gray; used as gray)", elem_id="content-image")
                    style = image("Style (a painting or a photo)", elem_id="style-image")
                    style_weight = gr.Slider(0, 1, 1.0, step=0.05, label="Style weight")
                    with gr.Accordion("More style images (optional)", open=False), gr.Row():
                        with gr.Column():
                            style_2 = image("Style 2")
                            style_weight_2 = gr.Slider(0, 1, 1.0, step=0.05, label="Style 2 weight")
                        with gr.Column():
                            style_3 = image("Style 3")
                            style_weight_3 = gr.Slider(0, 1, 1.0, step=0.05, label="Style 3 weight")
                    col_strength = gr.Slider(0, 1, 1.0, step=0.05, label="Strength")
                    run_col = gr.Button("Colorize", variant="primary")
                with gr.Column():
                    col_result = result_image(elem_id="colorize-result")
                    col_slider = gr.ImageSlider(label="Before (gray) / after", format="png", interactive=False)
            examples(COLORIZE_PAIRS, [content, style], "colorize-examples", "like", colorize_example,
                     [col_result, col_slider])

        # Levels and timing for the UI, at working size: each streamed step updates them, and the gallery follows.
        # Forgotten after 10 minutes, as API callers never read them.
        details = gr.State(time_to_live=600)
        details.change(show_details, details, [nct_levels, nct_timing], queue=False, api_visibility="private")
        # A run clears what an earlier one showed, in the browser, before the request leaves: whether the
        # new run fails at once, fails later or succeeds, no earlier result stays on screen as its answer.
        run_nct.click(None, None, [nct_result, nct_slider, nct_levels, nct_timing], js="() => [null, null, [], '']")
        run_nct.click(
            transfer, [source, reference, *nct_settings, reference_2, reference_3, transfer_lightness], [nct_result, details],
            api_name="transfer", api_description=inspect.getdoc(transfer), preprocess=False,
            validator=validator(transfer, lambda *args: transfer_request(*args, images=True)),
        ).success(show_transfer, [source, nct_result], nct_slider, preprocess=False, api_visibility="private")
        run_col.click(None, None, [col_result, col_slider], js="() => [null, null]")
        run_col.click(
            colorize, [content, style, style_weight, col_strength, style_2, style_weight_2, style_3, style_weight_3],
            col_result, api_name="colorize", api_description=inspect.getdoc(colorize), preprocess=False,
            validator=validator(colorize, check_colorize),
        ).success(show_colorize, [content, col_result], col_slider, preprocess=False, api_visibility="private")
    # One job per endpoint at a time: torch already uses every core for one image.
    return readable_request_errors(demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the colorizer web app.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default $GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    # mcp_server: the two endpoints are also tools of an MCP server, at /gradio_api/mcp/, for agents.
    build_demo(load_models()).launch(server_name=args.host, server_port=args.port, max_file_size="50mb", css=CSS,
                                     js=OPEN_API_PAGE, mcp_server=True)


if __name__ == "__main__":
    main()
