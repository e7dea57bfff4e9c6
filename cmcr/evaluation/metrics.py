"""Paper-style retrieval metrics: R@k, mAP and median rank, and their markdown tables.

Ties are broken pessimistically: a gallery item that scores exactly as high as a relevant one is
ranked before it. Optimistic tie-breaking would let a collapsed space (every score equal) look
perfect; this rule makes it look as bad as it is.

Similarities are computed in blocks of query rows so that a large evaluation never builds the
whole query-by-gallery matrix at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
