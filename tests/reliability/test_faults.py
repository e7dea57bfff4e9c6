"""Faults the other test areas do not already inject (see docs/reliability.md for the ones they do:
Hub 5xx/cut downloads/corrupt cache in tests/hub, a gallery process killed mid-save in
tests/gallery, a feature write that fails in tests/core).

- A training process killed with SIGKILL (no exception handler, no atexit, possibly mid-write)
  resumes from its checkpoint and ends with exactly the weights of an uninterrupted run.
- A damaged checkpoint is refused with a message, not a traceback.
- The app starting while the Hub is unreachable comes up in the tiny profile with a banner saying so.
- A trained space fetched through a flaky Hub (503, cut body, corrupted cache) loads identical.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cmcr.errors import HubUnavailableError, InputError
from cmcr.evaluation.synthetic import WorldSpec, make_world
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import train_connection
from tests.fixtures.training import same_weights
from tests.paths import REPO

WORLD = WorldSpec(latent_dim=8, dim=32, hidden=32, n_concepts=16, noise_weight=0.25,
                  n_overlap=600, n_p=600, n_q=600, n_test=50)
CONFIG = TrainConfig(hidden=32, epochs=6, batch_size=64, lr=3e-3, temperature=0.05, val_fraction=0.1,
                     patience=10, agg_chunk_size=300, device="cpu")
TRAINER = f"""
import sys, time, torch
torch.set_num_threads(1)
from cmcr.evaluation.synthetic import WorldSpec, make_world
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import train_connection
from tests.paths import REPO
world = make_world(WorldSpec(**{dataclasses.asdict(WORLD)!r}))[0]
config = TrainConfig(**{dataclasses.asdict(CONFIG)!r})
def report(epoch, history):
    print(epoch, flush=True)
    time.sleep(0.3)  # room for the kill to land between and during epochs
train_connection(world, config, "ex-mcr", state_dir=sys.argv[1], progress=False, on_epoch_end=report)
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    world = make_world(WORLD)[0]
    straight = train_connection(world, CONFIG, "ex-mcr", progress=False)
    state = tmp_path / "state"
    process = subprocess.Popen([sys.executable, "-c", TRAINER, str(state)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    epochs_done = [process.stdout.readline().strip() for _ in range(2)]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert epochs_done == ["0", "1"] and process.returncode == -signal.SIGKILL
    assert (state / "state.pt").is_file()
    resumed = train_connection(world, CONFIG, "ex-mcr", state_dir=state, progress=False)
    assert same_weights(straight, resumed)
    assert resumed.history == straight.history


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2], lambda data: b"\x00" * len(data),
                                    lambda data: b""], ids=["truncated", "zeroed", "empty"])
def test_a_damaged_training_checkpoint_is_refused_with_a_message(tmp_path, damage):
    world = make_world(WORLD)[0]
    config = dataclasses.replace(CONFIG, epochs=1)
    train_connection(world, config, "ex-mcr", state_dir=tmp_path, progress=False)
    checkpoint = tmp_path / "state.pt"
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    with pytest.raises(InputError, match="cannot resume from"):
        train_connection(world, config, "ex-mcr", state_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_the_app_starts_offline_in_the_tiny_profile_and_says_so(offline_hub, monkeypatch):
    from huggingface_hub import constants

    from studio.loading import load_models
    from studio.settings import StudioSettings

    monkeypatch.setattr(constants, "ENDPOINT", offline_hub)
    loaded = load_models(StudioSettings(space="rel/unreachable-space", profile="full", device="cpu"))
    assert loaded.profile == "tiny"
    assert "Offline demo mode" in loaded.notice and "rel/unreachable-space" in loaded.notice
    assert "carry no meaning" in loaded.notice


def test_a_space_through_a_flaky_hub_loads_identical(fake_hub, tmp_path, offline_hub, monkeypatch):
    from huggingface_hub import constants

    from cmcr.models.encoders import build_encoder
    from cmcr.models.space import UnifiedSpace
    from cmcr.models.space import tiny_space

    encoders = {name: build_encoder(name, "tiny", device="cpu") for name in ("clip", "clap", "ulip")}
    space = tiny_space(encoders)
    folder = space.save_pretrained(tmp_path / "space")
    fake_hub.add_repo("rel/flaky-space", folder)
    fake_hub.fail_next(1, 503, method="GET", path="/resolve/")
    fake_hub.cut_next_download(1, after_bytes=200, path="model.safetensors")
    pulled = UnifiedSpace.from_pretrained("rel/flaky-space")
    expected = {k: v for k, v in space.heads.state_dict().items()}
    assert all(torch.equal(expected[k], v) for k, v in pulled.heads.state_dict().items())

    snapshot = next(Path(constants.HF_HUB_CACHE).glob("models--rel--flaky-space/snapshots/*"))
    blob = (snapshot / "model.safetensors").resolve()
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-8] + b"\xff" * 8)
    monkeypatch.setattr(constants, "ENDPOINT", offline_hub)
    with pytest.raises(HubUnavailableError, match="corrupt"):
        UnifiedSpace.from_pretrained("rel/flaky-space")
    monkeypatch.undo()
    again = UnifiedSpace.from_pretrained("rel/flaky-space")
    assert all(torch.equal(expected[k], v) for k, v in again.heads.state_dict().items())
