"""Fuzzing: generated and mutated bytes thrown at every parser; only InputError may come out.

Bounded: 200 examples per parser and strategy, each under a deadline, derandomised so CI runs
are reproducible. Mutations start from real files of every format, which reaches far deeper into
the decoders than random bytes do.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from functools import cache
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmcr import InputError
from cmcr.data.media import load_audio, load_image, load_points
from tests.fixtures.media import (
    make_audio_file,
    make_image_file,
    mesh_bytes,
    points_bytes,
    random_cloud,
)

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAGICS = [
    b"RIFF\x00\x00\x00\x00WAVE",
    b"fLaC",
    b"OggS",
    b"ID3",
    b"\xff\xfb",
    b"FORM\x00\x00\x00\x00AIFF",
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"BM",
    b"GIF89a",
    b"II*\x00",
    b"ply\n",
    b"OFF",
    b"solid ",
    b"glTF",
    b"\x93NUMPY",
    b"PK\x03\x04",
    b"{",
    b"v ",
]


@cache
def valid_samples() -> dict[str, list[bytes]]:
    """One small real file of every format, per parser."""
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        audio = [
            make_audio_file(directory, fmt=fmt, sample_rate=8000, seconds=0.1).read_bytes()
            for fmt in ["wav", "flac", "ogg", "mp3", "aiff"]
        ]
        images = [
            make_image_file(directory, fmt=fmt, size=(16, 12), exif_orientation=6).read_bytes()
            for fmt in ["jpeg", "png", "webp", "bmp", "gif", "tiff"]
        ]
    cloud = random_cloud(40)
    points = [
        mesh_bytes(fmt)
        for fmt in ["ply", "ply_ascii", "obj", "off_modelnet", "stl", "stl_ascii", "glb", "gltf"]
    ]
    points += [points_bytes(fmt, cloud) for fmt in ["xyz", "npy", "npz"]]
    return {"audio": audio, "image": images, "points": points}


def _mutate(data: bytes, patches: list[tuple[int, bytes]], cut: int | None) -> bytes:
    mutable = bytearray(data)
    for position, replacement in patches:
        start = position % len(mutable)
        mutable[start : start + len(replacement)] = replacement
    return bytes(mutable[: cut % (len(mutable) + 1)] if cut is not None else mutable)


def mutated(kind: str) -> st.SearchStrategy[bytes]:
    return st.builds(
        _mutate,
        st.sampled_from(valid_samples()[kind]),
        st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)), max_size=6),
        st.one_of(st.none(), st.integers(0, 1 << 20)),
    )


def garbage() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda magic, tail: magic + tail, st.sampled_from(MAGICS), st.binary(max_size=512)
    )


def only_input_errors(loader, data: bytes, **options) -> None:
    try:
        result = loader(data, **options)
    except InputError as error:
        assert str(error)  # a message a visitor can read
        return
    if isinstance(result, np.ndarray):
        assert np.all(np.isfinite(result))


@FUZZ
@given(data=st.one_of(mutated("audio"), garbage()))
def test_audio_parser_fuzz(data):
    only_input_errors(load_audio, data, max_seconds=1.0)


@FUZZ
@given(data=st.one_of(mutated("image"), garbage()))
def test_image_parser_fuzz(data):
    only_input_errors(load_image, data)


@FUZZ
@given(
    data=st.one_of(mutated("points"), garbage()),
    fmt=st.sampled_from([None, "ply", "obj", "off", "stl", "glb", "gltf", "xyz", "npy", "npz"]),
)
def test_points_parser_fuzz(data, fmt):
    only_input_errors(load_points, data, num_points=64, format=fmt)
