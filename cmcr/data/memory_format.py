"""The on-disk format of a feature memory, and reading its files without trusting them.

```
root/manifest.json             encoders (dim, checkpoint), modalities (count, encoders, source)
root/<modality>/items.jsonl    one JSON object per row, each with an "id"
root/<modality>/<encoder>.npy  float16/float32 (N, D), unit rows, row i = item i
```
The memory (`cmcr.data.features`) and its staged writer (`cmcr.data.feature_writer`) both read
these names and checks from here.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import ENCODER_MODALITIES

MANIFEST_NAME = "manifest.json"
ITEMS_NAME = "items.jsonl"
FORMAT_VERSION = 1
DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
# How far a stored row's norm may stray from 1: float16 keeps ~3 significant digits.
NORM_TOLERANCE = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-3}
CHUNK_ROWS = 65536


def check_pair(modality: str, encoder: str) -> None:
    """A known encoder and a modality it embeds (`cmcr.models.registry`), or an InputError."""
    if encoder not in ENCODER_MODALITIES:
        raise InputError(f"unknown encoder {encoder!r}; known: {sorted(ENCODER_MODALITIES)}")
    if modality not in ENCODER_MODALITIES[encoder]:
        raise InputError(f"encoder {encoder!r} embeds {list(ENCODER_MODALITIES[encoder])}, not {modality!r}")


def open_array(path: Path, mmap: bool) -> np.ndarray:
    """Open without unpickling (object arrays are refused)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, OverflowError) as exc:  # Overflow: a shape past 2**63 bytes
        raise InputError(f"{path} is not a readable .npy array: {exc}") from exc


def iter_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def is_item(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), (str, int))


def read_items(path: Path, keep: bool = True) -> tuple[list[dict], list[str]]:
    """Parse items.jsonl line by line. With `keep=False` only problems come back, and the
    memory used is 8 bytes per item (id hashes for the duplicate check), whatever the file size."""
    items, problems, id_hashes = [], [], array("q")
    try:
        for number, line in enumerate(iter_lines(path), start=1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"line {number} is not JSON")
                continue
            if not is_item(item):
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
    for number, line in enumerate(iter_lines(path), start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # already reported by the first pass
        if not is_item(item):
            continue
        item_id = item["id"]
        if item_id in seen:
            problems.append(f"line {number} repeats id {item_id!r}")
        seen.add(item_id)
    return problems


def manifest_shape_problems(manifest: Any) -> list[str]:
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


def header_problems(name: str, array: np.ndarray, manifest: dict, modality: str, encoder: str) -> list[str]:
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
