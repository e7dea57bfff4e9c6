"""Farthest-point sampling and kNN grouping for PointBERT, batched on any device.

The official C-MCR/ULIP code samples one cloud at a time in a Python loop (a fixed cost per cloud,
whatever the batch; docs/benchmarks.md), which dominates 3D embedding. Here the loop over the S centres
is unavoidable (each pick depends on the previous one), but every step works on the whole batch
at once, so its cost is paid once per batch instead of once per cloud.

On CUDA even that loop is launch-bound (about five small kernels per pick), so there the picks
run inside one Triton kernel (`cmcr.models.encoders.fused_fps`) that picks the same points. Choose with
`backend=` or the `CMCR_FPS_BACKEND` environment variable: "auto" (Triton on CUDA when it is
installed and compiles, else torch), "torch", "triton", or "loop": the official one-cloud-a-time
Python loop (`fps_reference_loop`), slow on purpose, so the speed benchmark can measure PointBERT
with only its sampling swapped for the official one.

Geometry always runs in float32 with autocast disabled: nearest neighbours and farthest points
computed in bfloat16 would pick different points and make embeddings depend on the precision.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Literal

import torch

StartMode = Literal["farthest", "first", "random"]
START_MODES: tuple[str, ...] = ("farthest", "first", "random")
Backend = Literal["auto", "torch", "triton", "loop"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton", "loop")
BACKEND_ENV = "CMCR_FPS_BACKEND"

log = logging.getLogger(__name__)
_fused_failure: str | None = None  # why "auto" stopped using the Triton kernel in this process

# Elements of one (batch, centres, points) distance block in kNN; 2**26 float32 = 256 MiB.
_KNN_BLOCK_ELEMENTS = 2**26


def start_indices(
    points: torch.Tensor, mode: StartMode = "farthest", generator: torch.Generator | None = None
) -> torch.Tensor:
    """First FPS pick per cloud, (B,) long.

    "farthest" (the point farthest from the centroid) makes the sample independent of point
    order and of any random state; "first" (index 0) is what the CUDA `furthest_point_sample`
    kernel of pointnet2_ops does; "random" draws `torch.randint(0, N, (B,))` like the official
    C-MCR loop (on the CPU generator, then moved), so the same seed reproduces its sample.
    """
    batch, num_points, _ = points.shape
    if mode == "farthest":
        centroid = points.mean(dim=1, keepdim=True)
        return ((points - centroid) ** 2).sum(-1).argmax(dim=1)
    if mode == "first":
        return torch.zeros(batch, dtype=torch.long, device=points.device)
    if mode == "random":
        return torch.randint(0, num_points, (batch,), generator=generator).to(points.device)
    raise ValueError(f"unknown FPS start mode {mode!r}; expected one of {START_MODES}")


def farthest_point_sample(
    points: torch.Tensor,
    num_samples: int,
    start: StartMode | torch.Tensor = "farthest",
    generator: torch.Generator | None = None,
    backend: Backend | None = None,
) -> torch.Tensor:
    """Indices (B, S) of `num_samples` farthest points of each cloud in `points` (B, N, 3).

    `start` is a mode of `start_indices` or explicit first indices (B,); `backend` (default:
    `CMCR_FPS_BACKEND`, else "auto") picks the implementation, and every backend picks the same
    points.
    """
    _check_clouds(points, num_samples)
    with torch.autocast(points.device.type, enabled=False):
        first = start if isinstance(start, torch.Tensor) else start_indices(points.float(), start, generator)
        first = first.to(device=points.device, dtype=torch.long)
        chosen = backend or os.environ.get(BACKEND_ENV) or "auto"
        if chosen not in BACKENDS:
            raise ValueError(f"unknown FPS backend {chosen!r}; expected one of {BACKENDS}")
        if chosen == "triton":
            return _fused_sampler()(points, num_samples, first)
        if chosen == "loop":
            return _per_cloud_loop(points, num_samples, first)
        if chosen == "auto" and points.device.type == "cuda" and _fused_failure is None:
            picked = _try_fused(points, num_samples, first)
            if picked is not None:
                return picked
        return _torch_fps(points, num_samples, first)


def fps_backend_in_use(device: torch.device) -> str:
    """What "auto" runs on `device` in this process, for benchmark labels and logs."""
    if device.type != "cuda":
        return "torch"
    return "torch" if _fused_failure is not None else "triton"


def _torch_fps(points: torch.Tensor, num_samples: int, current: torch.Tensor) -> torch.Tensor:
    batch, num_points, _ = points.shape
    # (B, 3, N): coordinates as rows, so the distance sum runs over rows, not 3-wide vectors
    planar = points.float().transpose(1, 2).contiguous()
    picked = torch.empty(batch, num_samples, dtype=torch.long, device=points.device)
    nearest = torch.full((batch, num_points), float("inf"), device=points.device)
    for step in range(num_samples):
        picked[:, step] = current
        centre = planar.gather(2, current.view(batch, 1, 1).expand(-1, 3, -1))
        torch.minimum(nearest, (planar - centre).square_().sum(1), out=nearest)
        current = nearest.argmax(dim=1)
    return picked


def _fused_sampler() -> Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]:
    from cmcr.models.encoders.fused_fps import fused_farthest_point_sample  # imports Triton: CUDA only

    return fused_farthest_point_sample


def _try_fused(points: torch.Tensor, num_samples: int, first: torch.Tensor) -> torch.Tensor | None:
    """The Triton kernel, or None (once, with a warning) where Triton is missing or cannot
    compile: a 3D query must not fail because an optional speed-up is unavailable."""
    global _fused_failure
    try:
        return _fused_sampler()(points, num_samples, first)
    except Exception as error:  # noqa: BLE001 - ImportError, Triton compile and driver errors alike
        _fused_failure = f"{type(error).__name__}: {error}"
        log.warning("fused Triton FPS unavailable, using the torch loop from now on (%s)", _fused_failure)
        return None


def _per_cloud_loop(points: torch.Tensor, num_samples: int, first: torch.Tensor) -> torch.Tensor:
    return torch.stack([fps_reference_loop(cloud, num_samples, start)
                        for cloud, start in zip(points, first.tolist())])


def fps_reference_loop(points: torch.Tensor, num_samples: int, start: int) -> torch.Tensor:
    """FPS of one cloud (N, 3) the way the official C-MCR/ULIP code does it, (S,) long.

    This is the correctness reference for `farthest_point_sample` and the baseline of the speed
    benchmark: one cloud per call, distances initialised to 1e10, running minimum, argmax.
    """
    _check_clouds(points.unsqueeze(0), num_samples)
    xyz = points.float()
    picked = torch.zeros(num_samples, dtype=torch.long, device=xyz.device)
    distance = torch.ones(xyz.shape[0], device=xyz.device) * 1e10
    farthest = torch.tensor(start, device=xyz.device)
    for step in range(num_samples):
        picked[step] = farthest
        dist = torch.sum((xyz - xyz[farthest].view(1, 3)) ** 2, -1)
        distance = torch.min(distance, dist)
        farthest = torch.max(distance, -1)[1]
    return picked


def gather_points(points: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows of `points` (B, N, C) at `indices` (B, ...) → (B, ..., C)."""
    batch, _, channels = points.shape
    flat = indices.reshape(batch, -1, 1).expand(-1, -1, channels)
    return points.gather(1, flat).reshape(*indices.shape, channels)


def knn_indices(points: torch.Tensor, centres: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, S, k) of the k points of `points` (B, N, 3) nearest each of `centres` (B, S, 3).

    Distances are computed for blocks of centres so the (B, S, N) matrix never exists whole:
    10k points x 512 centres x a batch of 256 would otherwise need 5 GB.
    """
    batch, num_points, _ = points.shape
    if k > num_points:
        raise ValueError(f"kNN needs k={k} neighbours but the clouds have only {num_points} points")
    with torch.autocast(points.device.type, enabled=False):
        xyz, queries = points.float(), centres.float()
        squared_norms = (xyz**2).sum(-1).unsqueeze(1)  # (B, 1, N)
        block = max(1, _KNN_BLOCK_ELEMENTS // (batch * num_points))
        parts = []
        for begin in range(0, queries.shape[1], block):
            chunk = queries[:, begin : begin + block]
            distances = torch.baddbmm(squared_norms, chunk, xyz.transpose(1, 2), alpha=-2.0)
            distances += (chunk**2).sum(-1, keepdim=True)
            parts.append(distances.topk(k, dim=-1, largest=False, sorted=False).indices)
    return torch.cat(parts, dim=1)


def group_points(
    points: torch.Tensor,
    num_groups: int,
    group_size: int,
    start: StartMode | torch.Tensor = "farthest",
    generator: torch.Generator | None = None,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PointBERT's grouping: FPS centres (sampled by `backend`, as in `farthest_point_sample`),
    kNN neighbourhoods relative to their centre.

    Returns `neighbourhoods` (B, G, K, 3) and `centres` (B, G, 3), float32.
    """
    with torch.autocast(points.device.type, enabled=False):
        xyz = points.float()
        centres = gather_points(xyz, farthest_point_sample(xyz, num_groups, start, generator, backend))
        neighbours = gather_points(xyz, knn_indices(xyz, centres, group_size))
        return neighbours - centres.unsqueeze(2), centres


def _check_clouds(points: torch.Tensor, num_samples: int) -> None:
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"expected clouds of shape (B, N, 3), got {tuple(points.shape)}")
    if not 0 < num_samples <= points.shape[1]:
        raise ValueError(f"cannot sample {num_samples} points from clouds of {points.shape[1]}")
