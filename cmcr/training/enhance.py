"""Semantic enhancement of unpaired memories: pseudo partners and completion noise.

`aggregate` builds pseudo partners (inter-MCR semantic consistency): each query row is replaced
by a softmax-weighted mixture of memory rows. Memories reach millions of rows, so the softmax is
computed online over memory chunks (running max and sum, as in flash attention) and the N×M
score matrix never exists; only one (query chunk × memory chunk) block lives at a time, on the
chosen device. Each memory chunk is read once, which matters when the memory is a float16
memmap on disk.

`complete` is intra-MCR semantic completion: Gaussian noise on the sphere, drawn fresh every
step so the projectors see a neighbourhood of each embedding rather than a point. Its strength
is given as the cosine a noisy row keeps with its original (`noise_std`), because a fixed
per-dimension variance means ever more noise as the width grows.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

DEFAULT_MEMORY_CHUNK = 8192
DEFAULT_QUERY_CHUNK = 2048


def aggregate(
    queries: ArrayLike,
    memory: ArrayLike,
    temperature: float,
    *,
    values: ArrayLike | None = None,
    top_k: int | None = None,
    chunk_size: int = DEFAULT_MEMORY_CHUNK,
    query_chunk_size: int = DEFAULT_QUERY_CHUNK,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Softmax(q·m/τ)-weighted sum of memory rows for every query row, L2-normalised.

    `values` (same row count as `memory`, any width) are mixed with the weights computed from
    `memory`; the Ex-MCR trainer passes the row-aligned overlap of the *other* MCR here. With
    `top_k`, each query's softmax covers only its k highest-scoring memory rows. Returns float32
    (Nq, D_values) on `device` (default: the queries' device, CPU for numpy).
    """
    _check_inputs(queries, memory, values, temperature, top_k, chunk_size, query_chunk_size)
    device = torch.device(device) if device is not None else _default_device(queries)
    values = memory if values is None else values
    query_tensor = _to_device(queries, device)
    with tf32_products(device, enabled=_all_float16(queries, memory, values)):
        if top_k is None:
            mixed = _online_softmax_mix(query_tensor, memory, values, temperature, chunk_size,
                                        query_chunk_size)
        else:
            mixed = _top_k_softmax_mix(query_tensor, memory, values, temperature, top_k, chunk_size,
                                       query_chunk_size)
    return F.normalize(mixed, dim=1)


@contextlib.contextmanager
def tf32_products(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """TF32 tensor-core matrix products on CUDA for the duration, then the previous setting.

    `aggregate` turns this on when every input is float16 (feature memories are, by default): a
    float16 value's 10-bit mantissa is exact in TF32, so the scores lose nothing, and only the
    float32 mixing weights are rounded (at most 2**-11 relative, the rounding a float16 result
    gets anyway). An H100 runs TF32 products several times faster than strict float32.
    """
    if not enabled or device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _all_float16(*arrays: ArrayLike | None) -> bool:
    return all(array.dtype == (torch.float16 if isinstance(array, torch.Tensor) else np.float16)
               for array in arrays if array is not None)


def noise_std(cosine: float, dim: int) -> float:
    """The per-dimension σ for which `complete` keeps cos(x, x̃) ≈ `cosine` in `dim` dimensions.

    For a unit row and ε ~ N(0, σ²I), ‖x + ε‖² concentrates at 1 + σ²·dim while x·(x + ε)
    stays near 1, so the cosine is 1/√(1 + σ²·dim); solved for σ.
    """
    if not 0 < cosine <= 1:
        raise ValueError(f"noise cosine must be in (0, 1], got {cosine}")
    return math.sqrt((cosine ** -2 - 1) / dim)


def complete(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x + N(0, σ²I), re-normalised onto the unit sphere (σ is the standard deviation)."""
    if sigma < 0:
        raise ValueError(f"noise standard deviation must be >= 0, got {sigma}")
    if sigma == 0:
        return F.normalize(x, dim=-1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return F.normalize(x + sigma * noise, dim=-1)


def _online_softmax_mix(queries, memory, values, temperature, chunk_size, query_chunk_size):
    """Flash-attention style pass: one read of each memory chunk, running max/sum per query.

    The temperature is folded into the queries once, and each score block becomes its weights in
    place: the block passes, not the matrix products, are what cost on a GPU.
    """
    num_queries = queries.shape[0]
    scaled = queries / temperature
    running_max = torch.full((num_queries,), -torch.inf, device=queries.device)
    running_sum = torch.zeros(num_queries, device=queries.device)
    accumulator = torch.zeros(num_queries, values.shape[1], device=queries.device)
    for start in range(0, memory.shape[0], chunk_size):
        keys = _to_device(memory[start:start + chunk_size], queries.device)
        vals = keys if values is memory else _to_device(values[start:start + chunk_size],
                                                        queries.device)
        for q_start in range(0, num_queries, query_chunk_size):
            rows = slice(q_start, q_start + query_chunk_size)
            weights = scaled[rows] @ keys.T
            new_max = torch.maximum(running_max[rows], weights.amax(dim=1))
            rescale = torch.exp(running_max[rows] - new_max)
            weights.sub_(new_max[:, None]).exp_()
            running_sum[rows] = running_sum[rows] * rescale + weights.sum(dim=1)
            accumulator[rows].mul_(rescale[:, None]).addmm_(weights, vals)
            running_max[rows] = new_max
    return accumulator / running_sum[:, None]


def _top_k_softmax_mix(queries, memory, values, temperature, top_k, chunk_size, query_chunk_size):
    """Streaming top-k merge across memory chunks, then a softmax over each query's k rows."""
    num_queries = queries.shape[0]
    k = min(top_k, memory.shape[0])
    best_scores = torch.full((num_queries, k), -torch.inf, device=queries.device)
    best_index = torch.zeros((num_queries, k), dtype=torch.long, device=queries.device)
    for start in range(0, memory.shape[0], chunk_size):
        keys = _to_device(memory[start:start + chunk_size], queries.device)
        chunk_index = torch.arange(start, start + keys.shape[0], device=queries.device)
        for q_start in range(0, num_queries, query_chunk_size):
            rows = slice(q_start, q_start + query_chunk_size)
            scores = queries[rows] @ keys.T
            merged_scores = torch.cat([best_scores[rows], scores], dim=1)
            merged_index = torch.cat(
                [best_index[rows], chunk_index.expand(scores.shape[0], -1)], dim=1)
            best_scores[rows], order = merged_scores.topk(k, dim=1)
            best_index[rows] = merged_index.gather(1, order)
    return _mix_selected_rows(best_scores / temperature, best_index, values, query_chunk_size)


def _mix_selected_rows(scores, index, values, query_chunk_size):
    """Gather each query's selected value rows in bounded blocks and mix them by softmax."""
    weights = torch.softmax(scores, dim=1)
    mixed = torch.empty(scores.shape[0], values.shape[1], device=scores.device)
    rows_per_block = max(1, (query_chunk_size * 64) // index.shape[1])
    for start in range(0, scores.shape[0], rows_per_block):
        rows = slice(start, start + rows_per_block)
        selected = _gather_rows(values, index[rows], scores.device)
        mixed[rows] = torch.einsum("qk,qkd->qd", weights[rows], selected)
    return mixed


def _gather_rows(values: ArrayLike, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values[index.to(values.device)].to(device=device, dtype=torch.float32)
    flat = index.cpu().numpy().reshape(-1)
    unique, inverse = np.unique(flat, return_inverse=True)  # sorted reads are kind to memmaps
    rows = _to_device(values[unique], device)
    return rows[torch.from_numpy(inverse).to(device)].reshape(*index.shape, -1)


def _to_device(array: ArrayLike, device: torch.device) -> torch.Tensor:
    if isinstance(array, np.ndarray):
        # Read-only inputs (memmaps) are copied: torch cannot wrap a read-only buffer.
        array = torch.from_numpy(np.array(array, copy=not array.flags.writeable, order="C"))
    return array.to(device=device, dtype=torch.float32)


def _default_device(queries: ArrayLike) -> torch.device:
    return queries.device if isinstance(queries, torch.Tensor) else torch.device("cpu")


def _check_inputs(queries, memory, values, temperature, top_k, chunk_size, query_chunk_size):
    if queries.ndim != 2 or memory.ndim != 2 or queries.shape[1] != memory.shape[1]:
        raise ValueError(
            f"queries {tuple(queries.shape)} and memory {tuple(memory.shape)} must be 2-D with "
            "the same width")
    if memory.shape[0] == 0:
        raise ValueError("memory is empty: nothing to aggregate")
    if values is not None and (values.ndim != 2 or values.shape[0] != memory.shape[0]):
        raise ValueError(f"values {tuple(values.shape)} must have one row per memory row")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if chunk_size < 1 or query_chunk_size < 1:
        raise ValueError("chunk sizes must be >= 1")
