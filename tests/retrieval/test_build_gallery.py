"""scripts/build_gallery.py: build, resume, add, remove, rebuild, push and pull a gallery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cmcr.retrieval.gallery import Gallery, ingest, scan_folder
from cmcr.retrieval.search import SpaceEmbedder
from tests.paths import ASSETS
from tests.scripts import load_script

pytestmark = pytest.mark.slow

TOKEN = "hf_gallery_test_token"


def test_build_gallery_script_builds_resumes_adds_removes_and_syncs_with_the_hub(
        tmp_path, capsys, fake_hub, hub_cache, monkeypatch):
    build = load_script("build_gallery")
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
    source = tmp_path / "source"
    source.mkdir()
    for name in ("images/sunset.png", "sounds/drums.wav"):
        shutil.copy(ASSETS / name, source / Path(name).name)
    gallery = Gallery.create(tmp_path / "g", "space-sha256:an-old-space", tiny_embedder.space.dim)
    ingest(gallery, scan_folder(source), _renamed(tiny_embedder, "space-sha256:an-old-space"))
    build = load_script("build_gallery")
    assert build.main(["--out", str(tmp_path / "g"), "--rebuild", "--profile", "tiny", "--device", "cpu"]) == 0
    rebuilt = Gallery.open(tmp_path / "g")
    assert rebuilt.space_id == tiny_embedder.space_id and len(rebuilt) == 2


def _renamed(embedder: SpaceEmbedder, space_id: str) -> SpaceEmbedder:
    renamed = SpaceEmbedder(embedder.space, embedder.encoders)
    renamed.space_id = space_id
    return renamed


def test_a_second_writer_is_refused_while_the_first_holds_the_gallery(tmp_path):
    """The first writer is this test process holding the real OS lock; the second is a real
    `python scripts/build_gallery.py --add` in another process."""
    import os
    import subprocess
    import sys

    from cmcr.retrieval.gallery import gallery_writer
    from tests.paths import REPO

    out = tmp_path / "gallery"
    common = ["--out", str(out), "--profile", "tiny", "--device", "cpu"]
    assert load_script("build_gallery").main([str(ASSETS / "images"), *common]) == 0
    before = Gallery.open(out).items
    with gallery_writer(out):
        second = subprocess.run([sys.executable, "scripts/build_gallery.py", "--add", str(ASSETS / "sounds"), *common],
                                cwd=REPO, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert second.returncode == 2, second.stderr
    assert f"being changed by process {os.getpid()}" in second.stderr and "Traceback" not in second.stderr
    assert Gallery.open(out).items == before
    assert load_script("build_gallery").main(["--add", str(ASSETS / "sounds"), *common]) == 0  # lock released
    assert len(Gallery.open(out)) == len(before) + len(list((ASSETS / "sounds").glob("*.wav")))


def test_a_save_never_drops_what_another_writer_saved_since(tmp_path):
    import numpy as np

    from cmcr.retrieval.gallery import NewItem, sha256_bytes

    Gallery.create(tmp_path / "g", "space-x", 4).save()
    first, second = Gallery.open(tmp_path / "g"), Gallery.open(tmp_path / "g")
    rows = np.eye(4, dtype=np.float32)[:1]
    first.add([NewItem("image", "a.png", "a", sha256_bytes(b"a"))], rows)
    first.save()
    second.add([NewItem("image", "b.png", "b", sha256_bytes(b"b"))], rows)
    with pytest.raises(Exception, match="saved by another writer"):
        second.save()
    assert [item.source for item in Gallery.open(tmp_path / "g").items] == ["a.png"]
