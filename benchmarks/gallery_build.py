"""The `gallery_build` section: files on disk → a saved gallery (hashing, decoding, embedding,
previews), batched against one file at a time, and the host-side decode ceiling of the images
target."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from benchmarks.bench import Bench
from benchmarks.figures import TARGETS, Figure, throughput
from benchmarks.inputs import smooth_image
from cmcr.data.media import load_image
from cmcr.retrieval.gallery import Gallery, SourceFile, ingest
from cmcr.retrieval.search import SpaceEmbedder


def bench_gallery_build(bench: Bench) -> list[Figure]:
    """Files → saved gallery through `cmcr.retrieval.gallery.ingest` (hash, decode, embed, preview, save),
    batched against one file at a time."""
    embedder = bench.embedder()
    plan = bench.plan
    figures = []
    with tempfile.TemporaryDirectory(prefix="cmcr-bench-build-") as scratch:
        folder = Path(scratch)
        files = {"image": write_files(folder / "image", "image", plan.build_images, bench),
                 "points": write_files(folder / "points", "points", plan.build_clouds, bench)}
        for modality, unit, target in (("image", "images/s", TARGETS["images_per_s"]),
                                       ("points", "3D files/s", None)):
            sources, count = files[modality], len(files[modality])
            _ingest_rate(embedder, sources[:1], 1, folder / f"warmup-{modality}")
            bench.progress(f"gallery build: {count} {modality} files")
            batched = _ingest_rate(embedder, sources, plan.build_batch, folder / f"batched-{modality}")
            single = _ingest_rate(embedder, sources, 1, folder / f"single-{modality}")
            kind = "JPEG {}x{}".format(*plan.image_pixels) if modality == "image" else "PLY mesh"
            figures.append(Figure(
                "gallery_build", f"{count} {kind} files → saved gallery, batch {plan.build_batch}", unit,
                batched, "same files, one at a time", single, True, target=target))
        figures.append(_decode_figure(bench, files["image"]))
    return figures


def _decode_figure(bench: Bench, sources: Sequence[SourceFile]) -> Figure:
    """The host-side share of the image target: JPEG decode + CLIP preparation (resize and crop
    to uint8; normalisation runs batched on the device), which no GPU absorbs, on a thread pool of
    every core against one thread (`ingest` with workers=0)."""
    preparer = bench.encoder("clip").preparer("image")
    workers = os.cpu_count() or 1

    def decode(source: SourceFile) -> Any:  # as `ingest` decodes: JPEG at a reduced DCT scale
        return preparer.prepare_one(load_image(source.path, min_side=preparer.min_side))

    def pooled() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(decode, sources))

    bench.progress(f"decode: {len(sources)} JPEG files, 1 and {workers} threads")
    serial = bench.stopwatch.time(lambda: [decode(source) for source in sources])
    parallel = bench.stopwatch.time(pooled)
    return Figure(
        "gallery_build", f"JPEG decode + CLIP preparation only, {workers} threads", "images/s",
        throughput(len(sources), parallel), "same, one thread",
        throughput(len(sources), serial), True, target=TARGETS["images_per_s"],
        note="the host-side ceiling of the images target: no model involved")


def write_files(folder: Path, modality: str, count: int, bench: Bench) -> list[SourceFile]:
    """`count` distinct files of a modality (JPEG photos-like images, or PLY meshes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = bench.rng(count)
    sources = []
    for index in range(count):
        if modality == "image":
            path = folder / f"photo-{index:05d}.jpg"
            smooth_image(rng, bench.plan.image_pixels).save(path, quality=90)
        else:
            path = folder / f"shape-{index:05d}.ply"
            _random_mesh(rng).export(str(path))
        sources.append(SourceFile(path, modality, f"{modality} {index}"))
    return sources


def _random_mesh(rng: np.random.Generator) -> trimesh.Trimesh:
    """A squashed, randomly scaled icosphere (1,280 faces), as a modest real 3D file."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.apply_scale(rng.uniform(0.3, 1.0, 3))
    return sphere


def _ingest_rate(embedder: SpaceEmbedder, sources: Sequence[SourceFile], batch_size: int, root: Path) -> float:
    gallery = Gallery.create(root, embedder.space_id, embedder.space.dim)
    began = time.perf_counter()
    report = ingest(gallery, sources, embedder, batch_size=batch_size)
    seconds = time.perf_counter() - began
    if report.added != len(sources):
        raise RuntimeError(f"gallery build added {report.added} of {len(sources)} files: {report.failed[:3]}")
    return len(sources) / seconds
