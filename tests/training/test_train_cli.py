"""scripts/train.py end to end on small feature folders: real files in, real spaces out."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cmcr.data.features import FeatureMemory
from cmcr.evaluation.synthetic import WorldSpec, make_world
from cmcr.models.space import UnifiedSpace
from tests.paths import REPO

ROOT = REPO
SCRIPT = ROOT / "scripts" / "train.py"
QUICK = ["--set", "epochs=2", "--set", "hidden=32", "--set", "batch_size=128",
         "--set", "device=cpu"]
pytestmark = pytest.mark.slow  # each test starts a Python with torch: 5-15 s on 2 shared cores
WORLD = WorldSpec(latent_dim=8, dim=32, hidden=32, n_concepts=16, n_overlap=600, n_p=500,
                  n_q=400, n_test=10)


def _random_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _feature_folder(root: Path, with_ulip: bool) -> Path:
    """CLAP connection from the synthetic world; ULIP files (plumbing only) when asked."""
    mem, _, _ = make_world(WORLD)
    memory = FeatureMemory(root)
    memory.write("text", "clip", mem.o_x)
    memory.write("text", "clap", mem.o_y)
    memory.write("image", "clip", mem.p)
    memory.write("audio", "clap", mem.q.astype(np.float16))
    if with_ulip:
        memory.write("image", "ulip", _random_rows(len(mem.p), WORLD.dim, 1))
        memory.write("points", "ulip", _random_rows(300, WORLD.dim, 2))
    return root


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_ex_mcr_trains_the_clap_connection_into_one_space(tmp_path):
    features = _feature_folder(tmp_path / "features", with_ulip=False)
    out = tmp_path / "space"
    done = _run("--features", str(features), "--output", str(out), *QUICK)
    assert done.returncode == 0, done.stderr
    space = UnifiedSpace.from_pretrained(out)
    assert space.method == "ex-mcr" and space.base == "clip"
    assert space.encoders == ["clip", "clap"]
    audio = np.load(features / "audio" / "clap.npy")[:5].astype(np.float32)
    projected = space.project(encoder="clap", modality="audio", features=audio)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    report = json.loads((out / "training.json").read_text())
    assert list(report) == ["clap→clip"]
    assert len(report["clap→clip"]["history"]["loss"]) == 2
    assert space.config["hyperparameters"]["epochs"] == 2
    assert (out / "curve-clap-clip.png").read_bytes()[:4] == b"\x89PNG"


def _load_script():
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_connections_give_two_c_mcr_spaces_or_one_ex_mcr_space(tmp_path):
    train_script = _load_script()
    features = _feature_folder(tmp_path / "features", with_ulip=True)
    out = tmp_path / "spaces"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses: a shared CPU punishes OpenMP spinning
    try:
        for method in ("c-mcr", "ex-mcr"):
            argv = ["--features", str(features), "--output", str(out / method), "--method",
                    method, *QUICK]
            assert train_script.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    unified = UnifiedSpace.from_pretrained(out / "ex-mcr")
    assert unified.encoders == ["clip", "clap", "ulip"]
    points = np.load(features / "points" / "ulip.npy")[:3]
    assert unified.project(encoder="ulip", modality="points", features=points).shape == (3, 32)
    out = out / "c-mcr"
    for folder, encoders in (("clap-clip", {"clip", "clap"}), ("ulip-clip", {"clip", "ulip"})):
        space = UnifiedSpace.from_pretrained(out / folder)
        assert space.method == "c-mcr" and set(space.encoders) == encoders
        assert (out / folder / f"curve-{folder}.png").is_file()


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "audio/clap.npy"),
    ("missing", "holds no complete connection"),
    ("bad option", "unknown training option"),
])
def test_malformed_input_ends_with_a_message_not_a_traceback(tmp_path, damage, message):
    features = tmp_path / "features"
    extra = []
    if damage == "corrupt":
        _feature_folder(features, with_ulip=False)
        (features / "audio" / "clap.npy").write_bytes(b"\x93NUMPY garbage")
    elif damage == "missing":
        FeatureMemory(features).write("text", "clip", _random_rows(10, 8, 0))
    else:
        features.mkdir()
        extra = ["--set", "epoch=3"]
    done = _run("--features", str(features), "--output", str(tmp_path / "out"), *QUICK, *extra)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_that_cannot_be_written_is_refused_before_any_training(tmp_path):
    features = _feature_folder(tmp_path / "features", with_ulip=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = _run("--features", str(features), "--output", str(blocker / "space"), *QUICK)
    assert done.returncode == 2 and "Cannot write to" in done.stderr and "Nothing was computed yet" in done.stderr
    assert "Traceback" not in done.stderr and "held-out" not in done.stdout


def test_a_killed_features_run_resumes_from_its_state_with_the_same_command(tmp_path):
    import signal
    import time

    features = _feature_folder(tmp_path / "features", with_ulip=False)
    long = ["--set", "epochs=400", "--set", "patience=400", "--set", "hidden=32", "--set", "batch_size=128",
            "--set", "device=cpu"]
    out = tmp_path / "space"
    command = [sys.executable, str(SCRIPT), "--features", str(features), "--output", str(out), *long]
    state = tmp_path / ".space.train-state" / "clap→clip" / "state.pt"
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not state.is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed: give it more epochs"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved_epoch = torch.load(state, weights_only=True)["run"]["epoch"]
    assert 0 < saved_epoch < 400 and not out.exists()

    resumed = _run("--features", str(features), "--output", str(out), *long)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming clap→clip from" in resumed.stdout
    history = json.loads((out / "training.json").read_text())["clap→clip"]["history"]
    assert len(history["loss"]) == 400 and not state.parent.parent.exists()  # state removed once written
