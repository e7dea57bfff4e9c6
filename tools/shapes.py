"""The default gallery's 3D shapes: furniture and objects built from trimesh primitives.

Shapes are authored Z-up (trimesh's primitives are) and turned Y-up on export, the convention
`cmcr.data.media.load_points` and glTF share.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

_SECTIONS = 24
_Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


def _placed(mesh: trimesh.Trimesh, at: tuple[float, float, float], colour: tuple[int, int, int]):
    mesh.apply_translation(at)
    mesh.visual.face_colors = [*colour, 255]
    return mesh


def _box(size, at, colour):
    return _placed(trimesh.creation.box(extents=size), at, colour)


def _cylinder(radius, height, at, colour, axis="z"):
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=_SECTIONS)
    if axis != "z":
        direction = [0, 1, 0] if axis == "x" else [1, 0, 0]
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, direction))
    return _placed(mesh, at, colour)


def _revolved(profile, at, colour):
    """A surface of revolution about Z from (radius, height) points."""
    mesh = trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=_SECTIONS)
    return _placed(mesh, at, colour)


def _torus(major, minor, at, colour, axis="z"):
    mesh = trimesh.creation.torus(major, minor, major_sections=_SECTIONS, minor_sections=10)
    if axis == "y":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return _placed(mesh, at, colour)


def _legs(width, depth, height, thickness, colour, inset=0.0):
    xs, ys = width / 2 - inset, depth / 2 - inset
    return [_box((thickness, thickness, height), (sx * xs, sy * ys, height / 2), colour)
            for sx in (-1, 1) for sy in (-1, 1)]


WOOD, DARK, METAL, RED, BLUE, WHITE, GREEN = (
    (150, 100, 60), (60, 50, 45), (170, 170, 180), (200, 40, 40), (50, 90, 190), (235, 235, 230),
    (60, 140, 70))


def _chair():
    return [_box((0.5, 0.5, 0.06), (0, 0, 0.45), WOOD), *_legs(0.5, 0.5, 0.45, 0.05, DARK, 0.03),
            _box((0.5, 0.05, 0.5), (0, -0.225, 0.73), WOOD)]


def _table():
    return [_box((1.2, 0.7, 0.05), (0, 0, 0.75), WOOD), *_legs(1.2, 0.7, 0.73, 0.06, DARK, 0.06)]


def _mug():
    return [_revolved([(0, 0), (0.32, 0), (0.32, 0.7), (0.29, 0.7), (0.29, 0.05), (0, 0.05)],
                      (0, 0, 0), BLUE),
            _torus(0.17, 0.035, (0.4, 0, 0.36), BLUE, axis="y")]


def _lamp():
    return [_cylinder(0.25, 0.05, (0, 0, 0.025), DARK), _cylinder(0.025, 1.2, (0, 0, 0.6), METAL),
            _revolved([(0.35, 0), (0.15, 0.35), (0.14, 0.35), (0.34, 0)], (0, 0, 1.05), WHITE)]


def _car():
    wheels = [_cylinder(0.22, 0.16, (x, y, 0.22), DARK, axis="y")
              for x in (-0.65, 0.65) for y in (-0.45, 0.45)]
    return [_box((2.0, 0.9, 0.4), (0, 0, 0.45), RED), _box((1.0, 0.8, 0.35), (-0.1, 0, 0.82), RED),
            *wheels]


def _airplane():
    return [_cylinder(0.15, 2.4, (0, 0, 0), WHITE, axis="x"),
            _placed(trimesh.creation.cone(0.15, 0.35, sections=_SECTIONS).apply_transform(
                trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])), (1.2, 0, 0), WHITE),
            _box((0.5, 2.6, 0.04), (0.1, 0, 0), METAL), _box((0.3, 0.04, 0.45), (-1.05, 0, 0.3), BLUE),
            _box((0.3, 0.9, 0.03), (-1.05, 0, 0.05), METAL)]


def _bottle():
    return [_revolved([(0, 0), (0.2, 0), (0.2, 0.6), (0.08, 0.8), (0.07, 1.05), (0, 1.05)],
                      (0, 0, 0), GREEN)]


def _guitar():
    return [_cylinder(0.32, 0.12, (0, 0, 0.35), WOOD, axis="y"),
            _cylinder(0.25, 0.12, (0, 0, 0.78), WOOD, axis="y"),
            _box((0.08, 0.06, 0.8), (0, 0, 1.35), DARK), _box((0.12, 0.05, 0.2), (0, 0, 1.85), DARK)]


def _bed():
    return [_box((2.0, 1.4, 0.3), (0, 0, 0.15), WOOD), _box((1.9, 1.35, 0.2), (0.05, 0, 0.4), WHITE),
            _box((0.08, 1.4, 0.9), (-1.0, 0, 0.45), WOOD), _box((0.35, 0.9, 0.12), (-0.75, 0, 0.56), BLUE)]


def _sofa():
    return [_box((2.0, 0.9, 0.45), (0, 0, 0.225), BLUE), _box((2.0, 0.2, 0.5), (0, -0.35, 0.7), BLUE),
            _box((0.2, 0.9, 0.3), (-0.9, 0, 0.6), BLUE), _box((0.2, 0.9, 0.3), (0.9, 0, 0.6), BLUE)]


def _bookshelf():
    panels = [_box((0.04, 0.3, 1.8), (x, 0, 0.9), WOOD) for x in (-0.48, 0.48)]
    shelves = [_box((0.92, 0.3, 0.03), (0, 0, z), WOOD) for z in (0.02, 0.6, 1.2, 1.78)]
    colours = (RED, BLUE, GREEN, DARK)
    books = [_box((0.06, 0.22, 0.3 + 0.05 * (i % 3)), (-0.4 + 0.09 * i, 0, 0.035 + (0.3 + 0.05 * (i % 3)) / 2 + z),
                  colours[i % 4]) for z in (0.0, 0.6) for i in range(8)]
    return [*panels, *shelves, _box((0.96, 0.02, 1.8), (0, -0.15, 0.9), WOOD), *books]


def _cup():
    return [_cylinder(0.45, 0.03, (0, 0, 0.015), WHITE),
            _revolved([(0, 0.03), (0.2, 0.03), (0.32, 0.4), (0.3, 0.4), (0.18, 0.06), (0, 0.06)],
                      (0, 0, 0), WHITE),
            _torus(0.1, 0.025, (0.33, 0, 0.25), WHITE, axis="y")]


def _bowl():
    angles = np.linspace(0, np.pi / 2, 10)
    outer = [(0.5 * np.sin(a), 0.5 - 0.5 * np.cos(a)) for a in angles]
    inner = [(0.46 * np.sin(a), 0.5 - 0.46 * np.cos(a)) for a in angles[::-1]]
    return [_revolved([(0, 0), *outer[1:], *inner[:-1], (0, 0.04)], (0, 0, 0), GREEN)]


def _stool():
    legs = [_cylinder(0.03, 0.65, (0.2 * np.cos(a), 0.2 * np.sin(a), 0.325), DARK)
            for a in np.linspace(0, 2 * np.pi, 3, endpoint=False)]
    return [_cylinder(0.28, 0.06, (0, 0, 0.68), WOOD), *legs]


def _monitor():
    return [_box((0.9, 0.05, 0.55), (0, 0, 0.65), DARK), _box((0.84, 0.06, 0.48), (0, -0.01, 0.65), BLUE),
            _box((0.08, 0.06, 0.35), (0, 0.03, 0.2), METAL), _box((0.35, 0.22, 0.03), (0, 0.03, 0.015), METAL)]


def _bench():
    slats = [_box((1.8, 0.1, 0.04), (0, y, 0.45), WOOD) for y in (-0.15, 0, 0.15)]
    return [*slats, *_legs(1.6, 0.4, 0.43, 0.06, METAL)]


SHAPES: dict[str, tuple[str, Callable[[], list]]] = {
    "chair": ("a wooden chair with four legs and a backrest", _chair),
    "table": ("a wooden dining table", _table),
    "mug": ("a blue coffee mug with a handle", _mug),
    "lamp": ("a floor lamp with a lampshade", _lamp),
    "car": ("a red car with four wheels", _car),
    "airplane": ("an airplane with wings and a tail", _airplane),
    "bottle": ("a green glass bottle", _bottle),
    "guitar": ("an acoustic guitar", _guitar),
    "bed": ("a bed with a pillow and a headboard", _bed),
    "sofa": ("a blue sofa with armrests", _sofa),
    "bookshelf": ("a bookshelf full of books", _bookshelf),
    "cup": ("a teacup on a saucer", _cup),
    "bowl": ("a round bowl", _bowl),
    "stool": ("a three-legged stool", _stool),
    "monitor": ("a computer monitor on a stand", _monitor),
    "bench": ("a park bench", _bench),
}


def shape_mesh(name: str) -> trimesh.Trimesh:
    """The named shape as one coloured mesh, Y up."""
    mesh = trimesh.util.concatenate(SHAPES[name][1]())
    mesh.apply_transform(_Z_UP_TO_Y_UP)
    return mesh


def shape_bytes(name: str) -> bytes:
    return shape_mesh(name).export(file_type="glb")
