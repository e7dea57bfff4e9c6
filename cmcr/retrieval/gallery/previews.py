"""Previews of gallery items, light enough for a browser to show many at once: JPEG thumbnails,
trimmed WAV excerpts and small GLB models of point clouds. Text items need none."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from cmcr.data.media import points_to_preview
from cmcr.errors import InputError

THUMBNAIL_PIXELS = 256
PREVIEW_AUDIO_SECONDS = 10.0
AUDIO_RATE = 48000


def encode_preview(modality: str, content: Any) -> tuple[bytes, str] | None:
    """Preview bytes and file suffix for decoded content; None when the modality has none."""
    if content is None or modality == "text":
        return None
    if modality == "image":
        return _image_thumbnail(content), ".jpg"
    if modality == "audio":
        return _audio_excerpt(content), ".wav"
    if modality == "points":
        return _points_model(content), ".glb"
    raise InputError(f"No preview is defined for {modality!r} items.")


def _image_thumbnail(image: Any) -> bytes:
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _audio_excerpt(samples: np.ndarray) -> bytes:
    excerpt = np.asarray(samples, dtype=np.float32)[: int(PREVIEW_AUDIO_SECONDS * AUDIO_RATE)]
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(excerpt, -1.0, 1.0), AUDIO_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _points_model(points: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        return points_to_preview(np.asarray(points, dtype=np.float32), Path(scratch) / "p.glb").read_bytes()
