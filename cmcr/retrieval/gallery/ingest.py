"""Files into a gallery: hash, decode and prepare them on threads ahead of the model, embed them in
batches, and save as they go, so an interrupted build resumes where it stopped."""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES
from cmcr.retrieval.gallery.identity import sha256_file
from cmcr.retrieval.gallery.items import NewItem, SourceFile
from cmcr.retrieval.gallery.previews import encode_preview
from cmcr.retrieval.gallery.store import Gallery


class ItemEmbedder(Protocol):
    """What `ingest` needs: decode a file of a modality, prepare decoded items (model-free work,
    run on the decoding threads) and embed prepared items into a space."""

    space_id: str

    def decode(self, modality: str, path: Path, *, reduced: bool = False) -> Any: ...

    def prepare(self, modality: str, batch: Sequence) -> Sequence: ...

    def embed(self, modality: str, batch: Sequence) -> np.ndarray: ...


@dataclass
class IngestReport:
    """What an ingest did: nothing is dropped silently."""

    added: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Loaded:
    """One source file after the decoding thread: its hash, its encoder input and preview (or why it
    could not be read); none of them when its hash was already in the gallery."""

    source: SourceFile
    sha256: str
    prepared: Any = None
    preview: tuple[bytes, str] | None = None
    error: str | None = None


def _default_workers() -> int:
    """One decoding thread per core (up to 32): decoding, not the model, is what holds back the
    image rate a large build needs (docs/benchmarks.md has the per-core figures)."""
    return min(32, os.cpu_count() or 1)


def ingest(gallery: Gallery, sources: Sequence[SourceFile], embedder: ItemEmbedder, *,
           batch_size: int = 32, save_every: int = 256, workers: int | None = None,
           reduced_decode: bool = True, progress: Callable[[Iterable], Iterable] = iter) -> IngestReport:
    """Decode, embed and add files, skipping content already in; saves every `save_every` items
    so an interrupted build resumes where it stopped. Unreadable files are reported, not fatal.

    Hashing, decoding and preparation run on `workers` threads (Pillow and the audio and mesh
    decoders release the GIL), a bounded window ahead of the embedding, so they overlap the model
    and each other; 0 runs them in the calling thread. Results are taken in source order, so the
    report and the gallery are the same for any `workers`. `reduced_decode`: JPEGs are decoded
    at the smallest DCT scale the encoder's input size allows (see `SpaceEmbedder.decode`)."""
    gallery.check_space(embedder.space_id)
    report = IngestReport()
    pending: list[tuple[NewItem, Any]] = []
    known = gallery.known_hashes()
    since_save = 0
    load = functools.partial(_load, embedder=embedder, known=frozenset(known), reduced=reduced_decode)
    loaded_stream = _loaded_in_order(sources, load, _default_workers() if workers is None else workers,
                                     2 * batch_size)
    for _, loaded in zip(progress(sources), loaded_stream):  # the bar keeps its total (a len)
        if loaded.sha256 in known:
            report.duplicates += 1
            continue
        if loaded.error is not None:
            report.failed.append((str(loaded.source.path), loaded.error))
            continue
        known.add(loaded.sha256)
        source = loaded.source
        pending.append((NewItem(source.modality, str(source.path), source.caption, loaded.sha256,
                                preview=loaded.preview), loaded.prepared))
        if len(pending) >= batch_size:
            since_save += _embed_and_add(gallery, pending, embedder, report)
            pending = []
            if since_save >= save_every:
                gallery.save()
                since_save = 0
    _embed_and_add(gallery, pending, embedder, report)
    gallery.save()
    return report


def _loaded_in_order(sources: Sequence[SourceFile], load: Callable[[SourceFile], _Loaded],
                     workers: int, window: int) -> Iterator[_Loaded]:
    """`load` of every source, in order, at most `window` files ahead of the consumer."""
    if workers < 1:
        yield from (load(source) for source in sources)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="cmcr-ingest") as pool:
        ahead: deque[Future] = deque()
        try:
            for source in sources:
                ahead.append(pool.submit(load, source))
                if len(ahead) >= window:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()


def _load(source: SourceFile, embedder: ItemEmbedder, known: frozenset[str], reduced: bool) -> _Loaded:
    digest = sha256_file(source.path)
    if digest in known:
        return _Loaded(source, digest)
    try:
        content = embedder.decode(source.modality, source.path, reduced=reduced)
        prepared = embedder.prepare(source.modality, [content])[0]
    except InputError as error:
        return _Loaded(source, digest, error=str(error))
    return _Loaded(source, digest, prepared, encode_preview(source.modality, content))


def _embed_and_add(gallery: Gallery, pending: list[tuple[NewItem, Any]], embedder: ItemEmbedder,
                   report: IngestReport) -> int:
    added = 0
    for modality in MODALITIES:
        group = [(item, prepared) for item, prepared in pending if item.modality == modality]
        if group:
            embeddings = embedder.embed(modality, [prepared for _, prepared in group])
            added += len(gallery.add([item for item, _ in group], embeddings))
    report.added += added
    return added
