"""The `points` section: our batched FPS, alone and inside PointBERT, against the official
per-cloud Python loop on the same clouds (and, on CUDA, the Triton kernel against the torch loop).

Every baseline is the library's own switch (`farthest_point_sample(..., backend="loop")`, and a
PointBERT whose config says `fps_backend="loop"`), checked to do the same work before it is timed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from benchmarks.bench import Bench
from benchmarks.figures import TARGETS, Figure, throughput
from benchmarks.inputs import sample_clouds
from cmcr.models.encoders.fps import farthest_point_sample, fps_backend_in_use


def official_fps_encoder(bench: Bench) -> Any:
    """The ULIP encoder with the official per-cloud loop FPS: the same weights and kNN, only the
    sampling swapped, so the difference between the two measurements is the sampling alone."""
    point = bench.encoder("ulip").config.point
    return bench.encoder("ulip", point=dataclasses.replace(point, fps_backend="loop"))


def bench_points(bench: Bench) -> list[Figure]:
    """FPS alone and whole 3D embedding: ours against the per-cloud loop, same clouds."""
    encoder = bench.encoder("ulip")
    groups = encoder.config.point.num_groups
    batch = bench.plan.points_batch
    clouds = sample_clouds(bench.rng(7), batch, bench.plan.points_per_cloud)
    on_device = torch.from_numpy(clouds).to(bench.device)
    label = f"{bench.plan.points_per_cloud:,} points → {groups} centres"

    def loop_fps(points: torch.Tensor) -> torch.Tensor:
        return farthest_point_sample(points, groups, backend="loop")

    ours = farthest_point_sample(on_device, groups)
    if not torch.equal(ours.cpu(), loop_fps(on_device).cpu()):
        raise RuntimeError("batched FPS and the per-cloud loop disagree: the baseline is not the same work")
    official = official_fps_encoder(bench)
    if not np.allclose(encoder.embed("points", clouds[:1]), official.embed("points", clouds[:1]), rtol=1e-4, atol=1e-5):
        raise RuntimeError("PointBERT with the per-cloud loop embeds differently: the baseline is not the same model")
    watch = bench.stopwatch
    bench.progress("FPS: batched vs per-cloud loop")
    fps_batched = watch.time(lambda: farthest_point_sample(on_device, groups).cpu())
    fps_loop = watch.time(lambda: loop_fps(on_device).cpu())
    fps_one = watch.time(lambda: farthest_point_sample(on_device[:1], groups).cpu())
    fps_loop_one = watch.time(lambda: loop_fps(on_device[:1]).cpu())

    bench.progress("PointBERT: batched FPS vs per-cloud loop")
    embed_batch = watch.time(lambda: encoder.embed("points", clouds, batch_size=batch))
    embed_one = watch.time(lambda: encoder.embed("points", clouds[:1], batch_size=1))
    loop_batch = watch.time(lambda: official.embed("points", clouds, batch_size=batch))
    loop_one = watch.time(lambda: official.embed("points", clouds[:1], batch_size=1))
    return _fused_fps_figures(bench, on_device, groups, label) + [
        Figure("points", f"batched FPS, batch {batch} ({label})", "clouds/s", throughput(batch, fps_batched),
               "per-cloud Python-loop FPS, same clouds", throughput(batch, fps_loop), True),
        Figure("points", f"batched FPS, one cloud ({label})", "ms", fps_one.median_ms,
               "per-cloud Python-loop FPS, same cloud", fps_loop_one.median_ms, False,
               p95=fps_one.p95_ms, baseline_p95=fps_loop_one.p95_ms),
        Figure("points", f"ULIP PointBERT embed, batch {batch}", "clouds/s", throughput(batch, embed_batch),
               "same model with per-cloud loop FPS", throughput(batch, loop_batch), True,
               target=TARGETS["clouds_per_s"]),
        Figure("points", "ULIP PointBERT single 3D query", "ms", embed_one.median_ms,
               "same model with per-cloud loop FPS", loop_one.median_ms, False,
               p95=embed_one.p95_ms, baseline_p95=loop_one.p95_ms, target=TARGETS["cloud_latency_ms"]),
    ]


def _fused_fps_figures(bench: Bench, clouds: torch.Tensor, groups: int, label: str) -> list[Figure]:
    """On CUDA: the one-launch Triton kernel against the batched torch loop (launch-bound there).
    Off CUDA the kernel does not run, and "batched FPS" above is the torch loop."""
    if bench.device.type != "cuda":
        return []
    fused = farthest_point_sample(clouds, groups, backend="auto")
    if fps_backend_in_use(bench.device) != "triton":
        return []  # the fallback warning says why; "batched FPS" rows then measure the torch loop
    if not torch.equal(fused, farthest_point_sample(clouds, groups, backend="torch")):
        raise RuntimeError("the Triton FPS kernel and the torch loop disagree: not the same work")
    watch, batch = bench.stopwatch, clouds.shape[0]
    bench.progress("FPS: Triton kernel vs batched torch loop")
    timings = {(backend, size): watch.time(lambda: farthest_point_sample(clouds[:size], groups, backend=backend).cpu())
               for backend in ("triton", "torch") for size in (batch, 1)}
    return [
        Figure("points", f"FPS Triton kernel, batch {batch} ({label})", "clouds/s",
               throughput(batch, timings["triton", batch]), "batched torch loop, same clouds",
               throughput(batch, timings["torch", batch]), True),
        Figure("points", f"FPS Triton kernel, one cloud ({label})", "ms", timings["triton", 1].median_ms,
               "batched torch loop, same cloud", timings["torch", 1].median_ms, False,
               p95=timings["triton", 1].p95_ms, baseline_p95=timings["torch", 1].p95_ms),
    ]
