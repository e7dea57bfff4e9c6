"""How the app uses a CPU: one compute thread with all its math threads, and the encoder settings that make CPU
answers fast where they keep the embeddings (docs/benchmarks.md, `python -m benchmarks --only app`).

Precision: on a CPU with native bfloat16 matrix units (Intel AMX, AVX-512 BF16) every encoder runs
under bf16 autocast, about twice as fast with embeddings within cos 0.9999 of float32. Elsewhere
bf16 is emulated and slower, so the encoders stay float32 except ULIP's point tower, the slowest,
which runs with int8 weights (cos 0.9999, about 1.3x faster). int8 is not used more widely: it
moved CLAP's audio embeddings to cos 0.99, and open_clip's text tower does not run quantised.

Threads: every forward pass runs in one compute thread (`ComputeLane`) with a math thread per CPU
the process may use (affinity and cgroup quota: in a container limited by a quota, such as a
Space's 2 vCPUs, torch and FAISS would otherwise start one thread per core of the host). Two
requests at once queue their forward passes there instead of each taking a share of the CPUs:
the first answer then comes twice as fast and the second no later. One thread also keeps the
setting true: torch's thread count is partly per thread (OpenMP's) and partly per process
(its own pool, MKL), so threads set from Gradio's worker threads are not what those threads
use (docs/app.md). OMP_NUM_THREADS, where set, wins.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import faiss
import torch

CGROUP = Path("/sys/fs/cgroup")
ENV_CPU_BF16 = "CMCR_CPU_BF16"  # "1" or "0" overrides what the CPU flags say
T = TypeVar("T")
log = logging.getLogger("studio.cpu")


def available_cpus(cgroup: Path = CGROUP) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (v2 or v1)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    return max(1, min(cpus, int(quota))) if quota is not None else cpus


def _cgroup_quota(cgroup: Path) -> float | None:
    """CPUs' worth of time per period the cgroup allows (None: no quota, or none readable)."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]  # v2: "200000 100000" or "max 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())  # v1: -1 means none
        return None if quota <= 0 else quota / int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def serving_threads() -> int:
    """Math threads for the compute thread: OMP_NUM_THREADS where set, else the CPUs available."""
    chosen = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(chosen)) if chosen.isdigit() else available_cpus()


class ComputeLane:
    """One thread that runs every forward pass with all the serving threads (the module docstring
    says why). A call from inside the lane runs at once, so nesting cannot deadlock."""

    THREAD_NAME = "cmcr-compute"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or serving_threads()
        _set_threads(self.threads)  # the per-process half of the setting, for every thread alike
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.THREAD_NAME,
                                        initializer=_set_threads, initargs=(self.threads,))

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in the compute thread; its exception, if any, raised here."""
        if threading.current_thread().name.startswith(self.THREAD_NAME):
            return function(*args)
        return self._pool.submit(function, *args).result()


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def compute_lane(device: str | None) -> ComputeLane | None:
    """The lane for serving on `device`: one on a CPU, None on a GPU (whose work is queued by its
    driver, or on ZeroGPU by `spaces`)."""
    if not _on_cpu(device):
        return None
    lane = ComputeLane()
    log.info("forward passes run in one compute thread with %d math thread(s)", lane.threads)
    return lane


def _on_cpu(device: str | None) -> bool:
    return torch.device(device).type == "cpu" if device else not torch.cuda.is_available()


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bfloat16 matrices natively (AMX or AVX-512 BF16 flags)."""
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "").split()
    except OSError:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags))


def serving_overrides(name: str, device: str | None, bf16: bool | None = None) -> dict[str, Any]:
    """Encoder settings for answering requests on `device` (the module docstring says why);
    `bf16` None: CMCR_CPU_BF16 ("1" or "0") where set, else ask the CPU."""
    if not _on_cpu(device):
        return {}
    if bf16 is None:
        chosen = os.environ.get(ENV_CPU_BF16)
        bf16 = native_bf16() if chosen not in ("0", "1") else chosen == "1"
    if bf16:
        return {"dtype": "bfloat16"}
    return {"point_int8": True} if name == "ulip" else {}
