"""The app's service layer (studio.service) in the tiny profile: real encoders, space, FAISS gallery."""

from __future__ import annotations

import html
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cmcr.errors import InputError
from cmcr.models.space import UnifiedSpace
from studio.answers import Query, Results, ShownHit
from studio.service import ServedSpace
from studio.settings import StudioSettings

SOURCES = ("audio", "image", "text", "points")
TARGETS = ("image", "audio", "points")


def query_for(source: str, uploads: dict[str, Path]) -> Query:
    return Query(source, "a wooden chair" if source == "text" else str(uploads[source]))


def brute_force_scores(studio, query: Query, target: str) -> np.ndarray:
    """Every default-gallery score of `target` items, sorted best first (numpy, no FAISS)."""
    gallery = studio.route(query.modality, target).gallery
    rows = [i for i, item in enumerate(gallery.items) if item.modality == target]
    return np.sort(gallery.embeddings()[rows] @ studio.embed(query, target)[0])[::-1]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("target", TARGETS)
def test_any_pair_ranks_target_items_by_cosine(studio, uploads, source, target):
    results = studio.answer(query_for(source, uploads), target, k=4)
    expected = brute_force_scores(studio, query_for(source, uploads), target)[:4]
    assert [hit.rank for hit in results.hits] == list(range(1, len(expected) + 1))
    assert {hit.modality for hit in results.hits} == {target}
    np.testing.assert_allclose([hit.score for hit in results.hits], expected, atol=1e-5)


def test_results_carry_what_each_view_needs(studio, uploads):
    shapes = studio.answer(query_for("text", uploads), "points", k=3)
    assert all(hit.view3d.suffix == ".glb" and hit.view3d.is_file() for hit in shapes.hits)
    assert all(hit.preview.suffix == ".png" and hit.preview.is_file() for hit in shapes.hits)
    sounds = studio.answer(query_for("image", uploads), "audio", k=2)
    assert [hit.file.is_file() for hit in sounds.hits if hit.modality == "audio"] == [True, True]
    assert sounds.gallery_items() == []  # sounds go to players, not to the image gallery
    images = studio.answer(query_for("audio", uploads), "image", k=2)
    assert all(Path(path).is_file() for path, _ in images.gallery_items())


def test_the_results_list_names_every_hit_in_full_with_a_player_for_each_sound(tmp_path):
    from studio.views import results_list

    long_caption = "a <very> long caption " * 8
    hits = [ShownHit(rank=1, score=0.8123, modality="image", caption="a red car"),
            ShownHit(rank=2, score=0.5, modality="audio", caption=long_caption, file=tmp_path / "rain.wav")]
    assert hits[0].title == "#1 · 0.812 · a red car"
    listing = results_list(Results(hits=hits, note="Your text was cut"))
    assert listing.count('<li class="result"') == 2 and "0.812" in listing and "0.500" in listing
    assert html.escape(long_caption) in listing and "<very>" not in listing  # whole, and escaped
    assert listing.count("<audio") == 1 and f"gradio_api/file={tmp_path / 'rain.wav'}" in listing
    assert listing.startswith('<p class="result-note">Your text was cut')


def test_a_long_text_query_says_it_was_cut(studio):
    results = studio.answer(Query("text", "a wooden chair " * 200), "points", k=2)
    assert results.note and "cut to its first 1,000 characters" in results.note
    assert studio.answer(Query("text", "a wooden chair"), "points", k=2).note is None


def test_3d_views_are_framed_to_show_the_whole_shape(studio):
    from cmcr.data.media.preview import preview_bounds
    from studio.views import camera_for

    for hit in studio.answer(Query("text", "a chair"), "points", k=4).hits:
        low, high = preview_bounds(hit.view3d)
        radius = camera_for(hit.view3d)[2]
        half_diagonal = float(((high - low) ** 2).sum() ** 0.5) / 2
        # the bounding sphere fits the narrowest field of view the viewers have, with room to spare
        assert radius * math.sin(math.atan(math.tan(0.4) * 0.7)) > half_diagonal


def test_zero_shot_over_given_labels_is_a_distribution(studio, uploads):
    results = studio.answer(query_for("points", uploads), "text", labels="chair, table , lamp,,")
    assert sorted(results.labels) == ["chair", "lamp", "table"]
    assert sum(results.labels.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in results.labels.values())


def test_zero_shot_defaults_to_modelnet_classes_for_shapes(studio, uploads):
    results = studio.answer(query_for("points", uploads), "text")
    assert len(results.labels) == 40 and {"airplane", "chair", "toilet"} <= set(results.labels)


@pytest.mark.parametrize(
    ("query", "target", "message"),
    [
        (Query("audio", None), "image", "Upload or record an audio clip"),
        (Query("text", "   "), "points", "Type some text"),
        (Query("points", ""), "text", "Upload a point cloud"),
        (Query("video", "x.mp4"), "image", "Unknown input kind"),
        (Query("text", "a dog"), "smell", "Unknown target"),
    ],
)
def test_unusable_requests_get_clear_messages(studio, query, target, message):
    with pytest.raises(InputError, match=message):
        studio.answer(query, target)


@pytest.mark.parametrize("kind", ["corrupt_points", "corrupt_audio"])
def test_corrupt_uploads_are_refused_with_input_error(studio, uploads, kind):
    modality = "points" if kind == "corrupt_points" else "audio"
    with pytest.raises(InputError) as caught:
        studio.answer(Query(modality, str(uploads[kind])), "image")
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) > 20


@pytest.mark.parametrize("k", [0, 65])
def test_result_count_is_bounded(studio, k):
    with pytest.raises(InputError, match="between 1 and 64"):
        studio.answer(Query("text", "a dog"), "image", k=k)


def test_preview_of_an_upload_is_a_glb_model3d_can_show(studio, uploads):
    path = Path(studio.preview(Query("points", str(uploads["mesh"]))))
    assert path.suffix == ".glb" and path.read_bytes()[:4] == b"glTF"
    assert any(str(path).startswith(allowed) for allowed in studio.allowed_paths)


def test_a_3d_upload_is_decoded_once_for_its_answer_and_its_preview(studio, uploads, tmp_path, monkeypatch):
    """The 3D→Text tab embeds the upload and then shows it; a large mesh should not be read twice."""
    import shutil

    upload = tmp_path / "upload.xyz"
    shutil.copy(uploads["points"], upload)
    decodes = []
    embedder = studio.served[0].embedder
    real_decode = embedder.decode
    monkeypatch.setattr(embedder, "decode",
                        lambda modality, source, **kw: decodes.append(modality) or real_decode(modality, source, **kw))
    fresh = studio.embed(Query("points", str(upload)))
    studio.preview(Query("points", str(upload)))
    assert decodes == ["points"]
    np.testing.assert_array_equal(studio.embed(Query("points", str(upload))), fresh)
    with upload.open("a") as changed:  # new content under the same name: decoded again
        changed.write("0.5 0.5 0.5\n")
    studio.preview(Query("points", str(upload)))
    assert decodes == ["points", "points"]


def test_on_a_cpu_every_forward_pass_runs_in_the_compute_thread_and_decoding_outside(studio, uploads, monkeypatch):
    """The math threads are set in that one thread (studio.cpu); work elsewhere would run with
    whatever threads OpenMP gives a new thread."""
    import threading

    from studio.cpu import ComputeLane

    embedder = studio.served[0].embedder
    encoder = embedder.encoders[embedder.encoder_for("audio")]
    threads: dict[str, str] = {}
    real_embed, real_decode = encoder.embed, embedder.decode
    monkeypatch.setattr(encoder, "embed", lambda modality, batch: threads.setdefault(
        "embed", threading.current_thread().name) and real_embed(modality, batch))
    monkeypatch.setattr(embedder, "decode", lambda modality, source, **kw: threads.setdefault(
        "decode", threading.current_thread().name) and real_decode(modality, source, **kw))
    studio.answer(Query("audio", str(uploads["audio"])), "image", k=2)
    assert threads["embed"].startswith(ComputeLane.THREAD_NAME)
    assert not threads["decode"].startswith(ComputeLane.THREAD_NAME)


def test_a_query_waits_behind_one_piece_of_a_long_batch_not_all_of_it(studio, monkeypatch):
    import threading
    import time

    from studio.gpu import LANE_PIECE

    embedder = studio.served[0].embedder
    encoder = embedder.encoders[embedder.encoder_for("text")]
    prompts = [f"item number {index}" for index in range(3 * LANE_PIECE)]
    expected = embedder.embed("text", prompts)
    sizes, results = [], []
    first_piece, query_sent = threading.Event(), threading.Event()
    real_embed = encoder.embed

    def recorded(modality, batch):
        if not sizes and not first_piece.is_set():  # the batch's first piece: the query joins the queue
            first_piece.set()
            query_sent.wait(5)
            time.sleep(0.5)  # the query's submission is a few microseconds after query_sent
        sizes.append(len(batch))
        return real_embed(modality, batch)

    monkeypatch.setattr(encoder, "embed", recorded)
    long_batch = threading.Thread(target=lambda: results.append(embedder.embed("text", prompts)))
    long_batch.start()
    assert first_piece.wait(5)
    query_sent.set()
    embedder.embed("text", ["a query"])
    long_batch.join()
    assert sizes == [LANE_PIECE, 1, LANE_PIECE, LANE_PIECE]
    np.testing.assert_allclose(results[0], expected, atol=1e-5)


def test_session_gallery_indexes_uploads_and_is_searched_alone(studio, uploads, tmp_path):
    gallery = studio.new_session_gallery()
    copy = tmp_path / "same_image.png"
    copy.write_bytes(uploads["image"].read_bytes())
    summary = studio.add_to_session_gallery(
        gallery, [str(uploads["image"]), str(uploads["mesh"]), str(uploads["points"]),
                  str(copy), str(uploads["audio"]), str(uploads["corrupt_points"])],
    )
    assert len(gallery) == 4  # the image, the mesh, the cloud and the sound
    assert "Added **4**" in summary and "1 file(s) were already in it" in summary
    assert uploads["corrupt_points"].name in summary and uploads["audio"].name not in summary
    assert len(gallery.thumbnails()) == 3  # a sound has no picture
    assert gallery.counts() == {"image": 1, "audio": 1, "points": 2} and "1 image, 1 sound and 2 3D shapes" in summary
    results = studio.answer_own(Query("text", "a box"), gallery, k=10)
    assert sorted(hit.caption for hit in results.hits) == sorted(item.caption for item in gallery.items)
    gallery.close()
    assert not gallery.root.exists()


def test_empty_session_gallery_says_what_to_do(studio):
    gallery = studio.new_session_gallery()
    for nothing_yet in (gallery, None):
        with pytest.raises(InputError, match="Your gallery is empty"):
            studio.answer_own(Query("text", "a dog"), nothing_yet)
    with pytest.raises(InputError, match="Choose some images"):
        studio.add_to_session_gallery(gallery, [])


def test_a_full_session_gallery_adds_what_fits_and_names_the_rest(studio, uploads, monkeypatch):
    from studio.session import SessionGallery

    monkeypatch.setattr(SessionGallery, "MAX_ITEMS", 2)
    gallery = studio.new_session_gallery()
    try:
        summary = studio.add_to_session_gallery(
            gallery, [str(uploads["image"]), str(uploads["audio"]), str(uploads["mesh"])])
        assert len(gallery) == 2 and "Added **2**" in summary
        assert f"Skipped `{uploads['mesh'].name}`: the gallery is full" in summary and "reload the page" in summary
        again = studio.add_to_session_gallery(gallery, [str(uploads["points"])])
        assert len(gallery) == 2 and "Added **0**" in again and uploads["points"].name in again
    finally:
        gallery.close()


def test_examples_come_from_the_assets_manifest(studio):
    for modality in ("audio", "image", "points"):
        examples = studio.examples(modality)
        assert examples and all(Path(path).is_file() for path in examples)
    assert all(isinstance(text, str) and text for text in studio.examples("text"))


def test_tiny_studio_says_its_results_carry_no_meaning(studio):
    assert studio.profile == "tiny"
    assert "carry no meaning" in studio.notice
    assert "random" in studio.headline and "\n" not in studio.headline  # the banner: one line for visitors
    assert "tiny profile" in studio.description and "15 images" in studio.description
    assert "arxiv.org/abs/2305.14381" in studio.links and "arxiv.org/abs/2310.08884" in studio.links


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CMCR_SPACE_REPO", "someone/space")
    monkeypatch.setenv("CMCR_SPACE_REVISION", "v2")
    monkeypatch.setenv("CMCR_PROFILE", "tiny")
    assert StudioSettings.from_env() == StudioSettings("someone/space", "v2", "tiny", None)
    monkeypatch.delenv("CMCR_SPACE_REPO")
    assert StudioSettings.from_env().space is None and StudioSettings.from_env().space_name == "official-ex-mcr"


def test_cli_flags_override_the_environment(monkeypatch):
    from studio import ui

    monkeypatch.setenv("CMCR_SPACE_REPO", "someone/space")
    args = ui.parse_args(["--revision", "abc", "--profile", "tiny", "--port", "7000"])
    assert (args.space, args.revision, args.profile, args.port) == ("someone/space", "abc", "tiny", 7000)
    assert ui.parse_args(["--space", "me/other"]).space == "me/other"
    assert ui.parse_args([]).max_queue == ui.QUEUE_LIMIT and ui.parse_args(["--max-queue", "8"]).max_queue == 8
    with pytest.raises(SystemExit):
        ui.parse_args(["--max-queue", "0"])


def test_the_address_comes_from_gradios_variables_and_flags_win(monkeypatch):
    from studio import ui

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert (ui.parse_args([]).host, ui.parse_args([]).port) == ("0.0.0.0", 7860)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "127.0.0.1")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    assert (ui.parse_args([]).host, ui.parse_args([]).port) == ("127.0.0.1", 7999)
    args = ui.parse_args(["--host", "::1", "--port", "8001"])
    assert (args.host, args.port) == ("::1", 8001)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "http")
    assert ui.parse_args(["--port", "8002"]).port == 8002  # the flag wins over an unusable variable
    for argv in ([], ["--port", "70000"]):
        with pytest.raises(SystemExit):
            ui.parse_args(argv)


def test_offline_full_profile_falls_back_to_tiny_and_says_why(offline_hub, monkeypatch, tmp_path):
    from huggingface_hub import constants

    from studio import ui
    from studio.service import Studio

    monkeypatch.setattr(constants, "ENDPOINT", offline_hub)
    steps = []
    settings = StudioSettings("someone/cmcr-space", None, "full", "cpu")
    studio = Studio.load(settings, lambda fraction, message: steps.append(message), assets=tmp_path)
    assert studio.profile == "tiny"
    assert [space.encoders for space in studio.models.spaces.values()] == [["clip", "clap", "ulip"]]
    assert "someone/cmcr-space" in studio.notice and "could not be loaded" in studio.notice
    assert "carry no meaning" in studio.notice
    assert any("tiny CLAP" in step for step in steps)

    components = {block["props"].get("elem_id"): block["props"] for block in ui.build_app(studio).config["components"]}
    assert components["banner"]["visible"] and components["banner"]["value"] == studio.headline
    assert "could not be loaded" in studio.headline and "someone/cmcr-space" not in studio.headline
    assert components["banner-details"]["open"] is False  # the owner's details, one click away
    details = [block for block in components.values() if block.get("value") == studio.notice]
    assert details  # the full reason is on the page, behind "details"
    with pytest.raises(InputError, match="default gallery is empty"):  # tmp_path holds no assets
        studio.answer(Query("text", "a dog"), "image")
    studio.close()
    assert not studio.workdir.exists()


def test_an_error_toast_leads_with_its_title():
    from studio import ui

    def refuse():
        raise InputError("Upload <an> image first.")

    with pytest.raises(Exception) as caught:
        ui.user_facing(refuse)()
    assert caught.value.message == "<strong>Cannot use this input.</strong> Upload &lt;an&gt; image first."
    assert caught.value.title == "Cannot use this input"


def test_the_app_credits_the_official_weights_it_serves(official_release):
    space = UnifiedSpace.from_pretrained("official-ex-mcr")
    served = ServedSpace("official-ex-mcr", SimpleNamespace(space=space), gallery=None)
    assert "CC BY 4.0" in served.describe() and "Ex-MCR authors" in served.describe()
    links = served.weights_links()
    assert [link.split("]")[0] for link in links] == ["[ex_clap.pt", "[ex_ulip.pt"]
    assert all(file["commit"] in link for file, link in zip(space.provenance["files"], links))
