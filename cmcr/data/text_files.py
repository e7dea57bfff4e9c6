"""Text sources as items: .txt (one text per line), .jsonl (a "text" field), .csv (a column),
and the clean-up every text source gets (whitespace collapsed, empty and repeated texts dropped:
a duplicate adds nothing to a memory)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from cmcr.errors import InputError

TEXT_SUFFIXES = (".txt", ".jsonl", ".csv")


def text_items(rows: Iterable[tuple[str, str]]) -> list[dict]:
    """(id, text) pairs → items, whitespace collapsed, empty and repeated texts dropped."""
    seen: set[str] = set()
    items = []
    for item_id, text in rows:
        text = " ".join(text.split())
        if text and text not in seen:
            seen.add(text)
            items.append({"id": item_id, "text": text})
    return items


def read_text_file(path: str | Path, column: str | None = None, name: str | None = None) -> list[dict]:
    """Text items of one file: .txt (one per line), .jsonl (a "text" field), .csv (a `column`,
    "text" by default). Ids are `<name>:<line number>` (`name`: the file's name), stable as long
    as the file is."""
    path = Path(path)
    column = column or "text"
    if not path.is_file():
        raise InputError(f"text source {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise InputError(f"text source {path} must be .txt (one text per line), .jsonl (with a "
                         f"'text' field) or .csv (with a '{column}' column)")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = [(f"{name or path.name}:{line}", text) for line, text in _text_rows(handle, suffix, path, column)]
    except UnicodeDecodeError as exc:
        raise InputError(f"text source {path} is not UTF-8: {exc}") from exc
    items = text_items(rows)
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
