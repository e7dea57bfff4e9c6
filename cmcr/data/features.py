"""Feature memories on disk (DESIGN §3): the interface between extraction and training.

```
root/manifest.json             encoders (dim, checkpoint), modalities (count, encoders, source)
root/<modality>/items.jsonl    one JSON object per row, each with an "id"
root/<modality>/<encoder>.npy  float16/float32 (N, D), unit rows, row i = item i
```
Memories reach millions of rows, so arrays open memory-mapped and are validated in chunks; every
write lands through a rename, so a crash never leaves a half-written file under a real name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import ENCODER_MODALITIES, MODALITIES

MANIFEST_NAME = "manifest.json"
ITEMS_NAME = "items.jsonl"
FORMAT_VERSION = 1
DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
# How far a stored row's norm may stray from 1: float16 keeps ~3 significant digits.
NORM_TOLERANCE = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-3}
CHUNK_ROWS = 65536


# --- connections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """Which memory files one connection trains on (roles as in docs/architecture.md).

    X holds the overlap `o` and `p`, Y holds `o` and `q`; each role is (modality, encoder).
    """

    name: str
    x: str
    y: str
    o_x: tuple[str, str]
    o_y: tuple[str, str]
    p: tuple[str, str]
    q: tuple[str, str]

    def files(self) -> dict[str, tuple[str, str]]:
        return {"o_x": self.o_x, "o_y": self.o_y, "p": self.p, "q": self.q}


CONNECTIONS: dict[str, Connection] = {
    c.name: c
    for c in (
        Connection("clap→clip", x="clip", y="clap", o_x=("text", "clip"), o_y=("text", "clap"),
                   p=("image", "clip"), q=("audio", "clap")),
        Connection("ulip→clip", x="clip", y="ulip", o_x=("image", "clip"), o_y=("image", "ulip"),
                   p=("text", "clip"), q=("points", "ulip")),
    )
}


def get_connection(name: str) -> Connection:
    """Look a connection up by name; "clap->clip" is accepted for "clap→clip" (easier to type)."""
    connection = CONNECTIONS.get(name.replace("->", "→"))
    if connection is None:
        raise InputError(f"unknown connection {name!r}; known: {sorted(CONNECTIONS)}")
    return connection


def available_connections(memory: "FeatureMemory") -> list[str]:
    """Connections whose four memory files all exist in `memory`."""
    return [
        name
        for name, connection in CONNECTIONS.items()
        if all(memory.has(modality, encoder) for modality, encoder in connection.files().values())
    ]


def load_connection(memory: "FeatureMemory", name: str, mmap: bool = True) -> dict[str, Any]:
    """The arrays of one connection by role, plus encoder names: keys o_x, o_y, p, q, x, y
    (the fields of `cmcr.training.trainer.ConnectionMemories`)."""
    connection = get_connection(name)
    arrays = {role: memory.load(*where, mmap=mmap) for role, where in connection.files().items()}
    return {**arrays, "x": connection.x, "y": connection.y}


# --- the memory -------------------------------------------------------------------------------


class FeatureMemory:
    """A feature-memory folder; reading is lazy, `validate()` checks everything."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, modality: str, encoder: str) -> Path:
        return self.root / modality / f"{encoder}.npy"

    def has(self, modality: str, encoder: str) -> bool:
        return self.path(modality, encoder).is_file()

    def encoders(self, modality: str) -> list[str]:
        """Encoders with a file in the modality folder, sorted."""
        folder = self.root / modality
        return sorted(p.stem for p in folder.glob("*.npy")) if folder.is_dir() else []

    def manifest(self) -> dict:
        path = self.root / MANIFEST_NAME
        if not path.is_file():
            return {"format_version": FORMAT_VERSION, "encoders": {}, "modalities": {}}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from exc
        problems = _manifest_shape_problems(manifest)
        if problems:
            raise InputError(f"{path} is malformed: " + "; ".join(problems))
        return manifest

    def load(self, modality: str, encoder: str, mmap: bool = True) -> np.ndarray:
        """The (N, D) array, memory-mapped by default; its header is checked against the
        manifest and the items count here, its rows only by `validate()`."""
        _check_pair(modality, encoder)
        path = self.path(modality, encoder)
        if not path.is_file():
            raise InputError(f"{path} does not exist: extract {encoder} features for {modality} first")
        array = _open_array(path, mmap)
        problems = _header_problems(f"{modality}/{encoder}.npy", array, self.manifest(), modality, encoder)
        if problems:
            raise InputError(f"feature memory {self.root}: " + "; ".join(problems))
        return array

    def items(self, modality: str) -> list[dict]:
        path = self.root / modality / ITEMS_NAME
        if not path.is_file():
            raise InputError(f"{path} does not exist")
        items, problems = _read_items(path)
        if problems:
            raise InputError(f"{path}: " + "; ".join(problems))
        return items

    def write(
        self,
        modality: str,
        encoder: str,
        array: np.ndarray,
        items: Sequence[dict] | None = None,
        **details: Any,
    ) -> Path:
        """Write one whole (N, D) array (L2-normalised on the way); see `writer` for details."""
        array = np.asarray(array)
        if array.ndim != 2:
            raise InputError(f"{modality}/{encoder} features must be 2-D (N, D), got shape {array.shape}")
        details.setdefault("dtype", np.float16 if array.dtype == np.float16 else np.float32)
        with self.writer(modality, encoder, dim=array.shape[1], **details) as writer:
            for start in range(0, max(len(array), 1), CHUNK_ROWS):
                chunk_items = None if items is None else list(items[start:start + CHUNK_ROWS])
                writer.append(array[start:start + CHUNK_ROWS], chunk_items)
        return self.path(modality, encoder)

    def writer(
        self,
        modality: str,
        encoder: str,
        *,
        dim: int,
        dtype: Any = np.float32,
        checkpoint: str | None = None,
        source: str | None = None,
    ) -> "FeatureWriter":
        """A streaming writer for extraction: `append` batches, then it finalises on exit.

        Items are optional: without them the rows must line up with the modality's existing
        items.jsonl (a second encoder over the same items), or numbered ids are written.
        """
        return FeatureWriter(self, modality, encoder, dim=dim, dtype=dtype,
                             checkpoint=checkpoint, source=source)

    def validate(self) -> None:
        """Check the whole folder; raise one InputError listing every problem found."""
        problems = _folder_problems(self)
        if problems:
            listing = "\n".join(f"- {p}" for p in problems)
            raise InputError(f"feature memory {self.root} has {len(problems)} problem(s):\n{listing}")

    # --- used by FeatureWriter ---

    def _commit(self, staged: "FeatureWriter", vectors: Path, items: Path | None) -> None:
        """Move a finished writer's files into place after checking they fit what is there."""
        modality, encoder, rows = staged.modality, staged.encoder, staged.rows
        manifest = self.manifest()
        _check_encoder_facts(manifest, staged)
        partners = [e for e in self.encoders(modality) if e != encoder]
        for partner in partners:
            partner_rows = _open_array(self.path(modality, partner), mmap=True).shape[0]
            if partner_rows != rows:
                raise InputError(
                    f"{modality}/{encoder} has {rows} rows but {modality}/{partner}.npy has "
                    f"{partner_rows}: files of one modality must describe the same items, row by row"
                )
        items_path = self.root / modality / ITEMS_NAME
        if items is not None and partners and items_path.is_file():
            _check_same_ids(items_path, items)
        if items is None and items_path.is_file():
            count = sum(1 for _ in _iter_lines(items_path))
            if count != rows:
                raise InputError(f"{modality}/{encoder} has {rows} rows but {items_path} lists {count} items")
        elif items is None:
            items = _numbered_items(staged.staging / ITEMS_NAME, modality, rows)
        os.replace(vectors, self.path(modality, encoder))
        if items is not None:
            os.replace(items, items_path)
        _update_manifest(manifest, staged, sorted({*partners, encoder}))
        _write_json_atomic(self.root / MANIFEST_NAME, manifest)


class FeatureWriter:
    """Streams one (modality, encoder) array to disk in batches, then commits it atomically.

    Batches go to a hidden staging folder beside the target; nothing under a real name changes
    until `finalise()`, and a failure (or `abort()`) removes the staging folder.
    """

    def __init__(self, memory: FeatureMemory, modality: str, encoder: str, *, dim: int,
                 dtype: Any, checkpoint: str | None, source: str | None) -> None:
        _check_pair(modality, encoder)
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPES:
            raise InputError(f"feature dtype must be float16 or float32, not {self.dtype}")
        if not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be a positive integer, got {dim!r}")
        self.memory, self.modality, self.encoder, self.dim = memory, modality, encoder, dim
        self.checkpoint, self.source = checkpoint, source
        self.rows = 0
        folder = memory.root / modality
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
        bad = [i for i, item in enumerate(items) if not _is_item(item)]
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
            self.memory._commit(self, vectors, items)
        finally:
            self.abort()
        return self.memory.path(self.modality, self.encoder)

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


# --- helpers: reading -------------------------------------------------------------------------


def _check_pair(modality: str, encoder: str) -> None:
    if encoder not in ENCODER_MODALITIES:
        raise InputError(f"unknown encoder {encoder!r}; known: {sorted(ENCODER_MODALITIES)}")
    if modality not in ENCODER_MODALITIES[encoder]:
        raise InputError(f"encoder {encoder!r} embeds {list(ENCODER_MODALITIES[encoder])}, not {modality!r}")


def _open_array(path: Path, mmap: bool) -> np.ndarray:
    """Open without unpickling (object arrays are refused)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, OverflowError) as exc:  # Overflow: a shape past 2**63 bytes
        raise InputError(f"{path} is not a readable .npy array: {exc}") from exc


def _iter_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def _is_item(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), (str, int))


def _read_items(path: Path, keep: bool = True) -> tuple[list[dict], list[str]]:
    """Parse items.jsonl line by line. With `keep=False` only problems come back, and the
    memory used is 8 bytes per item (id hashes for the duplicate check), whatever the file size."""
    items, problems, id_hashes = [], [], array("q")
    try:
        for number, line in enumerate(_iter_lines(path), start=1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"line {number} is not JSON")
                continue
            if not _is_item(item):
                problems.append(f"line {number} is not an object with a string or integer 'id'")
                continue
            id_hashes.append(hash(item["id"]))
            if keep:
                items.append(item)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"cannot read: {exc}")
    if len(np.unique(np.frombuffer(id_hashes, dtype=np.int64))) < len(id_hashes):
        problems += _duplicate_id_problems(path)
    return items, problems[:20]


def _duplicate_id_problems(path: Path) -> list[str]:
    """The exact (slower, set-based) pass, run only when the hash pass saw a repeat."""
    seen, problems = set(), []
    for number, line in enumerate(_iter_lines(path), start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # already reported by the first pass
        if not _is_item(item):
            continue
        item_id = item["id"]
        if item_id in seen:
            problems.append(f"line {number} repeats id {item_id!r}")
        seen.add(item_id)
    return problems


def _check_same_ids(existing: Path, new: Path) -> None:
    old_ids = [json.loads(line)["id"] for line in _iter_lines(existing)]
    new_ids = [json.loads(line)["id"] for line in _iter_lines(new)]
    if old_ids != new_ids:
        raise InputError(
            f"the new items differ from {existing} while other encoders' files in that folder "
            "still follow it; write the same items in the same order (or delete the other files)"
        )


def _numbered_items(path: Path, modality: str, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"id": f"{modality}-{i}"}) + "\n" for i in range(rows))
    return path


def _normalised_rows(rows: np.ndarray, where: str, first_row: int) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        raise InputError(f"{where}: row {first_row + int(np.argmax(bad))} is NaN, infinite or all zeros")
    return rows / norms[:, None]


# --- helpers: validation ----------------------------------------------------------------------


def _manifest_shape_problems(manifest: Any) -> list[str]:
    if not isinstance(manifest, dict):
        return ["it must be a JSON object"]
    problems = []
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version must be {FORMAT_VERSION}")
    for key in ("encoders", "modalities"):
        table = manifest.get(key)
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            problems.append(f"'{key}' must be an object of objects")
    modalities = manifest.get("modalities")
    for name, entry in (modalities.items() if isinstance(modalities, dict) else ()):
        encoders = entry.get("encoders", []) if isinstance(entry, dict) else []
        if not isinstance(encoders, list) or not all(isinstance(e, str) for e in encoders):
            problems.append(f"modalities.{name}.encoders must be a list of encoder names")
    return problems


def _header_problems(name: str, array: np.ndarray, manifest: dict, modality: str, encoder: str) -> list[str]:
    problems = []
    if array.ndim != 2:
        return [f"{name} must be 2-D (N, D), has shape {array.shape}"]
    if array.dtype not in DTYPES:
        problems.append(f"{name} has dtype {array.dtype}; use float16 or float32")
    dim = manifest["encoders"].get(encoder, {}).get("dim")
    if dim is not None and array.shape[1] != dim:
        problems.append(f"{name} has width {array.shape[1]} but manifest.json says {encoder} dim {dim}")
    count = manifest["modalities"].get(modality, {}).get("count")
    if count is not None and array.shape[0] != count:
        problems.append(f"{name} has {array.shape[0]} rows but manifest.json says {modality} count {count}")
    return problems


def _row_problems(name: str, array: np.ndarray) -> list[str]:
    """Finite values and unit norms, checked chunk by chunk so a memory map stays on disk."""
    tolerance = NORM_TOLERANCE.get(array.dtype, NORM_TOLERANCE[DTYPES[1]])
    non_finite, off_norm, first = 0, 0, None
    for start in range(0, array.shape[0], CHUNK_ROWS):
        chunk = np.array(array[start:start + CHUNK_ROWS], dtype=np.float32)
        finite = np.isfinite(chunk).all(axis=1)
        chunk[~finite] = 0
        norms = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
        off = finite & (np.abs(norms - 1) > tolerance)
        non_finite += int((~finite).sum())
        off_norm += int(off.sum())
        if first is None and (off.any() or not finite.all()):
            first = start + int(np.argmax(off | ~finite))
    problems = []
    if non_finite:
        problems.append(f"{name} has {non_finite} row(s) with NaN or infinite values")
    if off_norm:
        problems.append(f"{name} has {off_norm} row(s) whose norm is not 1 (±{tolerance})")
    if first is not None:
        problems[-1] += f"; first bad row {first}"
    return problems


def _folder_problems(memory: FeatureMemory) -> list[str]:
    root = memory.root
    if not root.is_dir():
        return [f"{root} is not a folder"]
    problems: list[str] = []
    try:
        manifest = memory.manifest()
        if not (root / MANIFEST_NAME).is_file():
            problems.append(f"{MANIFEST_NAME} is missing")
    except InputError as exc:
        problems.append(str(exc))
        manifest = {"encoders": {}, "modalities": {}}
    widths: dict[str, set[int]] = {}
    found: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in MODALITIES:
            problems.append(f"{folder.name}/ is not a modality folder ({', '.join(MODALITIES)})")
            continue
        found[folder.name] = memory.encoders(folder.name)
        problems += _modality_problems(memory, folder.name, manifest, widths)
    for encoder, seen in widths.items():
        if len(seen) > 1:
            problems.append(f"{encoder} files have different widths {sorted(seen)}")
    return problems + _manifest_consistency_problems(manifest, found)


def _modality_problems(memory: FeatureMemory, modality: str, manifest: dict,
                       widths: dict[str, set[int]]) -> list[str]:
    problems, rows = [], {}
    for encoder in memory.encoders(modality):
        name = f"{modality}/{encoder}.npy"
        if modality not in ENCODER_MODALITIES.get(encoder, ()):
            problems.append(f"{name}: no known encoder {encoder!r} embeds {modality}")
            continue
        try:
            array = _open_array(memory.path(modality, encoder), mmap=True)
        except InputError as exc:
            problems.append(str(exc))
            continue
        header = _header_problems(name, array, manifest, modality, encoder)
        problems += header
        if array.ndim == 2:
            rows[encoder] = array.shape[0]
            widths.setdefault(encoder, set()).add(array.shape[1])
            if not header:
                problems += _row_problems(name, array)
    if len(set(rows.values())) > 1:
        problems.append(f"{modality}/ files are not row-aligned: rows per encoder {rows}")
    items_path = memory.root / modality / ITEMS_NAME
    if not items_path.is_file():
        problems.append(f"{modality}/{ITEMS_NAME} is missing")
    else:
        _, item_problems = _read_items(items_path, keep=False)
        problems += [f"{modality}/{ITEMS_NAME}: {p}" for p in item_problems]
        count = sum(1 for _ in _iter_lines(items_path))
        mismatched = {e: n for e, n in rows.items() if n != count}
        if mismatched:
            problems.append(f"{modality}/{ITEMS_NAME} lists {count} items but rows are {mismatched}")
    return problems


def _manifest_consistency_problems(manifest: dict, found: dict[str, list[str]]) -> list[str]:
    problems = []
    listed = manifest["modalities"]
    for modality in sorted(set(listed) | set(found)):
        on_disk, in_manifest = found.get(modality, []), sorted(listed.get(modality, {}).get("encoders", []))
        if on_disk != in_manifest:
            problems.append(f"manifest.json lists {modality} encoders {in_manifest} but the folder holds {on_disk}")
    used = {encoder for encoders in found.values() for encoder in encoders}
    for encoder in sorted(used - set(manifest["encoders"])):
        problems.append(f"manifest.json does not describe encoder {encoder!r}")
    return problems


# --- helpers: writing -------------------------------------------------------------------------


def _check_encoder_facts(manifest: dict, staged: FeatureWriter) -> None:
    """One encoder means one checkpoint and one width across the whole memory."""
    encoder, recorded = staged.encoder, manifest["encoders"].get(staged.encoder, {})
    if staged.checkpoint and recorded.get("checkpoint") and staged.checkpoint != recorded["checkpoint"]:
        raise InputError(
            f"{encoder} features here come from checkpoint {recorded['checkpoint']!r}, not "
            f"{staged.checkpoint!r}: embeddings of different checkpoints do not share a space; "
            "use a new folder"
        )
    elsewhere = [m for m, entry in manifest["modalities"].items()
                 if m != staged.modality and encoder in entry.get("encoders", [])]
    if elsewhere and recorded.get("dim") not in (None, staged.dim):
        raise InputError(
            f"{encoder} features in {elsewhere} are {recorded['dim']}-d, these are {staged.dim}-d"
        )


def _update_manifest(manifest: dict, staged: FeatureWriter, encoders: list[str]) -> None:
    entry = manifest["encoders"].setdefault(staged.encoder, {})
    entry["dim"] = staged.dim
    if staged.checkpoint:
        entry["checkpoint"] = staged.checkpoint
    modality = manifest["modalities"].setdefault(staged.modality, {})
    modality["count"] = staged.rows
    modality["encoders"] = encoders
    if staged.source:
        modality["source"] = staged.source


def _write_json_atomic(path: Path, data: dict) -> None:
    handle = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False)
    with handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(handle.name, path)
