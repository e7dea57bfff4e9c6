"""The app started as a Hugging Face Space starts it, then used through every tab.

A Space runs `python app.py` with no flags, `SPACE_ID` set and the address in GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT; here the owner's choice CMCR_PROFILE=tiny keeps it offline. One app start for
the module: gradio_client calls every tab's endpoint, then Debian's Chromium clicks one example in
every tab that offers them and runs a search in the two that do not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.paths import REPO
from tests.ports import free_loopback_port
from tests.studio.processes import start_app, stop, wait_served
from tests.studio.test_api import ENDPOINTS, unpack, value_of
from tests.studio.test_browser import CHROMIUM, CHROMIUM_ARGS, TABS, TIMEOUT_MS, open_tab, wait_uploaded

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def space_env(port: int | None = None) -> dict[str, str]:
    env = {**os.environ, "SPACE_ID": "someone/cmcr-studio", "CMCR_PROFILE": "tiny", "CMCR_DEVICE": "cpu",
           "OMP_NUM_THREADS": "1", "GRADIO_SERVER_NAME": "127.0.0.1"}
    if port is not None:
        env["GRADIO_SERVER_PORT"] = str(port)
    return env


@pytest.fixture(scope="module")
def space_url() -> Iterator[str]:
    port = free_loopback_port()
    process = start_app(space_env(port))  # no flags, as a Space runs it
    url = f"http://127.0.0.1:{port}/"
    try:
        config = wait_served(process, url).text
        assert "carry no meaning" in config and "not available right now" not in config  # tiny, chosen
        yield url
    finally:
        stop(process)


def test_app_py_holds_the_module_level_demo_that_gradio_and_zerogpu_need():
    probe = ("import gradio, app; assert isinstance(app.demo, gradio.Blocks); "
             "print(sorted(fn.api_name for fn in app.demo.fns.values() if fn.api_visibility == 'public'))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=space_env(), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(sorted(name.lstrip("/") for name in ENDPOINTS))


@pytest.fixture(scope="module")
def client(space_url: str) -> Client:
    return Client(space_url, verbose=False, download_files=False)


def test_every_fixed_pair_tab_answers(client, uploads):
    for endpoint, value in [("/audio_to_image", "audio"), ("/text_to_3d", None), ("/audio_to_3d", "audio"),
                            ("/image_to_audio", "image")]:
        view = unpack(client.predict(handle_file(str(uploads[value])) if value else "a wooden chair",
                                     api_name=endpoint))
        assert len(view["rows"]) == 8, endpoint


def test_naming_any_to_any_and_a_visitors_gallery_answer(client, uploads):
    preview, labels = client.predict(handle_file(str(uploads["mesh"])), "", api_name="/classify_3d")
    assert Path(value_of(preview)["path"]).suffix == ".glb" and len(value_of(labels)["confidences"]) >= 5
    view = unpack(client.predict("image", None, handle_file(str(uploads["image"])), "", None, "points", 4,
                                 api_name="/any_to_any"))
    assert len(view["rows"]) == 4
    summary, thumbnails, _ = client.predict([handle_file(str(uploads["image"]))], api_name="/add_to_gallery")
    assert "Added **1**" in summary and len(thumbnails) == 1
    view = unpack(client.predict("text", None, None, "a picture", None, 1, api_name="/search_gallery"))
    assert len(view["gallery"]) == 1


# What shows that a tab answered an example: its result element.
ANSWERED = {
    "audio-image": "#audio_to_image-results img", "text-3d": "#text_to_3d-results img",
    "audio-3d": "#audio_to_3d-results img", "image-audio": "#image_to_audio-list audio",
    "3d-text": "#classify_3d-preview canvas",
}
EXAMPLES = {"audio-image": "audio_to_image", "text-3d": "text_to_3d", "audio-3d": "audio_to_3d",
            "image-audio": "image_to_audio", "3d-text": "classify_3d"}


def test_a_visitor_in_chromium_uses_every_tab(space_url, uploads):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(space_url)
        page.get_by_role("tab", name=TABS["audio-image"]).wait_for()
        for tab, name in EXAMPLES.items():
            open_tab(page, tab)
            page.locator(f"#{name}-examples .gallery-item, #{name}-examples tr.tr-body").first.click()
            page.locator(ANSWERED[tab]).first.wait_for(state="attached")
        open_tab(page, "any-any")
        page.locator("#any_to_any-source").get_by_text("Text", exact=True).click()
        page.locator("#any_to_any-text textarea").fill("a red car")
        page.locator("#any_to_any-go").click()
        page.locator("#any_to_any-shape-1 canvas").wait_for()
        open_tab(page, "own-gallery")
        page.locator("#add_to_gallery-files input[type=file]").set_input_files(str(uploads["image"]))
        wait_uploaded(page, "add_to_gallery-files", uploads["image"])
        page.locator("#add_to_gallery-go").click()
        page.locator("#own-gallery-status").get_by_text("Added 1").wait_for()
        assert "Traceback" not in page.content() and "Error" not in page.locator("body").inner_text()
        browser.close()
