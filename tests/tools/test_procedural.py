"""The generated default assets: manifest, validity through cmcr.data.media, determinism, size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from cmcr.data.media import load_audio, load_image, load_points
from tests.paths import REPO
from tools.drawings import IMAGES
from tools.procedural import make_assets
from tools.shapes import SHAPES
from tools.sounds import SOUNDS

LOADERS = {"points": load_points, "image": load_image, "audio": load_audio}


NOT_GENERATED = "official"  # assets/official/ holds the official C-MCR samples, copied, not generated


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != NOT_GENERATED}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("assets")
    make_assets(folder)
    return folder


def test_manifest_lists_every_generated_file_with_a_caption(generated):
    manifest = json.loads((generated / "manifest.json").read_text())
    items = manifest["items"]
    assert len(items) == len(SHAPES) + len(IMAGES) + len(SOUNDS)
    assert 12 <= len(SHAPES) <= 20 and len(IMAGES) >= 12 and len(SOUNDS) >= 10
    assert len({item["id"] for item in items}) == len(items)
    assert {item["file"] for item in items} == set(_files(generated)) - {"manifest.json"}
    for item in items:
        assert item["caption"].strip() and item["modality"] in LOADERS


def test_every_asset_decodes_through_cmcr_media(generated):
    manifest = json.loads((generated / "manifest.json").read_text())
    for item in manifest["items"]:
        decoded = LOADERS[item["modality"]](generated / item["file"])
        if item["modality"] == "points":
            assert decoded.shape == (8192, 3)
            spread = decoded.max(axis=0) - decoded.min(axis=0)
            assert spread.min() > 0.05, f"{item['id']} is degenerate"
        elif item["modality"] == "image":
            assert decoded.size == (256, 256) and len(set(decoded.getdata())) > 3
        else:
            assert 2.0 <= len(decoded) / 48000 <= 5.0
            assert 0.5 < abs(decoded).max() <= 1.0


def test_generation_is_deterministic_and_small(generated, tmp_path):
    make_assets(tmp_path)
    assert _files(tmp_path) == _files(generated)
    assert sum(len(data) for data in _files(generated).values()) < 4_000_000


def _content(path: Path):
    """What a file holds, independent of encoder versions (zlib levels, glTF writer details)."""
    if path.suffix == ".png":
        return np.asarray(load_image(path))
    if path.suffix == ".glb":
        mesh = trimesh.load(path, force="mesh")
        return np.round(np.asarray(mesh.vertices), 5), np.asarray(mesh.faces)
    return path.read_bytes()


def test_shipped_assets_are_the_current_generator_output(generated):
    shipped = REPO / "assets"
    assert shipped.is_dir(), "assets/ is missing: run python -m tools.make_assets"
    assert set(_files(shipped)) == set(_files(generated)), "assets/ is stale: run python -m tools.make_assets"
    for name in _files(generated):
        expected, actual = _content(generated / name), _content(shipped / name)
        if isinstance(expected, tuple):
            np.testing.assert_allclose(actual[0], expected[0], atol=1e-5, err_msg=name)
            np.testing.assert_array_equal(actual[1], expected[1], err_msg=name)
        elif isinstance(expected, np.ndarray):
            np.testing.assert_array_equal(actual, expected, err_msg=name)
        else:
            assert actual == expected, f"assets/{name} is stale: run python -m tools.make_assets"
