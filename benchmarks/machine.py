"""Timing and the machine: how calls are timed, on which device and threads, and what the numbers
were measured on (they mean nothing without it)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from benchmarks.figures import Timing
from cmcr.errors import InputError


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
    if threads < 1:
        raise InputError(f"threads must be at least 1, got {threads}.")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def describe_machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
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
