"""Gallery storage: add/remove/de-duplicate, disk and Hub round trips, atomic saves, previews."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmcr.data.media import load_audio, load_image, load_points
from cmcr.errors import InputError
from cmcr.hub import push_folder
from cmcr.retrieval.gallery import (
    Gallery,
    NewItem,
    pull_gallery,
    push_gallery,
    sha256_bytes,
)
from tests.paths import REPO

SPACE = "space-sha256:store-test"
DIM = 8
TOKEN = "hf_gallery_test_token"


def _rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _media_items() -> list[NewItem]:
    """One decoded item per modality with previews, plus a text item (no preview)."""
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (640, 320), (200, 40, 40))
    audio = (0.3 * np.sin(np.arange(48000 * 12) / 20)).astype(np.float32)  # 12 s: trimmed to 10
    points = rng.standard_normal((3000, 3)).astype(np.float32)
    contents = {"image": image, "audio": audio, "points": points, "text": "a red square"}
    return [NewItem(modality, f"/data/{modality}.bin", f"a {modality}", sha256_bytes(modality.encode()), content)
            for modality, content in contents.items()]


def _folder_state(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def saved(tmp_path) -> Gallery:
    gallery = Gallery.create(tmp_path / "gallery", SPACE, DIM, device="cpu")
    gallery.add(_media_items(), _rows(4))
    gallery.save()
    return gallery


def test_a_saved_gallery_reopens_identical(saved):
    reopened = Gallery.open(saved.root, device="cpu")
    assert reopened.items == saved.items
    assert reopened.space_id == SPACE and reopened.dim == DIM
    np.testing.assert_array_equal(reopened.embeddings(), saved.embeddings())
    hits = reopened.search(saved.embeddings()[2], space_id=SPACE, k=1)
    assert hits[0][0].item.modality == "points"


def test_previews_are_light_and_decode(saved):
    by_modality = {item.modality: saved.preview_path(item) for item in saved.items}
    thumbnail = load_image(by_modality["image"])
    assert max(thumbnail.size) == 256 and thumbnail.size == (256, 128)
    assert len(load_audio(by_modality["audio"])) == 10 * 48000
    assert by_modality["points"].suffix == ".glb" and load_points(by_modality["points"], num_points=256).shape == (256, 3)
    assert by_modality["text"] is None


def test_duplicates_by_content_hash_are_skipped(saved):
    again = _media_items()[:2] + [NewItem("image", "/other/copy.png", "copy", sha256_bytes(b"new"), None)]
    added = saved.add(again, _rows(3, seed=1))
    assert [item.source for item in added] == ["/other/copy.png"]
    assert len(saved) == 5
    twice = [NewItem("audio", "x", "", sha256_bytes(b"same")), NewItem("audio", "y", "", sha256_bytes(b"same"))]
    assert len(saved.add(twice, _rows(2, seed=2))) == 1


def test_remove_by_id_or_hash_keeps_rows_aligned(saved):
    embeddings = saved.embeddings()
    image, audio = saved.items[0], saved.items[1]
    assert saved.remove([image.id, audio.sha256, "no-such-item"]) == 2
    assert [item.modality for item in saved.items] == ["points", "text"]
    np.testing.assert_array_equal(saved.embeddings(), embeddings[2:])
    saved.save()
    reopened = Gallery.open(saved.root)
    assert [item.modality for item in reopened.items] == ["points", "text"]
    assert not saved.preview_path(image).exists(), "the removed item's preview is cleaned up"
    assert saved.preview_path(reopened.items[0]).exists()


def test_a_save_that_raises_leaves_the_previous_gallery(saved, monkeypatch):
    import cmcr.retrieval.gallery

    before = _folder_state(saved.root)
    saved.remove([saved.items[0].id])

    def broken_save(path, array, allow_pickle):
        Path(path).write_bytes(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(cmcr.retrieval.gallery.np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        saved.save()
    assert len(Gallery.open(saved.root)) == 4
    monkeypatch.undo()
    saved.save()
    assert len(Gallery.open(saved.root)) == 3
    assert len(list(saved.root.glob("v-*"))) == 1, "the half-written version folder was cleared"
    assert before != _folder_state(saved.root)


@pytest.mark.parametrize("crash_in", ["np.save", "os.replace"])
def test_a_process_killed_mid_save_leaves_a_whole_gallery(saved, crash_in):
    """The child dies by SIGKILL half-way through writing the embeddings, or just before the
    rename that swaps CURRENT; either way the folder still opens as the old gallery."""
    child = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        import cmcr.retrieval.gallery as module
        from cmcr.retrieval.gallery import Gallery, NewItem, sha256_bytes

        gallery = Gallery.open(sys.argv[1])
        gallery.add([NewItem("text", "t", "more", sha256_bytes(b"more"))], np.ones((1, {DIM}), np.float32))

        def die(path, *args, **kwargs):
            if {crash_in!r} == "np.save":
                with open(path, "wb") as stream:
                    stream.write(b"\\x93NUMPY partial")
            os.kill(os.getpid(), signal.SIGKILL)

        if {crash_in!r} == "np.save":
            module.np.save = die
        else:
            module.os.replace = die
        gallery.save()
    """)
    result = subprocess.run([sys.executable, "-c", child, str(saved.root)], cwd=REPO, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    survivor = Gallery.open(saved.root)
    assert survivor.items == saved.items
    survivor.add([NewItem("text", "t2", "after", sha256_bytes(b"after"))], _rows(1, seed=5))
    survivor.save()
    assert len(Gallery.open(saved.root)) == 5


def test_create_refuses_to_overwrite_and_open_explains_a_missing_gallery(saved, tmp_path):
    with pytest.raises(InputError, match="already exists"):
        Gallery.create(saved.root, SPACE, DIM)
    with pytest.raises(InputError, match="No gallery at"):
        Gallery.open(tmp_path / "nowhere")
    with pytest.raises(InputError, match="embedded with space"):
        Gallery.open_or_create(saved.root, "another-space", DIM)


def test_rows_of_the_wrong_shape_are_refused(tmp_path):
    gallery = Gallery.create(tmp_path / "g", SPACE, DIM)
    with pytest.raises(InputError, match=r"shape \(2, 8\)"):
        gallery.add(_media_items()[:2], np.ones((2, 5), np.float32))
    with pytest.raises(InputError, match="Unknown modality"):
        gallery.add([NewItem("smell", "x", "", "h")], np.ones((1, DIM), np.float32))


def test_copy_to_a_new_folder_keeps_only_the_live_version(saved, tmp_path):
    saved.remove([saved.items[0].id])
    saved.save()
    copy = saved.copy_to(tmp_path / "copy")
    assert copy.items == saved.items
    assert sorted(p.name for p in copy.root.iterdir()) == ["CURRENT", "previews", next(copy.root.glob("v-*")).name]
    with pytest.raises(InputError, match="not empty"):
        saved.copy_to(tmp_path / "copy")


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
    fetched = {path.relative_to(hub_cache).parts[-2] for path in hub_cache.rglob("*") if path.parent.name.startswith("v-")}
    assert fetched == {live}


def test_a_current_file_that_names_no_version_is_refused(saved, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(saved.root, copy)
    (copy / "CURRENT").write_text("../../elsewhere")
    with pytest.raises(InputError, match="not a version folder"):
        Gallery.open(copy)


def test_a_folder_scan_takes_every_3d_format_but_leaves_caption_files_alone(tmp_path):
    from cmcr.retrieval.gallery import scan_folder
    from studio.service import upload_modality

    cloud = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    np.savez(tmp_path / "rock.npz", points=cloud)
    np.save(tmp_path / "cone.npy", cloud)
    (tmp_path / "cone.txt").write_text("a traffic cone")  # the .npy file's caption, not a cloud
    (tmp_path / "labels.csv").write_text("file,label\ncone.npy,cone\n")
    scanned = {source.path.name: (source.modality, source.caption) for source in scan_folder(tmp_path)}
    assert scanned == {"cone.npy": ("points", "a traffic cone"), "rock.npz": ("points", "rock")}
    assert load_points(tmp_path / "rock.npz", num_points=64).shape == (64, 3)
    assert [upload_modality(Path(f"scan{suffix}")) for suffix in (".txt", ".csv", ".npz")] == ["points"] * 3
