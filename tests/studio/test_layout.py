"""What a visitor sees at a laptop's size (1366 × 900) and a phone's (390 × 844), in Chromium.

Each check failed on the page before it was redesigned: a banner that pushed the first input off a
phone's first screen, captions cut to "#1 · -0.0…", a four-column gallery wider than a phone, two
of seven tabs in the tab bar, 3D views cutting off the top of a shape, a refused gallery add that
drew the thumbnails as "Error" pills, and own galleries that could not hold sounds.
Screenshots of every tab at both sizes go to test-artifacts/ (docs/screenshot.png is the desktop
Audio → Image one).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import numpy as np
import pytest

from cmcr.retrieval.gallery import caption_from_name
from tests.studio.test_browser import (
    TABS, TIMEOUT_MS, add_image_and_mesh, chromium, open_page, open_tab, upload, wait_uploaded,
)

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
BACKGROUND = np.array([245, 245, 250])  # the viewers' clear colour (0.96, 0.96, 0.98)


@pytest.fixture(scope="module")
def browser(app_url: str) -> Iterator:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module", params=list(SIZES))
def sized(request, browser, app_url: str) -> Iterator:
    """(size name, page) for each size, one page per size shared by the module's tests."""
    page = open_page(browser, app_url, *SIZES[request.param])
    yield request.param, page
    page.close()


def viewport_width(page) -> int:
    return page.viewport_size["width"]


def test_the_first_screen_shows_the_banner_the_tabs_and_the_first_input(sized):
    _, page = sized
    page.reload()
    page.get_by_role("tab", name=TABS["audio-image"]).wait_for()
    height = page.viewport_size["height"]
    banner = page.locator("#banner").bounding_box()
    assert banner["height"] < 120  # one sentence, not the owner's six lines
    page.locator("#audio_to_image-go").wait_for()
    assert page.locator("#audio_to_image-go").bounding_box()["y"] + 40 < height  # input and button, unscrolled
    tabs = page.get_by_role("tab")
    assert tabs.count() == len(TABS)  # every tab in the bar, none behind "…"
    for index in range(tabs.count()):
        box = tabs.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport_width(page) and box["y"] < height


def search_text_3d(page, text: str = "a wooden chair") -> None:
    open_tab(page, "text-3d")
    page.locator("#text_to_3d-input textarea").fill(text)
    page.locator("#text_to_3d-go").click()
    page.locator("#text_to_3d-results img").first.wait_for()


def test_captions_are_whole_and_no_result_leaves_the_screen(sized, studio):
    _, page = sized
    search_text_3d(page)
    rows = page.locator("#text_to_3d-list li")
    rows.first.wait_for()
    assert rows.count() == studio.default_k
    captions = {item.caption for item in studio.default_items}
    width = viewport_width(page)
    for index in range(rows.count()):
        row = rows.nth(index)
        rank, score, caption = row.inner_text().strip().split(" · ", 2)
        assert rank == f"#{index + 1}" and float(score) <= 1 and caption in captions  # the whole caption
        box = row.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        assert row.evaluate("e => e.scrollWidth <= e.clientWidth")  # nothing cut at the right
    tiles = page.locator("#text_to_3d-results .gallery-item")
    tiles.nth(studio.default_k - 1).wait_for()
    for index in range(tiles.count()):
        box = tiles.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"result #{index + 1} is off-screen"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def drawn_pixels(viewer) -> np.ndarray:
    """A (H, W) mask of a viewer's canvas pixels that differ from the background, once its drawing
    has settled: two screenshots alike (a viewer first draws the model with Babylon's own framing,
    then moves the camera to the app's). The undo/download buttons are hidden and the canvas's
    rounded 2-pixel rim left out."""
    from PIL import Image

    viewer.locator(".icon-button-wrapper").evaluate_all("panels => panels.forEach(p => p.style.visibility = 'hidden')")
    canvas = viewer.locator("canvas")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    previous = None
    while True:
        canvas.scroll_into_view_if_needed()
        shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"), dtype=np.int16)
        mask = (np.abs(shot - BACKGROUND).sum(axis=2) > 40)[2:-2, 2:-2]
        settled = previous is not None and mask.sum() > 200 and np.array_equal(mask, previous)
        if settled or time.monotonic() > deadline:
            return mask
        previous = mask
        canvas.page.wait_for_timeout(250)  # polling until the drawing settles, not a fixed wait


def test_3d_views_show_the_whole_shape_below_their_label(sized):
    _, page = sized
    page.reload()  # no viewer still showing an earlier search
    search_text_3d(page, "a floor lamp")
    for rank in (1, 2, 3):
        viewer = page.locator(f"#text_to_3d-shape-{rank}")
        canvas = viewer.locator("canvas")
        canvas.wait_for()
        mask = drawn_pixels(viewer)
        assert mask.sum() > 200, f"viewer #{rank} drew nothing"
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        margin = 3  # the shape's extent lies inside the canvas, clear of every edge
        assert rows[0] >= margin and rows[-1] < mask.shape[0] - margin, f"viewer #{rank} cuts the shape vertically"
        assert columns[0] >= margin and columns[-1] < mask.shape[1] - margin, f"viewer #{rank} cuts it sideways"
        label = viewer.locator("label[data-testid=block-label]").bounding_box()
        assert label["y"] + label["height"] <= canvas.bounding_box()["y"] + 1  # the caption does not cover it


def test_a_refused_add_leaves_the_gallery_shown(sized, uploads):
    _, page = sized
    page.reload()
    status = add_image_and_mesh(page, uploads)
    page.locator("#add_to_gallery-go").click()  # nothing chosen: refused
    status.get_by_text("Nothing was added").or_(page.locator(".toast-body")).first.wait_for()
    thumbnails = page.locator("#add_to_gallery-contents img")
    assert thumbnails.count() == 2 and thumbnails.first.is_visible()
    assert not page.locator("#add_to_gallery-contents, #add_to_gallery-files").get_by_text("Error").count()
    upload(page, "add_to_gallery-files", uploads["corrupt_points"])
    wait_uploaded(page, "add_to_gallery-files", uploads["corrupt_points"])
    page.locator("#add_to_gallery-go").click()
    status.get_by_text(f"Skipped {uploads['corrupt_points'].name}").wait_for()
    page.locator(f'#add_to_gallery-files a[download="{uploads["corrupt_points"].name}"]').wait_for(state="detached")
    assert thumbnails.count() == 2  # the refused file is gone from the box, the gallery kept


def test_a_sound_added_to_your_gallery_is_found_with_an_image(sized, uploads):
    _, page = sized
    page.reload()
    open_tab(page, "own-gallery")
    page.locator("#add_to_gallery-files input[type=file]").set_input_files([str(uploads["audio"])])
    wait_uploaded(page, "add_to_gallery-files", uploads["audio"])
    page.locator("#add_to_gallery-go").click()
    page.locator("#own-gallery-status").get_by_text("Added 1").wait_for()
    page.locator("#search_gallery-source").get_by_text("Image", exact=True).click()
    upload(page, "search_gallery-image", uploads["image"])
    page.locator("#search_gallery-image img").first.wait_for()
    page.locator("#search_gallery-go").click()
    row = page.locator("#search_gallery-list li").first
    row.wait_for()
    assert row.inner_text().endswith(caption_from_name(uploads["audio"])) and row.locator("audio").count() == 1


def test_every_tab_fits_the_screen(sized, artifacts):
    name, page = sized
    page.reload()
    page.get_by_role("tab", name=TABS["audio-image"]).wait_for()
    for tab in TABS:
        open_tab(page, tab)
        page.locator('[role=tabpanel]:visible').first.wait_for()
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), tab
        shot = artifacts / f"tab-{tab}-{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000


def test_any_to_any_offers_only_what_it_can_answer(sized):
    _, page = sized
    page.reload()
    open_tab(page, "any-any")
    targets = page.locator("#any_to_any-target")
    page.locator("#any_to_any-source").get_by_text("Text", exact=True).click()
    targets.get_by_text("Text", exact=True).wait_for(state="detached")  # naming a text is refused: not offered
    page.locator("#any_to_any-source").get_by_text("Image", exact=True).click()
    targets.get_by_text("Text", exact=True).click()
    page.locator("#any_to_any-k input[type=range]:disabled").wait_for()  # naming ignores "How many"
    targets.get_by_text("Audio", exact=True).click()
    page.locator("#any_to_any-k input[type=range]:enabled").wait_for()
