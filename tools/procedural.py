"""The default gallery, generated: 3D shapes from primitives, drawn images, synthesised sounds.

The app needs examples and a gallery that work offline and that we are free to ship, so we make
them from code. Every asset is a pure function of its name: generating twice gives the same
bytes (seeded randomness, no timestamps), so `assets/` can be checked against a fresh build.

Shapes are authored Z-up (trimesh's primitives are) and turned Y-up on export, the convention
`cmcr.data.media.load_points` and glTF share.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw

SAMPLE_RATE = 48000
IMAGE_SIZE = 256
_SECTIONS = 24
_Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


@dataclass(frozen=True)
class AssetSpec:
    """One generated asset: `build()` returns the file's bytes."""

    id: str
    modality: str
    suffix: str
    caption: str
    build: Callable[[], bytes]

    @property
    def file(self) -> str:
        folder = {"points": "shapes", "image": "images", "audio": "sounds"}[self.modality]
        return f"{folder}/{self.id}{self.suffix}"


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


# ---- 3D shapes --------------------------------------------------------------------------------


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


def _shape_bytes(name: str) -> bytes:
    return shape_mesh(name).export(file_type="glb")


# ---- images -----------------------------------------------------------------------------------


def _canvas(top, bottom) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A vertical gradient background."""
    blend = np.linspace(0.0, 1.0, IMAGE_SIZE)[:, None, None]
    pixels = (1 - blend) * np.array(top) + blend * np.array(bottom)
    rows = np.broadcast_to(pixels, (IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(rows), "RGB")
    return image, ImageDraw.Draw(image)


def _sunset(draw):
    draw.ellipse((88, 120, 168, 200), fill=(255, 190, 60))
    draw.rectangle((0, 170, 256, 256), fill=(40, 50, 110))
    for y in range(178, 250, 12):
        draw.line((100, y, 156, y), fill=(250, 160, 70), width=3)


def _beach(draw):
    draw.rectangle((0, 150, 256, 256), fill=(235, 210, 150))
    for k, top in enumerate((110, 128, 146)):
        xs = np.arange(0, 257, 8)
        wave = [(int(x), int(top + 6 * np.sin(x / 18 + k))) for x in xs]
        draw.polygon([*wave, (256, top + 20), (0, top + 20)], fill=(30 + 40 * k, 120 + 30 * k, 200))
    draw.ellipse((190, 20, 230, 60), fill=(255, 240, 120))


def _clock(draw):
    draw.ellipse((38, 38, 218, 218), fill=(250, 250, 245), outline=(30, 30, 30), width=8)
    for hour in range(12):
        angle = hour * np.pi / 6
        inner, outer = 70, 82
        draw.line((128 + inner * np.sin(angle), 128 - inner * np.cos(angle),
                   128 + outer * np.sin(angle), 128 - outer * np.cos(angle)), fill=(30, 30, 30), width=5)
    draw.line((128, 128, 128, 70), fill=(20, 20, 20), width=7)
    draw.line((128, 128, 172, 128), fill=(20, 20, 20), width=5)


def _dog(draw):
    dark = (45, 35, 30)
    draw.ellipse((70, 110, 180, 165), fill=dark)
    draw.ellipse((160, 80, 205, 125), fill=dark)
    draw.polygon([(195, 100), (230, 110), (198, 118)], fill=dark)
    draw.polygon([(166, 88), (156, 122), (170, 124), (180, 90)], fill=(25, 18, 15))
    for x in (80, 100, 150, 168):
        draw.rectangle((x, 150, x + 10, 205), fill=dark)
    draw.line((72, 125, 45, 95), fill=dark, width=8)
    draw.rectangle((0, 205, 256, 256), fill=(90, 160, 80))


def _car_image(draw):
    draw.rectangle((0, 190, 256, 256), fill=(90, 90, 95))
    draw.rounded_rectangle((30, 120, 226, 180), radius=14, fill=(200, 30, 35))
    draw.polygon([(75, 120), (100, 85), (170, 85), (195, 120)], fill=(200, 30, 35))
    draw.polygon([(88, 118), (106, 92), (134, 92), (134, 118)], fill=(170, 210, 240))
    draw.polygon([(140, 118), (140, 92), (166, 92), (184, 118)], fill=(170, 210, 240))
    for x in (70, 186):
        draw.ellipse((x - 24, 160, x + 24, 208), fill=(25, 25, 25))
        draw.ellipse((x - 10, 174, x + 10, 194), fill=(160, 160, 165))


def _tree(draw):
    draw.rectangle((0, 210, 256, 256), fill=(80, 150, 70))
    draw.rectangle((116, 140, 140, 215), fill=(110, 70, 40))
    for box in ((60, 50, 150, 140), (106, 40, 196, 130), (80, 90, 176, 170)):
        draw.ellipse(box, fill=(40, 130, 50))


def _rain(draw):
    rng = _rng("rain-image")
    for cx in (50, 110, 170, 220):
        draw.ellipse((cx - 45, 15, cx + 45, 75), fill=(120, 125, 135))
    for x, y in rng.integers(0, 256, size=(90, 2)):
        if y > 60:
            draw.line((x, y, x - 4, y + 14), fill=(170, 190, 230), width=2)
    draw.rectangle((0, 236, 256, 256), fill=(60, 65, 80))


def _bird(draw):
    draw.line((0, 170, 256, 150), fill=(100, 70, 40), width=9)
    draw.ellipse((100, 105, 160, 150), fill=(210, 80, 40))
    draw.ellipse((145, 90, 178, 123), fill=(210, 80, 40))
    draw.polygon([(176, 103), (196, 108), (176, 113)], fill=(240, 190, 40))
    draw.ellipse((160, 100, 166, 106), fill=(0, 0, 0))
    draw.polygon([(105, 125), (62, 135), (100, 140)], fill=(160, 60, 30))


def _train(draw):
    draw.rectangle((0, 200, 256, 256), fill=(110, 100, 90))
    for x in range(0, 256, 20):
        draw.rectangle((x, 204, x + 10, 212), fill=(80, 60, 40))
    draw.rectangle((40, 120, 200, 190), fill=(30, 60, 40))
    draw.rectangle((150, 85, 200, 130), fill=(30, 60, 40))
    draw.rectangle((60, 85, 80, 120), fill=(40, 40, 40))
    for radius, cy in ((22, 55), (16, 30)):
        draw.ellipse((70 - radius, cy - radius, 70 + radius, cy + radius), fill=(210, 210, 210))
    for x in (65, 110, 165):
        draw.ellipse((x - 16, 178, x + 16, 210), fill=(20, 20, 20))


def _bell_tower(draw):
    draw.rectangle((0, 220, 256, 256), fill=(100, 150, 80))
    draw.rectangle((90, 80, 166, 222), fill=(200, 190, 170))
    draw.polygon([(80, 82), (128, 20), (176, 82)], fill=(120, 50, 40))
    draw.rectangle((108, 100, 148, 150), fill=(40, 35, 30))
    draw.polygon([(116, 112), (140, 112), (146, 140), (110, 140)], fill=(210, 170, 40))
    draw.rectangle((114, 180, 142, 222), fill=(90, 60, 40))


def _airplane_image(draw):
    white = (245, 245, 250)
    draw.ellipse((40, 115, 220, 140), fill=white)
    draw.polygon([(110, 128), (150, 128), (100, 200), (85, 200)], fill=white)
    draw.polygon([(110, 126), (150, 126), (100, 60), (85, 60)], fill=white)
    draw.polygon([(48, 127), (62, 127), (45, 95), (36, 95)], fill=white)


def _coffee(draw):
    draw.rectangle((0, 190, 256, 256), fill=(120, 80, 50))
    draw.rectangle((70, 90, 170, 200), fill=(240, 240, 235))
    draw.ellipse((70, 80, 170, 100), fill=(90, 55, 30))
    draw.arc((150, 110, 205, 170), -90, 90, fill=(240, 240, 235), width=12)
    for x in (95, 120, 145):
        draw.arc((x - 10, 30, x + 10, 75), 90, 270, fill=(200, 200, 200), width=3)


IMAGES: dict[str, tuple[str, tuple, tuple, Callable]] = {
    "sunset": ("a sunset over the sea", (250, 120, 60), (120, 60, 120), _sunset),
    "beach": ("a sandy beach with waves", (120, 190, 240), (200, 230, 250), _beach),
    "clock": ("a wall clock", (200, 190, 170), (150, 140, 120), _clock),
    "dog": ("the silhouette of a dog", (180, 210, 240), (230, 240, 250), _dog),
    "car": ("a red car on a road", (150, 200, 240), (220, 235, 250), _car_image),
    "tree": ("a green tree in a meadow", (140, 200, 250), (210, 235, 250), _tree),
    "rain": ("rain falling from grey clouds", (90, 95, 110), (140, 145, 160), _rain),
    "bird": ("a small bird on a branch", (170, 220, 250), (230, 245, 255), _bird),
    "train": ("a steam train on railway tracks", (160, 190, 220), (220, 225, 230), _train),
    "bell_tower": ("a church bell tower", (130, 180, 240), (210, 230, 250), _bell_tower),
    "airplane": ("an airplane flying in the blue sky", (40, 110, 220), (150, 200, 250), _airplane_image),
    "coffee": ("a cup of hot coffee", (230, 215, 190), (200, 180, 150), _coffee),
}


def image_picture(name: str) -> Image.Image:
    _, top, bottom, painter = IMAGES[name]
    image, draw = _canvas(top, bottom)
    painter(draw)
    return image


def _image_bytes(name: str) -> bytes:
    buffer = io.BytesIO()
    image_picture(name).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---- sounds -----------------------------------------------------------------------------------


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _smoothed_noise(rng, count: int, width: int) -> np.ndarray:
    kernel = np.hanning(width)
    return np.convolve(rng.standard_normal(count), kernel / kernel.sum(), mode="same")


def _envelope_hits(t, starts, decay) -> np.ndarray:
    envelope = np.zeros_like(t)
    for start in starts:
        after = t - start
        envelope += np.where(after >= 0, np.exp(-np.clip(after, 0, None) / decay), 0.0)
    return envelope


def _rain_sound(rng):
    t = _time(3.0)
    hiss = rng.standard_normal(t.size) - _smoothed_noise(rng, t.size, 9)
    drops = _envelope_hits(t, rng.uniform(0, 3, 60), 0.004) * rng.standard_normal(t.size)
    return 0.25 * hiss + 0.6 * drops


def _bell(rng):
    t = _time(3.0)
    partials = [(0.5, 1.0), (1.0, 0.8), (1.19, 0.5), (1.5, 0.4), (2.0, 0.3), (2.74, 0.2)]
    tone = sum(a * np.sin(2 * np.pi * 440 * r * t) * np.exp(-t * (1.2 + r)) for r, a in partials)
    return tone


def _siren(rng):
    t = _time(3.0)
    frequency = 900 + 350 * np.sin(2 * np.pi * 0.8 * t)
    phase = 2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def _dog_bark(rng):
    t = _time(2.5)
    bark = np.zeros_like(t)
    for start in (0.2, 0.55, 1.4, 1.75):
        after = t - start
        active = (after >= 0) & (after < 0.18)
        pitch = 2 * np.pi * np.cumsum(np.where(active, 520 - 900 * after, 0)) / SAMPLE_RATE
        burst = (np.sin(pitch) + 0.5 * np.sign(np.sin(2 * pitch)) + 0.3 * rng.standard_normal(t.size))
        bark += np.where(active, burst * np.sin(np.pi * np.clip(after / 0.18, 0, 1)), 0)
    return bark


def _engine(rng):
    t = _time(3.0)
    rumble = sum(np.sin(2 * np.pi * 38 * h * t + h) / h for h in range(1, 9))
    return rumble * (1 + 0.3 * np.sin(2 * np.pi * 7 * t)) + 0.2 * _smoothed_noise(rng, t.size, 30)


def _birdsong(rng):
    t = _time(2.5)
    song = np.zeros_like(t)
    for start in np.sort(rng.uniform(0, 2.3, 12)):
        after = t - start
        active = (after >= 0) & (after < 0.09)
        sweep = 3000 + 2500 * np.sin(2 * np.pi * 11 * after)
        phase = 2 * np.pi * np.cumsum(np.where(active, sweep, 0)) / SAMPLE_RATE
        song += np.where(active, np.sin(phase) * np.sin(np.pi * np.clip(after / 0.09, 0, 1)), 0)
    return song


def _drums(rng):
    t = _time(3.0)
    beat = 60 / 120
    kicks = np.arange(0, 3, beat)
    kick = sum(np.where(t >= s, np.sin(2 * np.pi * 55 * (t - s)) * np.exp(-(t - s) / 0.12), 0) for s in kicks)
    snare = _envelope_hits(t, kicks + beat / 2, 0.05) * rng.standard_normal(t.size)
    hats = _envelope_hits(t, np.arange(0, 3, beat / 2), 0.01) * rng.standard_normal(t.size)
    return kick + 0.6 * snare + 0.25 * hats


def _applause(rng):
    t = _time(3.0)
    claps = _envelope_hits(t, rng.uniform(0, 3, 400), 0.006) * rng.standard_normal(t.size)
    return claps * np.minimum(1.0, np.minimum(t / 0.3, (3.0 - t) / 0.5))


def _train_horn(rng):
    t = _time(3.0)
    chord = sum(np.sign(np.sin(2 * np.pi * f * t)) * 0.3 + np.sin(2 * np.pi * f * t)
                for f in (277.0, 330.0, 415.0))
    return chord * np.minimum(1.0, np.minimum(t / 0.1, (2.6 - t) / 0.2)).clip(0, 1)


def _clock_ticks(rng):
    t = _time(2.5)
    ticks = np.arange(0.1, 2.5, 0.5)
    tocks = ticks + 0.25
    click = np.sin(2 * np.pi * 3200 * t) + 0.5 * rng.standard_normal(t.size)
    return _envelope_hits(t, ticks, 0.003) * click + 0.7 * _envelope_hits(t, tocks, 0.003) * click


SOUNDS: dict[str, tuple[str, Callable]] = {
    "rain": ("the sound of heavy rain", _rain_sound),
    "church_bell": ("a church bell ringing", _bell),
    "siren": ("an ambulance siren", _siren),
    "dog_bark": ("a dog barking", _dog_bark),
    "car_engine": ("a car engine idling", _engine),
    "birdsong": ("birds chirping", _birdsong),
    "drums": ("a drum beat", _drums),
    "applause": ("an audience applauding", _applause),
    "train_horn": ("a train horn", _train_horn),
    "clock_ticking": ("a clock ticking", _clock_ticks),
}


def sound_wave(name: str) -> np.ndarray:
    """The named sound as float32 mono at 48 kHz, peak 0.8."""
    wave = np.asarray(SOUNDS[name][1](_rng(name)), dtype=np.float64)
    return (0.8 * wave / np.max(np.abs(wave))).astype(np.float32)


def _sound_bytes(name: str) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, sound_wave(name), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# ---- the collection ---------------------------------------------------------------------------


def asset_specs() -> list[AssetSpec]:
    """Every default asset, shapes first, in a fixed order."""
    specs = [AssetSpec(name, "points", ".glb", caption, lambda n=name: _shape_bytes(n))
             for name, (caption, _) in SHAPES.items()]
    specs += [AssetSpec(name, "image", ".png", caption, lambda n=name: _image_bytes(n))
              for name, (caption, *_) in IMAGES.items()]
    specs += [AssetSpec(name, "audio", ".wav", caption, lambda n=name: _sound_bytes(n))
              for name, (caption, _) in SOUNDS.items()]
    return specs


def make_assets(folder: str | Path, progress: Callable = iter) -> dict:
    """Generate every asset into `folder` with its `manifest.json`; returns the manifest."""
    root = Path(folder)
    entries = []
    for spec in progress(asset_specs()):
        target = root / spec.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(spec.build())
        entries.append({"id": f"{spec.modality}-{spec.id}", "modality": spec.modality,
                        "file": spec.file, "caption": spec.caption})
    manifest = {"generator": "tools.procedural", "sample_rate": SAMPLE_RATE, "items": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
