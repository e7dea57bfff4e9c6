"""Fixtures shared by the retrieval tests: one tiny-profile embedder and one default gallery per
session (building the toy encoders costs most of the time these tests take), and a small saved
gallery per test."""

from __future__ import annotations

import pytest

from cmcr.retrieval.gallery import Gallery, ingest, scan_folder
from cmcr.retrieval.search import load_embedder
from tests.paths import ASSETS
from tests.retrieval.samples import DIM, SPACE, media_items, unit_rows


@pytest.fixture(scope="session")
def tiny_embedder():
    return load_embedder(None, profile="tiny", device="cpu")


@pytest.fixture(scope="session")
def asset_gallery(tiny_embedder, tmp_path_factory):
    """The generated default assets embedded with the tiny space."""
    gallery = Gallery.create(tmp_path_factory.mktemp("assets-gallery") / "gallery", tiny_embedder.space_id,
                             tiny_embedder.space.dim, device="cpu")
    report = ingest(gallery, scan_folder(ASSETS), tiny_embedder)
    assert report.failed == [] and report.added == len(gallery) > 0
    return gallery


@pytest.fixture
def saved(tmp_path) -> Gallery:
    """`samples.media_items()` with their previews, saved once."""
    gallery = Gallery.create(tmp_path / "gallery", SPACE, DIM, device="cpu")
    gallery.add(media_items(), unit_rows(4))
    gallery.save()
    return gallery
