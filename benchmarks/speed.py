"""Speed and scale benchmarks (issue 7): every figure next to a baseline measured in the same run.

A claim such as "batched FPS is fast" means nothing without the number it beats on the same
machine, in the same process, on the same inputs. So every benchmark here returns `Figure`s: a
measured value, the baseline measured right beside it (per-cloud Python-loop FPS, batch-1
encoding, CPU FAISS flat, ...), the speed-up, and -- where DESIGN §5 sets one -- the target and
how far the figure is from it.

Sections (each a function of a `Bench`, so benchmarks/__main__.py stays a thin CLI):

- `encoders`: throughput of each frozen tower at its full-size architecture (random weights:
  speed does not depend on their values), batch 1 against the best batch; bf16 against fp32 on
  CUDA.
- `points`: our batched FPS (alone, and inside PointBERT) against the official per-cloud loop.
- `search`: one query against N gallery rows: FAISS flat against a NumPy scan on the CPU, and a
  torch matrix product against FAISS flat on CUDA.
- `query`: the app's request path for each tab (decoded input in memory → top-10).
- `gallery_build`: files on disk → a saved gallery (hashing, decoding, embedding, previews).
- `train`: projector training to convergence (early stopping) on synthetic memories.

Timing: CUDA work is timed with CUDA events after warm-up calls; CPU work with `perf_counter`.
Every timed call ends with results on the host (the encoders return NumPy), so a CUDA event
pair brackets all the work. Medians and 95th percentiles, never single runs.

Sizes: `tiny` uses the tiny encoder profile and toy workloads (the CI smoke run: its numbers
carry no meaning); `small` uses the full-size architectures at workloads that fit a few minutes
of a 2-core CPU; `full` is the DESIGN §5 workload for one GPU (1M-row galleries and memories).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from cmcr.errors import InputError

SECTIONS: tuple[str, ...] = ("encoders", "points", "search", "query", "gallery_build", "train")
SCHEMA_VERSION = 1
K = 10
EMBED_DIM = 512
MIN_TRAIN_ROWS = 1000  # below this the train section measures start-up, not training
GPU_COMMAND = "python -m benchmarks --device cuda --sizes full --out benchmark-h100.json"

# Encoder overrides that give the full-size architecture with seeded random weights, offline.
RANDOM_WEIGHTS: dict[str, dict[str, Any]] = {
    "clip": {"pretrained": None},
    "clap": {"hub_filename": None, "tokenizer_repo": None},
    "ulip": {"checkpoint_repo": None},
}


@dataclass(frozen=True)
class Target:
    """A DESIGN §5 performance target."""

    value: float
    unit: str
    text: str


TARGETS: dict[str, Target] = {
    "query_ms": Target(10.0, "ms", "audio→image query, 1M gallery, p50 ≤ 10 ms (H100)"),
    "clouds_per_s": Target(5000.0, "clouds/s", "10k-point clouds embedded ≥ 5,000/s (H100)"),
    "cloud_latency_ms": Target(5.0, "ms", "one 3D query embedded in ≤ 5 ms (H100)"),
    "images_per_s": Target(5000.0, "images/s", "images embedded ≥ 5,000/s from JPEG files (H100)"),
    "train_s": Target(30.0, "s", "projector training on 1M-row memories ≤ 30 s (H100)"),
}


@dataclass(frozen=True)
class SizePlan:
    """How much work each section does at one `--sizes` setting."""

    profile: str  # encoder profile: "tiny" (toy widths) or "full" (real architectures)
    encoder_batches: tuple[int, ...]
    warmup: int
    repeats: int
    points_per_cloud: int
    points_batch: int
    gallery_sizes: tuple[int, ...]
    search_queries: int
    build_images: int
    build_clouds: int
    build_batch: int
    image_pixels: tuple[int, int]  # (width, height) of the generated JPEG files
    train_rows: tuple[int, ...]
    train_overrides: dict[str, Any]  # TrainConfig fields: CPU sizes cap epochs and widths


SIZE_PLANS: dict[str, SizePlan] = {
    "tiny": SizePlan("tiny", (1, 2), 1, 2, 1024, 2, (1000,), 10, 2, 1, 2, (160, 120), (1000,),
                     {"hidden": 64, "batch_size": 256, "epochs": 2}),
    "small": SizePlan("full", (1, 4), 1, 3, 10_000, 4, (1000, 100_000), 30, 6, 3, 6, (640, 480),
                      (4096,), {"epochs": 2}),
    "full": SizePlan("full", (1, 8, 32, 128, 256), 3, 20, 10_000, 128, (1000, 100_000, 1_000_000),
                     200, 2048, 512, 256, (640, 480), (100_000, 1_000_000), {}),
}


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 95))


@dataclass(frozen=True)
class Figure:
    """One measured figure, its same-run baseline and, where DESIGN §5 sets one, its target.

    `higher_is_better` orients the ratios: `speedup` and `target_ratio` are both ≥ 1 when the
    figure beats its baseline / meets its target.
    """

    section: str
    name: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    higher_is_better: bool
    p95: float | None = None
    baseline_p95: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def speedup(self) -> float:
        return _ratio(self.value, self.baseline, self.higher_is_better)

    @property
    def target_ratio(self) -> float | None:
        return None if self.target is None else _ratio(self.value, self.target.value, self.higher_is_better)

    def to_dict(self) -> dict[str, Any]:
        record = {key: value for key, value in dataclasses.asdict(self).items() if key != "target"}
        record["speedup"] = self.speedup
        record["target"] = None if self.target is None else dataclasses.asdict(self.target)
        record["target_ratio"] = self.target_ratio
        record["target_met"] = None if self.target is None else self.target_ratio >= 1.0
        return record


def _ratio(value: float, reference: float, higher_is_better: bool) -> float:
    if value <= 0 or reference <= 0:
        return float("nan")
    return value / reference if higher_is_better else reference / value


def throughput(items: int, timing: Timing) -> float:
    """Items per second at the median call time."""
    return items / (timing.median_ms / 1000.0)


# ---- timing and the machine ------------------------------------------------------------------


class Stopwatch:
    """Times calls on one device: CUDA events after warm-up on GPUs, perf_counter on CPUs."""

    def __init__(self, device: torch.device, warmup: int, repeats: int) -> None:
        self.device = device
        self.warmup = warmup
        self.repeats = repeats

    def time(self, call: Callable[[], Any], repeats: int | None = None, warmup: int | None = None) -> Timing:
        for _ in range(self.warmup if warmup is None else warmup):
            call()
        self._synchronize()
        samples = [self._once(call) for _ in range(self.repeats if repeats is None else repeats)]
        return Timing(tuple(samples))

    def _once(self, call: Callable[[], Any]) -> float:
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        begin = time.perf_counter()
        call()
        return (time.perf_counter() - begin) * 1000.0

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def describe_machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
    import faiss

    machine = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "ram_gib": _ram_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "gpu": None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        machine["gpu"] = properties.name
        machine["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
        machine["cuda"] = torch.version.cuda
    return machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


# ---- the shared state of one run ---------------------------------------------------------------


@dataclass
class Bench:
    """One run's device, sizes and lazily built encoders (shared by every section)."""

    device: torch.device
    plan: SizePlan
    progress: Callable[[str], None] = lambda message: None
    seed: int = 0
    _encoders: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def stopwatch(self) -> Stopwatch:
        return Stopwatch(self.device, self.plan.warmup, self.plan.repeats)

    @property
    def precisions(self) -> tuple[str, ...]:
        """bf16 autocast only pays on GPUs; on CPUs it is slower, and the encoders skip it."""
        return ("float32", "bfloat16") if self.device.type == "cuda" else ("float32",)

    def encoder(self, name: str, dtype: str = "float32") -> Any:
        """A loaded encoder of the plan's profile with random weights (no download)."""
        key = (name, dtype)
        if key not in self._encoders:
            from cmcr.models.encoders import build_encoder

            self.progress(f"building the {self.plan.profile} {name} encoder ({dtype})")
            self._encoders[key] = build_encoder(
                name, self.plan.profile, device=self.device, dtype=dtype, **RANDOM_WEIGHTS[name]
            ).load()
        return self._encoders[key]

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])


# ---- inputs -------------------------------------------------------------------------------------


INPUT_SALTS = {"text": 1, "image": 2, "audio": 3, "points": 4}


def sample_inputs(modality: str, count: int, bench: Bench) -> list[Any]:
    """Decoded inputs of a modality, as the encoders take them (DESIGN §2 sizes)."""
    rng = bench.rng(INPUT_SALTS[modality])
    if modality == "text":
        words = ("dog", "bell", "rain", "chair", "guitar", "train", "bird", "car")
        return [f"a photo of a {words[i % len(words)]} number {i}" for i in range(count)]
    if modality == "image":
        return [smooth_image(rng, (320, 240)) for _ in range(count)]
    if modality == "audio":
        return [(0.1 * rng.standard_normal(480_000)).astype(np.float32) for _ in range(count)]
    return list(sample_clouds(rng, count, bench.plan.points_per_cloud))


def sample_clouds(rng: np.random.Generator, count: int, num_points: int) -> np.ndarray:
    """(count, num_points, 3) float32 clouds on noisy ellipsoids, inside the unit sphere."""
    directions = rng.standard_normal((count, num_points, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    axes = rng.uniform(0.3, 1.0, (count, 1, 3))
    clouds = directions * axes + 0.01 * rng.standard_normal((count, num_points, 3))
    return (clouds / np.abs(clouds).max()).astype(np.float32)


def smooth_image(rng: np.random.Generator, size: tuple[int, int]) -> Any:
    """A photo-like RGB image (smooth colour fields plus grain), so JPEGs have realistic sizes."""
    from PIL import Image

    width, height = size
    coarse = rng.uniform(0, 255, (height // 16 + 1, width // 16 + 1, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def unit_rows(rng: np.random.Generator, count: int, dim: int = EMBED_DIM) -> np.ndarray:
    """Random unit rows, generated in blocks so a 1M-row gallery needs no float64 copy."""
    rows = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 65536):
        block = rng.standard_normal((min(65536, count - start), dim), dtype=np.float32)
        rows[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return rows


# ---- encoders ---------------------------------------------------------------------------------

ENCODER_MODALITIES: tuple[tuple[str, str], ...] = (
    ("clip", "text"), ("clip", "image"), ("clap", "audio"), ("ulip", "points"),
)


def bench_encoders(bench: Bench) -> list[Figure]:
    """Each tower at batch 1 (the unbatched baseline) and its best batch; bf16 vs fp32 on CUDA."""
    figures = []
    for name, modality in ENCODER_MODALITIES:
        best: dict[str, tuple[float, int]] = {}
        for dtype in bench.precisions:
            rates = _encoder_rates(bench, name, modality, dtype)
            best[dtype] = max((rate, batch) for batch, rate in rates.items())
            rate, batch = best[dtype]
            figures.append(Figure(
                "encoders", f"{name} {modality} {dtype}, best batch ({batch})", f"{modality} items/s",
                rate, f"{name} {modality} {dtype}, batch 1", rates[1], higher_is_better=True))
        if "bfloat16" in best:
            figures.append(Figure(
                "encoders", f"{name} {modality} bf16 autocast, batch {best['bfloat16'][1]}",
                f"{modality} items/s", best["bfloat16"][0],
                f"{name} {modality} fp32, batch {best['float32'][1]}", best["float32"][0],
                higher_is_better=True))
    return figures


def _encoder_rates(bench: Bench, name: str, modality: str, dtype: str) -> dict[int, float]:
    """Items/s per batch size, in increasing batch order; a batch that runs out of GPU memory
    ends the sweep (the larger ones would too) instead of the whole run."""
    encoder = bench.encoder(name, dtype)
    rates = {}
    for batch in sorted(bench.plan.encoder_batches):
        items = sample_inputs(modality, batch, bench)
        bench.progress(f"{name} {modality} {dtype} batch {batch}")
        try:
            timing = bench.stopwatch.time(lambda: encoder.embed(modality, items, batch_size=batch))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            bench.progress(f"{name} {modality} {dtype}: batch {batch} does not fit in GPU memory")
            break
        rates[batch] = throughput(batch, timing)
    return rates


# ---- point clouds: batched FPS against the per-cloud loop ------------------------------------


def per_cloud_loop_fps(points: torch.Tensor, num_samples: int, start: Any = "farthest",
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The official sampling order as a drop-in for `farthest_point_sample`: one cloud per
    Python-loop call (`fps_reference_loop`), from the same start points."""
    from cmcr.models.encoders.fps import fps_reference_loop, start_indices

    firsts = start if isinstance(start, torch.Tensor) else start_indices(points.float(), start, generator)
    return torch.stack([fps_reference_loop(cloud, num_samples, int(first))
                        for cloud, first in zip(points, firsts.tolist())])


@contextlib.contextmanager
def official_fps() -> Iterator[None]:
    """PointBERT with the per-cloud loop FPS: the same model and kNN, only the sampling swapped,
    so the difference between the two measurements is the sampling alone."""
    from cmcr.models.encoders import fps

    with mock.patch.object(fps, "farthest_point_sample", per_cloud_loop_fps):
        yield


def bench_points(bench: Bench) -> list[Figure]:
    """FPS alone and whole 3D embedding: ours against the per-cloud loop, same clouds."""
    from cmcr.models.encoders.fps import farthest_point_sample

    encoder = bench.encoder("ulip")
    groups = encoder.config.point.num_groups
    batch = bench.plan.points_batch
    clouds = sample_clouds(bench.rng(7), batch, bench.plan.points_per_cloud)
    on_device = torch.from_numpy(clouds).to(bench.device)
    label = f"{bench.plan.points_per_cloud:,} points → {groups} centres"

    ours = farthest_point_sample(on_device, groups)
    if not torch.equal(ours.cpu(), per_cloud_loop_fps(on_device, groups).cpu()):
        raise RuntimeError("batched FPS and the per-cloud loop disagree: the baseline is not the same work")
    watch = bench.stopwatch
    bench.progress("FPS: batched vs per-cloud loop")
    fps_batched = watch.time(lambda: farthest_point_sample(on_device, groups).cpu())
    fps_loop = watch.time(lambda: per_cloud_loop_fps(on_device, groups).cpu())
    fps_one = watch.time(lambda: farthest_point_sample(on_device[:1], groups).cpu())
    fps_loop_one = watch.time(lambda: per_cloud_loop_fps(on_device[:1], groups).cpu())

    bench.progress("PointBERT: batched FPS vs per-cloud loop")
    embed_batch = watch.time(lambda: encoder.embed("points", clouds, batch_size=batch))
    embed_one = watch.time(lambda: encoder.embed("points", clouds[:1], batch_size=1))
    with official_fps():
        loop_batch = watch.time(lambda: encoder.embed("points", clouds, batch_size=batch))
        loop_one = watch.time(lambda: encoder.embed("points", clouds[:1], batch_size=1))
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
    from cmcr.models.encoders.fps import farthest_point_sample, fps_backend_in_use

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


# ---- search: one query against N rows --------------------------------------------------------


def numpy_scan(embeddings: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The plainest exact search: a full matrix-vector product and a partial sort."""
    scores = embeddings @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def bench_search(bench: Bench) -> list[Figure]:
    """FAISS flat vs a NumPy scan on the CPU; on CUDA, the torch matrix product vs FAISS flat."""
    from cmcr.retrieval.gallery import IndexSettings, build_searcher

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


# ---- the app's request path, per tab ----------------------------------------------------------

TABS: tuple[tuple[str, str], ...] = (
    ("audio", "image"), ("text", "points"), ("audio", "points"), ("image", "audio"),
)


def bench_query(bench: Bench) -> list[Figure]:
    """Decoded input in memory → top-10 through `cmcr.retrieval.search.query`, as the app answers a tab.

    The gallery holds N rows of the tab's target modality (search cost does not depend on which
    modality a row is, so the tabs share one gallery per size). The baseline is the same request
    against a CPU FAISS flat index; on a CPU run that is the figure itself.
    """
    from cmcr.retrieval.search import SpaceEmbedder
    from cmcr.models.space import tiny_space

    encoders = {name: bench.encoder(name) for name in ("clip", "clap", "ulip")}
    embedder = SpaceEmbedder(tiny_space(encoders).to(bench.device), encoders)
    inputs = {modality: sample_inputs(modality, 1, bench)[0] for modality, _ in TABS}
    figures = []
    with tempfile.TemporaryDirectory(prefix="cmcr-bench-query-") as scratch:
        for size in bench.plan.gallery_sizes:
            bench.progress(f"query: building {size:,}-row galleries")
            galleries = {device: random_gallery(Path(scratch) / f"{size}-{device}", embedder.space_id, size,
                                                bench.rng(size), device)
                         for device in {"cpu", str(bench.device)}}
            for source, target in TABS:
                figures.append(_query_figure(bench, embedder, galleries, source, target, inputs[source], size))
    return figures


def random_gallery(root: Path, space_id: str, size: int, rng: np.random.Generator, device: str) -> Any:
    """A gallery of `size` image items with random unit embeddings, exact search at any size."""
    from cmcr.retrieval.gallery import Gallery, IndexSettings, NewItem

    gallery = Gallery.create(root, space_id, EMBED_DIM, IndexSettings(exact_limit=size), device=device)
    items = [NewItem("image", f"item-{row}.jpg", f"item {row}", f"{row:064x}") for row in range(size)]
    gallery.add(items, unit_rows(rng, size))
    return gallery


def _query_figure(bench: Bench, embedder: Any, galleries: dict[str, Any], source: str, target: str,
                  item: Any, size: int) -> Figure:
    from cmcr.retrieval.search import query

    def request(gallery: Any) -> Callable[[], Any]:
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


# ---- gallery build from files -----------------------------------------------------------------


def bench_gallery_build(bench: Bench) -> list[Figure]:
    """Files → saved gallery through `cmcr.retrieval.gallery.ingest` (hash, decode, embed, preview, save),
    batched against one file at a time."""
    from cmcr.retrieval.search import SpaceEmbedder
    from cmcr.models.space import tiny_space

    encoders = {name: bench.encoder(name) for name in ("clip", "clap", "ulip")}
    embedder = SpaceEmbedder(tiny_space(encoders).to(bench.device), encoders)
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


def _decode_figure(bench: Bench, sources: Sequence[Any]) -> Figure:
    """The host-side share of the image target: JPEG decode + CLIP preparation (resize and crop
    to uint8; normalisation runs batched on the device), which no GPU absorbs, on a thread pool of
    every core against one thread (`ingest` with workers=0)."""
    from concurrent.futures import ThreadPoolExecutor

    from cmcr.data.media import load_image

    preparer = bench.encoder("clip").preparer("image")
    workers = os.cpu_count() or 1

    def decode(source: Any) -> Any:  # as `ingest` decodes: JPEG at a reduced DCT scale
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


def write_files(folder: Path, modality: str, count: int, bench: Bench) -> list[Any]:
    """`count` distinct files of a modality (JPEG photos-like images, or PLY meshes)."""
    from cmcr.retrieval.gallery import SourceFile

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


def _random_mesh(rng: np.random.Generator) -> Any:
    """A squashed, randomly scaled icosphere (1,280 faces), as a modest real 3D file."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.apply_scale(rng.uniform(0.3, 1.0, 3))
    return sphere


def _ingest_rate(embedder: Any, sources: Sequence[Any], batch_size: int, root: Path) -> float:
    from cmcr.retrieval.gallery import Gallery, ingest

    gallery = Gallery.create(root, embedder.space_id, embedder.space.dim)
    began = time.perf_counter()
    report = ingest(gallery, sources, embedder, batch_size=batch_size)
    seconds = time.perf_counter() - began
    if report.added != len(sources):
        raise RuntimeError(f"gallery build added {report.added} of {len(sources)} files: {report.failed[:3]}")
    return len(sources) / seconds


# ---- projector training -----------------------------------------------------------------------


def bench_train(bench: Bench) -> list[Figure]:
    """Ex-MCR training to early stopping on N-row synthetic memories (512-d, as real encoders).

    Baseline: the same run without bf16 autocast. Autocast is off on CPUs anyway, so a CPU
    run reports the figure as its own baseline rather than training twice.
    """
    from cmcr.evaluation.synthetic import SyntheticWorld, WorldSpec
    from cmcr.training.config import TrainConfig
    from cmcr.training.trainer import train_connection

    figures = []
    for rows in bench.plan.train_rows:
        bench.progress(f"train: rendering {rows:,}-row memories")
        memories = SyntheticWorld(WorldSpec(dim=EMBED_DIM, n_overlap=rows, n_p=rows, n_q=rows)).memories()

        def run(amp: bool) -> dict[str, Any]:
            bench.progress(f"train: {rows:,} rows, amp={amp}")
            config = TrainConfig(device=str(bench.device), amp=amp, **bench.plan.train_overrides)
            return train_connection(memories, config, "ex-mcr", progress=False).metrics

        ours = run(amp=True)
        fp32 = run(amp=False) if bench.device.type == "cuda" else ours
        figures.append(Figure(
            "train", f"Ex-MCR to early stop, {rows:,}-row memories ({ours['epochs_run']} epochs, "
            f"aggregation {ours['pseudo_seconds']:.1f} s)", "s", ours["seconds"],
            "same run in fp32 (no autocast)", fp32["seconds"], False,
            target=TARGETS["train_s"] if rows >= 1_000_000 else None, note=_train_note(bench)))
    return figures


def _train_note(bench: Bench) -> str:
    notes = []
    if bench.plan.train_overrides:
        settings = ", ".join(f"{key}={value}" for key, value in bench.plan.train_overrides.items())
        notes.append(f"{settings} to fit this size, so not trained to convergence")
    if bench.device.type == "cpu":
        notes.append("CPU run: the baseline is the figure itself")
    return "; ".join(notes)


BENCHMARKS: dict[str, Callable[[Bench], list[Figure]]] = {
    "encoders": bench_encoders,
    "points": bench_points,
    "search": bench_search,
    "query": bench_query,
    "gallery_build": bench_gallery_build,
    "train": bench_train,
}


# ---- a whole run and its reports --------------------------------------------------------------


def resolve_bench_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but torch sees no CUDA GPU here.")
    return resolved


def set_cpu_threads(threads: int) -> None:
    """Intra-op threads of torch and FAISS (OpenMP). On an oversubscribed host every parallel
    region waits for descheduled threads, which long chains of small ops (the FPS loop, one FAISS
    query) feel most; docs/benchmarks.md compares 1 thread with the default."""
    import faiss

    if threads < 1:
        raise InputError(f"threads must be at least 1, got {threads}.")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def run_benchmarks(device: str | None = None, sizes: str = "small", only: Sequence[str] | None = None,
                   progress: Callable[[str], None] = lambda message: None, seed: int = 0,
                   threads: int | None = None, train_rows: Sequence[int] | None = None) -> dict[str, Any]:
    """Run the chosen sections; a JSON-ready dict with the machine, the figures and what is open.

    `threads` sets torch's and FAISS's CPU threads for the run (None: their defaults);
    `train_rows` replaces the plan's memory sizes for the train section."""
    if sizes not in SIZE_PLANS:
        raise InputError(f"Unknown sizes {sizes!r}; choose one of {', '.join(SIZE_PLANS)}.")
    chosen = list(only or SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise InputError(f"Unknown benchmark(s) {unknown}; choose from {', '.join(SECTIONS)}.")
    if threads is not None:
        set_cpu_threads(threads)
    bench = Bench(resolve_bench_device(device), _plan(sizes, train_rows), progress, seed)
    started = time.perf_counter()
    sections = {}
    for name in chosen:
        section_started = time.perf_counter()
        figures = BENCHMARKS[name](bench)
        sections[name] = {"seconds": time.perf_counter() - section_started,
                          "figures": [figure.to_dict() for figure in figures]}
    return {
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "sizes": sizes,
        "plan": dataclasses.asdict(bench.plan),
        "machine": describe_machine(bench.device),
        "seconds": time.perf_counter() - started,
        "sections": sections,
        "open": open_items(bench.device),
    }


def _plan(sizes: str, train_rows: Sequence[int] | None) -> SizePlan:
    plan = SIZE_PLANS[sizes]
    if train_rows is None:
        return plan
    if not train_rows or min(train_rows) < MIN_TRAIN_ROWS:
        raise InputError(f"--train-rows needs sizes of at least {MIN_TRAIN_ROWS:,} rows, got {list(train_rows)}.")
    return dataclasses.replace(plan, train_rows=tuple(train_rows))


def open_items(device: torch.device) -> list[str]:
    """What this run could not measure, said in the output rather than left out silently."""
    if device.type == "cuda":
        return []
    return [f"GPU column open: no CUDA device in this run. Fill it on a GPU with `{GPU_COMMAND}`.",
            "bf16 autocast rows are measured on CUDA only (on CPUs the encoders run fp32)."]


def to_markdown(result: dict[str, Any]) -> str:
    """The run as markdown: the machine, then one table per section."""
    machine = result["machine"]
    lines = [
        f"Machine: {machine['cpu']} ({machine['cpu_cores']} cores, {machine['ram_gib']} GiB RAM), "
        f"GPU: {machine['gpu'] or 'none'}; device `{machine['device']}`; {machine['torch_threads']} torch / "
        f"{machine['faiss_threads']} FAISS threads; load average {_load(machine)}; torch {machine['torch']}, "
        f"faiss {machine['faiss']}, numpy {machine['numpy']}, Python {machine['python']}. "
        f"Sizes `{result['sizes']}`; {result['seconds']:.0f} s in all.",
    ]
    for name, section in result["sections"].items():
        lines += ["", f"### {name} ({section['seconds']:.0f} s)", "",
                  "| figure | value | baseline (same run) | baseline value | speed-up | DESIGN §5 target | vs target |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_markdown_row(figure) for figure in section["figures"]]
    lines += [""] + [f"- {item}" for item in result["open"]]
    return "\n".join(lines)


def _load(machine: dict[str, Any]) -> str:
    load = machine.get("load_average")
    return "unknown" if not load else f"{load[0]:.1f} (1 min)"


def _markdown_row(figure: dict[str, Any]) -> str:
    target = figure["target"]
    target_cell = "—" if target is None else f"{_number(target['value'])} {target['unit']}"
    ratio = "—" if figure["target_ratio"] is None else f"{figure['target_ratio']:.3g}×"
    note = f" ({figure['note']})" if figure["note"] else ""
    return (f"| {figure['name']} | {_with_p95(figure['value'], figure['p95'])} {figure['unit']} | "
            f"{figure['baseline_name']}{note} | {_with_p95(figure['baseline'], figure['baseline_p95'])} "
            f"{figure['unit']} | {figure['speedup']:.3g}× | {target_cell} | {ratio} |")


def _with_p95(value: float, p95: float | None) -> str:
    return _number(value) if p95 is None else f"{_number(value)} (p95 {_number(p95)})"


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def read_results(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Results written by earlier runs (`--out`), checked to be this tool's JSON."""
    results = []
    for path in paths:
        try:
            result = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read benchmark results from {path}: {error}") from None
        if not isinstance(result, dict) or result.get("schema") != SCHEMA_VERSION or "sections" not in result:
            raise InputError(f"{path} is not a results file of this benchmark (schema {SCHEMA_VERSION}).")
        results.append(result)
    return results


def targets_table(results: Sequence[dict[str, Any]]) -> str:
    """Every DESIGN §5 target across several runs (a GPU run is split over device slots): the
    measured figure, its same-run baseline and the ratio to the target."""
    lines = ["| DESIGN §5 target | figure | value | same-run baseline | vs target | met |",
             "|---|---|---|---|---|---|"]
    for result in results:
        for section in result["sections"].values():
            for figure in section["figures"]:
                if figure["target"] is None:
                    continue
                lines.append(
                    f"| {figure['target']['text']} | {figure['name']} ({result['machine']['device']}) | "
                    f"{_with_p95(figure['value'], figure['p95'])} {figure['unit']} | "
                    f"{_number(figure['baseline'])} {figure['unit']} ({figure['baseline_name']}) | "
                    f"{figure['target_ratio']:.3g}× | {'yes' if figure['target_met'] else 'no'} |")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, allow_nan=True))
    return target
