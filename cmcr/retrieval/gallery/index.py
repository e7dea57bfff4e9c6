"""Inner-product search over a gallery's unit rows: exact FAISS, approximate FAISS (HNSW or IVF),
or a torch matrix product on a GPU, and the approximate indexes a saved version keeps on disk."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.atomic import replacing
from cmcr.errors import InputError

log = logging.getLogger(__name__)

# The index files `saved_searcher` keeps in a version folder: local caches, never shared.
INDEX_FILES = "index-*.faiss"


@dataclass(frozen=True)
class IndexSettings:
    """How a gallery is searched.

    Up to `exact_limit` rows, FAISS `IndexFlatIP` (exact). Beyond it, `approximate` picks HNSW
    (no training, good recall, more memory) or IVF (trained coarse quantiser; `ivf_lists` defaults
    to about 4*sqrt(N)). On a CUDA device every search is exact: a torch matrix product and top-k
    over the whole gallery costs less than one FAISS CPU query.
    """

    exact_limit: int = 200_000
    approximate: str = "hnsw"
    hnsw_neighbors: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 80
    ivf_lists: int | None = None
    ivf_probes: int = 16

    def __post_init__(self) -> None:
        if self.approximate not in ("hnsw", "ivf"):
            raise InputError(f"approximate must be 'hnsw' or 'ivf', not {self.approximate!r}.")


class _FaissSearcher:
    def __init__(self, index: Any) -> None:
        self.index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


class _TorchSearcher:
    """Exact search on a GPU: one matrix product and top-k per block of queries."""

    _QUERY_BLOCK = 1024

    def __init__(self, embeddings: np.ndarray, device: str) -> None:
        import torch  # heavy (seconds to import), and only a GPU search needs it

        self.torch = torch
        self.device = torch.device(device)
        self.matrix = torch.from_numpy(np.ascontiguousarray(embeddings)).to(self.device)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        scores, rows = [], []
        with torch.inference_mode():
            for start in range(0, len(queries), self._QUERY_BLOCK):
                block = torch.from_numpy(queries[start : start + self._QUERY_BLOCK]).to(self.device)
                top = torch.topk(block @ self.matrix.T, k, dim=1)
                scores.append(top.values.cpu().numpy())
                rows.append(top.indices.cpu().numpy())
        return np.concatenate(scores), np.concatenate(rows)


def build_faiss_index(embeddings: np.ndarray, settings: IndexSettings) -> Any:
    """The FAISS inner-product index `settings` asks for at this gallery size."""
    import faiss  # only CPU search needs it: ingesting, copying or searching on a GPU never loads it

    count, dim = embeddings.shape
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    if count <= settings.exact_limit:
        index = faiss.IndexFlatIP(dim)
    elif settings.approximate == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_neighbors, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
    else:
        # FAISS wants about 39 training points per list; more lists than that only hurt recall.
        lists = settings.ivf_lists or max(1, min(int(4 * np.sqrt(count)), count // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(data)
    index.add(data)
    return _with_search_settings(index, settings)


def _with_search_settings(index: Any, settings: IndexSettings) -> Any:
    """Search-time knobs, applied to built and to loaded indexes alike."""
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = settings.hnsw_ef_search
    elif hasattr(index, "nprobe"):
        index.nprobe = min(settings.ivf_probes, index.nlist)
    return index


def load_or_build_index(path: Path, embeddings: np.ndarray, settings: IndexSettings) -> Any:
    """The approximate index over `embeddings`, read from `path` when it holds one that fits, else
    built and written there (atomically) for the next process.

    Building HNSW over a large gallery costs minutes where reading it back costs a fraction of a
    second (docs/architecture.md has the figures), so an app serving one should build it once,
    not at every start. Index files are FAISS's own binary format, not pickles, and travel with
    nothing this project shares: pulls and copies never carry them and pushes leave them out, so
    a gallery reads only the ones it wrote itself unless someone hands over a whole gallery folder.
    """
    import faiss  # only CPU search needs it, as in `build_faiss_index`

    if path.is_file():
        try:
            index = faiss.read_index(str(path))
            if index.ntotal == len(embeddings) and index.d == embeddings.shape[1]:
                return _with_search_settings(index, settings)
            reason = f"it holds {index.ntotal} rows of width {index.d}"
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0]
        log.warning("rebuilding the gallery index %s: %s", path, reason)
    index = build_faiss_index(embeddings, settings)
    try:
        with replacing(path) as temporary:
            faiss.write_index(index, str(temporary))
    except (OSError, RuntimeError) as error:  # a read-only folder still searches, only slower to open
        log.info("could not keep the gallery index at %s: %s", path, error)
    return index


def build_searcher(embeddings: np.ndarray, settings: IndexSettings, device: str | None = None) -> Any:
    """A searcher over unit rows: `.search(queries, k) -> (scores, rows)`, rows -1 where empty.

    `device=None` uses the GPU when torch sees one, else FAISS on the CPU; "cpu" forces FAISS.
    """
    device = _search_device(device)
    if device.startswith("cuda"):
        return _TorchSearcher(embeddings, device)
    return _FaissSearcher(build_faiss_index(embeddings, settings))


def saved_searcher(folder: Path | None, name: str, embeddings: np.ndarray, settings: IndexSettings,
                   device: str | None = None) -> Any:
    """`build_searcher`, except that an approximate FAISS index over the rows of a saved version
    `folder` is kept there under `name` and the settings it was built with. The rest is cheap to
    build (exact FAISS copies the rows, the GPU path just moves them)."""
    saved = folder is not None and len(embeddings) > settings.exact_limit
    if not saved or _search_device(device).startswith("cuda"):
        return build_searcher(embeddings, settings, device)
    path = folder / f"index-{name}-{_build_fingerprint(settings)}.faiss"
    return _FaissSearcher(load_or_build_index(path, embeddings, settings))


def _search_device(device: str | None) -> str:
    if device is None:
        import torch  # heavy (seconds to import), and only asking for the default device needs it

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def _build_fingerprint(settings: IndexSettings) -> str:
    """What an index file's content depends on besides the rows (search-time knobs excluded)."""
    built = {key: getattr(settings, key) for key in
             ("exact_limit", "approximate", "hnsw_neighbors", "hnsw_ef_construction", "ivf_lists")}
    return hashlib.sha256(json.dumps(built, sort_keys=True).encode()).hexdigest()[:12]


def index_recall(embeddings: np.ndarray, queries: np.ndarray, settings: IndexSettings,
                 k: int = 10) -> float:
    """Recall@k of the index `settings` builds against exact search: the share of the true
    top-k rows that the index returns (1.0 for an exact index)."""
    exact = build_searcher(embeddings, replace(settings, exact_limit=len(embeddings)), "cpu")
    approximate = build_searcher(embeddings, settings, "cpu")
    _, truth = exact.search(queries, k)
    _, found = approximate.search(queries, k)
    hits = sum(len(set(t) & set(f[f >= 0])) for t, f in zip(truth, found))
    return hits / truth.size
