"""cmcr.hub against the loopback fake Hub, with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest

from cmcr import CheckpointError, HubUnavailableError, InputError
from cmcr.hub import (
    download_file,
    download_snapshot,
    download_space,
    is_offline,
    push_folder,
)

TOKEN = "hf_cmcr_hub_secret_token"
SPACE = {
    "config.json": b'{"method": "ex-mcr", "base": "clip"}',
    "model.safetensors": bytes(range(256)) * 8,
    "README.md": b"---\nlicense: apache-2.0\n---\n# A C-MCR space\n",
}


def _folder_state(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def space_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "space"
    folder.mkdir()
    for name, content in SPACE.items():
        (folder / name).write_bytes(content)
    return folder


def test_download_file_by_branch_and_sha(fake_hub, hub_cache):
    first = fake_hub.add_repo("hb/files", {"heads.safetensors": b"one", "notes.txt": b"n1"})
    fake_hub.add_repo("hb/files", {"heads.safetensors": b"two"})
    assert download_file("hb/files", "heads.safetensors", cache_dir=hub_cache).read_bytes() == b"two"
    old = download_file("hb/files", "heads.safetensors", revision=first, cache_dir=hub_cache)
    assert old.read_bytes() == b"one"
    assert download_file("hb/files", "notes.txt", cache_dir=hub_cache).read_bytes() == b"n1"


def test_dataset_snapshot_with_patterns(fake_hub, hub_cache):
    fake_hub.add_repo("hb/memories", {"text/clip.npy": b"T", "audio/clap.npy": b"A", "manifest.json": b"{}"},
                      repo_type="dataset")
    folder = download_snapshot("hb/memories", repo_type="dataset", allow_patterns=["text/*", "*.json"],
                               cache_dir=hub_cache)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "manifest.json", "text/clip.npy"]


def test_download_space_fetches_only_the_three_space_files(fake_hub, hub_cache):
    fake_hub.add_repo("hb/space-extra", {**SPACE, "training_state.pt": b"pickle!", "plot.png": b"png"})
    folder = download_space("hb/space-extra", cache_dir=hub_cache)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == SPACE
    assert not any("training_state.pt" in r.path or "plot.png" in r.path
                   for r in fake_hub.seen if "/resolve/" in r.path)


def test_download_space_refuses_a_repo_without_weights(fake_hub, hub_cache):
    fake_hub.add_repo("hb/not-a-space", {"config.json": b"{}"})
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        download_space("hb/not-a-space", cache_dir=hub_cache)


@pytest.mark.parametrize(("repo_id", "filename", "revision", "expected"), [
    ("hb/never-created", "config.json", None, "does not exist"),
    ("hb/missing-parts", "absent.json", None, "has no 'absent.json'"),
    ("hb/missing-parts", "config.json", "no-such-branch", "revision"),
])
def test_missing_things_raise_checkpoint_errors(fake_hub, hub_cache, repo_id, filename, revision, expected):
    fake_hub.add_repo("hb/missing-parts", {"config.json": b"{}"})
    with pytest.raises(CheckpointError, match=expected):
        download_file(repo_id, filename, revision=revision, cache_dir=hub_cache)


def test_push_then_pull_is_byte_identical_private_and_authenticated(fake_hub, hub_cache, space_folder):
    url = push_folder(space_folder, "hb/pushed", private=True, token=TOKEN)
    sha = fake_hub.commits("hb/pushed")[0]["sha"]
    assert url.endswith(sha)
    assert fake_hub.is_private("hb/pushed")
    assert set(fake_hub.authorizations()) == {f"Bearer {TOKEN}"}

    pulled = download_space("hb/pushed", token=TOKEN, cache_dir=hub_cache)
    assert _folder_state(pulled) == _folder_state(space_folder)
    with pytest.raises(CheckpointError, match="private"):
        download_space("hb/pushed", cache_dir=hub_cache / "anonymous")


def test_push_to_a_new_branch_leaves_main_alone(fake_hub, hub_cache, space_folder, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the token comes from the environment this time
    push_folder(space_folder, "hb/branched")
    main_sha = fake_hub.branches("hb/branched")["main"]
    (space_folder / "config.json").write_bytes(b'{"method": "c-mcr"}')
    push_folder(space_folder, "hb/branched", revision="sweep-7", commit_message="try c-mcr")

    branches = fake_hub.branches("hb/branched")
    assert branches["main"] == main_sha and branches["sweep-7"] != main_sha
    assert fake_hub.commits("hb/branched", "sweep-7")[0]["message"] == "try c-mcr"
    pulled = download_space("hb/branched", revision="sweep-7", cache_dir=hub_cache)
    assert (pulled / "config.json").read_bytes() == b'{"method": "c-mcr"}'
    assert (download_space("hb/branched", cache_dir=hub_cache) / "config.json").read_bytes() == SPACE["config.json"]


def test_failed_push_keeps_local_files_names_retry_and_hides_token(offline_hub, space_folder, caplog, capsys):
    before = _folder_state(space_folder)
    retry = "python scripts/train.py --push hb/offline-push"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubUnavailableError) as failure:
        push_folder(space_folder, "hb/offline-push", token=TOKEN, endpoint=offline_hub, retry_command=retry)
    message = str(failure.value)
    assert retry in message and "untouched" in message and offline_hub in message
    assert _folder_state(space_folder) == before
    captured = capsys.readouterr()
    assert TOKEN not in message + caplog.text + captured.out + captured.err


def test_push_without_credentials_says_how_to_log_in(fake_hub, space_folder):
    with pytest.raises(HubUnavailableError, match="hf auth login") as failure:
        push_folder(space_folder, "hb/anonymous-push")
    assert "cmcr.hub.push_folder(" in str(failure.value)


def test_push_refuses_an_empty_folder(tmp_path):
    with pytest.raises(InputError, match="Nothing to push"):
        push_folder(tmp_path, "hb/empty")


@pytest.mark.parametrize("download", [
    lambda **where: download_file("hb/anything", "config.json", **where),
    lambda **where: download_space("hb/anything", **where),
], ids=["file", "space"])
def test_unreachable_hub_with_nothing_cached_fails_fast_and_clearly(offline_hub, hub_cache, download):
    started = time.monotonic()
    with pytest.raises(HubUnavailableError) as failure:
        download(endpoint=offline_hub, cache_dir=hub_cache)
    assert time.monotonic() - started < 3.0
    message = str(failure.value)
    for needed in ("hb/anything", offline_hub, "nothing usable is cached", "HF_ENDPOINT", "hf auth login",
                   "hf download hb/anything"):
        assert needed in message


def test_cached_copies_are_used_when_the_hub_goes_away(fake_hub, hub_cache, offline_hub):
    fake_hub.add_repo("hb/cached", SPACE)
    online_file = download_file("hb/cached", "config.json", cache_dir=hub_cache)
    online_space = download_space("hb/cached", cache_dir=hub_cache)

    started = time.monotonic()
    assert download_file("hb/cached", "config.json", cache_dir=hub_cache, endpoint=offline_hub) == online_file
    assert download_space("hb/cached", cache_dir=hub_cache, endpoint=offline_hub) == online_space
    assert time.monotonic() - started < 3.0

    fake_hub.fail_next(100, 503, path="/hb/cached")  # reachable but failing: the cache still serves
    assert download_file("hb/cached", "config.json", cache_dir=hub_cache) == online_file


def test_hf_hub_offline_serves_the_cache_without_any_request(fake_hub, hub_cache, monkeypatch):
    from huggingface_hub import constants

    fake_hub.add_repo("hb/offline-mode", SPACE)
    online = download_space("hb/offline-mode", cache_dir=hub_cache)
    fake_hub.seen.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    assert is_offline() is True
    assert download_space("hb/offline-mode", cache_dir=hub_cache) == online
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE"):
        download_space("hb/never-downloaded", cache_dir=hub_cache)
    assert fake_hub.seen == []


def test_transient_500s_are_retried(fake_hub, hub_cache):
    fake_hub.add_repo("hb/flaky", SPACE)
    fake_hub.fail_next(1, 500, method="GET", path="/resolve/")  # the client does not retry a failed body GET
    assert download_file("hb/flaky", "model.safetensors", cache_dir=hub_cache).read_bytes() == SPACE[
        "model.safetensors"]
    fake_hub.fail_next(1, 500, path="/revision/")  # nor a failed snapshot revision lookup
    assert (download_space("hb/flaky", cache_dir=hub_cache / "2") / "README.md").read_bytes() == SPACE["README.md"]
    assert sum(1 for r in fake_hub.seen if "/revision/" in r.path) == 2


def test_download_cut_mid_body_is_completed(fake_hub, hub_cache):
    fake_hub.add_repo("hb/cut", SPACE)
    fake_hub.cut_next_download(1, after_bytes=100)
    path = download_file("hb/cut", "model.safetensors", cache_dir=hub_cache)
    assert path.read_bytes() == SPACE["model.safetensors"]


@pytest.mark.parametrize("filename", ["model.safetensors", "config.json"])  # sha256 and git-sha1 ETags
def test_corrupted_cache_is_detected_and_fetched_again(fake_hub, hub_cache, offline_hub, filename):
    fake_hub.add_repo("hb/corrupt", SPACE)
    path = download_file("hb/corrupt", filename, cache_dir=hub_cache)
    blob = path.resolve()
    damaged = bytes([SPACE[filename][0] ^ 0xFF]) + SPACE[filename][1:]
    blob.chmod(0o644)
    blob.write_bytes(damaged)

    with pytest.raises(HubUnavailableError, match="corrupt"):
        download_file("hb/corrupt", filename, cache_dir=hub_cache, endpoint=offline_hub)
    fake_hub.fail_next(100, 503, path="/hb/corrupt")  # reachable, but failing: still no damaged file handed out
    with pytest.raises(HubUnavailableError, match="corrupt"):
        download_file("hb/corrupt", filename, cache_dir=hub_cache)
    fake_hub.clear_faults()
    gets_before = sum(1 for r in fake_hub.seen if r.method == "GET" and r.path.endswith(filename))
    assert download_file("hb/corrupt", filename, cache_dir=hub_cache).read_bytes() == SPACE[filename]
    assert sum(1 for r in fake_hub.seen if r.method == "GET" and r.path.endswith(filename)) == gets_before + 1


def test_is_offline_probe(fake_hub, offline_hub):
    assert is_offline() is False
    assert is_offline(offline_hub) is True
    fake_hub.slow_down(1.0, count=1, method="HEAD")
    started = time.monotonic()
    assert is_offline(timeout=0.2) is True
    assert time.monotonic() - started < 1.0


def test_verified_blobs_are_not_hashed_again_by_a_later_process(fake_hub, hub_cache, monkeypatch):
    import cmcr.hub as hub

    fake_hub.add_repo("hb/verified-once", {"weights.bin": b"w" * 4096})
    path = hub.download_file("hb/verified-once", "weights.bin", cache_dir=hub_cache)
    blob = path.resolve()
    old = time.time() - 60  # older than the racy window, as a file downloaded on an earlier day
    os.utime(blob, (old, old))
    assert hub._intact(path) and (hub.verified_dir() / blob.name).is_file()
    monkeypatch.setattr(hub, "_file_digest", lambda *args: pytest.fail("re-hashed a verified blob"))
    assert hub._intact(path)  # the record, not the hash, answers now
    blob.write_bytes(b"x" * 4096)  # changed content, new mtime: the record no longer matches
    monkeypatch.undo()
    assert not hub._intact(path)
