"""scripts/train.py on Hub datasets (the loopback fake Hub), and the runs it refuses: a connection
without its image, audio or 3D data is never trained on its own overlap unless asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cmcr.data.features import FeatureMemory
from cmcr.models.space import UnifiedSpace
from tests.fixtures.datasets import WORDS
from tests.paths import REPO
from tests.pipeline.conftest import QUICK
from tests.scripts import load_script

train_script = load_script("train")
SETTINGS = [arg for item in QUICK for arg in ("--set", item)]


def _python(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environment, cwd=cwd,
                          timeout=500)


@pytest.mark.slow
def test_train_py_tiny_runs_end_to_end_on_hub_datasets(fake_hub, hub_datasets, tmp_path):
    images, audio = f"hf://datasets/{hub_datasets.webdataset}", f"hf://datasets/{hub_datasets.parquet}"
    done = _python([str(REPO / "scripts" / "train.py"), "--profile", "tiny", "--output", "run", "--images", images,
                    "--image-column", "jpg", "--audio", audio, "--set", "sources.audio_rows=8", *SETTINGS], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    space = UnifiedSpace.from_pretrained(tmp_path / "run" / "space")
    assert space.encoders == ["clip", "clap", "ulip"]
    datasets = {entry["id"]: entry for entry in space.config["datasets"]}
    assert datasets[hub_datasets.webdataset]["commit"] == hub_datasets.commits["webdataset"]
    assert datasets[hub_datasets.parquet]["rows"] == {"audio": 8}
    manifest = json.loads((tmp_path / "run" / "features" / "manifest.json").read_text())["modalities"]
    assert manifest["image"]["count"] == len(WORDS) and manifest["audio"]["count"] == 8
    card = (tmp_path / "run" / "space" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert sorted(front["datasets"]) == sorted([hub_datasets.webdataset, hub_datasets.parquet])
    assert f"8 rows of the Hub dataset {hub_datasets.parquet} at commit {hub_datasets.commits['parquet']}" in card


@pytest.mark.slow
def test_with_no_network_the_default_run_ends_in_one_error_line_and_exit_3(offline_hub, tmp_path):
    done = _python([str(REPO / "scripts" / "train.py"), "--output", "run"], tmp_path, HF_ENDPOINT=offline_hub)
    assert done.returncode == 3, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len([line for line in lines if line.startswith("error:")]) == 1 and "Traceback" not in done.stderr
    assert "google-research-datasets/conceptual_captions" in lines[-1] and "unavailable" in lines[-1]


def _text_only(root: Path) -> Path:
    rows = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
    memory = FeatureMemory(root)
    memory.write("text", "clip", rows)
    memory.write("text", "clap", rows[::-1].copy())
    return root


def test_a_text_only_memory_makes_features_training_exit_2_with_what_to_add(tmp_path, capsys):
    features = _text_only(tmp_path / "features")
    quick = ["--set", "epochs=1", "--set", "hidden=16", "--set", "batch_size=16", "--set", "device=cpu"]
    assert train_script.main(["--features", str(features), "--output", str(tmp_path / "out"), *quick]) == 2
    error = capsys.readouterr().err
    assert "clap→clip has no image data" in error and "clap→clip has no audio data" in error
    assert "--images FOLDER or --images hf://datasets/OWNER/NAME" in error and "--overlap-ablation" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()
    # asked for explicitly, the ablation trains, and the card says what it is
    assert train_script.main(["--features", str(features), "--output", str(tmp_path / "out"), "--overlap-ablation",
                              *quick]) == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert "overlap ablation, as asked" in card and "never saw image" in card


def test_the_pipeline_stops_rather_than_train_on_the_overlap_alone(sources, tmp_path, capsys):
    argv = ["--profile", "tiny", "--output", str(tmp_path / "out"), "--text", str(sources["text"]), *SETTINGS,
            "--set", "sources.images=null", "--set", "sources.audio=null", "--set", "sources.points=null"]
    assert train_script.main(argv) == 2
    error = capsys.readouterr().err
    assert "ulip→clip connects through image" in error and "clap→clip has no image data" in error
    assert not (tmp_path / "out" / "space").exists()
    lines: list[str] = []
    config = train_script.config_from_args(train_script.parse_args(
        [*argv, "--overlap-ablation", "--set", "connections=[clap→clip]"]))
    from cmcr.pipeline.run import run_pipeline

    result = run_pipeline(config, progress=False, log=lines.append)
    assert "no audio data, so (overlap ablation, as asked)" in "\n".join(lines)
    assert UnifiedSpace.from_pretrained(result.spaces["unified"]).encoders == ["clip", "clap"]
