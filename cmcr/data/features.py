"""Feature memories on disk: the interface between extraction and training.

A memory is a folder of unit-row arrays per (modality, encoder) with their items and a manifest
(the layout is in `cmcr.data.memory_format`). Memories reach millions of rows, so arrays open
memory-mapped and are validated in chunks; every write is staged (`cmcr.data.feature_writer`) and
lands through a rename, so a crash never leaves a half-written file under a real name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cmcr.atomic import write_json
from cmcr.data.feature_writer import FeatureWriter
from cmcr.data.memory_format import (CHUNK_ROWS, DTYPES, FORMAT_VERSION, ITEMS_NAME, MANIFEST_NAME,
                                     NORM_TOLERANCE, check_pair, header_problems, iter_lines,
                                     manifest_shape_problems, open_array, read_items)
from cmcr.errors import InputError
from cmcr.models.registry import ENCODER_MODALITIES, MODALITIES


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
        problems = manifest_shape_problems(manifest)
        if problems:
            raise InputError(f"{path} is malformed: " + "; ".join(problems))
        return manifest

    def load(self, modality: str, encoder: str, mmap: bool = True) -> np.ndarray:
        """The (N, D) array, memory-mapped by default; its header is checked against the
        manifest and the items count here, its rows only by `validate()`."""
        check_pair(modality, encoder)
        path = self.path(modality, encoder)
        if not path.is_file():
            raise InputError(f"{path} does not exist: extract {encoder} features for {modality} first")
        array = open_array(path, mmap)
        problems = header_problems(f"{modality}/{encoder}.npy", array, self.manifest(), modality, encoder)
        if problems:
            raise InputError(f"feature memory {self.root}: " + "; ".join(problems))
        return array

    def items(self, modality: str) -> list[dict]:
        path = self.root / modality / ITEMS_NAME
        if not path.is_file():
            raise InputError(f"{path} does not exist")
        items, problems = read_items(path)
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
    ) -> FeatureWriter:
        """A streaming writer for extraction: `append` batches, then it finalises on exit.

        Items are optional: without them the rows must line up with the modality's existing
        items.jsonl (a second encoder over the same items), or numbered ids are written.
        """
        return FeatureWriter(self.root, modality, encoder, dim=dim, dtype=dtype,
                             checkpoint=checkpoint, source=source, commit=self._commit)

    def validate(self) -> None:
        """Check the whole folder; raise one InputError listing every problem found."""
        problems = _folder_problems(self)
        if problems:
            listing = "\n".join(f"- {p}" for p in problems)
            raise InputError(f"feature memory {self.root} has {len(problems)} problem(s):\n{listing}")

    def _commit(self, staged: FeatureWriter, vectors: Path, items: Path | None) -> Path:
        """Move a finished writer's files into place after checking they fit what is there."""
        modality, encoder, rows = staged.modality, staged.encoder, staged.rows
        manifest = self.manifest()
        _check_encoder_facts(manifest, staged)
        partners = [e for e in self.encoders(modality) if e != encoder]
        for partner in partners:
            partner_rows = open_array(self.path(modality, partner), mmap=True).shape[0]
            if partner_rows != rows:
                raise InputError(
                    f"{modality}/{encoder} has {rows} rows but {modality}/{partner}.npy has "
                    f"{partner_rows}: files of one modality must describe the same items, row by row"
                )
        items_path = self.root / modality / ITEMS_NAME
        if items is not None and partners and items_path.is_file():
            _check_same_ids(items_path, items)
        if items is None and items_path.is_file():
            count = sum(1 for _ in iter_lines(items_path))
            if count != rows:
                raise InputError(f"{modality}/{encoder} has {rows} rows but {items_path} lists {count} items")
        elif items is None:
            items = _numbered_items(staged.staging / ITEMS_NAME, modality, rows)
        os.replace(vectors, self.path(modality, encoder))
        if items is not None:
            os.replace(items, items_path)
        _update_manifest(manifest, staged, sorted({*partners, encoder}))
        write_json(self.root / MANIFEST_NAME, manifest)
        return self.path(modality, encoder)


def _check_same_ids(existing: Path, new: Path) -> None:
    old_ids = [json.loads(line)["id"] for line in iter_lines(existing)]
    new_ids = [json.loads(line)["id"] for line in iter_lines(new)]
    if old_ids != new_ids:
        raise InputError(
            f"the new items differ from {existing} while other encoders' files in that folder "
            "still follow it; write the same items in the same order (or delete the other files)"
        )


def _numbered_items(path: Path, modality: str, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"id": f"{modality}-{i}"}) + "\n" for i in range(rows))
    return path


# --- helpers: validation ----------------------------------------------------------------------


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
            array = open_array(memory.path(modality, encoder), mmap=True)
        except InputError as exc:
            problems.append(str(exc))
            continue
        header = header_problems(name, array, manifest, modality, encoder)
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
        _, item_problems = read_items(items_path, keep=False)
        problems += [f"{modality}/{ITEMS_NAME}: {p}" for p in item_problems]
        count = sum(1 for _ in iter_lines(items_path))
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
