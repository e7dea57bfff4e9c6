"""A light .glb that `gr.Model3D` displays for any point cloud or 3D upload.

Why a mesh of tiny octahedra rather than a point-cloud .ply: Gradio's Model3D treats some .ply
files as Gaussian splats and draws raw points at one pixel, while a small glb mesh renders the
same in every display mode and browser. Points are coloured by height so the shape reads at a
glance. 2,048 points make a ~400 kB file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from cmcr.data.media.points import load_points, normalise_points
from cmcr.data.media.source import Source

PREVIEW_POINTS = 2048
_OCTAHEDRON_CORNERS = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32
)
_OCTAHEDRON_FACES = np.array(
    [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
)
_LOW_COLOUR = np.array([40, 70, 200], dtype=np.float32)
_HIGH_COLOUR = np.array([250, 170, 40], dtype=np.float32)


def _height_colours(points: np.ndarray) -> np.ndarray:
    height = points[:, 1]
    span = float(height.max() - height.min()) or 1.0
    mix = ((height - height.min()) / span)[:, None]
    rgb = (1 - mix) * _LOW_COLOUR + mix * _HIGH_COLOUR
    return np.concatenate([rgb, np.full((len(points), 1), 255.0)], axis=1).astype(np.uint8)


def preview_mesh(points: np.ndarray, *, radius: float = 0.015):
    """A trimesh.Trimesh with one small coloured octahedron per point."""
    corners = len(_OCTAHEDRON_CORNERS)
    vertices = (points[:, None, :] + radius * _OCTAHEDRON_CORNERS[None]).reshape(-1, 3)
    offsets = (np.arange(len(points)) * corners)[:, None, None]
    faces = (_OCTAHEDRON_FACES[None] + offsets).reshape(-1, 3)
    colours = np.repeat(_height_colours(points), corners, axis=0)
    return trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=colours, process=False)


def points_to_preview(
    points_or_source: np.ndarray | Source,
    path: str | Path,
    *,
    max_points: int = PREVIEW_POINTS,
) -> Path:
    """Write a preview .glb of a cloud (N, 3) array, or of any file `load_points` accepts, to
    `path` and return it; the gallery stores these next to its index, the app hands them to
    gr.Model3D."""
    if isinstance(points_or_source, np.ndarray):
        cloud = normalise_points(
            points_or_source, num_points=min(max_points, len(points_or_source))
        )
    else:
        cloud = load_points(points_or_source, num_points=max_points)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(preview_mesh(cloud).export(file_type="glb"))
    return path


def preview_bounds(path: str | Path) -> np.ndarray:
    """The (2, 3) axis-aligned bounding box (low corner, high corner) of a preview .glb, so a viewer
    can frame the whole shape."""
    scene = trimesh.load(str(path), force="mesh")
    return np.asarray(scene.bounds, dtype=np.float64)
