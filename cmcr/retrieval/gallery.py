"""A gallery: items of any modality embedded into one space, searchable by inner product.

On disk a gallery is a folder:

    CURRENT              name of the live version folder (replaced atomically: the commit point)
    v-<stamp>/           gallery.json (space, dim, counts), items.sqlite (metadata), embeddings.npy
    previews/            thumbnails, light 3D files and trimmed audio, named by content hash

A save writes a complete new version folder and only then swaps `CURRENT`, so a crash at any
moment leaves either the old gallery or the new one in place, never a mixture. Stale version
folders and unreferenced previews are removed after the swap. One writer at a time.

Nothing here is pickled: metadata is SQLite, embeddings are `.npy` read with
`allow_pickle=False`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES
from cmcr.data.media.points import FILE_SUFFIXES as POINT_FILE_SUFFIXES

FORMAT_VERSION = 1
THUMBNAIL_PIXELS = 256
PREVIEW_AUDIO_SECONDS = 10.0
AUDIO_RATE = 48000
log = logging.getLogger(__name__)

_CURRENT = "CURRENT"
_PREVIEWS = "previews"
_VERSION_NAME = re.compile(r"v-[0-9]+-[0-9]+")  # what `save` writes: v-<time ns>-<pid>
_COLUMNS = ("id", "modality", "source", "caption", "sha256", "preview")


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


# ---- search backends --------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSettings:
    """How a gallery is searched.

    Up to `exact_limit` rows, FAISS `IndexFlatIP` (exact). Beyond it, `approximate` picks HNSW
    (no training, good recall, more memory) or IVF (trained coarse quantiser; `ivf_lists` defaults
    to about 4*sqrt(N)). On a CUDA device every search is exact: a torch matrix product and top-k
    over the whole gallery costs less than one FAISS CPU query.
    """

    exact_limit: int = 200_000
    approximate: str = "hnsw"
    hnsw_neighbors: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 80
    ivf_lists: int | None = None
    ivf_probes: int = 16

    def __post_init__(self) -> None:
        if self.approximate not in ("hnsw", "ivf"):
            raise InputError(f"approximate must be 'hnsw' or 'ivf', not {self.approximate!r}.")


class _FaissSearcher:
    def __init__(self, index: Any) -> None:
        self.index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


class _TorchSearcher:
    """Exact search on a GPU: one matrix product and top-k per block of queries."""

    _QUERY_BLOCK = 1024

    def __init__(self, embeddings: np.ndarray, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.matrix = torch.from_numpy(np.ascontiguousarray(embeddings)).to(self.device)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        scores, rows = [], []
        with torch.inference_mode():
            for start in range(0, len(queries), self._QUERY_BLOCK):
                block = torch.from_numpy(queries[start : start + self._QUERY_BLOCK]).to(self.device)
                top = torch.topk(block @ self.matrix.T, k, dim=1)
                scores.append(top.values.cpu().numpy())
                rows.append(top.indices.cpu().numpy())
        return np.concatenate(scores), np.concatenate(rows)


def build_faiss_index(embeddings: np.ndarray, settings: IndexSettings) -> Any:
    """The FAISS inner-product index `settings` asks for at this gallery size."""
    import faiss

    count, dim = embeddings.shape
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    if count <= settings.exact_limit:
        index = faiss.IndexFlatIP(dim)
    elif settings.approximate == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_neighbors, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
    else:
        # FAISS wants about 39 training points per list; more lists than that only hurt recall.
        lists = settings.ivf_lists or max(1, min(int(4 * np.sqrt(count)), count // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(data)
    index.add(data)
    return _with_search_settings(index, settings)


def _with_search_settings(index: Any, settings: IndexSettings) -> Any:
    """Search-time knobs, applied to built and to loaded indexes alike."""
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = settings.hnsw_ef_search
    elif hasattr(index, "nprobe"):
        index.nprobe = min(settings.ivf_probes, index.nlist)
    return index


def load_or_build_index(path: Path, embeddings: np.ndarray, settings: IndexSettings) -> Any:
    """The approximate index over `embeddings`, read from `path` when it holds one that fits, else
    built and written there (atomically) for the next process.

    Building HNSW over 250k rows took 104 s on the 2-core development machine and reading it
    back 0.4 s, so an app serving a large gallery should build it once, not at every start.
    Index files are FAISS's own binary format, not pickles, and travel with nothing this project
    shares: pulls and copies never carry them and pushes leave them out, so a gallery reads only
    the ones it wrote itself unless someone hands over a whole gallery folder.
    """
    import faiss

    if path.is_file():
        try:
            index = faiss.read_index(str(path))
            if index.ntotal == len(embeddings) and index.d == embeddings.shape[1]:
                return _with_search_settings(index, settings)
            reason = f"it holds {index.ntotal} rows of width {index.d}"
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0]
        log.warning("rebuilding the gallery index %s: %s", path, reason)
    index = build_faiss_index(embeddings, settings)
    try:
        _atomic_write(path, lambda temporary: faiss.write_index(index, temporary))
    except (OSError, RuntimeError) as error:  # a read-only folder still searches, only slower to open
        log.info("could not keep the gallery index at %s: %s", path, error)
    return index


def build_searcher(embeddings: np.ndarray, settings: IndexSettings, device: str | None = None) -> Any:
    """A searcher over unit rows: `.search(queries, k) -> (scores, rows)`, rows -1 where empty.

    `device=None` uses the GPU when torch sees one, else FAISS on the CPU; "cpu" forces FAISS.
    """
    device = _search_device(device)
    if device.startswith("cuda"):
        return _TorchSearcher(embeddings, device)
    return _FaissSearcher(build_faiss_index(embeddings, settings))


def _search_device(device: str | None) -> str:
    if device is None:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def index_recall(embeddings: np.ndarray, queries: np.ndarray, settings: IndexSettings,
                 k: int = 10) -> float:
    """Recall@k of the index `settings` builds against exact search: the share of the true
    top-k rows that the index returns (1.0 for an exact index)."""
    exact = build_searcher(embeddings, replace(settings, exact_limit=len(embeddings)), "cpu")
    approximate = build_searcher(embeddings, settings, "cpu")
    _, truth = exact.search(queries, k)
    _, found = approximate.search(queries, k)
    hits = sum(len(set(t) & set(f[f >= 0])) for t, f in zip(truth, found))
    return hits / truth.size


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Content hash of a file, read in blocks so large point clouds do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def space_identity(space: Any, encoders: dict[str, Any] | None = None) -> str:
    """A stable name for what a gallery's embeddings depend on: the space's config and head
    weights (two spaces trained with the same settings still differ) and, when given, the
    encoders' settings (the tiny and full profiles of one space do not mix)."""
    digest = hashlib.sha256(json.dumps(space.config, sort_keys=True, default=str).encode())
    heads = getattr(space, "heads", None)
    if heads is not None:
        for name, tensor in sorted(heads.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    for name, encoder in sorted((encoders or {}).items()):
        digest.update(f"{name}:{_weight_settings(encoder)}".encode())
    return "space-sha256:" + digest.hexdigest()[:16]


# Encoder settings that change how fast or where embeddings are made, not what they are.
_RUNTIME_SETTINGS = {"batch_size", "dtype", "cache_dir", "endpoint"}


def _weight_settings(encoder: Any) -> str:
    config = getattr(encoder, "config", None)
    if not dataclasses.is_dataclass(config):
        return repr(config)
    settings = {key: value for key, value in dataclasses.asdict(config).items() if key not in _RUNTIME_SETTINGS}
    return json.dumps(settings, sort_keys=True, default=str)


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise InputError(f"Unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}.")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda temporary: Path(temporary).write_bytes(data))


def _atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Write a file so that readers see either nothing or all of it: `write` fills a temporary
    file beside `path`, which is synced and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _encode_preview(modality: str, content: Any) -> tuple[bytes, str] | None:
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
    import soundfile

    excerpt = np.asarray(samples, dtype=np.float32)[: int(PREVIEW_AUDIO_SECONDS * AUDIO_RATE)]
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(excerpt, -1.0, 1.0), AUDIO_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _points_model(points: np.ndarray) -> bytes:
    from cmcr.data.media import points_to_preview

    with tempfile.TemporaryDirectory() as scratch:
        return points_to_preview(np.asarray(points, dtype=np.float32), Path(scratch) / "p.glb").read_bytes()


class _Version:
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


def _write_version(folder: Path, version: _Version) -> None:
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


def _read_version(folder: Path) -> _Version:
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
    return _Version(header["space"], header["dim"], items, embeddings.astype(np.float32, copy=False))


class Gallery:
    """Items, their embeddings and previews; exact or approximate inner-product search.

    Build one with `Gallery.create(root, space_id, dim)`, fill it with `add`, persist with
    `save`; reopen with `Gallery.open(root)`. Searching requires the caller to name the space its
    query embeddings come from, so a gallery is never silently searched with another space.
    """

    def __init__(self, root: str | os.PathLike, version: _Version, settings: IndexSettings,
                 device: str | None, folder: Path | None = None) -> None:
        self.root = Path(root)
        self._version = version
        self.settings = settings
        self.device = device
        self._searchers: dict[str | None, Any] = {}
        self._folder = folder  # the saved version folder that holds exactly what memory holds

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
        return cls(root, _Version(space_id, int(dim)), settings or IndexSettings(), device)

    @classmethod
    def open(cls, root: str | os.PathLike, settings: IndexSettings | None = None,
             device: str | None = None) -> Gallery:
        """Load the live version of the gallery at `root`."""
        pointer = Path(root) / _CURRENT
        if not pointer.is_file():
            raise InputError(
                f"No gallery at '{root}' (no {_CURRENT} file). Build one with scripts/build_gallery.py."
            )
        folder = Path(root) / _version_name(pointer.read_text().strip(), str(root))
        return cls(root, _read_version(folder), settings or IndexSettings(), device, folder)

    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        return (Path(root) / _CURRENT).is_file()

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
        self._version = _Version(space_id, int(dim))
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
        encoded = new_item.preview or _encode_preview(new_item.modality, new_item.content)
        if encoded is None:
            return None
        data, suffix = encoded
        relative = f"{_PREVIEWS}/{new_item.sha256}{suffix}"
        target = self.root / relative
        if not target.exists():
            _atomic_write_bytes(target, data)
        return relative

    # ---- persistence ------------------------------------------------------------------------

    def save(self) -> None:
        """Write a new version folder, swap `CURRENT` to it, then clear what is no longer live."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"v-{time.time_ns()}-{os.getpid()}"
        _write_version(self.root / name, self._version)
        _atomic_write_bytes(self.root / _CURRENT, name.encode())
        self._folder = self.root / name
        self._collect_garbage(name)

    def copy_to(self, destination: str | os.PathLike) -> Gallery:
        """A clean copy (live version and its previews only) at a new folder, built next to it
        and renamed into place, so the destination is either absent or complete."""
        target = Path(destination)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise InputError(f"'{target}' already exists and is not empty; choose a new folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for preview in {item.preview for item in self._version.items if item.preview}:
                (staging / preview).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.root / preview, staging / preview)
            name = f"v-{time.time_ns()}-{os.getpid()}"
            _write_version(staging / name, self._version)
            (staging / _CURRENT).write_text(name)
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Gallery.open(target, self.settings, self.device)

    def _collect_garbage(self, live: str) -> None:
        for path in self.root.glob("v-*"):
            if path.name != live:
                shutil.rmtree(path, ignore_errors=True)
        referenced = {item.preview for item in self._version.items if item.preview}
        previews = self.root / _PREVIEWS
        if previews.is_dir():
            for path in previews.iterdir():
                if f"{_PREVIEWS}/{path.name}" not in referenced:
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
            self._searchers[modality] = rows, self._new_searcher(modality, self._version.matrix()[rows])
        return self._searchers[modality]

    def _new_searcher(self, modality: str | None, embeddings: np.ndarray) -> Any:
        """Approximate FAISS indexes of a saved version are kept in its folder; the rest is cheap
        to build (exact FAISS copies the rows, the GPU path just moves them)."""
        saved = self._folder is not None and len(embeddings) > self.settings.exact_limit
        if not saved or _search_device(self.device).startswith("cuda"):
            return build_searcher(embeddings, self.settings, self.device)
        name = f"index-{modality or 'all'}-{_build_fingerprint(self.settings)}.faiss"
        return _FaissSearcher(load_or_build_index(self._folder / name, embeddings, self.settings))


def _build_fingerprint(settings: IndexSettings) -> str:
    """What an index file's content depends on besides the rows (search-time knobs excluded)."""
    built = {key: getattr(settings, key) for key in
             ("exact_limit", "approximate", "hnsw_neighbors", "hnsw_ef_construction", "ivf_lists")}
    return hashlib.sha256(json.dumps(built, sort_keys=True).encode()).hexdigest()[:12]


def push_gallery(root: str | os.PathLike, repo_id: str, *, revision: str | None = None,
                 private: bool = False, endpoint: str | None = None, token: str | None = None) -> str:
    """Upload a saved gallery to a Hub dataset repo; returns the commit URL.

    The repo mirrors the folder: version folders and previews from earlier pushes are deleted in
    the same commit, so repeated pushes do not pile up old embeddings for every pull to download.
    """
    from cmcr.hub import push_folder

    gallery = Gallery.open(root)
    return push_folder(gallery.root, repo_id, private=private, revision=revision, repo_type="dataset",
                       commit_message=f"Upload gallery ({len(gallery)} items)", token=token,
                       endpoint=endpoint, delete_patterns=["v-*", f"{_PREVIEWS}/*"],
                       ignore_patterns=["v-*/index-*.faiss"],  # local caches, never read from a pull
                       retry_command=f"python scripts/build_gallery.py --out {root} --push-to-hub {repo_id}")


def pull_gallery(repo_id: str, destination: str | os.PathLike, *, revision: str | None = None,
                 cache_dir: str | os.PathLike | None = None, endpoint: str | None = None,
                 token: str | None = None) -> Gallery:
    """Download a gallery from a Hub dataset repo into `destination` (a new folder).

    Only the live version is fetched: `CURRENT` first, then its folder and the previews at the
    same commit, so a push landing in between cannot mix two versions.
    """
    from cmcr.hub import download_file, download_snapshot

    hub = {"repo_type": "dataset", "cache_dir": cache_dir, "endpoint": endpoint, "token": token}
    pointer = download_file(repo_id, _CURRENT, revision=revision, **hub)
    version = _version_name(pointer.read_text().strip(), repo_id)
    commit = pointer.parent.name  # the cache keeps files under snapshots/<commit sha>/
    snapshot = download_snapshot(repo_id, revision=commit, allow_patterns=[_CURRENT, f"{version}/*", f"{_PREVIEWS}/*"],
                                 **hub)
    return Gallery.open(snapshot).copy_to(destination)


def _version_name(name: str, where: str) -> str:
    if not _VERSION_NAME.fullmatch(name):
        raise InputError(f"'{where}' is not a gallery: its {_CURRENT} file names {name[:80]!r}, not a version folder.")
    return name


class ItemEmbedder(Protocol):
    """What `ingest` needs: decode a file of a modality, prepare decoded items (model-free work,
    run on the decoding threads) and embed prepared items into a space."""

    space_id: str

    def decode(self, modality: str, path: Path, *, reduced: bool = False) -> Any: ...

    def prepare(self, modality: str, batch: Sequence) -> Sequence: ...

    def embed(self, modality: str, batch: Sequence) -> np.ndarray: ...


@dataclass(frozen=True)
class SourceFile:
    path: Path
    modality: str
    caption: str


@dataclass
class IngestReport:
    """What an ingest did: nothing is dropped silently."""

    added: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Loaded:
    """One source file after the decoding thread: its hash, its encoder input and preview (or why it
    could not be read); none of them when its hash was already in the gallery."""

    source: SourceFile
    sha256: str
    prepared: Any = None
    preview: tuple[bytes, str] | None = None
    error: str | None = None


def _default_workers() -> int:
    """One decoding thread per core: at ~450 JPEG photos/s per core (reduced decode), the DESIGN
    §5 rate of 5,000 images/s needs a dozen of them."""
    return min(32, os.cpu_count() or 1)


def ingest(gallery: Gallery, sources: Sequence[SourceFile], embedder: ItemEmbedder, *,
           batch_size: int = 32, save_every: int = 256, workers: int | None = None,
           reduced_decode: bool = True, progress: Callable[[Iterable], Iterable] = iter) -> IngestReport:
    """Decode, embed and add files, skipping content already in; saves every `save_every` items
    so an interrupted build resumes where it stopped. Unreadable files are reported, not fatal.

    Hashing, decoding and preparation run on `workers` threads (Pillow and the audio and mesh
    decoders release the GIL), a bounded window ahead of the embedding, so they overlap the model
    and each other; 0 runs them in the calling thread. Results are taken in source order, so the
    report and the gallery are the same for any `workers`. `reduced_decode`: JPEGs are decoded
    at the smallest DCT scale the encoder's input size allows (see `SpaceEmbedder.decode`)."""
    gallery.check_space(embedder.space_id)
    report = IngestReport()
    pending: list[tuple[NewItem, Any]] = []
    known = gallery.known_hashes()
    since_save = 0
    load = functools.partial(_load, embedder=embedder, known=frozenset(known), reduced=reduced_decode)
    loaded_stream = _loaded_in_order(sources, load, _default_workers() if workers is None else workers,
                                     2 * batch_size)
    for _, loaded in zip(progress(sources), loaded_stream):  # the bar keeps its total (a len)
        if loaded.sha256 in known:
            report.duplicates += 1
            continue
        if loaded.error is not None:
            report.failed.append((str(loaded.source.path), loaded.error))
            continue
        known.add(loaded.sha256)
        source = loaded.source
        pending.append((NewItem(source.modality, str(source.path), source.caption, loaded.sha256,
                                preview=loaded.preview), loaded.prepared))
        if len(pending) >= batch_size:
            since_save += _embed_and_add(gallery, pending, embedder, report)
            pending = []
            if since_save >= save_every:
                gallery.save()
                since_save = 0
    _embed_and_add(gallery, pending, embedder, report)
    gallery.save()
    return report


def _loaded_in_order(sources: Sequence[SourceFile], load: Callable[[SourceFile], _Loaded],
                     workers: int, window: int) -> Iterator[_Loaded]:
    """`load` of every source, in order, at most `window` files ahead of the consumer."""
    if workers < 1:
        yield from (load(source) for source in sources)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="cmcr-ingest") as pool:
        ahead: deque[Future] = deque()
        try:
            for source in sources:
                ahead.append(pool.submit(load, source))
                if len(ahead) >= window:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()


def _load(source: SourceFile, embedder: ItemEmbedder, known: frozenset[str], reduced: bool) -> _Loaded:
    digest = sha256_file(source.path)
    if digest in known:
        return _Loaded(source, digest)
    try:
        content = embedder.decode(source.modality, source.path, reduced=reduced)
        prepared = embedder.prepare(source.modality, [content])[0]
    except InputError as error:
        return _Loaded(source, digest, error=str(error))
    return _Loaded(source, digest, prepared, _encode_preview(source.modality, content))


def _embed_and_add(gallery: Gallery, pending: list[tuple[NewItem, Any]], embedder: ItemEmbedder,
                   report: IngestReport) -> int:
    added = 0
    for modality in MODALITIES:
        group = [(item, prepared) for item, prepared in pending if item.modality == modality]
        if group:
            embeddings = embedder.embed(modality, [prepared for _, prepared in group])
            added += len(gallery.add([item for item, _ in group], embeddings))
    report.added += added
    return added


# ---- finding files ----------------------------------------------------------------------------

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


def caption_from_name(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip()


def scan_folder(folder: str | os.PathLike) -> list[SourceFile]:
    """Every image, audio and 3D file under `folder`, sorted, with a caption for each.

    Captions come from a `manifest.json` in the file's folder or above (the layout `assets/` uses)
    when it names the file, else from a sidecar `<stem>.txt`, else from the file name.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"'{folder}' is not a folder.")
    captions = _manifest_captions(root)
    sources = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        modality = modality_of(path)
        if modality is None:
            continue
        sidecar = path.with_suffix(".txt")
        caption = captions.get(path.resolve()) or (
            sidecar.read_text(errors="replace").strip() if sidecar.is_file() else caption_from_name(path))
        sources.append(SourceFile(path, modality, caption))
    return sources


def _manifest_captions(root: Path) -> dict[Path, str]:
    """Captions from every `manifest.json` under `root`; each names files relative to its folder."""
    captions = {}
    for manifest in sorted(root.rglob("manifest.json")):
        try:
            entries = json.loads(manifest.read_text())["items"]
            captions.update({(manifest.parent / entry["file"]).resolve(): str(entry["caption"]) for entry in entries})
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"'{manifest}' is not a valid manifest: {error}") from None
    return captions


__all__ = [
    "Gallery", "GalleryItem", "Hit", "IndexSettings", "IngestReport", "ItemEmbedder", "NewItem",
    "SourceFile", "build_faiss_index", "build_searcher", "caption_from_name", "index_recall",
    "ingest", "load_or_build_index", "pull_gallery", "push_gallery", "scan_folder", "sha256_bytes", "sha256_file", "space_identity",
]
