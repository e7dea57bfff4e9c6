"""The README front matter a Space reads: `preload_from_hub` names exactly the Hub files the full
encoders download (a renamed file would otherwise be downloaded at every start again)."""

from __future__ import annotations

import yaml

from cmcr.models.encoders.clip import pretrained_hub_file
from cmcr.models.encoders.profiles import CLAP_PROFILES, CLIP_PROFILES
from cmcr.models.encoders.ulip import ULIP_PROFILES, ULIP_REPO_TYPE
from tests.paths import REPO

FRONT_MATTER = yaml.safe_load((REPO / "README.md").read_text().split("---")[1])


def preloaded() -> set[tuple[str, str]]:
    """(repo, file) pairs of the front matter; dataset repos keep their `datasets/` prefix."""
    pairs = set()
    for line in FRONT_MATTER["preload_from_hub"]:
        repo, files = line.split()[:2]
        pairs |= {(repo, name) for name in files.split(",")}
    return pairs


def test_the_space_preloads_every_file_the_full_encoders_download():
    clip, clap, ulip = CLIP_PROFILES["full"], CLAP_PROFILES["full"], ULIP_PROFILES["full"]
    dataset_prefix = "datasets/" if ULIP_REPO_TYPE == "dataset" else ""
    assert preloaded() == {
        pretrained_hub_file(clip.model_name, clip.pretrained),
        (clap.hub_repo, clap.hub_filename),
        (clap.tokenizer_repo, "vocab.json"), (clap.tokenizer_repo, "merges.txt"),
        (dataset_prefix + ulip.checkpoint_repo, ulip.checkpoint_file),
    }


def test_the_space_runs_app_py_with_gradio_on_python_311():
    front = (FRONT_MATTER["sdk"], FRONT_MATTER["app_file"], FRONT_MATTER["python_version"])
    assert front == ("gradio", "app.py", "3.11")
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert FRONT_MATTER["sdk_version"] == pins["gradio"]  # the Space's Gradio is the pinned one
