"""Speed and scale benchmarks: every figure next to a baseline measured in the same run.

A claim such as "batched FPS is fast" means nothing without the number it beats on the same
machine, in the same process, on the same inputs. So every section returns `Figure`s: a
measured value, the baseline measured right beside it (per-cloud Python-loop FPS, batch-1
encoding, CPU FAISS flat, ...), the speed-up, and -- where a performance target is set -- the
target and how far the figure is from it.

Sections (each a function of a `Bench`, one module each, so benchmarks/__main__.py stays a thin CLI):

- `encoders`: throughput of each frozen tower at its full-size architecture (random weights:
  speed does not depend on their values), batch 1 against the best batch; bf16 against fp32 on
  CUDA.
- `points`: our batched FPS (alone, and inside PointBERT) against the official per-cloud loop.
- `search`: one query against N gallery rows: FAISS flat against a NumPy scan on the CPU, and a
  torch matrix product against FAISS flat on CUDA.
- `query`: the app's request path for each tab (decoded input in memory → top-10).
- `app`: what a visitor of a CPU Space waits for per tab (uploaded file → answer), the app's CPU
  path against the float32 / default-threads one, p50 and p95, one request and two at once.
- `gallery_build`: files on disk → a saved gallery (hashing, decoding, embedding, previews).
- `train`: projector training to convergence (early stopping) on synthetic memories.

Timing: CUDA work is timed with CUDA events after warm-up calls; CPU work with `perf_counter`.
Every timed call ends with results on the host (the encoders return NumPy), so a CUDA event
pair brackets all the work. Medians and 95th percentiles, never single runs.

Sizes: `tiny` uses the tiny encoder profile and toy workloads (the CI smoke run: its numbers
carry no meaning); `small` uses the full-size architectures at workloads that fit a few minutes
of a 2-core CPU; `full` is the target workload for one GPU (1M-row galleries and memories).
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.app import bench_app
from benchmarks.bench import SIZE_PLANS, Bench, SizePlan
from benchmarks.encoders import bench_encoders
from benchmarks.figures import Figure
from benchmarks.gallery_build import bench_gallery_build
from benchmarks.machine import describe_machine, resolve_bench_device, set_cpu_threads
from benchmarks.points import bench_points
from benchmarks.query import bench_query
from benchmarks.report import SCHEMA_VERSION
from benchmarks.search import bench_search
from benchmarks.train import bench_train
from cmcr.errors import InputError

BENCHMARKS: dict[str, Callable[[Bench], list[Figure]]] = {
    "encoders": bench_encoders,
    "points": bench_points,
    "search": bench_search,
    "query": bench_query,
    "app": bench_app,
    "gallery_build": bench_gallery_build,
    "train": bench_train,
}
SECTIONS: tuple[str, ...] = tuple(BENCHMARKS)
MIN_TRAIN_ROWS = 1000  # below this the train section measures start-up, not training
GPU_COMMAND = "python -m benchmarks --device cuda --sizes full --out benchmark-h100.json"


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
