"""What a hostile or careless visitor can do to the launched app, and what holds (`studio.serving`).

The app is the real one on loopback (tiny profile, in this process, so its memory and its
`Studio` can be read directly): uploaded images reach our own decoder undecoded (sizes refused
from the header, formats by content, bit depths kept); one limit on model work over every
endpoint, the REST shortcut closed; a session's files deleted when it ends; uploads Gradio
cannot parse answered with a 400; texts bounded wherever they enter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio import ui
from studio.answers import Query
from studio.serving import served_copies, shared_copies
from tests.ports import free_loopback_port
from tests.reliability.bombs import real_png_bomb
from tests.studio.test_api import unpack, value_of

PEAK_MARGIN_MB = 200  # Gradio's own decoding cost +805 MB (the PNG) and +850 MB (the GIF)


def client_for(url: str) -> Client:
    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return client_for(app_url)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def peak_growth_mb(call) -> tuple[float, object]:
    """How far the process's resident memory rose above where it was while `call` ran (the
    server runs in this process): the high-water mark is reset first (/proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")
    start = _status_mb("VmRSS")
    try:
        outcome = call()
    except Exception as error:  # noqa: BLE001 - the refusal is the outcome under test
        outcome = error
    return _status_mb("VmHWM") - start, outcome


def test_a_13000_pixel_square_png_is_refused_from_its_header_without_a_memory_peak(client, tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(real_png_bomb(13_000, 13_000)[0])
    growth, outcome = peak_growth_mb(lambda: client.predict(handle_file(str(path)), api_name="/image_to_audio"))
    assert isinstance(outcome, Exception) and "13000x13000 pixels" in str(outcome) and "megapixels" in str(outcome)
    assert growth < PEAK_MARGIN_MB


def test_a_200_frame_gif_is_answered_from_its_first_frame_without_a_memory_peak(client, tmp_path):
    path = tmp_path / "long.gif"
    frames = (Image.new("L", (1000, 1000), index) for index in range(1, 200))
    Image.new("L", (1000, 1000), 0).save(path, format="GIF", save_all=True, append_images=frames)
    assert Image.open(path).n_frames == 200
    growth, outcome = peak_growth_mb(lambda: client.predict(handle_file(str(path)), api_name="/image_to_audio"))
    assert not isinstance(outcome, Exception), outcome
    assert len(unpack(outcome)["rows"]) == 8
    assert growth < PEAK_MARGIN_MB


def _scores(outputs) -> list[float]:
    """The scores of the listed results ('#rank · score · caption', three decimals)."""
    return [float(row.split(" · ")[1]) for row in unpack(outputs)["rows"]]


def test_a_16_bit_tiff_is_answered_as_our_decoder_reads_it(client, studio, tmp_path):
    """A dark 16-bit gradient: our decoder scales by the bit depth (dark greys); a re-encode through
    an 8-bit conversion clips it to near-white, and would answer differently."""
    values = np.tile(np.linspace(0, 20_000, 256, dtype=np.uint16), (256, 1))
    tiff = tmp_path / "dark16.tif"
    Image.fromarray(values).save(tiff)
    flattened = tmp_path / "flattened.png"
    Image.open(tiff).convert("RGB").save(flattened)
    assert np.asarray(Image.open(flattened)).mean() > 250  # what the bug fed the model

    def in_process(path: Path) -> list[float]:
        return [hit.score for hit in studio.answer(Query("image", str(path)), "audio", k=8).hits]

    served = _scores(client.predict(handle_file(str(tiff)), api_name="/image_to_audio"))
    assert served == pytest.approx(in_process(tiff), abs=2e-3)
    assert served != pytest.approx(in_process(flattened), abs=2e-3)


def test_a_tga_renamed_png_is_refused_by_our_format_allow_list(client, tmp_path):
    path = tmp_path / "really-a-tga.png"
    Image.new("L", (64, 64), 90).save(path, format="TGA")  # grey: gr.Image would convert and re-encode it
    with pytest.raises(Exception, match=r"really-a-tga\.png\S* is not a recognised image"):
        client.predict(handle_file(str(path)), api_name="/image_to_audio")


def test_concurrent_requests_over_every_kind_of_endpoint_share_one_limit(app_url, studio, uploads):
    """Twelve requests over four endpoints at once: the queue lets at most `--concurrency` (2)
    reach the models together, so the service's own gate never has to hold one back."""
    labels = ", ".join(f"label number {index}" for index in range(100))
    calls = [
        lambda c: c.predict("a wooden chair", api_name="/text_to_3d"),
        lambda c: c.predict(handle_file(str(uploads["image"])), api_name="/image_to_audio"),
        lambda c: c.predict(handle_file(str(uploads["mesh"])), labels, api_name="/classify_3d"),
        lambda c: c.predict("audio", handle_file(str(uploads["audio"])), None, "", None, "image", 4,
                            api_name="/any_to_any"),
    ] * 3
    clients = [client_for(app_url) for _ in calls]
    failures: list[BaseException] = []

    def run(call, client) -> None:
        try:
            call(client)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    assert _wait_until(lambda: studio.work.in_flight == 0)  # the shared studio's earlier work is done
    studio.work.reset_counts()
    threads = [threading.Thread(target=run, args=pair) for pair in zip(calls, clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    assert studio.work.limit == 2
    assert studio.work.peak == 2  # the work did overlap, and never beyond the limit
    assert studio.work.waited == 0  # the queue held it: nothing got past it to wait inside


def test_the_rest_shortcut_past_the_queue_is_closed(app_url):
    answer = httpx.post(app_url + "gradio_api/run/text_to_3d", json={"data": ["a chair"]}, timeout=60)
    assert answer.status_code == 404 and "join the queue" in answer.text


def test_an_upload_with_an_empty_file_name_gets_a_400_with_a_reason(app_url):
    answer = httpx.post(app_url + "gradio_api/upload", files={"files": ("", b"hello", "image/png")}, timeout=60)
    assert answer.status_code == 400 and "file name" in answer.json()["error"]
    named = httpx.post(app_url + "gradio_api/upload", files={"files": ("a.png", b"hello", "image/png")}, timeout=60)
    assert named.status_code == 200


def _wait_until(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_a_session_that_ends_takes_its_gallery_its_uploads_and_their_served_copies_with_it(
        app_url, studio, uploads, monkeypatch):
    """A visitor (gradio_client keeps a heartbeat, as a browser tab does) adds files, searches,
    then leaves: the heartbeat stops and everything the session wrote or was served is deleted."""
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # read per heartbeat: a quick goodbye
    visitor = client_for(app_url)
    files = [handle_file(str(uploads[kind])) for kind in ("image", "mesh")]
    _, thumbnails, _ = visitor.predict(files, api_name="/add_to_gallery")
    unpack(visitor.predict("text", None, None, "a box", None, 2, api_name="/search_gallery"))
    gallery = studio.session_gallery(visitor.session_hash)
    served = served_copies(gallery.files())
    uploaded = gallery.sources()
    assert gallery.root.is_dir() and len(served) >= 2 and all(path.is_file() for path in uploaded)
    url = f"{app_url}gradio_api/file={value_of(thumbnails)[0]['image']['path']}"
    assert httpx.get(url, timeout=60).status_code == 200
    visitor.close()  # the tab is closed: its heartbeat stops
    assert _wait_until(lambda: not gallery.root.exists())
    assert studio.session_gallery(visitor.session_hash) is None and gallery.closed
    assert not any(path.exists() for path in served + uploaded)
    assert httpx.get(url, timeout=60).status_code != 200


def test_an_ended_session_leaves_the_example_files_every_page_shows(app_url, studio, monkeypatch):
    """An upload of an example's file lands on the example's own cached copy (Gradio names copies
    by content and name): ending that session must not take the example away from every page."""
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")
    visitor = client_for(app_url)
    visitor.predict([handle_file(studio.examples("points")[0])], api_name="/add_to_gallery")
    gallery = studio.session_gallery(visitor.session_hash)
    (upload,) = gallery.sources()
    assert upload.resolve() in shared_copies(studio.assets)  # the very path the example is served at
    visitor.close()
    assert _wait_until(lambda: not gallery.root.exists())
    assert upload.is_file()


@pytest.fixture
def short_lived_app(studio) -> Iterator[str]:
    """The app with sessions kept 2 s after their last addition and Gradio's cache swept every
    second of files older than 2 s (shipped: an hour, every 10 minutes)."""
    studio.session_ttl_s = 2
    port = free_loopback_port()
    demo = ui.serve(studio, "127.0.0.1", port, block=False, cache_sweep=(1, 2))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        del studio.session_ttl_s  # back to the class's value


def test_a_gallery_is_deleted_its_time_to_live_after_its_last_addition_even_in_an_open_session(
        short_lived_app, studio, uploads):
    """So a session whose heartbeat never stops (or a caller that never sends one) still ends."""
    visitor = client_for(short_lived_app)
    visitor.predict([handle_file(str(uploads["image"]))], api_name="/add_to_gallery")
    gallery = studio.session_gallery(visitor.session_hash)
    assert gallery.root.is_dir()
    assert _wait_until(lambda: not gallery.root.exists(), seconds=30)
    client_for(short_lived_app).predict([handle_file(str(uploads["mesh"]))], api_name="/add_to_gallery")
    assert studio.session_gallery(visitor.session_hash) is None  # and its entry in the register went

def test_anonymous_uploads_are_swept_from_the_cache(short_lived_app):
    answer = httpx.post(short_lived_app + "gradio_api/upload", files={"files": ("big.bin", bytes(1 << 20))}, timeout=60)
    stored = Path(answer.json()[0])
    assert stored.is_file()
    assert _wait_until(lambda: not stored.exists(), seconds=30)


def test_long_texts_are_bounded_in_zero_shot_labels_and_gallery_searches(client, app_url, uploads):
    """One 200,000-letter word as a label and as a query of one's own gallery: unbounded, either
    would tokenize for minutes; bounded, both answer."""
    word = "z" * 200_000
    _, labels = client.predict(handle_file(str(uploads["mesh"])), f"chair, {word}", api_name="/classify_3d")
    assert len(value_of(labels)["confidences"]) == 2
    visitor = client_for(app_url)
    visitor.predict([handle_file(str(uploads["image"]))], api_name="/add_to_gallery")
    view = unpack(visitor.predict("text", None, None, word, None, 1, api_name="/search_gallery"))
    assert len(view["gallery"]) == 1
