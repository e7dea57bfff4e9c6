"""Image loading: every format and mode decoded back upright in RGB; bad input refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cmcr import InputError
from cmcr.data.media import load_image
from tests.fixtures.media import (
    PATTERN_GREY,
    PATTERN_RED,
    PATTERN_SIZE,
    make_image_file,
)


def quadrant_means(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of the top-left quadrant and of the bottom-right quadrant."""
    pixels = np.asarray(image, dtype=np.float64)
    height, width = pixels.shape[:2]
    top_left = pixels[: height // 2 - 2, : width // 2 - 2].reshape(-1, 3).mean(axis=0)
    bottom_right = pixels[height // 2 + 2 :, width // 2 + 2 :].reshape(-1, 3).mean(axis=0)
    return top_left, bottom_right


def assert_pattern(image: Image.Image, *, colour: bool = True) -> None:
    assert image.mode == "RGB" and image.size == PATTERN_SIZE
    top_left, bottom_right = quadrant_means(image)
    assert np.allclose(bottom_right, PATTERN_GREY, atol=12)
    if colour:
        assert np.allclose(top_left, PATTERN_RED, atol=25)
    else:  # grey modes keep the red quadrant as a distinct, darker grey
        assert abs(top_left[0] - bottom_right[0]) > 20 and np.ptp(top_left) < 3


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "gif", "tiff"])
def test_every_format_decodes_to_the_pattern(tmp_path, fmt):
    assert_pattern(load_image(make_image_file(tmp_path, fmt=fmt)))


@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_exif_orientation_is_applied(tmp_path, fmt, orientation):
    path = make_image_file(tmp_path, fmt=fmt, exif_orientation=orientation)
    with Image.open(path) as stored:
        stored_size = stored.size
        assert stored.getexif().get(0x0112) == orientation
    if fmt != "tiff":  # Pillow reports a TIFF's size already oriented
        assert stored_size == (PATTERN_SIZE if orientation in (2, 3) else PATTERN_SIZE[::-1])
    image = load_image(path)
    assert_pattern(image)
    assert "exif" not in image.info


@pytest.mark.parametrize(
    ("mode", "fmt", "colour"),
    [
        ("L", "png", False),
        ("1", "png", False),
        ("P", "gif", True),
        ("CMYK", "jpeg", True),
        ("CMYK", "tiff", True),
        ("I;16", "png", False),
        ("I;16", "tiff", False),
        ("I", "tiff", False),
        ("F", "tiff", False),
    ],
)
def test_modes_become_rgb_with_their_content(tmp_path, mode, fmt, colour):
    path = make_image_file(tmp_path, fmt=fmt, mode=mode)
    with Image.open(path) as stored:
        assert stored.mode.startswith(mode.split(";")[0])
    image = load_image(path)
    if mode == "1":  # dithered: only the bright background survives as mean > red's grey
        top_left, bottom_right = quadrant_means(image)
        assert image.mode == "RGB" and top_left[0] < bottom_right[0]
    else:
        assert_pattern(image, colour=colour)


@pytest.mark.parametrize(("mode", "fmt"), [("RGBA", "png"), ("LA", "png"), ("RGBA", "webp")])
def test_transparency_is_composited_on_white(tmp_path, mode, fmt):
    image = load_image(make_image_file(tmp_path, fmt=fmt, mode=mode))
    pixels = np.asarray(image)
    width = pixels.shape[1]
    assert image.mode == "RGB"
    assert np.all(pixels[:, : width // 2 - 1] >= 250)  # the transparent left half
    assert np.allclose(pixels[-1, -1], PATTERN_GREY, atol=3)


def test_palette_with_transparent_colour_is_composited_on_white(tmp_path):
    image = Image.new("P", (20, 10), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (10, 0, 20, 10))
    path = tmp_path / "transparent.png"
    image.save(path, transparency=0)
    pixels = np.asarray(load_image(path))
    assert np.all(pixels[:, :10] == 255) and np.all(pixels[:, 10:] == [255, 0, 0])


@pytest.mark.parametrize("fmt", ["gif", "webp", "tiff"])
def test_animations_give_their_first_frame(tmp_path, fmt):
    path = make_image_file(tmp_path, fmt=fmt, frames=3)
    with Image.open(path) as stored:
        assert getattr(stored, "n_frames", 1) == 3
    assert_pattern(load_image(path))


@pytest.mark.parametrize("as_kind", ["bytes", "file object"])
def test_bytes_and_file_objects(tmp_path, as_kind):
    data = make_image_file(tmp_path, fmt="webp").read_bytes()
    assert_pattern(load_image(data if as_kind == "bytes" else io.BytesIO(data)))


def test_oversized_images_are_refused_from_the_header(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 2000)).save(path)
    with pytest.raises(InputError, match="3000x2000 pixels"):
        load_image(path, max_pixels=1_000_000)


def test_pillow_decompression_bomb_becomes_input_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = make_image_file(tmp_path, fmt="png")
    with pytest.raises(InputError, match="too large"):
        load_image(path)


def test_truncated_file_is_refused(tmp_path):
    data = make_image_file(tmp_path, fmt="jpeg", size=(256, 256)).read_bytes()
    with pytest.raises(InputError, match="truncated or damaged"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"just some text", "not a recognised image"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a recognised image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image"),
    ],
)
def test_bad_bytes_are_refused_with_a_message(payload, message):
    with pytest.raises(InputError, match=message):
        load_image(payload)


def test_byte_limit(tmp_path):
    with pytest.raises(InputError, match="limit"):
        load_image(make_image_file(tmp_path, fmt="bmp"), max_bytes=100)


@pytest.mark.parametrize("orientation", [1, 6])
def test_min_side_decodes_jpeg_smaller_but_never_below_it(tmp_path, orientation):
    path = make_image_file(tmp_path, fmt="jpeg", size=(640, 480), exif_orientation=orientation)
    image = load_image(path, min_side=100)  # the pattern is 640 x 480 once upright
    assert min(image.size) >= 100 and max(image.size) < 640
    assert image.size[0] / image.size[1] == pytest.approx(640 / 480, rel=0.01)
    top_left, bottom_right = quadrant_means(image)
    assert np.allclose(top_left, PATTERN_RED, atol=25)
    assert np.allclose(bottom_right, PATTERN_GREY, atol=12)
    png = make_image_file(tmp_path, fmt="png", size=(640, 480))
    assert load_image(png, min_side=100).size == (640, 480)  # only JPEG has a cheap reduced decode
