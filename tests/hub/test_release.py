"""Pinned release files (the official projectors) through the loopback raw-file host: verified
by git blob id, cached, fetched again when damaged, and every failure a clear message."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import cmcr
from cmcr.errors import CheckpointError, HubUnavailableError, InputError
from cmcr.hub import download_release_file
from cmcr.models import registry as pretrained
from cmcr.models.space import UnifiedSpace, load_spaces
from tests.fixtures.official import git_blob_id, reference_file

ULIP_CLIP = pretrained.PRETRAINED["official-c-mcr-ulip-clip"].files[0]


def _gets(raw_files, file) -> int:
    return sum(line == f"GET /{file.repo}/{file.commit}/{file.path}" for line in raw_files.seen)


def test_the_real_ulip_clip_bytes_pass_the_pinned_blob_check(raw_files, tmp_path):
    content = reference_file("ulip_clip.pt").read_bytes()
    assert len(content) == 2_122_395 and git_blob_id(content) == ULIP_CLIP.blob
    raw_files.put(ULIP_CLIP.repo, ULIP_CLIP.commit, ULIP_CLIP.path, content)
    path = download_release_file(ULIP_CLIP, cache_dir=tmp_path)
    assert path.read_bytes() == content
    assert path == tmp_path / "MCR-PEFT/C-MCR" / ULIP_CLIP.commit / "checkpoints/ulip_clip.pt"
    assert download_release_file(ULIP_CLIP, cache_dir=tmp_path) == path and _gets(raw_files, ULIP_CLIP) == 1


def test_the_real_official_c_mcr_ulip_clip_space_loads_by_name(raw_files, monkeypatch, tmp_path):
    content = reference_file("ulip_clip.pt").read_bytes()
    raw_files.put(ULIP_CLIP.repo, ULIP_CLIP.commit, ULIP_CLIP.path, content)
    monkeypatch.setattr("cmcr.hub.release_cache_dir", lambda: tmp_path)
    space = UnifiedSpace.from_pretrained("official-c-mcr-ulip-clip")
    assert space.method == "c-mcr" and space.encoders == ["clip", "ulip"]
    assert space.config["heads"]["ulip"]["kind"] == "c-mcr-one-layer"
    provenance = space.provenance
    assert provenance["license"] == "CC-BY-4.0" and "C-MCR authors" in provenance["credit"]
    assert provenance["files"][0]["blob"] == ULIP_CLIP.blob and provenance["files"][0]["commit"] == ULIP_CLIP.commit
    assert space.config["encoders"]["ulip"]["profile"] == "full"
    raw = torch.load(reference_file("ulip_clip.pt"), weights_only=True)
    rows = np.random.default_rng(0).normal(size=(4, 512)).astype(np.float32)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    by_hand = unit @ raw["Head_B.net.0.weight"].numpy().T + raw["Head_B.net.0.bias"].numpy()
    mean, var = raw["Head_B.net.1.running_mean"].numpy(), raw["Head_B.net.1.running_var"].numpy()
    by_hand = (by_hand - mean) / np.sqrt(var + 1e-5)
    by_hand = np.maximum(by_hand * raw["Head_B.net.1.weight"].numpy() + raw["Head_B.net.1.bias"].numpy(), 0)
    by_hand /= np.linalg.norm(by_hand, axis=1, keepdims=True)
    np.testing.assert_allclose(space.project("ulip", "points", rows), by_hand, atol=1e-5)


def test_a_flipped_byte_in_the_cache_is_fetched_again(official_release, raw_files, tmp_path):
    file = pretrained.PRETRAINED["official-ex-mcr"].files[0]
    path = download_release_file(file, cache_dir=tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[1000] ^= 0xFF
    path.write_bytes(bytes(damaged))
    assert download_release_file(file, cache_dir=tmp_path).read_bytes() == official_release[file.name]
    assert _gets(raw_files, file) == 2


def test_a_mirror_serving_other_bytes_is_refused_and_nothing_is_kept(official_release, raw_files, tmp_path):
    file = pretrained.PRETRAINED["official-ex-mcr"].files[1]
    raw_files.tamper = True
    with pytest.raises(CheckpointError, match="git blob id is .* not the pinned"):
        download_release_file(file, cache_dir=tmp_path / "cache")
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_a_missing_file_ends_in_a_clear_message(raw_files, tmp_path):
    with pytest.raises(CheckpointError, match=r"answered HTTP 404: the pinned file checkpoints/ulip_clip.pt"):
        download_release_file(ULIP_CLIP, cache_dir=tmp_path)


def test_a_server_error_is_retried(official_release, raw_files, tmp_path):
    file = pretrained.PRETRAINED["official-c-mcr-clap-clip"].files[0]
    raw_files.fail_status[:] = [503]
    assert download_release_file(file, cache_dir=tmp_path).read_bytes() == official_release[file.name]
    assert _gets(raw_files, file) == 2


def test_a_host_that_never_answers_times_out_with_advice(official_release, raw_files, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DOWNLOAD_TIMEOUT", 0.3)
    raw_files.delay_s = 2.0
    started = time.monotonic()
    with pytest.raises(HubUnavailableError, match="CMCR_RAW_ENDPOINT") as error:
        download_release_file(pretrained.PRETRAINED["official-ex-mcr"].files[0], cache_dir=tmp_path)
    assert "curl -L -o" in str(error.value) and time.monotonic() - started < 20


def test_an_unreachable_host_uses_a_verified_copy_or_says_how_to_fetch(official_release, raw_files, offline_hub,
                                                                      tmp_path):
    file = pretrained.PRETRAINED["official-ex-mcr"].files[0]
    with pytest.raises(HubUnavailableError, match="nothing is cached"):
        download_release_file(file, cache_dir=tmp_path, endpoint=offline_hub)
    cached = download_release_file(file, cache_dir=tmp_path)
    assert download_release_file(file, cache_dir=tmp_path, endpoint=offline_hub) == cached
    cached.write_bytes(b"damaged")
    with pytest.raises(HubUnavailableError, match="cached copy is damaged"):
        download_release_file(file, cache_dir=tmp_path, endpoint=offline_hub)


def test_offline_mode_never_touches_the_network(official_release, raw_files, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE is set"):
        download_release_file(pretrained.PRETRAINED["official-ex-mcr"].files[0], cache_dir=tmp_path)
    assert raw_files.seen == []


def test_official_ex_mcr_is_a_unified_space_with_its_provenance(official_release):
    space = cmcr.UnifiedSpace.from_pretrained("official-ex-mcr")
    assert space.method == "ex-mcr" and space.base == "clip" and space.config["leaves"] == ["clap", "ulip"]
    assert space.provenance["name"] == "official-ex-mcr" and "Ex-MCR authors" in space.provenance["credit"]
    assert [f["path"] for f in space.provenance["files"]] == ["checkpoints/ex_clap.pt", "checkpoints/ex_ulip.pt"]
    assert all(space.config["encoders"][name]["profile"] == "full" for name in ("clip", "clap", "ulip"))
    assert space.logit_scale == space.config["logit_scale"] == 10.0  # the registry's entry


def test_official_c_mcr_stands_for_two_spaces(official_release):
    spaces = load_spaces("official-c-mcr")
    assert list(spaces) == ["official-c-mcr-clap-clip", "official-c-mcr-ulip-clip"]
    assert [space.encoders for space in spaces.values()] == [["clap", "clip"], ["clip", "ulip"]]
    with pytest.raises(InputError, match="stands for 2 spaces"):
        UnifiedSpace.from_pretrained("official-c-mcr")
    with pytest.raises(InputError, match="pinned"):
        UnifiedSpace.from_pretrained("official-ex-mcr", revision="main")


def test_pretrained_names_are_listed():
    assert cmcr.list_pretrained() == ["official-c-mcr", "official-c-mcr-clap-clip", "official-c-mcr-ulip-clip",
                                      "official-ex-mcr"]
