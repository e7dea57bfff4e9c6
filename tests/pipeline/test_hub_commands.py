"""Hub datasets where the other commands take folders: a gallery built from a dataset repo, the
folder evaluation and the feature-memory evaluation (as for AudioCaps test) run from Hub ids."""

from __future__ import annotations

import os

import pytest

from cmcr.data.hub_export import local_folder
from cmcr.retrieval.gallery import Gallery, scan_folder
from tests.fixtures.datasets import WORDS
from tests.scripts import load_script

evaluate_script, gallery_script, extract_script = (load_script(name) for name in ("evaluate", "build_gallery",
                                                                                 "extract_features"))


def test_plain_files_are_mirrored_at_their_paths_and_reused(fake_hub, hub_datasets):
    folder = local_folder(f"hf://datasets/{hub_datasets.files}/images")
    assert sorted(p.name for p in folder.iterdir()) == [f"{w}.png" for w in sorted(WORDS[:6])]
    assert all(os.path.islink(p) for p in folder.iterdir()) and len(scan_folder(folder)) == 6
    fake_hub.seen.clear()
    assert local_folder(f"hf://datasets/{hub_datasets.files}/images") == folder
    assert not [seen for seen in fake_hub.seen if "/resolve/" in seen.path]  # nothing downloaded again
    single = local_folder(f"hf://datasets/{hub_datasets.files}/captions.txt")
    assert [p.name for p in single.iterdir()] == ["captions.txt"]


def test_rows_become_one_file_each_named_by_data_file_and_row(fake_hub, hub_datasets):
    audio = local_folder(f"hf://datasets/{hub_datasets.parquet}", {"audio": "audio"})
    assert audio.name == "audio" and len(list(audio.glob("*.wav"))) == len(WORDS)
    assert (audio / "train-00001-of-00002-0.wav").is_file()
    every = local_folder(f"hf://datasets/{hub_datasets.webdataset}")
    assert sorted(p.name for p in every.iterdir() if p.is_dir()) == ["audio", "image"]
    assert (every / "image" / "train-000-anvil.jpg").is_file() and local_folder(str(every)) == every


def test_evaluate_py_runs_the_folder_protocol_from_hub_ids(fake_hub, hub_datasets, capsys):
    source = f"hf://datasets/{hub_datasets.parquet}"
    argv = ["--query-folder", source, "--query-column", "audio=audio", "--target-folder", source,
            "--target-column", "points=points", "--profile", "tiny", "--device", "cpu"]
    assert evaluate_script.main(argv) == 0
    table = capsys.readouterr().out
    assert "R@1" in table and "MedR" in table
    assert evaluate_script.main(["--query-folder", source, "--target-folder", source, "--query-column", "audio"]) == 2
    assert "must look like MODALITY=NAME" in capsys.readouterr().err


def test_the_memory_protocol_scores_captions_against_their_clips_from_one_repo(fake_hub, hub_datasets, tmp_path,
                                                                               capsys):
    """As for AudioCaps test: captions and clips of the same rows, extracted from the Hub, paired by row."""
    source = f"hf://datasets/{hub_datasets.parquet}"
    assert extract_script.main(["--text", source, "--audio", source, "--output", str(tmp_path / "features"),
                                "--profile", "tiny", "--device", "cpu", "--num-workers", "0"]) == 0
    capsys.readouterr()
    assert evaluate_script.main(["--memory", str(tmp_path / "features"), "--query", "text/clap",
                                 "--target", "audio/clap"]) == 0
    assert "text/clap → audio/clap" in capsys.readouterr().out


@pytest.mark.slow
def test_build_gallery_py_embeds_a_dataset_repo(fake_hub, hub_datasets, tmp_path, capsys):
    out = tmp_path / "gallery"
    assert gallery_script.main([f"hf://datasets/{hub_datasets.files}", "--out", str(out), "--profile", "tiny",
                                "--device", "cpu", "--workers", "0"]) == 0
    assert "added 15" in capsys.readouterr().out  # 6 images, 5 sounds, 4 shapes; the caption file is not media
    assert len(Gallery.open(out)) == 15
