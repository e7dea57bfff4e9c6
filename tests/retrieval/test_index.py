"""Gallery search: exact indexes equal brute force; approximate ones report their recall."""

from __future__ import annotations

import numpy as np
import pytest

import cmcr.retrieval.gallery.index as index_module
from cmcr.errors import InputError
from cmcr.retrieval.gallery import (
    Gallery,
    IndexSettings,
    NewItem,
    build_searcher,
    index_recall,
    sha256_bytes,
)
from cmcr.retrieval.gallery.index import _TorchSearcher
from tests.ranking import assert_same_ranking

SPACE = "space-sha256:test-space"


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clustered(count: int, dim: int, seed: int) -> np.ndarray:
    """Rows around 50 centres, the structure real embeddings have (ANN indexes rely on it)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    return _unit(centres[rng.integers(0, 50, count)] + 0.5 * rng.standard_normal((count, dim)))


def _gallery(tmp_path, embeddings: np.ndarray, modalities=("image", "audio", "points")) -> Gallery:
    gallery = Gallery.create(tmp_path / "gallery", SPACE, embeddings.shape[1], device="cpu")
    items = [NewItem(modalities[i % len(modalities)], f"file{i}", f"item {i}", sha256_bytes(b"%d" % i))
             for i in range(len(embeddings))]
    gallery.add(items, embeddings)
    return gallery


def test_exact_search_equals_a_numpy_argsort(tmp_path):
    embeddings = _unit(np.random.default_rng(0).standard_normal((500, 32)))
    queries = _unit(np.random.default_rng(1).standard_normal((7, 32)))
    gallery = _gallery(tmp_path, embeddings)
    hits = gallery.search(queries, space_id=SPACE, k=10)
    expected = np.argsort(-(queries @ embeddings.T), axis=1)[:, :10]
    for row, query_hits in enumerate(hits):
        assert [hit.item.source for hit in query_hits] == [f"file{i}" for i in expected[row]]
        assert [hit.rank for hit in query_hits] == list(range(1, 11))
        np.testing.assert_allclose([hit.score for hit in query_hits], (queries[row] @ embeddings.T)[expected[row]],
                                   rtol=1e-5, atol=1e-6)


def test_modality_filter_searches_only_that_modality(tmp_path):
    embeddings = _unit(np.random.default_rng(2).standard_normal((90, 16)))
    gallery = _gallery(tmp_path, embeddings)
    query = embeddings[4]  # an audio item (4 % 3 == 1)
    audio_rows = np.arange(1, 90, 3)
    expected = audio_rows[np.argsort(-(embeddings[audio_rows] @ query))][:5]
    hits = gallery.search(query, space_id=SPACE, k=5, modality="audio")[0]
    assert [hit.item.source for hit in hits] == [f"file{i}" for i in expected]
    assert hits[0].item.source == "file4" and hits[0].score == pytest.approx(1.0)
    with pytest.raises(InputError, match="no text items"):
        gallery.search(query, space_id=SPACE, modality="text")


def test_k_larger_than_the_gallery_returns_everything_ranked(tmp_path):
    embeddings = _unit(np.random.default_rng(3).standard_normal((4, 8)))
    hits = _gallery(tmp_path, embeddings).search(embeddings[:1], space_id=SPACE, k=50)[0]
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_approximate_indexes_report_recall_against_exact(approximate):
    embeddings = _clustered(20000, 32, seed=4)
    queries = _clustered(200, 32, seed=5)
    settings = IndexSettings(exact_limit=1000, approximate=approximate)
    recall = index_recall(embeddings, queries, settings, k=10)
    print(f"\n{approximate} recall@10 against exact search (20k x 32, clustered): {recall:.3f}")
    assert recall >= 0.8
    exact = index_recall(embeddings, queries, IndexSettings(exact_limit=len(embeddings)), k=10)
    assert exact == 1.0


def test_gallery_beyond_the_exact_limit_uses_the_approximate_index(tmp_path):
    import faiss

    embeddings = _clustered(3000, 16, seed=6)
    settings = IndexSettings(exact_limit=100, approximate="hnsw")
    searcher = build_searcher(embeddings, settings, device="cpu")
    assert isinstance(searcher.index, faiss.IndexHNSWFlat)
    assert isinstance(build_searcher(embeddings, IndexSettings(), device="cpu").index, faiss.IndexFlatIP)
    gallery = Gallery.create(tmp_path / "g", SPACE, 16, settings=settings, device="cpu")
    gallery.add([NewItem("image", f"f{i}", "", sha256_bytes(b"%d" % i)) for i in range(3000)], embeddings)
    hits = gallery.search(embeddings[:20], space_id=SPACE, k=1)
    assert sum(h[0].item.source == f"f{i}" for i, h in enumerate(hits)) >= 18


def test_torch_searcher_agrees_with_faiss_flat():
    embeddings = _clustered(2000, 24, seed=7)
    queries = _clustered(30, 24, seed=8)
    torch_scores, torch_rows = _TorchSearcher(embeddings, "cpu").search(queries, 10)
    faiss_scores, faiss_rows = build_searcher(embeddings, IndexSettings(), "cpu").search(queries, 10)
    for got_rows, got_scores, want_rows, want_scores in zip(torch_rows, torch_scores, faiss_rows, faiss_scores):
        assert_same_ranking(list(got_rows), list(got_scores), list(want_rows), list(want_scores), tol=1e-5)


def test_an_empty_gallery_says_so_instead_of_crashing(tmp_path):
    gallery = Gallery.create(tmp_path / "empty", SPACE, 8, device="cpu")
    with pytest.raises(InputError, match="has no items yet"):
        gallery.search(np.ones(8, dtype=np.float32), space_id=SPACE)


def test_a_gallery_refuses_queries_from_another_space(tmp_path):
    gallery = _gallery(tmp_path, _unit(np.random.default_rng(9).standard_normal((6, 8))))
    with pytest.raises(InputError, match="embedded with space 'space-sha256:test-space'.*'other'"):
        gallery.search(np.ones(8, dtype=np.float32), space_id="other")


@pytest.mark.parametrize("queries, message", [
    (np.ones((2, 5), dtype=np.float32), r"shape \(N, 8\)"),
    (np.full(8, np.nan, dtype=np.float32), "NaN"),
])
def test_malformed_queries_get_clear_messages(tmp_path, queries, message):
    gallery = _gallery(tmp_path, _unit(np.random.default_rng(10).standard_normal((6, 8))))
    with pytest.raises(InputError, match=message):
        gallery.search(queries, space_id=SPACE)


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_a_saved_gallery_keeps_its_approximate_index_for_the_next_open(tmp_path, monkeypatch, approximate):
    """Building HNSW over a large gallery takes minutes; the next process reads it back instead."""
    embeddings = _clustered(1200, 16, seed=9)
    settings = IndexSettings(exact_limit=100, approximate=approximate, ivf_probes=64)
    gallery = Gallery.create(tmp_path / "g", SPACE, 16, settings=settings, device="cpu")
    gallery.add([NewItem("image", f"f{i}", "", sha256_bytes(b"%d" % i)) for i in range(1200)], embeddings)
    unsaved = gallery.search(embeddings[:30], space_id=SPACE, k=5)
    assert not list(gallery.root.rglob("*.faiss")), "an unsaved gallery has no folder to keep an index in"
    gallery.save()
    first = Gallery.open(tmp_path / "g", settings=settings, device="cpu").search(embeddings[:30], space_id=SPACE, k=5)
    (kept,) = gallery.root.rglob("index-all-*.faiss")
    assert kept.parent.name == (gallery.root / "CURRENT").read_text()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the saved index was rebuilt")

    monkeypatch.setattr(index_module, "build_faiss_index", no_rebuild)
    reopened = Gallery.open(tmp_path / "g", settings=settings, device="cpu")
    again = reopened.search(embeddings[:30], space_id=SPACE, k=5)
    assert [[hit.item.id for hit in hits] for hits in again] == [[hit.item.id for hit in hits] for hits in first]
    recall = np.mean([hits[0].item.source == f"f{i}" for i, hits in enumerate(again)])
    assert recall >= 0.9 and len(unsaved) == len(again)
    if approximate == "hnsw":
        assert reopened._searchers[None][1].index.hnsw.efSearch == settings.hnsw_ef_search


def test_a_damaged_or_stale_index_file_is_rebuilt_and_replaced(tmp_path, caplog):
    embeddings = _clustered(600, 16, seed=10)
    settings = IndexSettings(exact_limit=100)
    gallery = Gallery.create(tmp_path / "g", SPACE, 16, settings=settings, device="cpu")
    gallery.add([NewItem("audio", f"f{i}", "", sha256_bytes(b"%d" % i)) for i in range(600)], embeddings)
    gallery.save()
    Gallery.open(gallery.root, settings=settings, device="cpu").search(embeddings[:3], space_id=SPACE, k=1)
    (kept,) = gallery.root.rglob("index-all-*.faiss")
    kept.write_bytes(b"not a faiss index")
    hits = Gallery.open(gallery.root, settings=settings, device="cpu").search(embeddings[:3], space_id=SPACE, k=1)
    assert [h[0].item.source for h in hits] == ["f0", "f1", "f2"]
    assert "rebuilding the gallery index" in caplog.text
    import faiss

    assert faiss.read_index(str(kept)).ntotal == 600  # replaced by a good one
    assert not list(gallery.root.rglob(".index-*")), "a temporary index file was left behind"


def test_changing_a_gallery_drops_the_old_index_with_its_version(tmp_path):
    embeddings = _clustered(700, 16, seed=11)
    settings = IndexSettings(exact_limit=100)
    gallery = Gallery.create(tmp_path / "g", SPACE, 16, settings=settings, device="cpu")
    gallery.add([NewItem("image", f"f{i}", "", sha256_bytes(b"%d" % i)) for i in range(600)], embeddings[:600])
    gallery.save()
    gallery.search(embeddings[:1], space_id=SPACE, k=1)
    old = next(gallery.root.rglob("index-all-*.faiss"))
    gallery.add([NewItem("image", f"g{i}", "", sha256_bytes(b"g%d" % i)) for i in range(100)], embeddings[600:])
    hits = gallery.search(embeddings[650:651], space_id=SPACE, k=1)  # unsaved: built in memory
    assert hits[0][0].item.source == "g50" and old.is_file()
    gallery.save()
    assert not old.exists()
    assert Gallery.open(gallery.root, settings=settings, device="cpu").search(
        embeddings[650:651], space_id=SPACE, k=1)[0][0].item.source == "g50"
    import faiss

    assert faiss.read_index(str(next(gallery.root.rglob("index-all-*.faiss")))).ntotal == 700


def test_a_folder_that_cannot_keep_the_index_still_searches(tmp_path, monkeypatch, caplog):
    import logging

    import faiss

    def read_only(index, path):
        raise RuntimeError(f"Error: could not open {path} for writing: Read-only file system")

    embeddings = _clustered(300, 16, seed=12)
    settings = IndexSettings(exact_limit=100)
    gallery = Gallery.create(tmp_path / "g", SPACE, 16, settings=settings, device="cpu")
    gallery.add([NewItem("image", f"f{i}", "", sha256_bytes(b"%d" % i)) for i in range(300)], embeddings)
    gallery.save()
    monkeypatch.setattr(faiss, "write_index", read_only)
    with caplog.at_level(logging.INFO, logger="cmcr.retrieval.gallery"):
        hits = Gallery.open(gallery.root, settings=settings, device="cpu").search(embeddings[:2], space_id=SPACE, k=1)
    assert [h[0].item.source for h in hits] == ["f0", "f1"]
    assert "could not keep the gallery index" in caplog.text
    assert not list(gallery.root.rglob("*index-*")), "an index or its temporary file was left behind"
