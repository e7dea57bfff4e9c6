"""The 3D preview is a small glb that trimesh (and so gr.Model3D) reads back as the same shape."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from cmcr.data.media import load_points, points_to_preview
from cmcr.data.media.preview import PREVIEW_POINTS
from tests.fixtures.media import make_mesh_file, random_cloud


def test_cloud_preview_is_a_coloured_glb_of_the_shape(tmp_path):
    path = points_to_preview(random_cloud(5000), tmp_path / "previews" / "cloud.glb")
    assert path.read_bytes()[:4] == b"glTF" and path.stat().st_size < 600_000
    mesh = trimesh.load(path, force="mesh")
    assert len(mesh.faces) == 8 * PREVIEW_POINTS
    colours = mesh.visual.vertex_colors[:, :3].astype(int)
    assert len(np.unique(colours, axis=0)) > 100  # coloured by height, not flat
    size = mesh.bounds[1] - mesh.bounds[0]
    assert np.argmax(size) == 0 and np.argmin(size) == 2  # the 3 x 2 x 1 ellipsoid survives


def test_small_clouds_keep_every_point(tmp_path):
    mesh = trimesh.load(points_to_preview(random_cloud(50), tmp_path / "small.glb"), force="mesh")
    assert len(mesh.faces) == 8 * 50


@pytest.mark.parametrize("fmt", ["stl", "glb"])
def test_files_are_previewed_through_load_points(tmp_path, fmt):
    preview_path = points_to_preview(
        make_mesh_file(tmp_path, fmt=fmt), tmp_path / "mesh.glb", max_points=300
    )
    assert len(trimesh.load(preview_path, force="mesh").faces) == 8 * 300
    cloud = load_points(preview_path, num_points=2000)  # previews are valid uploads too
    size = cloud.max(axis=0) - cloud.min(axis=0)
    expected_long_axis = 1 if fmt == "glb" else 0  # the glb scene stands the box up
    assert np.argmax(size) == expected_long_axis
