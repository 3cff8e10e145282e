"""The app in a real browser: Playwright for Python driving Debian's Chromium against a live local server.

Screenshots are saved under artifacts/screenshots/.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from colorizer.style_colorizer import StyleColorizer

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


def test_transfer_example(page):
    source, reference = (app.EXAMPLES / f"{name}.jpg" for name in app.NCT_PAIRS[1])
    page.locator("#nct-settings").get_by_text("Settings").click()
    working_size = page.locator("#working-size input[type=number]")
    working_size.fill("256")  # quick on a CPU
    working_size.press("Enter")
    page.locator("#nct-examples tbody tr").nth(1).click()
    sync_api.expect(page.locator("#nct-reference img")).to_be_visible()
    page.evaluate(WATCH_PROGRESS)
    page.get_by_role("button", name="Transfer colours").click()
    sync_api.expect(page.locator("#nct-timing strong")).to_be_visible()  # filled in after the result
    sync_api.expect(page.locator("#nct-levels img")).to_have_count(5)
    page.screenshot(path=SHOTS / "transfer.png", full_page=True)

    result = shown_image(page, "#nct-result img")
    assert result.format == "PNG" and result.size == Image.open(source).size
    assert moved_toward(result, source, reference)
    progress = page.evaluate("window.progressSeen")
    assert len(set(progress)) >= 2 and all(p.endswith("/5 levels") for p in progress), progress


def test_colorize_example(page):
    content, style = (app.EXAMPLES / f"{name}.jpg" for name in app.COLORIZE_PAIRS[0])
    page.get_by_role("tab", name="Artistic colorization (AdaIN UNet)").click()
    page.locator("#colorize-examples tbody tr").nth(0).click()
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
    page.get_by_role("tab", name="Artistic colorization (AdaIN UNet)").click()
    page.locator("#content-image input[type=file]").set_input_files(bad)
    page.locator("#style-image input[type=file]").set_input_files(app.EXAMPLES / "starry_night.jpg")
    sync_api.expect(page.locator("#style-image img")).to_be_visible()
    page.get_by_role("button", name="Colorize").click()
    toast = page.locator(".toast-body").filter(has_text="content image is not an image file that can be read")
    sync_api.expect(toast).to_have_css("opacity", "1")  # faded in, so that the screenshot shows it
    page.screenshot(path=SHOTS / "bad_upload.png")

    page.locator("#colorize-examples tbody tr").nth(1).click()
    page.get_by_role("button", name="Colorize").click()
    sync_api.expect(page.locator("#colorize-result img")).to_be_visible()


def test_use_via_api_page_shows_both_endpoints(page):
    page.get_by_text("Use via API").click()
    sync_api.expect(page.get_by_text("2 API endpoints")).to_be_visible()
    for name in ("/transfer", "/colorize"):
        sync_api.expect(page.get_by_text(name, exact=True).first).to_be_visible()
    page.screenshot(path=SHOTS / "api.png")
