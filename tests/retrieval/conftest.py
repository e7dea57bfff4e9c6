"""Tiny-profile fixtures shared by the retrieval tests: one embedder and one default gallery per
session (building the toy encoders costs most of the time these tests take)."""

from __future__ import annotations

import pytest

from tests.paths import REPO

ASSETS = REPO / "assets"


@pytest.fixture(scope="session")
def tiny_embedder():
    from cmcr.retrieval.search import load_embedder

    return load_embedder(None, profile="tiny", device="cpu")


@pytest.fixture(scope="session")
def asset_gallery(tiny_embedder, tmp_path_factory):
    """The generated default assets embedded with the tiny space."""
    from cmcr.retrieval.gallery import Gallery, ingest, scan_folder

    gallery = Gallery.create(tmp_path_factory.mktemp("assets-gallery") / "gallery", tiny_embedder.space_id,
                             tiny_embedder.space.dim, device="cpu")
    report = ingest(gallery, scan_folder(ASSETS), tiny_embedder)
    assert report.failed == [] and report.added == len(gallery) > 0
    return gallery
