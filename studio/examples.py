"""The example inputs the page offers, and their embeddings kept after their first use.

An example click should cost nothing: the first click of an example (by any visitor) embeds it,
every later one reuses the row. Gradio hands an example file to the handler as its own copy (a
different path), so files are recognised by size and then content hash; texts by their text.
Only the example inputs are kept: a visitor's own uploads are never remembered.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.retrieval.gallery import sha256_file

MAX_EXAMPLES = 8  # per modality


def manifest_examples(assets: Path) -> dict[str, list[str]]:
    """Example inputs from assets/ by modality: the official samples first, then the generated
    gallery's files; for text, the official sample texts, then the captions of the shapes."""
    items = _manifest_items(assets)
    examples = {modality: [str(item["path"]) for item in items if item["modality"] == modality][:MAX_EXAMPLES]
                for modality in ("audio", "image", "points")}
    texts = [item["text"] for item in items if "text" in item and item["modality"] == "points"]
    captions = [item["caption"] for item in items if item["modality"] == "points" and "text" not in item]
    examples["text"] = list(dict.fromkeys(texts + captions))[:MAX_EXAMPLES]
    return examples


def _manifest_items(assets: Path) -> list[dict]:
    """Items of every manifest under assets/ (the official samples' first), each with its `path`."""
    manifests = sorted(assets.rglob("manifest.json"), key=lambda path: (path.parent == assets, str(path)))
    items = []
    for manifest in manifests:
        entries = json.loads(manifest.read_text())["items"]
        items += [{**item, "path": manifest.parent / item["file"]} for item in entries]
    return items


class ExampleRows:
    """Query embeddings of the example inputs, per served space, filled on first use (thread-safe)."""

    def __init__(self, examples: dict[str, list[str]]):
        self._texts = set(examples.get("text", []))
        self._files: dict[int, set[str]] = {}
        for modality, values in examples.items():
            for path in map(Path, values if modality != "text" else []):
                self._files.setdefault(path.stat().st_size, set()).add(f"{modality}:{sha256_file(path)}")
        self._rows: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def key(self, modality: str, value: Any) -> str | None:
        """What identifies this input as an example (None: it is not one)."""
        if modality == "text":
            return f"text:{value}" if value in self._texts else None
        try:
            size = os.stat(value).st_size
        except (OSError, TypeError, ValueError):
            return None
        if size not in self._files:  # an ordinary upload: no hashing
            return None
        key = f"{modality}:{sha256_file(value)}"
        return key if key in self._files[size] else None

    def row(self, space: str, key: str | None, embed: Callable[[], np.ndarray]) -> np.ndarray:
        """The kept row of example `key` in `space`, computed by `embed` the first time."""
        if key is None:
            return embed()
        with self._lock:
            kept = self._rows.get((space, key))
        if kept is None:
            kept = embed()
            kept.setflags(write=False)
            with self._lock:
                self._rows[(space, key)] = kept
        return kept
