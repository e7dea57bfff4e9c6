"""Raw sources → the items to extract: text files (one item per line or record) and folders of
image, audio and 3D files, collected per modality with where each came from.

Only the listing happens here; decoding waits for extraction (`cmcr.data.extract`), so collecting a
million files costs one folder walk, and a file's size and modification time go into each item
for the plan's fingerprint.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cmcr.data.media.kinds import EXTENSIONS
from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES

TEXT_SUFFIXES = (".txt", ".jsonl", ".csv")


def read_text_file(path: str | Path, column: str = "text") -> list[dict]:
    """Text items of one file: .txt (one per line), .jsonl (a "text" field), .csv (a `column`).

    Empty lines and duplicate texts are dropped (a duplicate adds nothing to a memory); ids are
    `<file name>:<line number>`, stable as long as the file is.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"text source {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise InputError(f"text source {path} must be .txt (one text per line), .jsonl (with a "
                         f"'text' field) or .csv (with a '{column}' column)")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(_text_rows(handle, suffix, path, column))
    except UnicodeDecodeError as exc:
        raise InputError(f"text source {path} is not UTF-8: {exc}") from exc
    seen: set[str] = set()
    items = []
    for line, text in rows:
        text = " ".join(text.split())
        if text and text not in seen:
            seen.add(text)
            items.append({"id": f"{path.name}:{line}", "text": text})
    if not items:
        raise InputError(f"text source {path} holds no text")
    return items


def _text_rows(handle, suffix: str, path: Path, column: str) -> Iterator[tuple[int, str]]:
    if suffix == ".txt":
        yield from enumerate(handle, start=1)
    elif suffix == ".jsonl":
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number} is not JSON: {exc}") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InputError(f"{path} line {number} has no string 'text' field")
            yield number, record["text"]
    else:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            raise InputError(f"{path} has no '{column}' column; its columns are {reader.fieldnames}")
        for number, record in enumerate(reader, start=2):
            yield number, record[column] or ""


def scan_media(folder: str | Path, modality: str) -> list[dict]:
    """Every file of `modality` under `folder` (recursive, by extension), sorted; each item holds
    its path and, for the plan's fingerprint, its size and modification time."""

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{modality} source {root} is not a folder")
    suffixes = EXTENSIONS[modality]
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
        stat = path.stat()
        items.append({"id": path.relative_to(root).as_posix(), "path": str(path.resolve()),
                      "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if not items:
        raise InputError(f"{modality} source {root} holds no {modality} files "
                         f"({', '.join(suffixes)})")
    return items


@dataclass
class Sources:
    """The items to extract per modality, and a one-line description of where each came from."""

    items: dict[str, list[dict]] = field(default_factory=dict)
    described: dict[str, str] = field(default_factory=dict)

    def add(self, modality: str, items: list[dict], described: str) -> None:
        if modality in self.items:
            raise InputError(f"{modality} is given twice ({self.described[modality]}, {described})")
        self.items[modality], self.described[modality] = items, described

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.items]


def collect_sources(*, text: Sequence[str | Path] = (), texts: Sequence[str] | None = None,
                    images: str | Path | None = None, audio: str | Path | None = None,
                    points: str | Path | None = None, text_column: str = "text") -> Sources:
    """Gather items from text files (or ready `texts`, e.g. the default corpus) and folders."""
    sources = Sources()
    names = [Path(path).name for path in text]
    if len(set(names)) < len(names):
        raise InputError(f"text files need distinct names (their items are named file:line): {names}")
    text_items = [item for path in text for item in read_text_file(path, text_column)]
    if texts is not None:
        text_items += [{"id": f"corpus:{i}", "text": t} for i, t in enumerate(texts)]
    if text_items:
        described = ", ".join(str(p) for p in text) or "the default corpus (cmcr.data.corpus)"
        if text and texts is not None:
            described += " + the default corpus"
        sources.add("text", text_items, described)
    for modality, folder in (("image", images), ("audio", audio), ("points", points)):
        if folder is not None:
            sources.add(modality, scan_media(folder, modality), str(folder))
    if not sources.items:
        raise InputError("nothing to extract: give --text, --images, --audio or --points")
    return sources
