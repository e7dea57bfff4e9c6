"""Evaluation protocols: paired retrieval over feature memories, folders of raw files and the
synthetic world, scored with `cmcr.evaluation.metrics`.

Pairs come from the data itself (equal ids or file stems) or from an explicit list of
(query row, target row) pairs; an unmatched query is an error, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmcr.data.features import FeatureMemory
from cmcr.errors import InputError
from cmcr.evaluation.metrics import chance_metrics, retrieval_metrics
from cmcr.evaluation.synthetic import WorldSpec, make_world
from cmcr.retrieval.gallery import scan_folder
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import train_connection


def pairs_by_stem(query_names: Sequence[str], gallery_names: Sequence[str]) -> list[list[int]]:
    """Relevant gallery rows for each query: items whose file stems (or ids) are equal.

    Queries with no partner are an error rather than silently dropped, so a typo in a folder
    cannot inflate the scores.
    """
    rows_by_stem: dict[str, list[int]] = {}
    for row, name in enumerate(gallery_names):
        rows_by_stem.setdefault(Path(name).stem, []).append(row)
    unmatched = [name for name in query_names if Path(name).stem not in rows_by_stem]
    if unmatched:
        listed = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        raise InputError(f"{len(unmatched)} queries have no gallery item with the same name: {listed}")
    return [rows_by_stem[Path(name).stem] for name in query_names]


# ---- evaluation sets --------------------------------------------------------------------------


def _item_name(item: dict, row: int) -> str:
    """What pairs an item with its partner: its id, else the stem of its path."""
    for key in ("id", "path", "file"):
        if item.get(key) not in (None, ""):
            return str(item[key])
    return str(row)


def read_pairs(path: str | Path) -> np.ndarray:
    """(P, 2) integer (query row, target row) pairs from a text file of two columns (spaces,
    tabs or commas; '#' starts a comment)."""
    try:
        pairs = np.loadtxt(path, dtype=np.int64, delimiter=None if "," not in Path(path).read_text() else ",",
                           comments="#", ndmin=2)
    except (OSError, ValueError) as error:
        raise InputError(f"Cannot read pairs from '{path}': {error}") from None
    if pairs.shape[1] != 2 or len(pairs) == 0 or pairs.min() < 0:
        raise InputError(f"'{path}' must list non-negative 'query_row target_row' pairs, one per line.")
    return pairs


def evaluate_memory(memory_root: str | Path, query: tuple[str, str], target: tuple[str, str],
                    space: Any = None, pairs: np.ndarray | None = None) -> dict[str, float]:
    """Paired evaluation over two sets of a feature memory, e.g. ("audio", "clap") → ("image",
    "clip"). Items are paired by `pairs` (query row, target row) when given, else by equal id
    (or path stem). With `space`, both sets are first projected into it (needed whenever the
    two encoders differ)."""
    memory = FeatureMemory(memory_root)
    arrays, names = [], []
    for modality, encoder in (query, target):
        array = np.asarray(memory.load(modality, encoder, mmap=False), dtype=np.float32)
        if space is not None:
            array = space.project(encoder=encoder, modality=modality, features=array)
        arrays.append(array)
        names.append([_item_name(item, row) for row, item in enumerate(memory.items(modality))])
    if pairs is None:
        return retrieval_metrics(arrays[0], arrays[1], pairs_by_stem(names[0], names[1]))
    if pairs[:, 0].max() >= len(arrays[0]):
        raise InputError(f"A pair names query row {pairs[:, 0].max()}, but there are {len(arrays[0])} queries.")
    query_rows = np.unique(pairs[:, 0])
    relevant = [pairs[pairs[:, 0] == row, 1] for row in query_rows]
    return retrieval_metrics(arrays[0][query_rows], arrays[1], relevant)


def evaluate_folders(embedder: Any, query_folder: str | Path, target_folder: str | Path,
                     progress: Callable[[Iterable], Iterable] = iter) -> dict[str, float]:
    """Paired evaluation of raw files: every file in `query_folder` has a partner of the same
    stem in `target_folder`. `embedder` is a `cmcr.retrieval.search.SpaceEmbedder`."""
    rows, names = [], []
    for folder in (query_folder, target_folder):
        sources = scan_folder(folder)
        if not sources:
            raise InputError(f"'{folder}' holds no image, audio or 3D files.")
        modalities = {source.modality for source in sources}
        if len(modalities) > 1:
            raise InputError(f"'{folder}' mixes {', '.join(sorted(modalities))}; use one modality per folder.")
        modality = modalities.pop()
        decoded = [embedder.decode(modality, source.path) for source in progress(sources)]
        rows.append(embedder.embed(modality, decoded))
        names.append([source.path.name for source in sources])
    return retrieval_metrics(rows[0], rows[1], pairs_by_stem(names[0], names[1]))


def evaluate_synthetic(spec: Any = None, config: Any = None,
                       methods: Sequence[str] = ("ex-mcr", "c-mcr")) -> dict[str, dict[str, float]]:
    """Train each method on the synthetic world's unpaired memories and score q → p retrieval
    on its held-out true pairs; a chance row is added for scale."""
    memories, test_p, test_q = make_world(spec or WorldSpec())
    rows = {}
    for method in methods:
        result = train_connection(memories, config or TrainConfig(), method, progress=False)
        projected = {}
        for name, features in ((memories.x, test_p), (memories.y, test_q)):
            head = result.heads.get(name)
            tensor = torch.from_numpy(np.asarray(features, dtype=np.float32))
            with torch.no_grad():
                projected[name] = (head(tensor) if head is not None else tensor).numpy()
        rows[f"{method} (q→p)"] = retrieval_metrics(projected[memories.y], projected[memories.x])
    rows["chance"] = chance_metrics(len(test_p))
    return rows
