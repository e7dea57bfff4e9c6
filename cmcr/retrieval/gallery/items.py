"""The records a gallery passes around: its items, items about to be added, the files they are
read from, and search hits. Plain frozen values, so every other gallery module can share them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GalleryItem:
    """Metadata of one gallery item; `preview` is relative to the gallery folder (or None)."""

    id: str
    modality: str
    source: str
    caption: str
    sha256: str
    preview: str | None = None


@dataclass(frozen=True)
class Hit:
    """One search result: the item, its cosine score and its 1-based rank."""

    item: GalleryItem
    score: float
    rank: int


@dataclass(frozen=True)
class NewItem:
    """An item about to be added: where it came from and its decoded content (for previews), or
    its preview already encoded (bytes, suffix) -- `ingest` encodes them on its decoding threads."""

    modality: str
    source: str
    caption: str
    sha256: str
    content: Any = None
    preview: tuple[bytes, str] | None = None


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest, with the modality its suffix names and the caption its item will carry."""

    path: Path
    modality: str
    caption: str
