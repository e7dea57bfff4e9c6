"""Image files and bytes -> an upright RGB `PIL.Image.Image`.

Accepted: JPEG (incl. the MPO variant phones write), PNG, WebP, BMP, GIF, TIFF. Only those Pillow
plugins are ever tried, so a crafted upload cannot reach exotic decoders (EPS would start
Ghostscript). The format is sniffed by Pillow from the content; a name only words messages.

- Size: files over `max_bytes` are refused unread; images over `max_pixels` are refused from the
  header before pixels are decoded. Pillow's own bomb guard (an error at 2x its MAX_IMAGE_PIXELS)
  becomes an InputError; its warning level (1x, ~89 MP) lies above our default `max_pixels`, so
  such images are always refused by our check, without touching the process-wide warning filters
  (which are not thread-safe in a server).
- Speed: `min_side` lets JPEG decoding skip detail the encoder would discard (see `load_image`).
- Orientation: the EXIF orientation tag is applied, so a phone photo comes out the way it is seen.
- Animations (GIF, WebP, multi-page TIFF): the first frame.
- Modes: transparency (RGBA, LA, PA, P with a transparent colour) is composited on white, which is
  what a viewer shows; 16-bit and 32-bit integer images are scaled by their bit depth, float images
  by their value range; CMYK, YCbCr, 1-bit and grey become RGB.
- Truncated or corrupt files are refused with a message, never a decoder traceback.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from cmcr.errors import InputError
from cmcr.data.media.source import Source, SourceBytes, decoder_reason, read_source

MAX_BYTES = 50_000_000
MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG also opens MPO
ACCEPTED = "JPEG, PNG, WebP, BMP, GIF or TIFF"

_UNSUPPORTED_MAGIC = {
    b"ftypheic": "HEIC",
    b"ftypheix": "HEIC",
    b"ftypmif1": "HEIF",
    b"ftypavif": "AVIF",
}


def _refuse_unknown(source: SourceBytes) -> InputError:
    name = _UNSUPPORTED_MAGIC.get(source.data[4:12])
    if name:
        return InputError(
            f"{source.label} is a {name} image, which cannot be decoded here. "
            f"Please convert it to {ACCEPTED}."
        )
    return InputError(f"{source.label} is not a recognised image. Accepted: {ACCEPTED}.")


def _open(source: SourceBytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse oversized images before any pixel is decoded."""
    try:
        image = Image.open(io.BytesIO(source.data), formats=ALLOWED_FORMATS)
    except Image.UnidentifiedImageError:
        raise _refuse_unknown(source) from None
    except Image.DecompressionBombError:
        raise _too_many_pixels(source, None, max_pixels) from None
    except Exception as error:  # a damaged header surfaces as many exception types
        raise _damaged(source, error) from None
    width, height = image.size
    if width < 1 or height < 1:
        raise InputError(f"{source.label} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise _too_many_pixels(source, image.size, max_pixels)
    return image


def _too_many_pixels(source: SourceBytes, size: tuple[int, int] | None, limit: int) -> InputError:
    stated = f" is {size[0]}x{size[1]} pixels;" if size else " is too large;"
    return InputError(
        f"{source.label}{stated} images up to {limit / 1e6:.0f} megapixels are accepted. "
        "Please resize it."
    )


def _damaged(source: SourceBytes, error: Exception) -> InputError:
    reason = decoder_reason(error)
    return InputError(
        f"{source.label} could not be decoded ({reason}); the file may be truncated or damaged. "
        f"Accepted: {ACCEPTED}."
    )


def _scaled_to_8bit(image: Image.Image) -> Image.Image:
    """Grey 16/32-bit integer and float images -> "L": by bit depth where the values fit 16 bits
    (or [0, 1] for floats), otherwise by the image's own value range."""
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Image.new("L", image.size, 0)
    low, high = float(finite.min()), float(finite.max())
    nominal_high = 1.0 if image.mode == "F" else 65535.0
    if low >= 0 and high <= nominal_high:
        low, high = 0.0, nominal_high
    if high <= low:
        return Image.new("L", image.size, 0)
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)
    return Image.fromarray(np.round(scaled * 255).astype(np.uint8))  # 2-D uint8 is "L"


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB" as a viewer would show it (transparency on white)."""
    if image.mode == "RGB":
        return image
    if _has_transparency(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":
        return _scaled_to_8bit(image).convert("RGB")
    return image.convert("RGB")


def _decode(image: Image.Image, source: SourceBytes, min_side: int | None) -> Image.Image:
    try:
        image.seek(0)
        if min_side and image.format in ("JPEG", "MPO"):
            image.draft(None, (min_side, min_side))  # DCT scaling: both sides stay >= min_side
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of upright photos
        return to_rgb(image)
    except Exception as error:
        raise _damaged(source, error) from None


def load_image(
    source: Source,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    format: str | None = None,
    min_side: int | None = None,
) -> Image.Image:
    """An upright RGB image for the CLIP/ULIP encoders (contract in docs/architecture.md).

    `min_side`: the caller needs no more than this many pixels on either side (an encoder that
    resizes to 224 px); JPEGs are then decoded at a reduced scale that keeps both sides at least
    that large, which is 2-5x faster for photos. None decodes at full size.
    """
    raw = read_source(source, max_bytes=max_bytes, kind="image", format=format)
    image = _open(raw, max_pixels)
    rgb = _decode(image, raw, min_side)
    rgb.info.pop("exif", None)
    return rgb
