"""The official C-MCR example files decode, and the copies shipped in assets/official/ are faithful
(the comparisons skip where the team's reference folder is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmcr.data.media import decode_audio, load_image, load_points
from tests.fixtures.official import REFERENCE, SAMPLES
from tests.paths import REPO

NAMES = list(SAMPLES)
ASSETS = REPO / "assets" / "official"


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


@pytest.mark.parametrize("name", NAMES)
def test_shipped_samples_are_the_official_ones(reference, name):
    for suffix in ("jpeg", "wav"):
        assert (ASSETS / f"{name}.{suffix}").read_bytes() == (reference / f"{name}.{suffix}").read_bytes()
    shipped = np.load(ASSETS / f"{name}.npy")  # a plain array: no pickle allowed
    np.testing.assert_array_equal(shipped, np.load(reference / f"{name}.npy", allow_pickle=True).item()["xyz"])
    assert shipped.dtype == np.float16 and shipped.shape == (10000, 3)


def test_shipped_samples_carry_their_credit():
    notice = (ASSETS / "NOTICE.md").read_text()
    assert "CC BY 4.0" in notice and "MCR-PEFT/C-MCR" in notice and "038dec166e6f7a1900b383040f9265c05cf8dcfd" in notice
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    assert manifest["license"] == "CC-BY-4.0" and "C-MCR authors" in manifest["credit"]
    files = {item["file"] for item in manifest["items"]}
    assert files == {f"{name}.{suffix}" for name in NAMES for suffix in ("jpeg", "wav", "npy")}
    assert all((ASSETS / file).is_file() for file in files)
