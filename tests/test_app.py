"""The app as a real server on a free local port, called through gradio_client like any API user."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from PIL import Image

from colorizer.color import rgb_to_lab
from colorizer.images import load_image, to_tensor

from benchmarks.live_app import running_app
from colorizer.paths import EXAMPLES, ROOT

README = ROOT / "README.md"
SNIPPET_HEADING = "Use from code (gradio_client)"
SNIPPET_URL = "http://127.0.0.1:7860/"


def mean_ab(image) -> np.ndarray:
    """Mean CIELab chroma (a, b) of an image."""
    return rgb_to_lab(to_tensor(load_image(image)))[1:].mean(dim=(1, 2)).numpy()


def moved_toward(result, before, target, fraction: float = 0.5) -> bool:
    """The result's mean chroma closed at least ``fraction`` of the input's distance to the target's."""
    goal = mean_ab(target)
    return np.linalg.norm(mean_ab(result) - goal) < (1 - fraction) * np.linalg.norm(mean_ab(before) - goal)


def follow_their_styles(results, styles) -> bool:
    """Each result is coloured, and its mean chroma is nearer its own style's than any other style's.

    The colorizer maps each tone to a colour of the style, so a result need not take on its style's
    mean colour; but a gray output fails this, and so does a model that ignores its style.
    """
    goals = [mean_ab(style) for style in styles]
    for i, result in enumerate(results):
        if rgb_to_lab(to_tensor(load_image(result)))[1:].norm(dim=0).mean() < 5:
            return False
        distances = [np.linalg.norm(mean_ab(result) - goal) for goal in goals]
        if min(distances) < distances[i]:
            return False
    return True


@pytest.fixture(scope="module")
def client(live_app, tmp_path_factory) -> Client:
    return Client(live_app.url, verbose=False, download_files=tmp_path_factory.mktemp("client"))


def readme_snippets() -> list[str]:
    """The ```python blocks under the README's gradio_client heading."""
    section = re.search(rf"^#+ {re.escape(SNIPPET_HEADING)}\n(.*?)(?=^#+ |\Z)", README.read_text(), re.M | re.S)
    assert section, f"README.md has no '{SNIPPET_HEADING}' section"
    return re.findall(r"```python\n(.*?)```", section.group(1), re.S)


def test_mcp_server_offers_both_endpoints_as_tools(live_app):
    """An agent's view: the MCP server lists /transfer and /colorize, each with its parameters described."""
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def list_tools():
        async with streamable_http_client(f"{live_app.url}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in asyncio.run(list_tools())}
    assert set(tools) == {"transfer", "colorize"}
    transfer, colorize = tools["transfer"], tools["colorize"]
    assert {"source", "reference", "working_size"} <= set(transfer.inputSchema["properties"])
    assert {"content", "style"} <= set(colorize.inputSchema["properties"])
    assert "working_size" in transfer.description or "working size" in transfer.description.lower()


def test_api_page_lists_the_two_endpoints_and_analytics_are_off(client, live_app):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/transfer", "/colorize"}
    # Each parameter's range and default, from the endpoint's docstring, on the API page.
    assert "working_size: long side, in pixels, that matching runs at (64-1024, default 512)" in (
        endpoints["/transfer"]["description"])
    assert "strength: 0 gives the gray image, 1 the full colorization (0-1, default 1)" in (
        endpoints["/colorize"]["description"])
    assert httpx.get(f"{live_app.url}config").json()["analytics_enabled"] is False


def test_transfer_endpoint(client):
    source, reference = EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg"
    out = client.predict(source=handle_file(source), reference=handle_file(reference), working_size=256,
                         api_name="/transfer")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == Image.open(source).size
    assert moved_toward(out, source, reference)


def test_transfer_streams_each_level_then_the_final_image(client):
    """A streaming caller sees the result after each level, L5 to L1 at the working size, then the final
    image at full size; ``predict`` gets the final image alone."""
    source, reference = EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg"
    job = client.submit(source=handle_file(source), reference=handle_file(reference), working_size=128,
                        api_name="/transfer")
    final = job.result(timeout=300)
    outputs = job.outputs()
    assert outputs[0] is None  # the first update clears the result shown before
    images = [Image.open(path) for path in outputs[1:]]
    assert len(images) == 6, outputs
    assert all(max(img.size) == 128 for img in images[:5])  # L5 .. L1 at the working size
    assert images[-1].size == Image.open(source).size and outputs[-1] == final
    # Each level refines the last: every level's image differs from the one before.
    pixels = [np.asarray(img.convert("RGB"), float) for img in images[:5]]
    assert all(np.abs(a - b).mean() > 0.1 for a, b in zip(pixels, pixels[1:]))


def test_transfer_several_references_and_options(client):
    source = EXAMPLES / "green_hills.jpg"
    out = client.predict(
        source=handle_file(source), reference=handle_file(EXAMPLES / "ochre_hills.jpg"),
        reference_2=handle_file(EXAMPLES / "alpine_dusk.jpg"), working_size=192, levels=[3, 2, 1],
        completeness=1.0, lambda_local=0.25, lambda_nonlocal=1.0, lambda_detail=0.5, strength=0.5, api_name="/transfer",
    )
    assert Image.open(out).size == Image.open(source).size


def test_transfer_lightness_option(client):
    source, reference = EXAMPLES / "coast_day.jpg", EXAMPLES / "coast_sunset.jpg"

    def lightness(path) -> np.ndarray:
        return rgb_to_lab(to_tensor(load_image(path)))[0].numpy()

    runs = {flag: client.predict(source=handle_file(source), reference=handle_file(reference), working_size=192,
                                 transfer_lightness=flag, api_name="/transfer") for flag in (False, True)}
    assert np.abs(lightness(runs[False]) - lightness(source)).mean() < 1.5  # chroma only
    assert np.abs(lightness(runs[True]) - lightness(source)).mean() > 3  # lightness too (the default)


def test_colorize_endpoint(client, tmp_path):
    gray = tmp_path / "gray.png"
    load_image(EXAMPLES / "coast_day.jpg").convert("L").save(gray)
    style = EXAMPLES / "starry_night.jpg"
    other = EXAMPLES / "night_cafe.jpg"
    out = client.predict(content=handle_file(gray), style=handle_file(style), api_name="/colorize")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == Image.open(gray).size
    out_other = client.predict(content=handle_file(gray), style=handle_file(other), api_name="/colorize")
    assert follow_their_styles([out, out_other], [style, other])
    mixed = client.predict(content=handle_file(gray), style=handle_file(style), style_weight=0.5,
                           style_2=handle_file(other), style_weight_2=1.0, api_name="/colorize")
    assert Image.open(mixed).size == Image.open(gray).size


def test_readme_snippets_run_against_the_live_app(live_app, monkeypatch, capsys):
    snippets = readme_snippets()
    assert len(snippets) == 3
    monkeypatch.chdir(ROOT)  # the snippets name files relative to the repository root
    for code in snippets:
        assert SNIPPET_URL in code
        scope: dict = {}
        exec(compile(code.replace(SNIPPET_URL, live_app.url), "README.md", "exec"), scope)
        with Image.open(scope["result"]) as img:
            assert img.format == "PNG" and img.size == (512, 256)
    capsys.readouterr()


def _bad_uploads(folder: Path) -> dict[str, tuple[Path, str]]:
    """Broken files, each with the words its error message must contain."""
    photo = (EXAMPLES / "coast_day.jpg").read_bytes()
    (folder / "notes.png").write_bytes(b"these are words, not pixels\n")
    (folder / "cut.jpg").write_bytes(photo[: len(photo) // 3])
    Image.new("RGB", (1, 1), "red").save(folder / "dot.png")
    Image.new("RGB", (2000, 1500), "gray").save(folder / "huge.png")  # 3 MP, over the test server's 2 MP cap
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "pages.tif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.full((64, 64), -5, np.int32)).save(folder / "negative.tif")
    return {
        "not an image": (folder / "notes.png", "not an image file"),
        "truncated": (folder / "cut.jpg", "truncated"),
        "1x1": (folder / "dot.png", "at least 16 px"),
        "huge": (folder / "huge.png", "3,000,000 pixels, over the limit of 2,000,000 pixels"),
        "animated GIF": (folder / "anim.gif", "holds 2 images"),
        "multi-page TIFF": (folder / "pages.tif", "holds 2 images"),
        "negative 32-bit TIFF": (folder / "negative.tif", "negative pixel values"),
    }


def _odd_but_valid(folder: Path) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Images that must be read correctly, with the upright size the result must have."""
    photo = load_image(EXAMPLES / "coast_day.jpg")
    ramp = (np.linspace(0, 65535, 96 * 64).reshape(64, 96)).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "gray16.png")
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels must be turned 90 degrees to be upright
    photo.save(folder / "rotated.jpg", exif=exif)
    Image.fromarray(ramp.astype(np.int32)).save(folder / "int32.tif")  # 16-bit data in a 32-bit TIFF
    return {
        "16-bit": (folder / "gray16.png", (96, 64)),
        "32-bit TIFF": (folder / "int32.tif", (96, 64)),
        "CMYK": (folder / "cmyk.jpg", photo.size),
        "alpha": (folder / "alpha.png", photo.size),
        "EXIF-rotated": (folder / "rotated.jpg", photo.size[::-1]),
    }


def test_bad_uploads_get_readable_errors_and_the_server_keeps_serving(client, live_app, tmp_path):
    style = handle_file(EXAMPLES / "starry_night.jpg")
    for path, words in _bad_uploads(tmp_path).values():
        with pytest.raises(ValidationError, match=words):  # refused at once, by the validator
            client.predict(content=handle_file(path), style=style, api_name="/colorize")
    path, words = _bad_uploads(tmp_path)["not an image"]
    with pytest.raises(ValidationError, match=words):
        client.predict(source=handle_file(path), reference=style, api_name="/transfer")
    for name, (path, size) in _odd_but_valid(tmp_path).items():
        out = client.predict(content=handle_file(path), style=style, api_name="/colorize")
        assert Image.open(out).size == size, name
    assert psutil.pid_exists(live_app.pid)


PHOTO = EXAMPLES / "coast_day.jpg"
ZERO_WEIGHTS = dict(completeness=0, lambda_local=0, lambda_nonlocal=0, lambda_detail=0)
TINY_WEIGHTS = dict(ZERO_WEIGHTS, lambda_local=1e-20)
BAD_OPTIONS = {  # name: (endpoint, arguments besides the images, words the error must contain)
    "working_size over the cap": ("/transfer", dict(working_size=4096), "working_size must be between 64 and 1024"),
    "working_size not a number": ("/transfer", dict(working_size="abc"), "working_size must be a number"),
    "working_size fractional": ("/transfer", dict(working_size=100.5), "working_size must be a whole number"),
    "lambda_local inf": ("/transfer", dict(lambda_local="inf"), "lambda_local must be between"),
    "completeness nan": ("/transfer", dict(completeness="nan"), "completeness must be between"),
    "completeness 1e308": ("/transfer", dict(completeness=1e308), "completeness must be between"),
    "lambda_detail 1e300": ("/transfer", dict(lambda_detail=1e300), "lambda_detail must be between"),
    "levels out of range": ("/transfer", dict(levels=[7]), "levels must be"),
    "no levels": ("/transfer", dict(levels=[]), "levels must be"),
    "transfer_lightness a string": ("/transfer", dict(transfer_lightness="false"), "must be true or false"),
    "transfer strength 2": ("/transfer", dict(strength=2), "strength must be between"),
    "no reference": ("/transfer", dict(reference=None), "Give a source image and at least one reference"),
    "a server path, not an upload": ("/transfer", dict(source="/etc/passwd"), "must be an uploaded file"),
    # Valid one by one, but together they leave the colour model undetermined: refused before any work.
    "every weight 0": ("/transfer", dict(working_size=64, levels=[5], **ZERO_WEIGHTS), "cannot both be 0"),
    # Accepted, but too weak to determine the model in float32: the computation fails, never a black image.
    "a vanishing smoothness": ("/transfer", dict(working_size=64, **TINY_WEIGHTS), "The computation failed"),
    "colorize strength 2": ("/colorize", dict(strength=2.0), "strength must be a number between 0 and 1"),
    "colorize strength text": ("/colorize", dict(strength="abc"), "strength must be a number, not 'abc'"),
    "style weight 0": ("/colorize", dict(style_weight=0.0), "style weights"),
    "style weight nan": ("/colorize", dict(style_weight="nan"), "style weights must be non-negative"),
    "no content": ("/colorize", dict(content=None), "Give a content image"),
    "content a number": ("/colorize", dict(content=5), "must be an uploaded file"),
}


@pytest.mark.parametrize("endpoint, options, words", BAD_OPTIONS.values(), ids=list(BAD_OPTIONS))
def test_bad_options_get_readable_errors(client, endpoint, options, words):
    photo = handle_file(PHOTO)
    images = dict(source=photo, reference=photo) if endpoint == "/transfer" else dict(content=photo, style=photo)
    # AppError: refused by the run; ValidationError: by the validator, before the queue (the names of the
    # inputs at fault first, then the message).
    with pytest.raises((AppError, ValidationError), match=re.escape(words)) as error:
        client.predict(**{**images, **options}, api_name=endpoint)
    assert not str(error.value).split(": ", 1)[-1].startswith(("'", '"'))  # the message itself, not its repr


INSTANT = {  # refused by the validator, without computing: (endpoint, arguments besides the images, words)
    "no reference": ("/transfer", dict(reference=None), "reference: Give a source image and at least one reference"),
    "working_size over the cap": ("/transfer", dict(working_size=4096), "working_size: working_size must be between"),
    "lambda_local inf": ("/transfer", dict(lambda_local="inf"), "lambda_local: lambda_local must be between"),
    "levels out of range": ("/transfer", dict(levels=[7]), "levels: levels must be"),
    "a reference that is no image": ("/transfer", dict(reference="notes"), "reference: reference 1 is not an image"),
    "colorize strength 2": ("/colorize", dict(strength=2.0), "strength: strength must be a number between 0 and 1"),
    "style weight 0": ("/colorize", dict(style_weight=0.0), "style_weight: style weights must be non-negative"),
    "content that is no image": ("/colorize", dict(content="notes"), "content: content image is not an image"),
}


def test_input_errors_come_back_at_once_while_the_queue_is_busy(client, tmp_path):
    """With a transfer running (the queue takes one at a time), a request with a mistake is refused at once
    by the validator, without waiting for its turn, and marked on the input at fault."""
    photo = handle_file(PHOTO)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"these are words, not pixels\n")
    busy = client.submit(source=photo, reference=photo, working_size=1024, api_name="/transfer")
    try:
        for name, (endpoint, options, words) in INSTANT.items():
            options = {k: handle_file(notes) if v == "notes" else v for k, v in options.items()}
            images = dict(source=photo, reference=photo) if endpoint == "/transfer" else dict(content=photo,
                                                                                               style=photo)
            start = time.monotonic()
            with pytest.raises(ValidationError, match=re.escape(words)):
                client.predict(**{**images, **options}, api_name=endpoint)
            assert time.monotonic() - start < 5, name
            assert not busy.done(), f"{name}: the busy job ended before the check; the test proves nothing"
    finally:
        assert Image.open(busy.result(timeout=600)).size == Image.open(PHOTO).size


def _call(live_app, endpoint: str, data: list) -> str:
    """A raw REST call, as any HTTP client makes it; returns the event stream's text."""
    call = httpx.post(f"{live_app.url}gradio_api/call/{endpoint}", json={"data": data})
    return httpx.get(f"{live_app.url}gradio_api/call/{endpoint}/{call.json()['event_id']}", timeout=60).text


def test_requests_cannot_reach_files_outside_the_upload_cache(live_app):
    """A caller naming a server path (not an upload) gets an error that says so, not the file's content."""
    tracebacks = live_app.log_text().count("Traceback")
    for path in ("/etc/passwd", str(ROOT / "app.py")):
        file = {"path": path, "meta": {"_type": "gradio.FileData"}}
        events = _call(live_app, "colorize", [file, file, 1, 1, None, 1, None, 1])
        assert events.startswith("event: error") and "it was not uploaded by a user" in events, events
        assert httpx.get(f"{live_app.url}gradio_api/file={path}").status_code == 403
    assert live_app.log_text().count("Traceback") == tracebacks  # a caller's mistake, not the server's


def test_wrong_number_of_arguments_gets_a_message(live_app):
    tracebacks = live_app.log_text().count("Traceback")
    events = _call(live_app, "colorize", [None])
    assert events.startswith("event: error") and "needed: 8, got: 1" in events, events
    assert live_app.log_text().count("Traceback") == tracebacks


def test_without_vgg_weights_the_transfer_tab_says_how_to_fix_it(tmp_path):
    """Offline, nothing cached, COLORIZER_VGG naming no file: colorization still works."""
    env = {"COLORIZER_VGG": str(tmp_path / "missing.safetensors"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    with running_app(env) as app:
        config = httpx.get(f"{app.url}config").text
        assert "Colour transfer is unavailable" in config and "COLORIZER_VGG" in config
        client = Client(app.url, verbose=False, download_files=tmp_path)
        photo = handle_file(EXAMPLES / "coast_day.jpg")
        with pytest.raises(ValidationError, match="COLORIZER_VGG"):  # refused at once, by the validator
            client.predict(source=photo, reference=photo, api_name="/transfer")
        out = client.predict(content=photo, style=handle_file(EXAMPLES / "mona_lisa.jpg"), api_name="/colorize")
        assert Image.open(out).size == (512, 256)
