"""Functions the sandbox calls by name (`tests.reliability.targets:...`): each writes the fuzzed
bytes where the real code reads them from, calls the real parser, and checks what comes back.

A check that fails raises AssertionError, which the sandbox reports as kind "error" with the
message, like any other unexpected exception.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np


def points_are_sane(data: bytes, fmt: str | None, num_points: int = 256) -> None:
    """load_points gives exactly `num_points` finite rows inside the unit sphere, or InputError."""
    from cmcr.data.media import load_points

    cloud = load_points(data, num_points=num_points, format=fmt)
    assert cloud.shape == (num_points, 3) and cloud.dtype == np.float32, cloud.shape
    assert np.isfinite(cloud).all(), "non-finite output"
    radius = np.linalg.norm(cloud, axis=1).max()
    assert 0.999 <= radius <= 1.0 + 1e-5, f"farthest point at radius {radius}"
    assert np.abs(cloud.mean(axis=0)).max() < 1e-3, f"not centred: {cloud.mean(axis=0)}"


def array_is_normalised(data: bytes, num_points: int = 128) -> None:
    """normalise_points on an in-memory array (a .npy's content): the same guarantees."""
    from cmcr.data.media import normalise_points

    array = np.load(io.BytesIO(data), allow_pickle=False)
    cloud = normalise_points(array, num_points=num_points)
    assert cloud.shape == (num_points, 3) and np.isfinite(cloud).all()
    assert np.linalg.norm(cloud, axis=1).max() <= 1.0 + 1e-5


def audio_is_sane(data: bytes) -> None:
    from cmcr.data.media import decode_audio

    clip = decode_audio(data, max_seconds=2.0)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert np.isfinite(clip.samples).all() and np.abs(clip.samples).max() <= 1.0
    assert clip.seconds <= 2.0 + 1e-3, clip.seconds


def image_is_sane(data: bytes) -> None:
    from cmcr.data.media import load_image

    image = load_image(data)
    assert image.mode == "RGB" and image.width >= 1 and image.height >= 1


def _write_tree(folder: Path, named: tuple) -> None:
    for name, content in zip(named[::2], named[1::2]):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def open_memory(*named: object) -> None:
    """A feature memory made of the given (relative name, bytes) pairs: validate, then read every
    listed array and items file; only InputError may come out."""
    from cmcr.data.features import FeatureMemory
    from cmcr.errors import InputError

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _write_tree(root, named)
        memory = FeatureMemory(root)
        try:
            memory.validate()
        finally:  # whatever validate said, reading must fail cleanly too
            for modality, encoder in (("text", "clip"), ("text", "clap"), ("image", "clip"), ("audio", "clap")):
                if memory.has(modality, encoder):
                    try:
                        array = memory.load(modality, encoder)
                        np.asarray(array[:4], dtype=np.float32)
                        memory.items(modality)
                    except InputError:
                        pass


def parse_train_config(text: bytes, suffix: str) -> None:
    from cmcr.training.config import load_config

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"config{suffix}"
        path.write_bytes(text)
        load_config(path)


def parse_pipeline_config(text: bytes, suffix: str) -> None:
    from cmcr.pipeline.config import load_pipeline_config

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"config{suffix}"
        path.write_bytes(text)
        load_pipeline_config(path)


def load_space(config: bytes, weights: bytes) -> None:
    """A space folder from a Hub repo: config.json + model.safetensors; CheckpointError or a space."""
    from cmcr.models.space import UnifiedSpace

    with tempfile.TemporaryDirectory() as folder:
        _write_tree(Path(folder), ("config.json", config, "model.safetensors", weights))
        UnifiedSpace.from_pretrained(folder)
