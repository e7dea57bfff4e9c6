"""Every endpoint of the launched app, called through gradio_client (tiny profile, loopback)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

ENDPOINTS = {
    "/audio_to_image", "/text_to_3d", "/audio_to_3d", "/image_to_audio", "/classify_3d",
    "/any_to_any", "/add_to_gallery", "/search_gallery",
}
SHAPES = 3


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False, download_files=False)


def value_of(output):
    """A component's value, whether the app sent it bare or inside a visibility update."""
    if isinstance(output, dict) and output.get("__type__") == "update":
        return output.get("value")
    return output


def suffix_of(file) -> str | None:
    """The suffix of a returned file (a path, or gradio_client's FileData dict); None for none."""
    if file is None:
        return None
    return Path(file["path"] if isinstance(file, dict) else file).suffix


def unpack(outputs: tuple) -> dict:
    """The fixed output layout of a result view: gallery, 3 shapes, labels, the list of every result
    (parsed: its rows' text and the sound files its players play)."""
    gallery, *rest = [value_of(output) for output in outputs]
    listing = rest[SHAPES + 1] or ""
    return {
        "gallery": gallery,
        "shapes": rest[:SHAPES],
        "labels": rest[SHAPES],
        "rows": [re.sub(r"<[^>]+>", "", row) for row in re.findall(r'<li class="result"[^>]*>(.*?)</li>', listing)],
        "sounds": re.findall(r'<audio[^>]* src="gradio_api/file=([^"]+)"', listing),
    }


def captions(gallery: list[dict]) -> list[str]:
    return [entry["caption"] for entry in gallery]


def assert_ranked(gallery: list[dict]) -> None:
    """Captions read '#rank · score · caption' with ranks 1..n and scores not increasing."""
    parts = [caption.split(" · ") for caption in captions(gallery)]
    assert [p[0] for p in parts] == [f"#{i}" for i in range(1, len(parts) + 1)]
    scores = [float(p[1]) for p in parts]
    assert scores == sorted(scores, reverse=True)


def test_the_app_exposes_exactly_the_tested_endpoints(client):
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == ENDPOINTS


def test_audio_to_image_returns_a_ranked_image_gallery(client, uploads, studio):
    view = unpack(client.predict(handle_file(str(uploads["audio"])), api_name="/audio_to_image"))
    assert len(view["gallery"]) == studio.default_k
    assert_ranked(view["gallery"])
    image_captions = {item.caption for item in studio.default_items if item.modality == "image"}
    assert {c.split(" · ", 2)[2] for c in captions(view["gallery"])} <= image_captions
    assert view["shapes"] == [None] * SHAPES and view["sounds"] == []
    assert [row.split(" · ", 2)[2] for row in view["rows"]] == [c.split(" · ", 2)[2] for c in captions(view["gallery"])]


@pytest.mark.parametrize(
    ("endpoint", "value"),
    [("/text_to_3d", "a wooden chair"), ("/audio_to_3d", "audio")],
)
def test_shape_searches_return_3d_views(client, uploads, endpoint, value):
    argument = handle_file(str(uploads[value])) if value in uploads else value
    view = unpack(client.predict(argument, api_name=endpoint))
    assert_ranked(view["gallery"])
    assert [suffix_of(shape) for shape in view["shapes"]] == [".glb"] * SHAPES


def test_image_to_audio_lists_every_sound_with_a_player(client, uploads, app_url):
    import httpx

    view = unpack(client.predict(handle_file(str(uploads["image"])), api_name="/image_to_audio"))
    assert [Path(sound).suffix for sound in view["sounds"]] == [".wav"] * 8  # every result, not the top three
    assert view["gallery"] == []
    scores = [float(row.split(" · ")[1]) for row in view["rows"]]
    assert len(scores) == 8 and scores == sorted(scores, reverse=True)
    served = httpx.get(app_url + "gradio_api/file=" + view["sounds"][0], timeout=30)  # the page can play it
    assert served.status_code == 200 and served.content[:4] == b"RIFF"


def test_classify_3d_returns_the_shape_preview_and_label_probabilities(client, uploads):
    preview, labels = client.predict(
        handle_file(str(uploads["mesh"])), "chair, table, airplane", api_name="/classify_3d"
    )
    assert suffix_of(value_of(preview)) == ".glb"
    confidences = {entry["label"]: entry["confidence"] for entry in value_of(labels)["confidences"]}
    assert set(confidences) == {"chair", "table", "airplane"}
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("source", "target"), [("image", "points"), ("points", "audio"), ("text", "image"), ("audio", "text")]
)
def test_any_to_any_routes_every_source_to_every_target(client, uploads, source, target):
    inputs = {"audio": None, "image": None, "text": "", "points": None}
    inputs[source] = "a red car" if source == "text" else handle_file(str(uploads[source]))
    view = unpack(client.predict(source, *inputs.values(), target, 5, api_name="/any_to_any"))
    if target == "text":
        assert len(view["labels"]["confidences"]) >= 2
    else:
        assert not view["labels"]
        assert len(view["rows"]) == 5
        visible = view["shapes"] if target == "points" else view["sounds"] if target == "audio" else view["gallery"]
        assert any(visible)


def test_own_gallery_is_per_session_and_searchable(app_url, uploads):
    visitor, other = Client(app_url, verbose=False, download_files=False), Client(app_url, verbose=False)
    files = [handle_file(str(uploads[kind])) for kind in ("image", "mesh", "points")]
    summary, thumbnails, cleared = visitor.predict(files, api_name="/add_to_gallery")
    assert "Added **3**" in summary and len(thumbnails) == 3 and cleared is None
    view = unpack(visitor.predict("text", None, None, "a box", None, 3, api_name="/search_gallery"))
    assert len(view["gallery"]) == 3
    with pytest.raises(Exception, match="Your gallery is empty"):
        other.predict("text", None, None, "a box", None, 3, api_name="/search_gallery")


@pytest.mark.parametrize(
    ("endpoint", "kind", "message"),
    [
        ("/audio_to_3d", "corrupt_audio", "audio"),
        ("/classify_3d", "corrupt_points", "could not be read as PLY"),
        ("/image_to_audio", "corrupt_image", "broken.png"),  # refused by the widget, in cmcr.data.media's words
        ("/audio_to_image", None, "Upload or record an audio clip first"),
        ("/text_to_3d", "", "Type some text"),
    ],
)
def test_bad_input_ends_in_a_clear_error(client, uploads, endpoint, kind, message):
    argument = handle_file(str(uploads[kind])) if kind else kind
    arguments = (argument, "") if endpoint == "/classify_3d" else (argument,)
    with pytest.raises(Exception, match=message) as caught:
        client.predict(*arguments, api_name=endpoint)
    assert "Traceback" not in str(caught.value) and "preprocess" not in str(caught.value)
