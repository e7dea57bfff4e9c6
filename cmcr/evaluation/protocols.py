"""Paper-style retrieval metrics: R@k, mAP and median rank.

Ties are broken pessimistically: a gallery item that scores exactly as high as a relevant one is
ranked before it. Optimistic tie-breaking would let a collapsed space (every score equal) look
perfect; this rule makes it look as bad as it is.

Similarities are computed in blocks of query rows so that a large evaluation never builds the
whole query-by-gallery matrix at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.errors import InputError

DEFAULT_KS = (1, 5, 10)
_BLOCK_ROWS = 1024


def _as_unit_rows(array: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(array, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise InputError(f"{name} must be a non-empty (N, D) array, got shape {matrix.shape}.")
    if not np.isfinite(matrix).all():
        raise InputError(f"{name} contains NaN or infinite values.")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _relevance_lists(
    relevant: Sequence[Sequence[int]] | None, num_queries: int, gallery_size: int
) -> list[np.ndarray]:
    """Relevant gallery rows per query; None means the arrays are row-aligned pairs."""
    if relevant is None:
        if num_queries != gallery_size:
            raise InputError(
                f"Paired evaluation needs as many queries as gallery items "
                f"({num_queries} vs {gallery_size}); pass the relevant items explicitly."
            )
        return [np.array([row]) for row in range(num_queries)]
    if len(relevant) != num_queries:
        raise InputError(f"Got relevance for {len(relevant)} queries, expected {num_queries}.")
    lists = []
    for query, rows in enumerate(relevant):
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if rows.size == 0:
            raise InputError(f"Query {query} has no relevant gallery item.")
        if rows.min() < 0 or rows.max() >= gallery_size:
            raise InputError(f"Query {query} names a gallery row outside 0..{gallery_size - 1}.")
        lists.append(rows)
    return lists


def relevant_ranks(scores: np.ndarray, relevant_rows: np.ndarray) -> np.ndarray:
    """1-based ranks of the relevant rows in one score vector, sorted ascending.

    Each relevant item is outranked by every irrelevant item scoring >= it and by every relevant
    item scoring strictly more (ties among relevant items keep them adjacent).
    """
    is_relevant = np.zeros(scores.shape[0], dtype=bool)
    is_relevant[relevant_rows] = True
    irrelevant_scores = np.sort(scores[~is_relevant])
    relevant_scores = np.sort(scores[is_relevant])[::-1]
    irrelevant_at_or_above = irrelevant_scores.size - np.searchsorted(
        irrelevant_scores, relevant_scores, side="left"
    )
    return irrelevant_at_or_above + np.arange(1, relevant_scores.size + 1)


def average_precision(ranks: np.ndarray) -> float:
    """AP of one query from the sorted 1-based ranks of its relevant items."""
    hits_so_far = np.arange(1, ranks.size + 1)
    return float(np.mean(hits_so_far / ranks))


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    relevant: Sequence[Sequence[int]] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """R@k (percent of queries with a relevant item in the top k), mAP (percent) and median rank.

    `relevant[i]` lists the gallery rows that count as correct for query i; leave it out when
    query i and gallery row i are the pair (two aligned embedding arrays).
    """
    query_rows = _as_unit_rows(queries, "queries")
    gallery_rows = _as_unit_rows(gallery, "gallery")
    if query_rows.shape[1] != gallery_rows.shape[1]:
        raise InputError(
            f"Queries have {query_rows.shape[1]} dims but the gallery has {gallery_rows.shape[1]}."
        )
    relevance = _relevance_lists(relevant, len(query_rows), len(gallery_rows))
    first_ranks = np.empty(len(query_rows), dtype=np.int64)
    precisions = np.empty(len(query_rows), dtype=np.float64)
    for start in range(0, len(query_rows), _BLOCK_ROWS):
        block = query_rows[start : start + _BLOCK_ROWS] @ gallery_rows.T
        for offset, scores in enumerate(block):
            ranks = relevant_ranks(scores, relevance[start + offset])
            first_ranks[start + offset] = ranks[0]
            precisions[start + offset] = average_precision(ranks)
    metrics = {f"R@{k}": float(np.mean(first_ranks <= k) * 100) for k in ks}
    metrics["mAP"] = float(precisions.mean() * 100)
    metrics["MedR"] = float(np.median(first_ranks))
    return metrics


def chance_metrics(gallery_size: int, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """What a uniformly random ranking scores in expectation with one relevant item per query.

    Printed beside real numbers so that a small gallery's R@10 is read at its true scale.
    """
    if gallery_size < 1:
        raise InputError("Chance levels need a gallery of at least one item.")
    metrics = {f"R@{k}": min(k, gallery_size) / gallery_size * 100 for k in ks}
    harmonic = float(np.sum(1.0 / np.arange(1, gallery_size + 1)))
    metrics["mAP"] = harmonic / gallery_size * 100
    metrics["MedR"] = (gallery_size + 1) / 2
    return metrics


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


def markdown_table(rows: Mapping[str, Mapping[str, float]], title: str = "setting") -> str:
    """Rows of metrics (same keys in each) as a GitHub markdown table, two decimals."""
    if not rows:
        raise InputError("No evaluation results to tabulate.")
    columns = list(next(iter(rows.values())))
    lines = [
        "| " + " | ".join([title, *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, metrics in rows.items():
        cells = [f"{metrics[column]:.2f}" for column in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


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
    from cmcr.data.features import FeatureMemory

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
    from cmcr.retrieval.gallery import scan_folder

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
    import torch

    from cmcr.evaluation.synthetic import WorldSpec, make_world
    from cmcr.training.trainer import TrainConfig, train_connection

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
