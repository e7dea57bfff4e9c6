"""The launched app driven in Debian's Chromium through Playwright, as a visitor would use it.

Screenshots land in test-artifacts/ (gitignored); test_layout.py takes every tab at a laptop's and
a phone's size, and docs/screenshot.png is copied from there by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TABS = {
    "audio-image": "Audio → Image", "text-3d": "Text → 3D", "audio-3d": "Audio → 3D",
    "image-audio": "Image → Audio", "3d-text": "3D → Text", "any-any": "Any → Any",
    "own-gallery": "Your gallery",
}
TIMEOUT_MS = 60_000


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (never `playwright install`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, width: int = 1280, height: int = 1000):
    """A new page at `width` × `height` with the app loaded (its first tab shown)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("tab", name=TABS["audio-image"]).wait_for()
    return page


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator:
    with chromium() as browser:
        yield open_page(browser, app_url)


def open_tab(page, tab: str) -> None:
    page.get_by_role("tab", name=TABS[tab], exact=True).click()


def upload(page, elem_id: str, path: Path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def wait_uploaded(page, elem_id: str, path: Path) -> None:
    """A gr.File lists an upload with a download link once the server holds it."""
    page.locator(f'#{elem_id} a[download="{path.name}"]').wait_for()


def add_image_and_mesh(page, uploads):
    """Add an image and a mesh on the own-gallery tab; returns the tab's status line, once it says so."""
    open_tab(page, "own-gallery")
    files = page.locator("#add_to_gallery-files input[type=file]")
    files.set_input_files([str(uploads["image"]), str(uploads["mesh"])])
    for kind in ("image", "mesh"):
        wait_uploaded(page, "add_to_gallery-files", uploads[kind])
    page.locator("#add_to_gallery-go").click()
    status = page.locator("#own-gallery-status")
    status.get_by_text("Added 2").wait_for()
    return status

def test_the_tiny_profile_banner_is_shown(page):
    banner = page.locator("#banner")
    banner.wait_for()
    assert "random" in banner.inner_text()
    assert not page.get_by_text("carry no meaning").first.is_visible()  # the details stay folded


def test_audio_upload_shows_a_ranked_image_gallery(page, uploads, artifacts):
    open_tab(page, "audio-image")
    upload(page, "audio_to_image-input", uploads["audio"])
    player = page.locator("#audio_to_image-input audio, #audio_to_image-input .waveform-container")
    player.first.wait_for(state="attached")
    page.locator("#audio_to_image-go").click()
    thumbnails = page.locator("#audio_to_image-results img")
    thumbnails.first.wait_for()
    assert thumbnails.count() >= 3
    assert "#1 ·" in page.locator("#audio_to_image-results").inner_text()
    page.screenshot(path=str(artifacts / "search-audio-image.png"), full_page=True)


def test_point_cloud_upload_shows_a_3d_result(page, uploads, artifacts):
    open_tab(page, "3d-text")
    upload(page, "classify_3d-input", uploads["points"])
    wait_uploaded(page, "classify_3d-input", uploads["points"])
    page.locator("#classify_3d-go").click()
    page.locator("#classify_3d-preview canvas").wait_for()
    labels = page.locator("#classify_3d-labels")
    labels.get_by_text("%").filter(visible=True).first.wait_for()
    page.screenshot(path=str(artifacts / "search-3d-text.png"), full_page=True)


def test_text_search_shows_interactive_3d_views(page, artifacts):
    open_tab(page, "text-3d")
    page.locator("#text_to_3d-input textarea").fill("a wooden chair")
    page.locator("#text_to_3d-go").click()
    page.locator("#text_to_3d-shape-1 canvas").wait_for()
    assert page.locator("#text_to_3d-results img").count() >= 3
    assert "#1 ·" in page.locator("#text_to_3d-shape-1").inner_text()
    page.screenshot(path=str(artifacts / "search-text-3d.png"), full_page=True)


def test_a_corrupt_file_shows_a_clear_error(page, uploads, artifacts):
    page.reload()  # a fresh page: the upload box still holds the previous test's cloud
    open_tab(page, "3d-text")
    upload(page, "classify_3d-input", uploads["corrupt_points"])
    wait_uploaded(page, "classify_3d-input", uploads["corrupt_points"])
    page.locator("#classify_3d-go").click()
    error = page.get_by_text("could not be read as PLY").filter(visible=True).first
    error.wait_for()
    assert "Traceback" not in page.content()
    page.screenshot(path=str(artifacts / "error-corrupt-file.png"), full_page=True)


def test_own_gallery_upload_then_search(page, uploads, artifacts):
    page.reload()
    add_image_and_mesh(page, uploads)
    assert page.locator("#add_to_gallery-contents img").count() == 2
    page.locator("#search_gallery-text textarea").fill("a box")
    page.locator("#search_gallery-go").click()
    page.locator("#search_gallery-results img").nth(1).wait_for()
    assert "#2 ·" in page.locator("#search_gallery-results").inner_text()
    page.screenshot(path=str(artifacts / "search-own-gallery.png"), full_page=True)


def test_clicking_an_example_runs_the_search(page, studio):
    page.reload()
    open_tab(page, "3d-text")
    example = Path(studio.examples("points")[0]).name
    page.get_by_text(example, exact=True).filter(visible=True).first.click()
    answered = page.locator("#classify_3d-preview canvas").or_(page.locator(".toast-body")).first
    answered.wait_for()
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    page.locator("#classify_3d-preview canvas").wait_for()
    page.locator("#classify_3d-labels").get_by_text("%").filter(visible=True).first.wait_for()


def test_an_example_is_computed_once_then_read_from_the_cache(page, studio, monkeypatch):
    from studio import gpu

    calls = []
    embed = gpu.embed_on_gpu
    monkeypatch.setattr(gpu, "embed_on_gpu", lambda *args: calls.append(args[1]) or embed(*args))
    example = studio.examples("text")[-1]
    counts = []
    for _ in range(2):
        page.reload()
        open_tab(page, "text-3d")
        page.get_by_text(example, exact=True).filter(visible=True).first.click()
        page.locator("#text_to_3d-results img").first.wait_for()
        counts.append(len(calls))
    assert calls == ["text"] and counts == [1, 1]  # computed on the first click, read back on the second


def test_an_uploaded_image_is_previewed_and_answered_as_uploaded(page, uploads, artifacts):
    """The image widget hands the server's decoder the file itself; the browser still previews it."""
    page.reload()
    open_tab(page, "image-audio")
    upload(page, "image_to_audio-input", uploads["image"])
    page.locator("#image_to_audio-input img").wait_for()
    page.locator("#image_to_audio-go").click()
    page.locator("#image_to_audio-list li.result audio").first.wait_for(state="attached")
    assert "#1 ·" in page.locator("#image_to_audio-list").inner_text()
    page.screenshot(path=str(artifacts / "search-image-audio.png"), full_page=True)
