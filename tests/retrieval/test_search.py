"""Retrieval any → any through a tiny-profile space (real toy encoders, real FAISS): the scores
carry no meaning, the plumbing is what is checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cmcr.errors import InputError
from cmcr.evaluation.protocols import evaluate_folders
from cmcr.models.encoders import build_encoder
from cmcr.models.space import UnifiedSpace, tiny_space
from cmcr.retrieval.search import SpaceEmbedder, query
from cmcr.retrieval.zeroshot import zero_shot
from tests.fixtures.official import reference_file
from tests.paths import ASSETS
from tests.ranking import assert_same_hits
from tests.retrieval.samples import QUERIES

pytestmark = pytest.mark.slow


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


def test_a_c_mcr_space_explains_which_modalities_it_cannot_place(tiny_embedder):
    space = UnifiedSpace.from_official(reference_file("ulip_clip.pt"))
    embedder = SpaceEmbedder(space, tiny_embedder.encoders)
    with pytest.raises(InputError, match="cannot place audio"):
        embedder.embed_inputs("audio", [QUERIES["audio"]])
    labels = zero_shot(embedder, "points", [QUERIES["points"]], labels=["chair", "car", "lamp"], top=None)[0]
    assert {label for label, _ in labels} == {"chair", "car", "lamp"}
    assert sum(p for _, p in labels) == pytest.approx(1.0, abs=1e-5)


def test_evaluate_folders_pairs_files_by_name(tmp_path, tiny_embedder):
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
