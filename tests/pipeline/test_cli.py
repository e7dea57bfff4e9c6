"""The commands as a user types them, in fresh processes (slow: each starts Python with torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmcr.data.features import FeatureMemory
from cmcr.models.space import UnifiedSpace
from tests.paths import REPO

ROOT = REPO
pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=400)


def test_torchrun_ranks_split_the_shards_and_rank_zero_merges(sources, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    output = tmp_path / "features"
    done = _run([str(torchrun), "--standalone", "--nproc-per-node", "2", str(ROOT / "scripts" / "extract_features.py"),
                 "--text", str(sources["text"]), "--output", str(output), "--profile", "tiny",
                 "--shard-size", "3", "--device", "cpu"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    embedded = sorted(int(line.split()[0]) for line in done.stdout.splitlines() if "shard(s) embedded" in line)
    assert embedded == [1, 2]  # 3 shards of 8 texts: rank 0 takes shards 0 and 2, rank 1 shard 1
    memory = FeatureMemory(output)
    memory.validate()
    assert memory.load("text", "clap").shape == (8, 512)
    assert [item["text"] for item in memory.items("text")][:2] == ["the sound of a anvil", "a photo of a anvil"]


def test_python_scripts_train_py_profile_tiny_runs_the_whole_loop_offline(tmp_path):
    """Exactly the README's smoke command (plus an output folder), with the shipped tiny config:
    the generated assets/ as data, the default corpus as text, everything on this CPU."""
    done = _run([sys.executable, str(ROOT / "scripts" / "train.py"), "--profile", "tiny", "--output", "run"],
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Tiny profile" in done.stdout and "space saved:" in done.stdout
    space = UnifiedSpace.from_pretrained(tmp_path / "run" / "space")
    assert space.encoders == ["clip", "clap", "ulip"]
    counts = json.loads((tmp_path / "run" / "features" / "manifest.json").read_text())["modalities"]
    assert {m: entry["count"] for m, entry in counts.items()} == {"text": 300, "image": 12, "audio": 10, "points": 16}
    assert "## Evaluation" in (tmp_path / "run" / "space" / "README.md").read_text()
