"""The official C-MCR example files decode (skipped where the reference folder is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmcr import InputError
from cmcr.media import decode_audio, load_image, load_points

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "cmcr-official"
NAMES = ["BBQ", "toilet", "train"]


@pytest.fixture(scope="module")
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference files not found at {REFERENCE} (only on the team's machines)")
    return REFERENCE


@pytest.mark.parametrize("name", NAMES)
def test_reference_audio(reference, name):
    clip = decode_audio(reference / f"{name}.wav")
    assert clip.source_sample_rate == 32000 and clip.sample_rate == 48000
    assert len(clip.samples) == 480000 and clip.samples.dtype == np.float32
    assert 0.01 < np.max(np.abs(clip.samples)) <= 1.0
    assert not any("silent" in warning for warning in clip.warnings)


@pytest.mark.parametrize("name", NAMES)
def test_reference_image(reference, name):
    image = load_image(reference / f"{name}.jpeg")
    assert image.mode == "RGB" and min(image.size) >= 800
    assert np.asarray(image).std() > 10


@pytest.mark.parametrize("name", NAMES)
def test_reference_points_load_without_a_full_unpickler(reference, name):
    path = reference / f"{name}.npy"
    cloud = load_points(path, num_points=10000)
    raw = np.load(path, allow_pickle=True).item()["xyz"].astype(np.float64)  # our own trusted copy
    assert cloud.shape == (10000, 3)
    assert np.max(np.linalg.norm(cloud, axis=1)) == pytest.approx(1.0, abs=1e-5)
    expected = raw - raw.mean(axis=0)
    expected /= np.max(np.linalg.norm(expected, axis=1))
    assert np.allclose(np.sort(cloud, axis=0), np.sort(expected, axis=0), atol=1e-4)
