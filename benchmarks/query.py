"""The `query` section: the app's request path for each tab, decoded input in memory → top-10."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench import K, Bench
from benchmarks.figures import TARGETS, Figure
from benchmarks.inputs import sample_inputs, unit_rows
from cmcr.retrieval.gallery import Gallery, IndexSettings, NewItem
from cmcr.retrieval.search import SpaceEmbedder, query

TABS: tuple[tuple[str, str], ...] = (
    ("audio", "image"), ("text", "points"), ("audio", "points"), ("image", "audio"),
)


def bench_query(bench: Bench) -> list[Figure]:
    """Decoded input in memory → top-10 through `cmcr.retrieval.search.query`, as the app answers a tab.

    The gallery holds N rows of the tab's target modality (search cost does not depend on which
    modality a row is, so the tabs share one gallery per size). The baseline is the same request
    against a CPU FAISS flat index; on a CPU run that is the figure itself.
    """
    embedder = bench.embedder()
    inputs = {modality: sample_inputs(modality, 1, bench)[0] for modality, _ in TABS}
    figures = []
    with tempfile.TemporaryDirectory(prefix="cmcr-bench-query-") as scratch:
        for size in bench.plan.gallery_sizes:
            bench.progress(f"query: building {size:,}-row galleries")
            galleries = {device: random_gallery(Path(scratch) / f"{size}-{device}", embedder, size,
                                                bench.rng(size), device)
                         for device in {"cpu", str(bench.device)}}
            for source, target in TABS:
                figures.append(_query_figure(bench, embedder, galleries, source, target, inputs[source], size))
    return figures


def random_gallery(root: Path, embedder: SpaceEmbedder, size: int, rng: np.random.Generator,
                   device: str) -> Gallery:
    """A gallery of `size` image items with random unit embeddings, exact search at any size."""
    dim = embedder.space.dim
    gallery = Gallery.create(root, embedder.space_id, dim, IndexSettings(exact_limit=size), device=device)
    items = [NewItem("image", f"item-{row}.jpg", f"item {row}", f"{row:064x}") for row in range(size)]
    gallery.add(items, unit_rows(rng, size, dim))
    return gallery


def _query_figure(bench: Bench, embedder: SpaceEmbedder, galleries: dict[str, Gallery], source: str,
                  target: str, item: Any, size: int) -> Figure:
    def request(gallery: Gallery) -> Callable[[], Any]:
        return lambda: query(embedder, gallery, source, [item], k=K)

    bench.progress(f"query: {source}→{target}, {size:,} rows")
    ours = bench.stopwatch.time(request(galleries[str(bench.device)]))
    on_cpu = ours if bench.device.type == "cpu" else bench.stopwatch.time(request(galleries["cpu"]))
    backend = "CPU FAISS flat" if bench.device.type == "cpu" else "GPU matrix product"
    return Figure(
        "query", f"{source}→{target} tab, top-{K} of {size:,} ({backend})", "ms", ours.median_ms,
        "same request, CPU FAISS flat", on_cpu.median_ms, False, p95=ours.p95_ms,
        baseline_p95=on_cpu.p95_ms, target=TARGETS["query_ms"] if (source, target) == ("audio", "image") else None,
        note="CPU run: the baseline is the figure itself" if bench.device.type == "cpu" else "")
