"""A gallery on disk: one folder of versions, the live one named by a pointer file.

    CURRENT              name of the live version folder (replaced atomically: the commit point)
    v-<stamp>/           gallery.json (space, dim, counts), items.sqlite (metadata), embeddings.npy
    previews/            thumbnails, light 3D files and trimmed audio, named by content hash

A save writes a complete new version folder and only then swaps `CURRENT`, so a crash at any
moment leaves either the old gallery or the new one in place, never a mixture. Nothing here is
pickled: metadata is SQLite, embeddings are `.npy` read with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES
from cmcr.retrieval.gallery.items import GalleryItem

FORMAT_VERSION = 1
CURRENT = "CURRENT"
PREVIEWS = "previews"
_VERSION_NAME = re.compile(r"v-[0-9]+-[0-9]+")  # what `new_version_name` gives: v-<time ns>-<pid>
_COLUMNS = ("id", "modality", "source", "caption", "sha256", "preview")


class Version:
    """What one version folder holds, in memory.

    Added rows are kept as a list of blocks and joined only when the matrix is needed, so that
    building a large gallery batch by batch costs linear, not quadratic, copying.
    """

    def __init__(self, space_id: str, dim: int, items: list[GalleryItem] | None = None,
                 embeddings: np.ndarray | None = None) -> None:
        self.space_id = space_id
        self.dim = dim
        self.items = list(items or [])
        self.hashes = {item.sha256 for item in self.items}
        self._blocks = [np.zeros((0, dim), dtype=np.float32) if embeddings is None else embeddings]

    def matrix(self) -> np.ndarray:
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]

    def append(self, items: list[GalleryItem], rows: np.ndarray) -> None:
        self.items.extend(items)
        self.hashes.update(item.sha256 for item in items)
        self._blocks.append(rows)

    def keep(self, rows: list[int]) -> None:
        embeddings = self.matrix()[rows]
        self.items = [self.items[i] for i in rows]
        self.hashes = {item.sha256 for item in self.items}
        self._blocks = [embeddings]


def new_version_name() -> str:
    """A folder name no earlier save (by this or another process) has used."""
    return f"v-{time.time_ns()}-{os.getpid()}"


def checked_version_name(name: str, where: str) -> str:
    """`name` as read from a `CURRENT` file, refused unless it names a version folder (a pointer
    such as '../elsewhere' must never lead outside the gallery)."""
    if not _VERSION_NAME.fullmatch(name):
        raise InputError(f"'{where}' is not a gallery: its {CURRENT} file names {name[:80]!r}, not a version folder.")
    return name


def write_version(folder: Path, version: Version) -> None:
    """A new version folder holding `version`, every file synced before the caller swaps `CURRENT`."""
    folder.mkdir(parents=True)
    counts = {m: sum(item.modality == m for item in version.items) for m in MODALITIES}
    header = {"format": FORMAT_VERSION, "space": version.space_id, "dim": version.dim,
              "count": len(version.items), "modalities": counts}
    (folder / "gallery.json").write_text(json.dumps(header, indent=2))
    np.save(folder / "embeddings.npy", version.matrix(), allow_pickle=False)
    with sqlite3.connect(folder / "items.sqlite") as database:
        database.execute(
            "CREATE TABLE items (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, "
            "modality TEXT NOT NULL, source TEXT NOT NULL, caption TEXT NOT NULL, "
            "sha256 TEXT UNIQUE NOT NULL, preview TEXT)"
        )
        database.executemany(
            f"INSERT INTO items (row, {', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(row, *(getattr(item, c) for c in _COLUMNS)) for row, item in enumerate(version.items)],
        )
    database.close()
    for path in folder.iterdir():
        with open(path, "rb") as stream:
            os.fsync(stream.fileno())


def read_version(folder: Path) -> Version:
    """The version saved in `folder`, checked for damage and for a format this code reads."""
    try:
        header = json.loads((folder / "gallery.json").read_text())
        embeddings = np.load(folder / "embeddings.npy", allow_pickle=False)
        database = sqlite3.connect(f"file:{folder / 'items.sqlite'}?mode=ro", uri=True)
        try:
            rows = database.execute(f"SELECT {', '.join(_COLUMNS)} FROM items ORDER BY row").fetchall()
        finally:
            database.close()
    except (OSError, ValueError, sqlite3.Error) as error:
        raise InputError(f"The gallery version at '{folder}' is damaged: {error}") from None
    if header.get("format") != FORMAT_VERSION:
        raise InputError(f"'{folder}' uses gallery format {header.get('format')}, not {FORMAT_VERSION}.")
    items = [GalleryItem(*row) for row in rows]
    if embeddings.shape != (len(items), header["dim"]):
        raise InputError(
            f"The gallery at '{folder}' is inconsistent: {len(items)} items but embeddings of "
            f"shape {embeddings.shape}."
        )
    return Version(header["space"], header["dim"], items, embeddings.astype(np.float32, copy=False))
