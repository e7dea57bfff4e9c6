"""Retrieval any → any and zero-shot classification through a tiny-profile space (real toy
encoders, real FAISS); the scores carry no meaning, the plumbing is what is checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cmcr.errors import InputError
from cmcr.retrieval.gallery import Gallery
from cmcr.retrieval.search import (
    MODELNET40,
    SpaceEmbedder,
    ZeroShotClassifier,
    query,
    zero_shot,
)
from tests.fixtures.official import reference_file
from tests.paths import REPO
from tests.ranking import assert_same_hits
from tests.scripts import load_script

pytestmark = pytest.mark.slow

ASSETS = REPO / "assets"
TOKEN = "hf_gallery_test_token"
QUERIES = {
    "text": "a dog barking",
    "image": ASSETS / "images" / "dog.png",
    "audio": ASSETS / "sounds" / "dog_bark.wav",
    "points": ASSETS / "shapes" / "chair.glb",
}


def _manifest() -> list[dict]:
    return json.loads((ASSETS / "manifest.json").read_text())["items"]


@pytest.mark.parametrize("target", ["image", "audio", "points"])
@pytest.mark.parametrize("modality", list(QUERIES))
def test_any_modality_searches_any_other_by_inner_product(tiny_embedder, asset_gallery, modality, target):
    hits = query(tiny_embedder, asset_gallery, modality, [QUERIES[modality]], k=5, target=target)[0]
    assert len(hits) == 5 and {hit.item.modality for hit in hits} == {target}
    embedding = tiny_embedder.embed_inputs(modality, [QUERIES[modality]])[0]
    rows = [i for i, item in enumerate(asset_gallery.items) if item.modality == target]
    scores = asset_gallery.embeddings()[rows] @ embedding
    expected = [asset_gallery.items[rows[i]].id for i in np.argsort(-scores, kind="stable")[:5]]
    assert [hit.item.id for hit in hits] == expected
    np.testing.assert_allclose([hit.score for hit in hits], np.sort(scores)[::-1][:5], atol=1e-5)


def test_every_asset_retrieves_itself_first(tiny_embedder, asset_gallery):
    for modality in ("image", "audio", "points"):
        files = [ASSETS / item["file"] for item in _manifest() if item["modality"] == modality][:3]
        hits = query(tiny_embedder, asset_gallery, modality, files, k=1, target=modality)
        assert [Path(h[0].item.source).name for h in hits] == [f.name for f in files]
        captions = {item["file"]: item["caption"] for item in _manifest()}
        assert [h[0].item.caption for h in hits] == [captions[f.relative_to(ASSETS).as_posix()] for f in files]
        assert all(h[0].score == pytest.approx(1.0, abs=1e-4) for h in hits)


def test_batched_and_embedding_queries_match_single_ones(tiny_embedder, asset_gallery):
    texts = ["a red car", "rain", "a wooden chair"]
    batched = query(tiny_embedder, asset_gallery, "text", texts, k=4)
    embeddings = tiny_embedder.embed_inputs("text", texts)
    assert query(tiny_embedder, asset_gallery, "text", embeddings=embeddings, k=4) == batched  # same rows
    assert_same_hits([query(tiny_embedder, asset_gallery, "text", [text], k=4)[0] for text in texts], batched)
    with pytest.raises(InputError, match="either inputs or embeddings"):
        query(tiny_embedder, asset_gallery, "text", texts, embeddings=embeddings)


def test_a_gallery_refuses_another_spaces_queries(tiny_embedder, asset_gallery):
    import torch

    from cmcr.models.encoders import build_encoder
    from cmcr.models.space import tiny_space

    other = tiny_space(tiny_embedder.encoders)
    with torch.no_grad():
        next(other.heads.parameters()).add_(0.01)  # same config, different weights
    embedder = SpaceEmbedder(other, tiny_embedder.encoders)
    assert embedder.space_id != tiny_embedder.space_id
    full_clip = dict(tiny_embedder.encoders, clip=build_encoder("clip", "full", device="cpu"))  # lazy: no download
    assert SpaceEmbedder(tiny_embedder.space, full_clip).space_id != tiny_embedder.space_id
    faster = dict(tiny_embedder.encoders, clip=build_encoder("clip", "tiny", device="cpu", batch_size=3))
    assert SpaceEmbedder(tiny_embedder.space, faster).space_id == tiny_embedder.space_id
    with pytest.raises(InputError, match="embedded with space"):
        query(embedder, asset_gallery, "text", ["a dog"])


def test_zero_shot_3d_gives_a_distribution_over_modelnet40(tiny_embedder):
    assert len(set(MODELNET40)) == 40
    results = zero_shot(tiny_embedder, "points", [QUERIES["points"], ASSETS / "shapes" / "car.glb"], top=None)
    for labels in results:
        assert [label for label, _ in labels] != [] and {label for label, _ in labels} == set(MODELNET40)
        probabilities = [p for _, p in labels]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert probabilities == sorted(probabilities, reverse=True) and min(probabilities) >= 0


def test_zero_shot_with_own_labels_and_prompt_averaging(tiny_embedder):
    labels = ["rain", "a siren", "a dog barking"]
    top = zero_shot(tiny_embedder, "audio", [QUERIES["audio"]], labels=labels, top=2)[0]
    assert len(top) == 2 and {label for label, _ in top} <= set(labels)
    classifier = ZeroShotClassifier(tiny_embedder, labels, ("the sound of {}.", "{} can be heard."))
    single = [tiny_embedder.embed("text", [t.format(label) for t in ("the sound of {}.", "{} can be heard.")])
              for label in labels]
    averaged = np.stack([rows.mean(axis=0) / np.linalg.norm(rows.mean(axis=0)) for rows in single])
    np.testing.assert_allclose(classifier.matrix, averaged, atol=1e-5)
    with pytest.raises(InputError, match="at least two"):
        zero_shot(tiny_embedder, "image", [QUERIES["image"]], labels=["cat", " cat "])
    with pytest.raises(InputError, match="must contain"):
        ZeroShotClassifier(tiny_embedder, labels, ("no placeholder",))


def test_a_c_mcr_space_explains_which_modalities_it_cannot_place(tiny_embedder):
    from cmcr.models.space import UnifiedSpace

    space = UnifiedSpace.from_official(reference_file("ulip_clip.pt"))
    embedder = SpaceEmbedder(space, tiny_embedder.encoders)
    with pytest.raises(InputError, match="cannot place audio"):
        embedder.embed_inputs("audio", [QUERIES["audio"]])
    labels = zero_shot(embedder, "points", [QUERIES["points"]], labels=["chair", "car", "lamp"], top=None)[0]
    assert {label for label, _ in labels} == {"chair", "car", "lamp"}
    assert sum(p for _, p in labels) == pytest.approx(1.0, abs=1e-5)


_script = load_script


def test_build_gallery_script_builds_resumes_adds_removes_and_syncs_with_the_hub(
        tmp_path, capsys, fake_hub, hub_cache, monkeypatch):
    build = _script("build_gallery")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("images/car.png", "images/tree.png", "sounds/rain.wav", "shapes/mug.glb"):
        shutil.copy(ASSETS / name, source / Path(name).name)
    (source / "tree.txt").write_text("an oak in summer")
    (source / "notes.md").write_text("not media: ignored")
    out = tmp_path / "gallery"
    common = ["--out", str(out), "--profile", "tiny", "--device", "cpu"]

    assert build.main([str(source), *common]) == 0
    gallery = Gallery.open(out)
    assert sorted(item.modality for item in gallery.items) == ["audio", "image", "image", "points"]
    assert {item.caption for item in gallery.items} >= {"an oak in summer", "car"}
    assert build.main([str(source), *common]) == 0
    assert "added 0, already present 4" in capsys.readouterr().out

    shutil.copy(ASSETS / "sounds" / "siren.wav", tmp_path / "siren.wav")
    assert build.main(["--add", str(tmp_path / "siren.wav"), *common]) == 0
    assert len(Gallery.open(out)) == 5
    assert build.main(["--remove", str(source / "car.png"), *common]) == 0
    assert sorted(Path(item.source).name for item in Gallery.open(out).items) == [
        "mug.glb", "rain.wav", "siren.wav", "tree.png"]

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert build.main(["--out", str(out), "--push-to-hub", "galleries/script"]) == 0
    assert build.main(["--out", str(tmp_path / "pulled"), "--pull", "galleries/script"]) == 0
    assert Gallery.open(tmp_path / "pulled").items == Gallery.open(out).items
    assert build.main(["--out", str(tmp_path / "missing"), "--add", str(tmp_path / "siren.wav"),
                       "--profile", "tiny"]) == 2
    assert "--add needs an existing gallery" in capsys.readouterr().err


def test_rebuild_reembeds_every_item_with_the_new_space(tmp_path, tiny_embedder):
    from cmcr.retrieval.gallery import ingest, scan_folder

    source = tmp_path / "source"
    source.mkdir()
    for name in ("images/sunset.png", "sounds/drums.wav"):
        shutil.copy(ASSETS / name, source / Path(name).name)
    gallery = Gallery.create(tmp_path / "g", "space-sha256:an-old-space", tiny_embedder.space.dim)
    ingest(gallery, scan_folder(source), _renamed(tiny_embedder, "space-sha256:an-old-space"))
    build = _script("build_gallery")
    assert build.main(["--out", str(tmp_path / "g"), "--rebuild", "--profile", "tiny", "--device", "cpu"]) == 0
    rebuilt = Gallery.open(tmp_path / "g")
    assert rebuilt.space_id == tiny_embedder.space_id and len(rebuilt) == 2


def _renamed(embedder: SpaceEmbedder, space_id: str) -> SpaceEmbedder:
    renamed = SpaceEmbedder(embedder.space, embedder.encoders)
    renamed.space_id = space_id
    return renamed


def test_evaluate_folders_pairs_files_by_name(tmp_path, tiny_embedder):
    from cmcr.evaluation.protocols import evaluate_folders

    images = tmp_path / "images"
    images.mkdir()
    for name in ("car", "tree", "rain", "bird"):
        shutil.copy(ASSETS / "images" / f"{name}.png", images / f"{name}.png")
    metrics = evaluate_folders(tiny_embedder, images, images)
    assert metrics["R@1"] == 100.0 and metrics["MedR"] == 1.0
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for image, sound in (("car", "car_engine"), ("tree", "birdsong"), ("rain", "rain"), ("bird", "birdsong")):
        shutil.copy(ASSETS / "sounds" / f"{sound}.wav", sounds / f"{image}.wav")
    cross = evaluate_folders(tiny_embedder, sounds, images)
    assert 0 <= cross["R@1"] <= cross["R@5"] == 100.0  # 4 candidates: everything is in the top 5
