"""The staged writer of one feature-memory array: batches in, one atomic commit out.

Extraction streams millions of rows per (modality, encoder), so rows are appended in batches to a
hidden staging folder beside the target; nothing under a real name changes until the memory
(`cmcr.data.features`) commits the finished files, and a failure removes the staging folder.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cmcr.data.memory_format import CHUNK_ROWS, DTYPES, ITEMS_NAME, check_pair, is_item
from cmcr.errors import InputError

# (writer, staged vectors.npy, staged items.jsonl or None) → the final .npy path
Commit = Callable[["FeatureWriter", Path, "Path | None"], Path]


class FeatureWriter:
    """Streams one (modality, encoder) array to disk in batches, then commits it atomically.

    Batches go to a hidden staging folder under `root/<modality>/`; nothing under a real name
    changes until `finalise()` hands the staged files to `commit`, and a failure (or `abort()`)
    removes the staging folder.
    """

    def __init__(self, root: Path, modality: str, encoder: str, *, dim: int, dtype: Any,
                 checkpoint: str | None, source: str | None, commit: Commit) -> None:
        check_pair(modality, encoder)
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPES:
            raise InputError(f"feature dtype must be float16 or float32, not {self.dtype}")
        if not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be a positive integer, got {dim!r}")
        self.modality, self.encoder, self.dim, self._commit = modality, encoder, dim, commit
        self.checkpoint, self.source = checkpoint, source
        self.rows = 0
        folder = Path(root) / modality
        folder.mkdir(parents=True, exist_ok=True)
        self.staging = folder / f".staging-{encoder}-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        self._vectors = open(self.staging / "vectors.bin", "wb")
        self._items = None  # opened by the first batch that brings items
        self._with_items: bool | None = None

    def append(self, vectors: np.ndarray, items: Sequence[dict] | None = None) -> None:
        """Add a batch of rows (normalised here); give items with every batch or with none."""
        vectors = np.asarray(vectors)
        where = f"{self.modality}/{self.encoder}"
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or vectors.dtype.kind not in "fiu":
            raise InputError(f"{where} batch must be numeric (N, {self.dim}), got "
                             f"{vectors.dtype} {vectors.shape}")
        unit = _normalised_rows(vectors.astype(np.float32, copy=False), where, self.rows)
        self._append_items(items, len(unit))
        self._vectors.write(unit.astype(self.dtype).tobytes())
        self.rows += len(unit)

    def _append_items(self, items: Sequence[dict] | None, count: int) -> None:
        with_items = items is not None
        if count and self._with_items is not None and with_items != self._with_items:
            raise InputError("give items with every batch or with none")
        if not count:
            return
        self._with_items = with_items
        if not with_items:
            return
        if len(items) != count:
            raise InputError(f"a batch of {count} rows came with {len(items)} items")
        bad = [i for i, item in enumerate(items) if not is_item(item)]
        if bad:
            raise InputError(f"items must be dicts with a string or integer 'id'; batch positions "
                             f"{bad[:10]} are not")
        if self._items is None:
            self._items = open(self.staging / ITEMS_NAME, "w", encoding="utf-8")
        self._items.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)

    def finalise(self) -> Path:
        """Turn the staged batches into `<encoder>.npy` (+ items.jsonl) and update the manifest."""
        try:
            self._close()
            vectors = self._staged_npy()
            items = self.staging / ITEMS_NAME if self._with_items else None
            return self._commit(self, vectors, items)
        finally:
            self.abort()

    def _staged_npy(self) -> Path:
        raw = self.staging / "vectors.bin"
        target = self.staging / "vectors.npy"
        out = np.lib.format.open_memmap(target, mode="w+", dtype=self.dtype, shape=(self.rows, self.dim))
        if self.rows:
            source = np.memmap(raw, dtype=self.dtype, mode="r", shape=(self.rows, self.dim))
            for start in range(0, self.rows, CHUNK_ROWS):
                out[start:start + CHUNK_ROWS] = source[start:start + CHUNK_ROWS]
            del source
        out.flush()
        del out
        return target

    def _close(self) -> None:
        self._vectors.close()
        if self._items is not None:
            self._items.close()

    def abort(self) -> None:
        """Drop everything staged; the memory is left as it was."""
        self._close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> "FeatureWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.finalise()
        else:
            self.abort()


def _normalised_rows(rows: np.ndarray, where: str, first_row: int) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        raise InputError(f"{where}: row {first_row + int(np.argmax(bad))} is NaN, infinite or all zeros")
    return rows / norms[:, None]
