"""The app in a real browser: Playwright for Python driving Debian's Chromium against a live local server.

Screenshots are saved under artifacts/screenshots/.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from colorizer.style_colorizer import StyleColorizer

from benchmarks.live_app import running_app
from colorizer.paths import ROOT
from .test_app import moved_toward

sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python (requirements-dev.txt)")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"
# Records every "k/n levels" progress text the page shows, however briefly.
WATCH_PROGRESS = """() => {
    window.progressSeen = [];
    new MutationObserver(() => {
        for (const m of document.body.innerText.matchAll(/\\d+\\/\\d+ levels/g)) window.progressSeen.push(m[0]);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
# Records every image the transfer's result box shows, in order, and every level count its gallery shows.
WATCH_RESULT = """() => {
    window.resultsSeen = [];
    window.galleryCounts = [];
    new MutationObserver(() => {
        const img = document.querySelector('#nct-result img');
        const src = img ? img.getAttribute('src') : null;
        if (src && window.resultsSeen[window.resultsSeen.length - 1] !== src) window.resultsSeen.push(src);
        const n = document.querySelectorAll('#nct-levels img').length;
        if (window.galleryCounts[window.galleryCounts.length - 1] !== n) window.galleryCounts.push(n);
    }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_app):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    sync_api.expect.set_options(timeout=180_000)
    page.goto(live_app.url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield page
    context.close()


def shown_image(page, selector: str) -> Image.Image:
    """The full image behind an <img> on the page, fetched from the server as the browser sees it."""
    src = page.locator(selector).get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body()))


def set_working_size(page, value: str, tries: int = 5) -> None:
    """Type ``value`` into the working-size box until its slider holds it.

    The slider takes the typed value asynchronously, and a box typed into while the settings panel
    is still opening may lose it (a CI run waited 180 s on a slider left at 512): so each try waits
    a few seconds, then types again. A transfer started before the slider holds it would run at the
    default size.
    """
    box, slider = (page.locator(f"#working-size input[type={kind}]") for kind in ("number", "range"))
    for attempt in range(tries):
        box.fill(value)
        box.press("Enter")
        try:
            sync_api.expect(slider).to_have_value(value, timeout=10_000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def test_transfer_example(page):
    source, reference = (app.EXAMPLES / f"{name}.jpg" for name in app.NCT_PAIRS[1])
    page.locator("#nct-settings").get_by_text("Settings").click()
    set_working_size(page, "256")  # quick on a CPU
    page.locator("#nct-examples .gallery-item").nth(1).click()
    sync_api.expect(page.locator("#nct-reference img")).to_be_visible()
    page.evaluate(WATCH_PROGRESS)
    page.evaluate(WATCH_RESULT)
    page.get_by_role("button", name="Transfer colours").click()
    sync_api.expect(page.locator("#nct-timing strong")).to_be_visible()  # filled in after the result
    sync_api.expect(page.locator("#nct-levels img")).to_have_count(5)
    sync_api.expect(page.locator("#nct-levels")).to_be_visible()  # hidden only while empty
    page.screenshot(path=SHOTS / "transfer.png", full_page=True)

    result = shown_image(page, "#nct-result img")
    assert result.format == "PNG" and result.size == Image.open(source).size
    assert moved_toward(result, source, reference)
    progress = page.evaluate("window.progressSeen")
    assert len(set(progress)) >= 2 and all(p.endswith("/5 levels") for p in progress), progress
    # Streamed: the result box showed the levels' results (at the working size) before the final image, and
    # the level gallery filled one by one. (The browser may render two quick updates as one, so this asks
    # for most of them; tests/test_app.py counts every streamed update.)
    seen = page.evaluate("window.resultsSeen")
    assert len(seen) >= 4, seen
    steps = [Image.open(io.BytesIO(page.request.get(src).body())) for src in seen]
    # Most of what the box showed before the end was a level's result at the working size (the observer may
    # also catch a transient image while the box re-renders; tests/test_app.py checks every update exactly).
    sizes = [img.size for img in steps]
    assert sum(max(size) == 256 for size in sizes[:-1]) >= 3 and sizes[-1] == result.size, sizes
    counts = [n for n in page.evaluate("window.galleryCounts") if n]
    assert len(counts) >= 3 and counts == sorted(counts) and counts[-1] == 5, counts


def test_colorize_example(page):
    content, style = (app.EXAMPLES / f"{name}.jpg" for name in app.COLORIZE_PAIRS[0])
    page.get_by_role("tab", name="Artistic colorization").click()
    page.locator("#colorize-examples .gallery-item").nth(0).click()
    sync_api.expect(page.locator("#style-image img")).to_be_visible()
    page.get_by_role("button", name="Colorize").click()
    sync_api.expect(page.locator("#colorize-result img")).to_be_visible()
    page.screenshot(path=SHOTS / "colorize.png", full_page=True)

    result = shown_image(page, "#colorize-result img")
    assert result.format == "PNG" and result.size == Image.open(content).size
    # What the page shows is what the bundled model computes for the pair (up to float rounding
    # between the server's threads and this process's).
    expected = StyleColorizer.from_pretrained().colorize(content, style)
    assert np.abs(np.asarray(result.convert("RGB"), float) - np.asarray(expected, float)).mean() < 1


def test_bad_upload_shows_the_error_and_the_app_keeps_working(page, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"not really a picture")
    page.get_by_role("tab", name="Artistic colorization").click()
    page.locator("#content-image input[type=file]").set_input_files(bad)
    page.locator("#style-image input[type=file]").set_input_files(app.EXAMPLES / "starry_night.jpg")
    sync_api.expect(page.locator("#style-image img")).to_be_visible()
    page.get_by_role("button", name="Colorize").click()
    # Refused at once by the event's validator, without queueing: the message shows on the input at fault.
    message = page.locator("#content-image").get_by_text("content image is not an image file that can be read")
    sync_api.expect(message).to_be_visible(timeout=30_000)
    page.screenshot(path=SHOTS / "bad_upload.png")

    page.locator("#colorize-examples .gallery-item").nth(1).click()
    page.get_by_role("button", name="Colorize").click()
    sync_api.expect(page.locator("#colorize-result img")).to_be_visible()


def test_an_error_clears_the_previous_result(page, tmp_path):
    """After a failed run, the page shows no result rather than the previous run's as if it were the answer."""
    page.get_by_role("tab", name="Artistic colorization").click()
    page.locator("#colorize-examples .gallery-item").nth(0).click()
    sync_api.expect(page.locator("#style-image img")).to_be_visible()
    page.get_by_role("button", name="Colorize").click()
    sync_api.expect(page.locator("#colorize-result img")).to_be_visible()

    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"not really a picture")
    page.locator("#content-image button[aria-label='Remove Image']").first.click()
    page.locator("#content-image input[type=file]").set_input_files(bad)
    page.get_by_role("button", name="Colorize").click()
    sync_api.expect(page.locator("#content-image").get_by_text("not an image file")).to_be_visible(timeout=30_000)
    sync_api.expect(page.locator("#colorize-result img")).to_have_count(0, timeout=10_000)
    page.screenshot(path=SHOTS / "error_clears_result.png")


def test_examples_are_labelled_and_cached_on_first_use(browser, vgg_path, tmp_path):
    """With the app's default (lazy) example cache: nothing is computed at start-up; the first click on an
    example computes it, and a later visit shows it at once, from the cache."""
    cache = tmp_path / "examples"
    env = {"COLORIZER_VGG": str(vgg_path), "COLORIZER_CACHE_EXAMPLES": "lazy", "GRADIO_EXAMPLES_CACHE": str(cache),
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    with running_app(env) as live:
        assert not any(path.is_file() for path in cache.rglob("*"))  # nothing computed at start-up
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            for visit in range(2):
                page.goto(live.url)
                page.get_by_role("tab", name="Artistic colorization").click()
                label = "Coast day like starry night"
                sync_api.expect(page.locator("#colorize-examples .gallery-item").first).to_have_text(label)
                page.locator("#colorize-examples .gallery-item").first.click()  # no button press
                start = time.monotonic()
                sync_api.expect(page.locator("#colorize-result img")).to_be_visible(timeout=60_000)
                seconds = time.monotonic() - start
                if visit == 0:
                    assert any(path.is_file() for path in cache.rglob("*"))  # cached on first use
            assert seconds < 2, seconds  # the second visit reads the cache
            result = shown_image(page, "#colorize-result img")
            assert result.size == Image.open(app.EXAMPLES / "coast_day.jpg").size
        finally:
            context.close()


def show_python_api(page) -> None:
    """The API page opens on its MCP view when the app is an MCP server; the endpoints' view is "Python"."""
    page.get_by_text("Python", exact=True).first.click()


def test_use_via_api_page_shows_both_endpoints(page):
    page.get_by_text("Use via API").click()
    show_python_api(page)
    sync_api.expect(page.get_by_text("2 API endpoints")).to_be_visible()
    for name in ("/transfer", "/colorize"):
        sync_api.expect(page.get_by_text(name, exact=True).first).to_be_visible()
    page.screenshot(path=SHOTS / "api.png")


def test_api_page_opens_from_its_address(page, live_app):
    """/?view=api, opened directly (a link, a bookmark), shows the API page with both endpoints, and each
    parameter's range and default, from the endpoint's docstring."""
    page.goto(f"{live_app.url}?view=api")
    sync_api.expect(page.get_by_text("2 MCP Tools")).to_be_visible(timeout=30_000)  # the app is an MCP server too
    show_python_api(page)
    sync_api.expect(page.get_by_text("2 API endpoints")).to_be_visible()
    for name in ("/transfer", "/colorize"):
        sync_api.expect(page.get_by_text(name, exact=True).first).to_be_visible()
    body = page.inner_text("body")
    assert "working_size: long side, in pixels, that matching runs at (64-1024, default 512)" in body, body[:3000]
    assert "strength: 0 gives the gray image, 1 the full colorization (0-1, default 1)" in body
    page.screenshot(path=SHOTS / "api_from_address.png", full_page=True)


def test_phone_layout_shows_both_tabs_and_no_empty_level_box(browser, live_app):
    """On a phone-sized screen both tabs are in view (none behind a menu), the examples do not scroll
    sideways, and the level gallery shows no empty box before a run."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(live_app.url)
        for name in ("Color transfer", "Artistic colorization"):
            sync_api.expect(page.get_by_role("tab", name=name, exact=True)).to_be_visible(timeout=30_000)
        sync_api.expect(page.locator("#nct-levels")).to_be_hidden()
        sync_api.expect(page.locator("#nct-examples .gallery-item").first).to_be_visible()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, width
        page.screenshot(path=SHOTS / "phone.png", full_page=True)
    finally:
        context.close()
