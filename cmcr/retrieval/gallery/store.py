"""The `Gallery`: items of any modality embedded into one space, kept in memory until `save`
writes them as a new version folder (`versions`), and searched by inner product (`index`).

Stale version folders and unreferenced previews are removed after each save. One writer at a time
(`writer.gallery_writer` holds that across processes); a save also refuses to replace a version that
another writer saved after this gallery was opened, instead of silently dropping its items.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.atomic import replace_folder, write_bytes, write_text
from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES
from cmcr.retrieval.gallery.index import IndexSettings, saved_searcher
from cmcr.retrieval.gallery.items import GalleryItem, Hit, NewItem
from cmcr.retrieval.gallery.previews import encode_preview
from cmcr.retrieval.gallery.versions import (CURRENT, PREVIEWS, Version, checked_version_name, new_version_name,
                                             read_version, write_version)


class Gallery:
    """Items, their embeddings and previews; exact or approximate inner-product search.

    Build one with `Gallery.create(root, space_id, dim)`, fill it with `add`, persist with
    `save`; reopen with `Gallery.open(root)`. Searching requires the caller to name the space its
    query embeddings come from, so a gallery is never silently searched with another space.
    """

    def __init__(self, root: str | os.PathLike, version: Version, settings: IndexSettings,
                 device: str | None, folder: Path | None = None) -> None:
        self.root = Path(root)
        self._version = version
        self.settings = settings
        self.device = device
        self._searchers: dict[str | None, Any] = {}
        self._folder = folder  # the saved version folder that holds exactly what memory holds
        self._based_on = _live_version(self.root)  # what CURRENT named when this gallery was read

    def _changed(self) -> None:
        self._searchers.clear()
        self._folder = None

    @classmethod
    def create(cls, root: str | os.PathLike, space_id: str, dim: int,
               settings: IndexSettings | None = None, device: str | None = None) -> Gallery:
        """A new empty gallery (nothing is written until `save`); refuses to overwrite one."""
        if cls.exists(root):
            raise InputError(f"A gallery already exists at '{root}'; open it instead.")
        if dim < 1:
            raise InputError(f"Embedding dimension must be positive, got {dim}.")
        return cls(root, Version(space_id, int(dim)), settings or IndexSettings(), device)

    @classmethod
    def open(cls, root: str | os.PathLike, settings: IndexSettings | None = None,
             device: str | None = None) -> Gallery:
        """Load the live version of the gallery at `root`."""
        pointer = Path(root) / CURRENT
        if not pointer.is_file():
            raise InputError(
                f"No gallery at '{root}' (no {CURRENT} file). Build one with scripts/build_gallery.py."
            )
        folder = Path(root) / checked_version_name(pointer.read_text().strip(), str(root))
        return cls(root, read_version(folder), settings or IndexSettings(), device, folder)

    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        return (Path(root) / CURRENT).is_file()

    @classmethod
    def open_or_create(cls, root: str | os.PathLike, space_id: str, dim: int,
                       settings: IndexSettings | None = None, device: str | None = None) -> Gallery:
        if cls.exists(root):
            gallery = cls.open(root, settings, device)
            gallery.check_space(space_id)
            return gallery
        return cls.create(root, space_id, dim, settings, device)

    # ---- contents ---------------------------------------------------------------------------

    @property
    def space_id(self) -> str:
        return self._version.space_id

    @property
    def dim(self) -> int:
        return self._version.dim

    @property
    def items(self) -> list[GalleryItem]:
        return list(self._version.items)

    def __len__(self) -> int:
        return len(self._version.items)

    def embeddings(self) -> np.ndarray:
        """(N, dim) float32 unit rows, row i belonging to `items[i]`."""
        return self._version.matrix()

    def has_hash(self, sha256: str) -> bool:
        return sha256 in self._version.hashes

    def known_hashes(self) -> set[str]:
        return set(self._version.hashes)

    def item(self, item_id: str) -> GalleryItem:
        for item in self._version.items:
            if item.id == item_id:
                return item
        raise InputError(f"The gallery has no item {item_id!r}.")

    def preview_path(self, item: GalleryItem) -> Path | None:
        return None if item.preview is None else self.root / item.preview

    def check_space(self, space_id: str) -> None:
        """Refuse embeddings from another space: their scores against ours mean nothing."""
        if space_id != self.space_id:
            raise InputError(
                f"This gallery was embedded with space {self.space_id!r}, but the active space is "
                f"{space_id!r}. Rebuild the gallery with the active space "
                "(scripts/build_gallery.py --rebuild) or switch back to the space it was built with."
            )

    # ---- changes (in memory until save) -----------------------------------------------------

    def add(self, new_items: Sequence[NewItem], embeddings: np.ndarray) -> list[GalleryItem]:
        """Add items with their embeddings; items whose content hash is already in are skipped.

        Previews are written at once (content-addressed, so an unsaved add leaves at most an
        orphan file that the next save removes).
        """
        matrix = self._validated_rows(embeddings, len(new_items))
        for new_item in new_items:
            _check_modality(new_item.modality)
        seen = set()
        added, rows = [], []
        for new_item, row in zip(new_items, matrix):
            if new_item.sha256 in seen or self.has_hash(new_item.sha256):
                continue
            seen.add(new_item.sha256)
            added.append(GalleryItem(
                id=f"{new_item.modality}-{new_item.sha256[:16]}", modality=new_item.modality,
                source=new_item.source, caption=new_item.caption, sha256=new_item.sha256,
                preview=self._write_preview(new_item)))
            rows.append(row)
        if added:
            self._version.append(added, np.stack(rows))
            self._changed()
        return added

    def reset(self, space_id: str, dim: int) -> list[GalleryItem]:
        """Empty the gallery (in memory) for another space; returns the items it held so that
        they can be embedded again. The folder changes only at the next `save`."""
        held = self.items
        self._version = Version(space_id, int(dim))
        self._changed()
        return held

    def remove(self, ids_or_hashes: Iterable[str]) -> int:
        """Drop items by id or content hash; returns how many were removed."""
        doomed = set(ids_or_hashes)
        keep = [i for i, item in enumerate(self._version.items)
                if item.id not in doomed and item.sha256 not in doomed]
        removed = len(self._version.items) - len(keep)
        if removed:
            self._version.keep(keep)
            self._changed()
        return removed

    def _validated_rows(self, embeddings: np.ndarray, count: int) -> np.ndarray:
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.shape != (count, self.dim):
            raise InputError(f"Expected embeddings of shape ({count}, {self.dim}), got {matrix.shape}.")
        if not np.isfinite(matrix).all():
            raise InputError("Embeddings contain NaN or infinite values.")
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def _write_preview(self, new_item: NewItem) -> str | None:
        encoded = new_item.preview or encode_preview(new_item.modality, new_item.content)
        if encoded is None:
            return None
        data, suffix = encoded
        relative = f"{PREVIEWS}/{new_item.sha256}{suffix}"
        target = self.root / relative
        if not target.exists():
            write_bytes(target, data)
        return relative

    # ---- persistence ------------------------------------------------------------------------

    def save(self) -> None:
        """Write a new version folder, swap `CURRENT` to it, then clear what is no longer live."""
        self.root.mkdir(parents=True, exist_ok=True)
        live = _live_version(self.root)
        if live != self._based_on:
            raise InputError(f"The gallery at '{self.root}' was saved by another writer ({live}) after this one read "
                             f"it ({self._based_on or 'no version yet'}); saving now would drop that writer's items. "
                             "Open it again and repeat the change.")
        name = new_version_name()
        write_version(self.root / name, self._version)
        write_text(self.root / CURRENT, name)
        self._folder = self.root / name
        self._based_on = name
        self._collect_garbage(name)

    def copy_to(self, destination: str | os.PathLike) -> Gallery:
        """A clean copy (live version and its previews only) at a new folder, built next to it
        and renamed into place, so the destination is either absent or complete."""
        target = Path(destination)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise InputError(f"'{target}' already exists and is not empty; choose a new folder.")
        replace_folder(target, self._write_live_version)
        return Gallery.open(target, self.settings, self.device)

    def _write_live_version(self, folder: Path) -> None:
        """The live version and the previews it references, as a whole gallery in `folder`."""
        for preview in {item.preview for item in self._version.items if item.preview}:
            (folder / preview).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / preview, folder / preview)
        name = new_version_name()
        write_version(folder / name, self._version)
        (folder / CURRENT).write_text(name)

    def _collect_garbage(self, live: str) -> None:
        for path in self.root.glob("v-*"):
            if path.name != live:
                shutil.rmtree(path, ignore_errors=True)
        referenced = {item.preview for item in self._version.items if item.preview}
        previews = self.root / PREVIEWS
        if previews.is_dir():
            for path in previews.iterdir():
                if f"{PREVIEWS}/{path.name}" not in referenced:
                    path.unlink(missing_ok=True)

    # ---- search -----------------------------------------------------------------------------

    def search(self, queries: np.ndarray, *, space_id: str, k: int = 10,
               modality: str | None = None) -> list[list[Hit]]:
        """Top-k items for each query row (or a single vector), best first; `modality` filters."""
        self.check_space(space_id)
        matrix = self._query_rows(queries)
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}.")
        rows, searcher = self._searcher(modality)
        scores, local = searcher.search(matrix, min(k, len(rows)))
        return [
            [Hit(self._version.items[rows[j]], float(s), rank + 1)
             for rank, (s, j) in enumerate((s, j) for s, j in zip(srow, lrow) if j >= 0)]
            for srow, lrow in zip(scores, local)
        ]

    def _query_rows(self, queries: np.ndarray) -> np.ndarray:
        matrix = np.asarray(queries, dtype=np.float32)
        matrix = matrix[None, :] if matrix.ndim == 1 else matrix
        if matrix.ndim != 2 or matrix.shape[1] != self.dim or len(matrix) == 0:
            raise InputError(
                f"Query embeddings must have shape (N, {self.dim}) for this gallery, got {np.shape(queries)}."
            )
        if not np.isfinite(matrix).all():
            raise InputError("Query embeddings contain NaN or infinite values.")
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def _rows_of(self, modality: str | None) -> np.ndarray:
        if not self._version.items:
            raise InputError(
                f"The gallery at '{self.root}' has no items yet; add files with scripts/build_gallery.py."
            )
        if modality is None:
            return np.arange(len(self._version.items))
        _check_modality(modality)
        rows = np.array([i for i, item in enumerate(self._version.items) if item.modality == modality])
        if rows.size == 0:
            present = sorted({item.modality for item in self._version.items})
            raise InputError(f"The gallery has no {modality} items (it holds {', '.join(present)}).")
        return rows

    def _searcher(self, modality: str | None) -> tuple[np.ndarray, Any]:
        """The rows of `modality` and an index over them, built on first use and kept until
        the gallery changes."""
        if modality not in self._searchers:
            rows = self._rows_of(modality)
            embeddings = self._version.matrix()[rows]
            searcher = saved_searcher(self._folder, modality or "all", embeddings, self.settings, self.device)
            self._searchers[modality] = rows, searcher
        return self._searchers[modality]


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise InputError(f"Unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}.")


def _live_version(root: Path) -> str | None:
    pointer = root / CURRENT
    return pointer.read_text().strip() if pointer.is_file() else None
