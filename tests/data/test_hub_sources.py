"""Hub dataset sources read by the real huggingface_hub client from the loopback fake Hub: the three
layouts, pinned commits, row limits and seeded subsamples, clear messages; then extraction of
them with the real tiny encoders (resuming after a kill, ranks, a bad row skipped and listed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmcr import HubUnavailableError, InputError
from cmcr.data.extract import Rank, extract
from cmcr.data.features import FeatureMemory
from cmcr.data.hub_uri import HubURI, parse_hub_uri
from cmcr.data.merge import finalise
from cmcr.data.plan import ExtractOptions
from cmcr.data.sources import SourceOptions, collect_sources, read_source
from cmcr.hub import list_repo_files
from tests.data.test_extract import Interrupted, interrupt_after
from tests.fixtures.datasets import BROKEN_ROW, WORDS, parquet_shard

OPTIONS = ExtractOptions(profile="tiny", shard_size=2, num_workers=0, device="cpu", num_points=256)


def _uri(repo: str, path: str = "", revision: str | None = None) -> str:
    return f"hf://datasets/{repo}" + (f"@{revision}" if revision else "") + (f"/{path}" if path else "")


@pytest.mark.parametrize("text, expected", [
    ("hf://datasets/me/data", HubURI("me/data", None, "")),
    ("hf://datasets/me/data@v1.0/train", HubURI("me/data", "v1.0", "train")),
    ("hf://datasets/me/data@refs/convert/parquet/default/train",
     HubURI("me/data", "refs/convert/parquet", "default/train")),
    ("hf://datasets/me/data@refs%2Fpr%2F3/x.parquet", HubURI("me/data", "refs/pr/3", "x.parquet")),
    ("hf://datasets/me/data/cc3m-train-*.tar", HubURI("me/data", None, "cc3m-train-*.tar")),
])
def test_the_source_syntax(text, expected):
    assert parse_hub_uri(text) == expected


@pytest.mark.parametrize("text, message", [
    ("hf://models/me/model", "only dataset repos"),
    ("hf://datasets/me", "names no repo"),
    ("hf://datasets/me/da..ta", "not a valid repo id"),
    ("hf://datasets/me/data@/x", "empty revision"),
])
def test_a_malformed_source_says_how_to_write_it(text, message):
    with pytest.raises(InputError, match=message):
        parse_hub_uri(text)


def test_globs_and_folders_select_files():
    uri = parse_hub_uri("hf://datasets/me/data/data/*bal_train/*.parquet")
    assert uri.folder == "data" and uri.matches("data/unbal_train/0.parquet") and not uri.matches("data/eval/0.parquet")
    folder = parse_hub_uri("hf://datasets/me/data/images")
    assert folder.matches("images/a/b.png") and not folder.matches("images2/b.png")


def test_each_layout_gives_every_modality_it_holds(fake_hub, hub_datasets):
    parquet = {m: read_source(_uri(hub_datasets.parquet), m, progress=False)
               for m in ("text", "image", "audio", "points")}
    assert [item["text"] for item in parquet["text"].items] == [f"a recording of a {w}" for w in WORDS]
    assert {len(selection.items) for selection in parquet.values()} == {len(WORDS)}
    assert parquet["image"].record["column"] == "image" and parquet["image"].record["layout"] == "parquet"
    tars = {m: read_source(_uri(hub_datasets.webdataset), m, progress=False) for m in ("text", "image", "audio")}
    assert sorted(item["text"] for item in tars["text"].items) == sorted(f"the sound of a {w}" for w in WORDS)
    assert tars["image"].items[0]["member"].endswith(".jpg") and tars["audio"].record["column"] == "wav"
    files = {m: read_source(_uri(hub_datasets.files, path), m, progress=False)
             for m, path in (("text", "captions.txt"), ("image", "images"), ("audio", "sounds"), ("points", "shapes"))}
    assert {m: len(s.items) for m, s in files.items()} == {"text": len(WORDS), "image": 6, "audio": 5, "points": 4}
    assert files["image"].items[0]["id"] == f"{hub_datasets.files}/images/anvil.png"


def test_a_missing_column_names_the_columns_there_are(fake_hub, hub_datasets):
    with pytest.raises(InputError) as caught:
        read_source(_uri(hub_datasets.parquet), "image", SourceOptions(column="picture"), progress=False)
    assert "has no column 'picture'" in str(caught.value)
    assert "'audio', 'caption', 'image', 'points'" in str(caught.value)
    assert "--image-column" in str(caught.value)
    with pytest.raises(InputError, match="holds struct.*not text data"):
        read_source(_uri(hub_datasets.parquet), "text", SourceOptions(column="image"), progress=False)
    with pytest.raises(InputError, match="none of the usual points columns"):
        read_source(_uri(hub_datasets.webdataset), "points", progress=False)


def test_a_repo_folder_or_revision_that_does_not_exist_is_an_input_error(fake_hub, hub_datasets):
    with pytest.raises(InputError, match="has no file or folder 'nowhere'"):
        read_source(_uri(hub_datasets.files, "nowhere"), "image", progress=False)
    with pytest.raises(InputError, match="revision"):
        read_source(_uri(hub_datasets.files, "images", revision="v9"), "image", progress=False)
    with pytest.raises(InputError, match="holds no parquet files, webdataset .tar files or audio files"):
        read_source(_uri(hub_datasets.files, "images"), "audio", progress=False)


def test_an_unreachable_hub_is_hub_unavailable_not_a_traceback(offline_hub):
    with pytest.raises(HubUnavailableError, match="a dataset source needs it to list its files"):
        list_repo_files("me/data", endpoint=offline_hub)


def test_row_limits_take_a_seeded_subsample_reading_only_the_files_they_need(fake_hub, hub_datasets):
    def ids(seed, rows=4):
        selection = read_source(_uri(hub_datasets.parquet), "image", SourceOptions(rows=rows, seed=seed),
                                progress=False)
        return [item["id"] for item in selection.items], selection.record

    first, record = ids(0)
    assert ids(0)[0] == first and len(first) == 4 and len(set(first)) == 4
    assert record["files_read"] == 1 and record["rows_read"] == len(WORDS) // 2 and record["rows"] == 4
    assert any(ids(seed)[0] != first for seed in (1, 2, 3))
    in_order, _ = ids(None)
    assert in_order == [f"{hub_datasets.parquet}/data/train-00000-of-00002:{row}" for row in range(4)]
    everything, record = ids(0, rows=10)
    assert len(everything) == 10 and record["files_read"] == 2


def test_a_revision_resolves_to_a_commit_that_stays_readable(fake_hub, hub_datasets):
    repo = f"{hub_datasets.parquet}-moving"
    old = fake_hub.add_repo(repo, {"data/a.parquet": parquet_shard(["anvil", "bell"], 0)}, repo_type="dataset")
    new = fake_hub.add_repo(repo, {"data/a.parquet": parquet_shard(["cello", "drum", "gong"], 2)}, repo_type="dataset")
    now = read_source(_uri(repo), "text", progress=False)
    then = read_source(_uri(repo, revision=old), "text", progress=False)
    assert now.record["commit"] == new and now.record["revision"] == "main" and len(now.items) == 3
    assert then.record["commit"] == old and [i["text"] for i in then.items] == ["a recording of a anvil",
                                                                              "a recording of a bell"]
    assert f"{repo}@{new}" in now.described


@pytest.fixture(scope="module")
def hub_sources(hub_datasets, fake_hub_server):
    return collect_sources(text=[_uri(hub_datasets.webdataset)], images=_uri(hub_datasets.parquet),
                           audio=_uri(hub_datasets.webdataset), points=_uri(hub_datasets.files, "shapes"),
                           progress=False)


@pytest.fixture(scope="module")
def extracted(hub_sources, tmp_path_factory):
    output = tmp_path_factory.mktemp("hub") / "features"
    report = extract(hub_sources, output, OPTIONS, rank=Rank(), progress=False)
    return output, report


def test_extraction_embeds_hub_rows_and_pins_each_commit_in_the_manifest(extracted, hub_datasets):
    output, report = extracted
    memory = FeatureMemory(output)
    memory.validate()
    manifest = json.loads((output / "manifest.json").read_text())
    counts = {m: entry["count"] for m, entry in manifest["modalities"].items()}
    assert counts == {"text": len(WORDS), "image": len(WORDS) - 1, "audio": len(WORDS), "points": 4}
    image_source = manifest["modalities"]["image"]["source"]
    assert f"{hub_datasets.parquet}@{hub_datasets.commits['parquet']}" in image_source
    record = json.loads((output / "extraction.json").read_text())
    assert {(d["modality"], d["id"], d["commit"]) for d in record["datasets"]} == {
        ("text", hub_datasets.webdataset, hub_datasets.commits["webdataset"]),
        ("image", hub_datasets.parquet, hub_datasets.commits["parquet"]),
        ("audio", hub_datasets.webdataset, hub_datasets.commits["webdataset"]),
        ("points", hub_datasets.files, hub_datasets.commits["files"])}
    item = memory.items("image")[0]
    assert item["hub"] == f"{hub_datasets.parquet}@{hub_datasets.commits['parquet']}" and item["row"] == 0
    assert np.isfinite(memory.load("points", "ulip")).all()


def test_a_bad_row_is_skipped_and_listed(extracted, hub_datasets):
    output, report = extracted
    skipped = [json.loads(line) for line in (output / "skipped.jsonl").read_text().splitlines()]
    broken = f"{hub_datasets.parquet}/data/train-00000-of-00002:{BROKEN_ROW}"
    assert [(s["modality"], s["id"]) for s in skipped] == [("image", broken)]
    assert "damaged" in skipped[0]["reason"] or "not a recognised image" in skipped[0]["reason"]
    kept = [item["id"] for item in FeatureMemory(output).items("image")]
    assert broken not in kept and len(kept) == len(WORDS) - 1
    assert "1 file(s) skipped" in report.summary()


def test_a_killed_extraction_resumes_at_a_shard_boundary(hub_sources, extracted, tmp_path):
    output = tmp_path / "features"
    with pytest.raises(Interrupted):
        extract(hub_sources, output, OPTIONS, rank=Rank(), progress=False, on_shard=interrupt_after(3, []))
    again = extract(hub_sources, output, OPTIONS, rank=Rank(), progress=False)
    assert again.shards_reused == 3 and again.shards_embedded == again.shards_total - 3 and again.finalised
    reference, resumed = FeatureMemory(extracted[0]), FeatureMemory(output)
    for modality, encoder in (("image", "clip"), ("audio", "clap"), ("text", "clip")):
        np.testing.assert_allclose(resumed.load(modality, encoder), reference.load(modality, encoder), atol=2e-3)
        assert resumed.items(modality) == reference.items(modality)


def test_torchrun_ranks_take_different_shards_of_a_hub_source(hub_sources, extracted, tmp_path):
    output = tmp_path / "features"
    reports = [extract(hub_sources, output, OPTIONS, rank=Rank(rank, 2), progress=False) for rank in (0, 1)]
    assert [r.shards_embedded for r in reports] == [(reports[0].shards_total + 1) // 2, reports[0].shards_total // 2]
    assert finalise(hub_sources, output, OPTIONS).finalised
    assert FeatureMemory(output).items("image") == FeatureMemory(extracted[0]).items("image")


def test_every_layout_decodes_each_of_its_modalities(hub_datasets, fake_hub, tmp_path):
    """The other half of the layouts: captions, sounds and coordinate lists from parquet, photos
    from tars, text from a plain text file."""
    mixed = collect_sources(text=[_uri(hub_datasets.parquet), _uri(hub_datasets.files, "captions.txt")],
                            images=_uri(hub_datasets.webdataset), audio=_uri(hub_datasets.parquet),
                            points=_uri(hub_datasets.parquet), progress=False)
    report = extract(mixed, tmp_path / "features", OPTIONS, rank=Rank(), progress=False)
    assert report.counts == {"text": 2 * len(WORDS), "image": len(WORDS), "audio": len(WORDS), "points": len(WORDS)}
    assert report.skipped == []
    memory = FeatureMemory(tmp_path / "features")
    assert memory.items("text")[-1]["id"] == f"{hub_datasets.files}/captions.txt:{len(WORDS)}"
    assert memory.items("image")[0]["member"] == "anvil.jpg"


def test_plain_files_are_downloaded_by_the_decoding_workers(fake_hub, hub_datasets, tmp_path):
    """Two DataLoader worker processes fetch the files they decode, pinned to the listed commit."""
    plain = collect_sources(images=_uri(hub_datasets.files, "images"), points=_uri(hub_datasets.files, "shapes"),
                            progress=False)
    assert plain.local_files == {}  # listed only: nothing downloaded yet
    options = ExtractOptions(profile="tiny", shard_size=2, num_workers=2, device="cpu", num_points=256)
    report = extract(plain, tmp_path / "features", options, rank=Rank(), progress=False)
    assert report.counts == {"image": 6, "points": 4} and report.skipped == []
    fetched = {seen.path for seen in fake_hub.seen if "/resolve/" in seen.path}
    assert all(f"/resolve/{hub_datasets.commits['files']}/" in path for path in fetched)
    assert len({path for path in fetched if "/images/" in path}) == 6  # (the shapes may be cached by now)
