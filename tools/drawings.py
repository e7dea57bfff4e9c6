"""The default gallery's images: scenes drawn with PIL on gradient backgrounds."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from tools.seeds import named_rng

IMAGE_SIZE = 256


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
    rng = named_rng("rain-image")
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


def image_bytes(name: str) -> bytes:
    buffer = io.BytesIO()
    image_picture(name).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
