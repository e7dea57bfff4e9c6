"""The app's service layer (studio.service) in the tiny profile: real encoders, space, FAISS gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmcr.errors import InputError
from studio.answers import Query, Results, ShownHit
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
    assert [Path(path).is_file() for path, _ in sounds.sound_views(3)] == [True, True]
    assert sounds.gallery_items() == []  # sounds go to players, not to the image gallery
    images = studio.answer(query_for("audio", uploads), "image", k=2)
    assert all(Path(path).is_file() for path, _ in images.gallery_items())


def test_captions_and_score_table_show_rank_and_score():
    hits = [ShownHit(rank=1, score=0.8123, modality="image", caption="a red car"),
            ShownHit(rank=2, score=0.5, modality="image", caption="a tree")]
    results = Results(hits=hits)
    assert hits[0].title == "#1 · 0.812 · a red car"
    table = results.score_table()
    assert list(table["score"]) == [0.8123, 0.5]
    assert list(table["result"]) == ["#1 a red car", "#2 a tree"]


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


def test_session_gallery_indexes_uploads_and_is_searched_alone(studio, uploads, tmp_path):
    gallery = studio.new_session_gallery()
    copy = tmp_path / "same_image.png"
    copy.write_bytes(uploads["image"].read_bytes())
    summary = studio.add_to_session_gallery(
        gallery, [str(uploads["image"]), str(uploads["mesh"]), str(uploads["points"]),
                  str(copy), str(uploads["audio"]), str(uploads["corrupt_points"])],
    )
    assert len(gallery) == 3
    assert "Added **3**" in summary and "1 file(s) were already in it" in summary
    assert uploads["audio"].name in summary and uploads["corrupt_points"].name in summary
    assert len(gallery.thumbnails()) == 3
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


def test_examples_come_from_the_assets_manifest(studio):
    for modality in ("audio", "image", "points"):
        examples = studio.examples(modality)
        assert examples and all(Path(path).is_file() for path in examples)
    assert all(isinstance(text, str) and text for text in studio.examples("text"))


def test_tiny_studio_says_its_results_carry_no_meaning(studio):
    assert studio.profile == "tiny"
    assert "carry no meaning" in studio.notice
    assert "tiny" in studio.description


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

    banners = [block["props"] for block in ui.build_app(studio).config["components"]
               if block["props"].get("elem_id") == "banner"]
    assert banners[0]["visible"] and banners[0]["value"] == studio.notice
    with pytest.raises(InputError, match="default gallery is empty"):  # tmp_path holds no assets
        studio.answer(Query("text", "a dog"), "image")
    studio.close()
    assert not studio.workdir.exists()
