"""The one-command loop, offline: raw files → features → heads → evaluation → model card → fake
Hub → `UnifiedSpace.from_pretrained(repo_id)`, with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from cmcr.data.features import FeatureMemory
from cmcr.hub import download_snapshot
from cmcr.models.space import UnifiedSpace
from cmcr.pipeline.run import run_pipeline
from tests.pipeline.conftest import QUICK
from tests.scripts import load_script

TOKEN = "hf_cmcr_pipeline_token"
train_script = load_script("train")


def _argv(sources: dict, output: Path, *extra: str) -> list[str]:
    return ["--profile", "tiny", "--output", str(output), "--images", str(sources["images"]),
            "--audio", str(sources["audio"]), "--points", str(sources["points"]),
            "--text", str(sources["text"]), *[arg for item in QUICK for arg in ("--set", item)], *extra]


def _run(argv: list[str]):
    lines: list[str] = []
    result = run_pipeline(train_script.config_from_args(train_script.parse_args(argv)), progress=False,
                          log=lines.append)
    return result, "\n".join(lines)


def _state(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(sources, tmp_path_factory):
    output = tmp_path_factory.mktemp("run") / "out"
    result, log = _run(_argv(sources, output))
    return output, result, log


def test_one_command_writes_a_loadable_space_with_its_model_card(first_run):
    output, result, log = first_run
    folder = result.spaces["unified"]
    assert folder == output / "space"
    assert {"config.json", "model.safetensors", "README.md", "training.json", "curve-clap-clip.png",
            "curve-ulip-clip.png"} <= set(_state(folder))
    space = UnifiedSpace.from_pretrained(folder)
    assert space.method == "ex-mcr" and space.encoders == ["clip", "clap", "ulip"]
    assert space.config["encoders"]["clap"]["profile"] == "tiny"
    assert space.config["hyperparameters"]["epochs"] == 2
    evaluation = space.config["metrics"]["evaluation"]
    held_out = evaluation["clap→clip"]["clap text → clip text (held-out)"]
    assert 0 <= held_out["R@1"] <= 100 and held_out["MedR"] >= 1
    assert evaluation["clap→clip"]["chance (12 items)"]["R@1"] == pytest.approx(100 / 12)
    named = evaluation["matching file names"]
    assert "clap audio → clip image (4 pairs)" in named and "ulip points → clap audio (4 pairs)" in named
    audio = np.asarray(FeatureMemory(result.features).load("audio", "clap"), np.float32)
    projected = space.project(encoder="clap", modality="audio", features=audio)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    assert (folder / "curve-clap-clip.png").read_bytes()[:4] == b"\x89PNG"
    assert "broken.png" in log and "Tiny profile" in log


def test_the_model_card_has_front_matter_metrics_plot_config_and_credits(first_run):
    _, result, _ = first_run
    card = (result.spaces["unified"] / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "cmcr" and meta["license"] == "apache-2.0"
    assert {"c-mcr", "ex-mcr", "clap", "ulip"} <= set(meta["tags"])
    assert "| clap text → clip text (held-out) |" in body and "| chance (12 items) |" in body
    assert "![clap→clip](curve-clap-clip.png)" in body
    assert "UnifiedSpace.from_pretrained(" in body and "CMCR_SPACE_REPO=" in body
    assert "carry no meaning" in body and "NeurIPS 2023" in body
    config_block = body.split("## Training configuration\n\n```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(config_block)["train"]["epochs"] == 2


def test_second_run_reuses_features_and_pushes_to_the_hub(first_run, sources, fake_hub, hub_cache, monkeypatch):
    output, first, _ = first_run
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    features_before = _state(first.features)
    result, log = _run(_argv(sources, output, "--push-to-hub", "user/cmcr-space", "--private"))
    assert "up to date" in log and _state(first.features) == features_before
    sha = fake_hub.commits("user/cmcr-space")[0]["sha"]
    assert result.pushed.endswith(sha) and len(fake_hub.commits("user/cmcr-space")) == 2  # init + one
    assert fake_hub.is_private("user/cmcr-space")

    folder = result.spaces["unified"]
    pulled = download_snapshot("user/cmcr-space", cache_dir=hub_cache, token=TOKEN)
    pulled_files = {name: digest for name, digest in _state(pulled).items() if name != ".gitattributes"}
    assert pulled_files == _state(folder)  # every file, byte for byte (the Hub adds .gitattributes)
    card = (folder / "README.md").read_text()
    assert 'from_pretrained("user/cmcr-space")' in card

    remote = UnifiedSpace.from_pretrained("user/cmcr-space")
    local = UnifiedSpace.from_pretrained(folder)
    rows = np.random.default_rng(0).standard_normal((5, 512)).astype(np.float32)
    for encoder, modality in (("clap", "audio"), ("ulip", "points"), ("clip", "image")):
        np.testing.assert_array_equal(remote.project(encoder=encoder, modality=modality, features=rows),
                                      local.project(encoder=encoder, modality=modality, features=rows))


def test_the_pulled_space_places_raw_files_as_the_training_features_did(first_run, sources):
    """What the app does with the downloaded space (decode → embed → project, cmcr.retrieval.search)
    agrees with the features training used (stored as float16)."""
    from cmcr.models.encoders import build_encoder
    from cmcr.retrieval.search import SpaceEmbedder

    _, result, _ = first_run
    space = UnifiedSpace.from_pretrained(result.spaces["unified"])
    embedder = SpaceEmbedder(space, {name: build_encoder(name, "tiny", device="cpu") for name in space.encoders})
    memory = FeatureMemory(result.features)
    paths = [item["path"] for item in memory.items("audio")]
    live = embedder.embed_inputs("audio", paths)
    stored = space.project(encoder="clap", modality="audio",
                           features=np.asarray(memory.load("audio", "clap"), np.float32))
    np.testing.assert_allclose(live, stored, atol=2e-2)
    # the four sine tones embed apart (tiny CLAP separates them), so each finds itself
    assert ((live @ stored.T).argmax(axis=1) == np.arange(len(paths))).all()


def test_a_failed_push_keeps_the_output_and_prints_a_retry_command_that_works(
        first_run, sources, fake_hub, monkeypatch, capsys):
    output, _, _ = first_run
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    fake_hub.fail_next(count=50, status=503, method="POST")
    code = train_script.main(_argv(sources, output, "--push-to-hub", "user/cmcr-flaky", "--revision", "nightly"))
    error = capsys.readouterr().err
    assert code == 3 and "untouched" in error and "Traceback" not in error
    folder = output / "space"
    kept = _state(folder)
    UnifiedSpace.from_pretrained(folder)  # the local result is whole
    retry = error.split("Retry with: ")[1].strip()
    assert retry.startswith("python scripts/train.py --push-folder") and "--revision nightly" in retry

    fake_hub.clear_faults()
    assert train_script.main(shlex.split(retry)[2:]) == 0
    assert _state(folder) == kept
    files = fake_hub.files("user/cmcr-flaky", revision="nightly")
    assert {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name in kept} == kept
    assert "main" in fake_hub.branches("user/cmcr-flaky")  # the branch was made beside main

    space = UnifiedSpace.from_pretrained("user/cmcr-flaky", revision="nightly")
    fake_hub.fail_next(count=1000, status=500)  # the Hub breaks: the cached copy serves
    again = UnifiedSpace.from_pretrained("user/cmcr-flaky", revision="nightly")
    rows = np.random.default_rng(1).standard_normal((3, 512)).astype(np.float32)
    np.testing.assert_array_equal(again.project(encoder="ulip", modality="points", features=rows),
                                  space.project(encoder="ulip", modality="points", features=rows))


@pytest.mark.parametrize("content, flags, message", [
    ("profile: [tiny\n", [], "cannot read config file"),
    ("profile: tiny\nepochs: 3\n", [], "unknown config key(s) ['epochs']"),
    ("train: {epoch: 3}\n", [], "unknown training option(s) ['epoch']"),
    ("profile: huge\n", [], "profile must be 'full' or 'tiny'"),
    ("extract: {shard_size: -1}\n", [], "shard_size must be a positive integer"),
    ("connections: [audio→image]\n", [], "unknown connection"),
    ("method: c-mcr\n", ["--push-to-hub", "me/x"], "push one at a time"),
    ("sources: {images: no-such-folder, corpus_size: 0}\n", [], "is not a folder"),
    ("- just\n- a list\n", [], "must hold a mapping"),
])
def test_a_malformed_config_ends_with_a_message_and_a_non_zero_exit(tmp_path, capsys, content, flags, message):
    config = tmp_path / "run.yaml"
    config.write_text(content)
    assert train_script.main(["--config", str(config), "--output", str(tmp_path / "out"), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "out" / "space").exists()


def test_the_shipped_configs_parse_and_the_small_recipe_is_the_default():
    from cmcr.data.hub_uri import parse_hub_uri
    from cmcr.pipeline.config import CONFIG_DIR, PROFILE_CONFIGS, load_pipeline_config
    from cmcr.training.config import TrainConfig

    assert PROFILE_CONFIGS["full"] == "small.yaml"
    small = load_pipeline_config(CONFIG_DIR / "small.yaml")
    assert (small.sources.text_rows, small.sources.image_rows, small.sources.audio_rows,
            small.sources.points_rows) == (100_000, 50_000, 50_000, 20_000)
    assert small.sources.corpus_size == 0 and not small.overlap_ablation and small.train == TrainConfig()
    paper = load_pipeline_config(CONFIG_DIR / "paper.yaml")
    for config in (small, paper):
        for source in (*config.sources.text, config.sources.images, config.sources.audio, config.sources.points):
            parse_hub_uri(source)  # every source is a Hub dataset, written as one
    text = (CONFIG_DIR / "small.yaml").read_text()
    listed = text.split("--set train.epochs=40:\n")[1].split("\ntrain:")[0].replace("#", "")
    assert [name.strip() for name in listed.split(",")] == list(TrainConfig().to_dict())
    tiny = load_pipeline_config(CONFIG_DIR / "tiny.yaml")
    assert tiny.profile == "tiny" and Path(tiny.sources.images).is_dir()
    assert json.loads(json.dumps(tiny.to_dict())) == tiny.to_dict()


def test_toml_and_yaml_configs_and_overrides_mean_the_same(tmp_path):
    from cmcr.pipeline.config import load_pipeline_config

    (tmp_path / "run.toml").write_text('profile = "tiny"\nconnections = ["clap->clip"]\n[sources]\n'
                                       'images = "photos"\n[train]\nepochs = 4\nlr = 3e-4\n')
    (tmp_path / "run.yaml").write_text("profile: tiny\nconnections: [clap->clip]\nsources: {images: photos}\n"
                                       "train: {epochs: 4, lr: 0.0003}\n")
    toml, yaml_ = (load_pipeline_config(tmp_path / name, ["epochs=5", "extract.dtype=float32"])
                   for name in ("run.toml", "run.yaml"))
    assert toml.to_dict() == yaml_.to_dict()
    assert toml.train.epochs == 5 and toml.extract.dtype == "float32" and toml.connections == ["clap→clip"]
    assert toml.sources.images == str(tmp_path / "photos")  # relative to the config file


def test_c_mcr_writes_one_space_folder_per_connection(sources, tmp_path):
    result, _ = _run(_argv(sources, tmp_path / "out", "--method", "c-mcr"))
    assert {name: folder.name for name, folder in result.spaces.items()} == {
        "clap-clip": "space-clap-clip", "ulip-clip": "space-ulip-clip"}
    for name, folder in result.spaces.items():
        space = UnifiedSpace.from_pretrained(folder)
        assert space.method == "c-mcr" and sorted(space.encoders) == sorted(name.split("-"))
        card = (folder / "README.md").read_text()
        assert f"![{name.replace('-', '→')}](curve-{name}.png)" in card
        assert (folder / f"curve-{name}.png").is_file()


def test_the_app_serves_a_tiny_space_pulled_from_the_hub(first_run, fake_hub, hub_cache, monkeypatch):
    """train → Hub → app, offline: the studio's tiny profile loads the space named with --space."""
    from cmcr.hub import push_folder
    from studio.loading import load_models
    from studio.settings import StudioSettings

    _, first, _ = first_run
    folder = first.spaces["unified"]
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_folder(folder, "user/cmcr-app-loop")
    loaded = load_models(StudioSettings(space="user/cmcr-app-loop", profile="tiny", device="cpu"))
    assert loaded.profile == "tiny" and list(loaded.spaces) == ["user/cmcr-app-loop"]
    rows = np.random.default_rng(1).standard_normal((3, 512)).astype(np.float32)
    served = loaded.spaces["user/cmcr-app-loop"]
    np.testing.assert_array_equal(served.project(encoder="clap", modality="audio", features=rows),
                                  UnifiedSpace.from_pretrained(folder).project(encoder="clap", modality="audio",
                                                                               features=rows))


def test_the_app_refuses_a_full_profile_space_with_tiny_encoders(first_run, tmp_path):
    from cmcr.errors import InputError
    from studio.loading import load_tiny_profile_spaces

    _, first, _ = first_run
    space = UnifiedSpace.from_pretrained(first.spaces["unified"])
    config = json.loads(json.dumps(space.config))
    config["encoders"]["clap"]["profile"] = "full"
    UnifiedSpace(config, dict(space.heads)).save_pretrained(tmp_path / "full-space")
    with pytest.raises(InputError, match="full-size clap features"):
        load_tiny_profile_spaces(str(tmp_path / "full-space"))
