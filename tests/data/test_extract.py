"""Extraction with the real tiny encoders: shards, resuming, ranks, skipped files, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmcr import InputError
from cmcr.data.extract import Rank, extract
from cmcr.data.features import FeatureMemory
from cmcr.data.merge import finalise
from cmcr.data.plan import SHARDS_DIR, ExtractOptions
from cmcr.data.sources import collect_sources

OPTIONS = ExtractOptions(profile="tiny", shard_size=3, num_workers=0, device="cpu", num_points=512)
SETS = [("text", "clip"), ("text", "clap"), ("image", "clip"), ("image", "ulip"), ("audio", "clap"),
        ("points", "ulip")]


class Interrupted(Exception):
    """Stands in for Ctrl-C / a killed job between two shards."""


def interrupt_after(count: int, finished: list[str]):
    """An `on_shard` callback that records each finished shard and stops the run after `count`."""

    def on_shard(task) -> None:
        finished.append(task.name)
        if len(finished) == count:
            raise Interrupted

    return on_shard


@pytest.fixture(scope="module")
def all_sources(sources):
    return collect_sources(text=[sources["text"]], images=sources["images"], audio=sources["audio"],
                           points=sources["points"])


@pytest.fixture(scope="module")
def by_two_ranks(all_sources, tmp_path_factory) -> Path:
    """The reference memory: two ranks (as torchrun would start) each take every other shard,
    then a separate merge step builds the memory."""
    output = tmp_path_factory.mktemp("ranks") / "features"
    done = {rank: extract(all_sources, output, OPTIONS, rank=Rank(rank, 2), progress=False)
            for rank in (0, 1)}
    assert not any(report.finalised for report in done.values())  # no barrier without torchrun
    total = done[0].shards_total
    assert done[0].shards_embedded == (total + 1) // 2 and done[1].shards_embedded == total // 2
    assert not (output / "manifest.json").exists()
    assert finalise(all_sources, output, OPTIONS).finalised
    return output


def _arrays(root: Path) -> dict:
    memory = FeatureMemory(root)
    return {where: np.asarray(memory.load(*where)) for where in SETS}


def test_the_merged_memory_is_valid_and_lists_the_unreadable_file(by_two_ranks, sources):
    memory = FeatureMemory(by_two_ranks)
    memory.validate()
    manifest = json.loads((by_two_ranks / "manifest.json").read_text())
    assert {m: e["count"] for m, e in manifest["modalities"].items()} == {
        "text": 8, "image": 4, "audio": 4, "points": 4}
    assert manifest["encoders"]["clap"]["checkpoint"].startswith("random weights")
    assert [item["id"] for item in memory.items("image")] == [
        "anvil.png", "cello.png", "nested/bell.png", "nested/drum.png"]
    assert memory.items("text")[0]["text"] == "the sound of a anvil"
    skipped = [json.loads(line) for line in (by_two_ranks / "skipped.jsonl").read_text().splitlines()]
    assert [(s["modality"], s["id"]) for s in skipped] == [("image", "broken.png")]
    assert "not a recognised image" in skipped[0]["reason"] or "damaged" in skipped[0]["reason"]
    assert memory.load("image", "clip").dtype == np.float16
    assert not (by_two_ranks / SHARDS_DIR).exists()


def test_an_interrupted_extraction_resumes_where_it_stopped(all_sources, by_two_ranks, tmp_path):
    output = tmp_path / "features"
    finished: list[str] = []
    with pytest.raises(Interrupted):
        extract(all_sources, output, OPTIONS, rank=Rank(), progress=False, on_shard=interrupt_after(4, finished))
    shards = sorted(p.relative_to(output / SHARDS_DIR) for p in (output / SHARDS_DIR).glob("*/*/*"))
    assert len(shards) == 4 and not (output / "manifest.json").exists()
    assert not list((output / SHARDS_DIR).rglob(".*"))  # no half-written shard left behind

    resumed = []
    report = extract(all_sources, output, OPTIONS, rank=Rank(), progress=False,
                     on_shard=lambda task: resumed.append(task.name))
    assert report.finalised and report.shards_reused == 4
    assert not set(resumed) & set(finished) and len(resumed) + 4 == report.shards_total
    for where, array in _arrays(by_two_ranks).items():
        np.testing.assert_array_equal(_arrays(output)[where], array, err_msg=str(where))


def test_an_extracted_memory_is_reused_until_a_source_changes(all_sources, by_two_ranks, sources, monkeypatch):
    import cmcr.data.extract

    def no_encoders(self, name):
        raise AssertionError("an up-to-date memory must not load any encoder")

    monkeypatch.setattr(cmcr.data.extract._Encoders, "get", no_encoders)
    before = {p: p.stat().st_mtime_ns for p in by_two_ranks.rglob("*.npy")}
    report = extract(all_sources, by_two_ranks, OPTIONS, rank=Rank(), progress=False)
    assert report.up_to_date and "reused" in report.summary()
    assert before == {p: p.stat().st_mtime_ns for p in by_two_ranks.rglob("*.npy")}

    changed = collect_sources(text=[sources["text"]], texts=["one more sentence"], images=sources["images"],
                              audio=sources["audio"], points=sources["points"])
    with pytest.raises(AssertionError, match="must not load"):
        extract(changed, by_two_ranks, OPTIONS, rank=Rank(), progress=False)


def test_ranks_come_from_the_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    rank = Rank.from_env()
    assert (rank.rank, rank.world_size, rank.local_rank) == (3, 4, 1)
    assert [i for i in range(10) if rank.owns(i)] == [3, 7]
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="outside WORLD_SIZE"):
        Rank.from_env()


def test_finalise_refuses_missing_shards(all_sources, tmp_path):
    with pytest.raises(InputError, match="not extracted yet"):
        finalise(all_sources, tmp_path / "empty", OPTIONS)


def test_the_command_line_embeds_a_folder_of_mixed_files(sources, tmp_path, capsys):
    from scripts.extract_features import main

    output = tmp_path / "cli"
    argv = ["--images", str(sources["images"]), "--points", str(sources["points"]), "--text",
            str(sources["text"]), "--corpus", "5", "--output", str(output), "--profile", "tiny",
            "--shard-size", "4", "--num-points", "512", "--device", "cpu", "--dtype", "float32",
            "--num-workers", "2"]  # decoding in DataLoader worker processes
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 file(s) skipped" in printed and "broken.png" in printed
    memory = FeatureMemory(output)
    memory.validate()
    assert memory.load("text", "clip").shape == (13, 512) and memory.load("points", "ulip").dtype == np.float32
    assert main(argv) == 0 and "up to date" in capsys.readouterr().out
    assert main([*argv, "--shard-size", "0"]) == 2
    assert "shard_size must be a positive integer" in capsys.readouterr().err


def test_the_commit_of_each_hub_checkpoint_is_read_from_the_cache(fake_hub):
    from cmcr.data.plan import cached_commit, encoder_provenance
    from cmcr.hub import download_file

    sha = fake_hub.add_repo("pl/encoder-weights", {"weights.pt": b"pretend weights"})
    entry = {"hub": ["model", "pl/encoder-weights", "weights.pt"], "revision": None}
    assert cached_commit(entry) is None  # not downloaded yet
    download_file("pl/encoder-weights", "weights.pt")
    assert cached_commit(entry) == sha
    full = encoder_provenance("clap", "full")
    assert full["hub"] == ["model", "lukewys/laion_clap", "630k-fusion-best.pt"]
    assert encoder_provenance("ulip", "full")["hub"][0] == "dataset"
    tiny = encoder_provenance("clip", "tiny")
    assert tiny["hub"] is None and cached_commit(tiny) is None
