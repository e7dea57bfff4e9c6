"""Gallery storage: add/remove/de-duplicate, disk round trips, atomic saves, copies."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cmcr.retrieval.gallery.versions as versions
from cmcr.errors import InputError
from cmcr.retrieval.gallery import Gallery, NewItem, sha256_bytes
from tests.paths import REPO
from tests.retrieval.samples import DIM, SPACE, media_items, unit_rows


def _folder_state(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_saved_gallery_reopens_identical(saved):
    reopened = Gallery.open(saved.root, device="cpu")
    assert reopened.items == saved.items
    assert reopened.space_id == SPACE and reopened.dim == DIM
    np.testing.assert_array_equal(reopened.embeddings(), saved.embeddings())
    hits = reopened.search(saved.embeddings()[2], space_id=SPACE, k=1)
    assert hits[0][0].item.modality == "points"


def test_duplicates_by_content_hash_are_skipped(saved):
    again = media_items()[:2] + [NewItem("image", "/other/copy.png", "copy", sha256_bytes(b"new"), None)]
    added = saved.add(again, unit_rows(3, seed=1))
    assert [item.source for item in added] == ["/other/copy.png"]
    assert len(saved) == 5
    twice = [NewItem("audio", "x", "", sha256_bytes(b"same")), NewItem("audio", "y", "", sha256_bytes(b"same"))]
    assert len(saved.add(twice, unit_rows(2, seed=2))) == 1


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
    before = _folder_state(saved.root)
    saved.remove([saved.items[0].id])

    def broken_save(path, array, allow_pickle):
        Path(path).write_bytes(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(versions.np, "save", broken_save)
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
        import cmcr.retrieval.gallery.versions as module
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
    survivor.add([NewItem("text", "t2", "after", sha256_bytes(b"after"))], unit_rows(1, seed=5))
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
        gallery.add(media_items()[:2], np.ones((2, 5), np.float32))
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


def test_a_current_file_that_names_no_version_is_refused(saved, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(saved.root, copy)
    (copy / "CURRENT").write_text("../../elsewhere")
    with pytest.raises(InputError, match="not a version folder"):
        Gallery.open(copy)
