"""Galleries through Hub dataset repos: a push mirrors the folder, a pull fetches the live version."""

from __future__ import annotations

import numpy as np

from cmcr.hub import push_folder
from cmcr.retrieval.gallery import pull_gallery, push_gallery
from tests.retrieval.samples import SPACE

TOKEN = "hf_gallery_test_token"


def test_a_gallery_round_trips_through_a_hub_dataset_repo(saved, fake_hub, hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    url = push_gallery(saved.root, "galleries/round-trip")
    pushed = fake_hub.files("galleries/round-trip", repo_type="dataset")
    assert url.endswith(fake_hub.commits("galleries/round-trip", repo_type="dataset")[0]["sha"])
    assert "CURRENT" in pushed and any(name.startswith("previews/") for name in pushed)

    pulled = pull_gallery("galleries/round-trip", tmp_path / "pulled", cache_dir=hub_cache)
    assert pulled.items == saved.items
    np.testing.assert_array_equal(pulled.embeddings(), saved.embeddings())
    for item in pulled.items:
        if item.preview:
            assert pulled.preview_path(item).read_bytes() == saved.preview_path(item).read_bytes()
    hit = pulled.search(saved.embeddings()[0], space_id=SPACE, k=1)[0][0]
    assert hit.item == saved.items[0]


def test_pushing_again_replaces_the_remote_version_and_a_pull_fetches_only_the_live_one(
        saved, fake_hub, hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_gallery(saved.root, "galleries/versions")
    first = {name for name in fake_hub.files("galleries/versions", repo_type="dataset") if name.startswith("v-")}
    removed = saved.items[0]
    saved.remove([removed.id])
    saved.save()
    (saved.root / (saved.root / "CURRENT").read_text() / "index-all-0123456789ab.faiss").write_bytes(b"kept locally")
    push_gallery(saved.root, "galleries/versions")
    remote = fake_hub.files("galleries/versions", repo_type="dataset")
    live = (saved.root / "CURRENT").read_text()
    assert not [name for name in remote if name.endswith(".faiss")], "a local index cache was uploaded"
    assert {name.split("/")[0] for name in remote if name.startswith("v-")} == {live}
    assert not first & set(remote), "the first push's version folder is still on the Hub"
    if removed.preview and removed.preview not in {item.preview for item in saved.items}:
        assert removed.preview not in remote

    stale = tmp_path / "stale" / "v-1-1"  # what pushes made before old versions were deleted
    stale.mkdir(parents=True)
    (stale / "embeddings.npy").write_bytes(b"an old version nobody needs")
    push_folder(stale.parent, "galleries/versions", repo_type="dataset")
    pulled = pull_gallery("galleries/versions", tmp_path / "pulled", cache_dir=hub_cache)
    assert pulled.items == saved.items
    assert not list(pulled.root.rglob("*.faiss"))
    fetched = {path.relative_to(hub_cache).parts[-2] for path in hub_cache.rglob("*")
               if path.parent.name.startswith("v-")}
    assert fetched == {live}
