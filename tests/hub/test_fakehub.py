"""The fake Hub answers the real huggingface_hub client the way huggingface.co does."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

TOKEN = "hf_fakehub_test_token"


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def test_download_by_branch_and_sha_keeps_old_revisions(fake_hub, hub_cache):
    first = fake_hub.add_repo("fh/revisions", {"weights.safetensors": b"v1" * 50, "config.json": b"{}"})
    second = fake_hub.add_repo("fh/revisions", {"weights.safetensors": b"v2" * 50})
    assert first != second and len(second) == 40

    latest = hf_hub_download("fh/revisions", "weights.safetensors", cache_dir=hub_cache)
    old = hf_hub_download("fh/revisions", "weights.safetensors", revision=first, cache_dir=hub_cache)
    assert _read(latest) == b"v2" * 50
    assert _read(old) == b"v1" * 50
    assert f"/snapshots/{second}/" in Path(latest).as_posix()
    assert [c["sha"] for c in fake_hub.commits("fh/revisions")] == [second, first]


def test_head_carries_commit_etag_and_no_xet(fake_hub):
    sha = fake_hub.add_repo("fh/headers", {"model.safetensors": b"abc", "notes.txt": b"hello"})
    lfs = get_hf_file_metadata(hf_hub_url("fh/headers", "model.safetensors"))
    regular = get_hf_file_metadata(hf_hub_url("fh/headers", "notes.txt"))
    assert lfs.commit_hash == regular.commit_hash == sha
    assert lfs.etag == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert regular.etag == "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"  # git hash-object of "hello"
    assert (lfs.size, regular.size) == (3, 5)
    assert lfs.xet_file_data is None and regular.xet_file_data is None


def test_dataset_snapshot_with_folders(fake_hub, hub_cache, tmp_path):
    source = tmp_path / "src"
    (source / "audio").mkdir(parents=True)
    (source / "audio" / "clap.npy").write_bytes(b"\x93NUMPY fake")
    (source / "items.jsonl").write_text('{"id": 1}\n')
    fake_hub.add_repo("fh/data", source, repo_type="dataset")

    snapshot = Path(snapshot_download("fh/data", repo_type="dataset", cache_dir=hub_cache))
    assert _read(snapshot / "audio" / "clap.npy") == b"\x93NUMPY fake"
    assert _read(snapshot / "items.jsonl") == b'{"id": 1}\n'
    only = Path(snapshot_download("fh/data", repo_type="dataset", allow_patterns=["*.jsonl"],
                                  cache_dir=hub_cache / "second"))
    assert sorted(p.name for p in only.rglob("*") if p.is_file()) == ["items.jsonl"]


def test_create_upload_branch_and_list(fake_hub, tmp_path):
    api = HfApi(token=TOKEN)
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "config.json").write_text('{"method": "ex-mcr"}')
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Space\n")

    api.create_repo("fh/pushed")
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo("fh/pushed")
    assert conflict.value.response.status_code == 409
    api.create_repo("fh/pushed", exist_ok=True)

    main_commit = api.upload_folder(folder_path=folder, repo_id="fh/pushed", commit_message="add space")
    assert api.repo_info("fh/pushed").sha == main_commit.oid
    assert api.list_repo_files("fh/pushed") == [".gitattributes", "README.md", "config.json"]

    with pytest.raises(RevisionNotFoundError):
        api.upload_folder(folder_path=folder, repo_id="fh/pushed", revision="experiment")
    api.create_branch("fh/pushed", branch="experiment")
    (folder / "config.json").write_text('{"method": "c-mcr"}')
    branch_commit = api.upload_folder(folder_path=folder, repo_id="fh/pushed", revision="experiment")
    assert fake_hub.branches("fh/pushed") == {"main": main_commit.oid, "experiment": branch_commit.oid}
    assert fake_hub.files("fh/pushed", "experiment")["config.json"] == b'{"method": "c-mcr"}'
    assert fake_hub.files("fh/pushed")["config.json"] == b'{"method": "ex-mcr"}'
    assert fake_hub.commits("fh/pushed", "experiment")[0]["parent"] == main_commit.oid


def test_private_repo_needs_a_token_and_tokens_are_recorded(fake_hub, hub_cache):
    fake_hub.add_repo("fh/private", {"config.json": b"{}"}, private=True)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("fh/private", "config.json", cache_dir=hub_cache)
    path = hf_hub_download("fh/private", "config.json", token=TOKEN, cache_dir=hub_cache)
    assert _read(path) == b"{}"
    assert fake_hub.seen[0].authorization is None
    assert set(fake_hub.authorizations()) == {f"Bearer {TOKEN}"}
    assert HfApi(token=TOKEN).repo_info("fh/private").private is True


def test_writes_without_a_token_are_refused(fake_hub):
    with pytest.raises(HfHubHTTPError) as refused:
        HfApi(token=False).create_repo("fh/anonymous")
    assert refused.value.response.status_code == 401


def test_injected_500_is_retried_by_the_client(fake_hub, hub_cache):
    fake_hub.add_repo("fh/flaky", {"a.txt": b"payload"})
    fake_hub.fail_next(2, 500, method="HEAD")
    path = hf_hub_download("fh/flaky", "a.txt", cache_dir=hub_cache)
    assert _read(path) == b"payload"
    assert [r.method for r in fake_hub.seen].count("HEAD") == 3


def test_cut_download_is_resumed_byte_identical(fake_hub, hub_cache):
    content = bytes(range(256)) * 40
    fake_hub.add_repo("fh/cut", {"big.npy": content})
    fake_hub.cut_next_download(1, after_bytes=1000)
    path = hf_hub_download("fh/cut", "big.npy", cache_dir=hub_cache)
    assert _read(path) == content
    gets = [r for r in fake_hub.seen if r.method == "GET" and "resolve" in r.path]
    assert len(gets) == 2  # the cut answer, then the ranged resume


def test_slow_answers_hit_client_timeouts(fake_hub):
    fake_hub.add_repo("fh/slow", {"a.txt": b"x"})
    fake_hub.slow_down(1.0, count=1)
    with pytest.raises(httpx2.TimeoutException):
        get_hf_file_metadata(hf_hub_url("fh/slow", "a.txt"), timeout=0.2)


def test_unreachable_endpoint_refuses_at_once(offline_hub):
    started = time.monotonic()
    with pytest.raises(httpx2.ConnectError):
        get_hf_file_metadata(f"{offline_hub}/fh/any/resolve/main/a.txt", timeout=5)
    assert time.monotonic() - started < 1.0


def test_canonical_repo_ids_and_folder_listings(fake_hub, hub_cache):
    """Single-name repos (like `roberta-base`, which transformers asks for) and tree listings."""
    fake_hub.add_repo("fh-canonical", {"config.json": b"{}", "sub/a.txt": b"a", "sub/deep/b.txt": b"b"})
    assert _read(hf_hub_download("fh-canonical", "sub/deep/b.txt", cache_dir=hub_cache)) == b"b"
    api = HfApi()
    top = {entry.path for entry in api.list_repo_tree("fh-canonical")}
    assert top == {"config.json", "sub"}
    assert {entry.path for entry in api.list_repo_tree("fh-canonical", path_in_repo="sub")} == {"sub/a.txt", "sub/deep"}
    with pytest.raises(HfHubHTTPError) as missing:
        list(api.list_repo_tree("fh-canonical", path_in_repo="absent"))
    assert missing.value.response.status_code == 404
