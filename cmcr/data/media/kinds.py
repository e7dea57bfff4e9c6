"""Which file suffixes hold which modality, for folder scans (galleries, extraction sources)."""

from __future__ import annotations

from pathlib import Path

from cmcr.data.media.points import FILE_SUFFIXES as POINT_FILE_SUFFIXES

# Folder scans skip .txt and .csv point clouds: beside media files those are captions (sidecar
# `<stem>.txt`) or metadata far more often than xyz rows; the app and `load_points` still take them.
EXTENSIONS = {
    "image": (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"),
    "audio": (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff"),
    "points": tuple(suffix for suffix in POINT_FILE_SUFFIXES if suffix not in (".txt", ".csv")),
}
_MODALITY_BY_SUFFIX = {suffix: m for m, suffixes in EXTENSIONS.items() for suffix in suffixes}


def modality_of(path: Path) -> str | None:
    """The modality a gallery file holds, by suffix; None for files a gallery does not take."""
    return _MODALITY_BY_SUFFIX.get(path.suffix.lower())
