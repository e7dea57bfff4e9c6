"""The `search` section: one query against N gallery rows; FAISS flat against a NumPy scan on the
CPU, and a torch matrix product against FAISS flat on CUDA."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from benchmarks.bench import K, Bench
from benchmarks.figures import Figure, Timing
from benchmarks.inputs import unit_rows
from benchmarks.machine import Stopwatch
from cmcr.retrieval.gallery import IndexSettings, build_searcher


def numpy_scan(embeddings: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The plainest exact search: a full matrix-vector product and a partial sort."""
    scores = embeddings @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def bench_search(bench: Bench) -> list[Figure]:
    """FAISS flat vs a NumPy scan on the CPU; on CUDA, the torch matrix product vs FAISS flat."""
    figures = []
    for size in bench.plan.gallery_sizes:
        embeddings = unit_rows(bench.rng(size), size)
        queries = unit_rows(bench.rng(size + 1), bench.plan.search_queries)
        exact = IndexSettings(exact_limit=size)
        bench.progress(f"search: {size:,} rows")
        cpu_watch = Stopwatch(torch.device("cpu"), bench.plan.warmup, 1)
        faiss_flat = _per_query(cpu_watch, build_searcher(embeddings, exact, "cpu").search, queries)
        scan = _per_query(cpu_watch, lambda q, k: numpy_scan(embeddings, q[0], k), queries)
        figures.append(Figure(
            "search", f"CPU FAISS flat, one query, {size:,} rows", "ms", faiss_flat.median_ms,
            "NumPy full scan + argpartition", scan.median_ms, False, p95=faiss_flat.p95_ms,
            baseline_p95=scan.p95_ms))
        if bench.device.type == "cuda":
            searcher = build_searcher(embeddings, exact, str(bench.device))
            matmul = _per_query(bench.stopwatch, searcher.search, queries)
            figures.append(Figure(
                "search", f"GPU matrix product + top-k, one query, {size:,} rows", "ms", matmul.median_ms,
                "CPU FAISS flat", faiss_flat.median_ms, False, p95=matmul.p95_ms,
                baseline_p95=faiss_flat.p95_ms))
    return figures


def _per_query(watch: Stopwatch, search: Callable, queries: np.ndarray) -> Timing:
    """Each query searched alone (as the app does), each call timed once."""
    samples = []
    for row in range(len(queries)):
        single = queries[row:row + 1]
        samples.extend(watch.time(lambda: search(single, K), repeats=1, warmup=1 if row == 0 else 0).samples_ms)
    return Timing(tuple(samples))
