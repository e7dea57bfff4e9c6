"""How the app uses a CPU: math threads per request, and the encoder settings that make CPU
answers fast where they keep the embeddings (docs/benchmarks.md, `python -m benchmarks --only app`).

Precision: on a CPU with native bfloat16 matrix units (Intel AMX, AVX-512 BF16) every encoder runs
under bf16 autocast, about twice as fast with embeddings within cos 0.9999 of float32. Elsewhere
bf16 is emulated and slower, so the encoders stay float32 except ULIP's point tower, the slowest,
which runs with int8 weights (cos 0.9999, about 1.3x faster). int8 is not used more widely: it
moved CLAP's audio embeddings to cos 0.99, and open_clip's text tower does not run quantised.

Threads: torch and FAISS start one math thread per core they see, and in a container limited by
a CPU quota (a Space's 2 vCPUs) they see the host's cores. More threads than CPUs, or two
requests computing at once with a thread per CPU each, leave every parallel region waiting for
descheduled threads (much of the "before" column of docs/app.md's CPU speed table). So each request
gets the CPUs the process may use (affinity and cgroup quota) divided by the requests computed
at once. OMP_NUM_THREADS, where set, wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss
import torch

CGROUP = Path("/sys/fs/cgroup")
ENV_CPU_BF16 = "CMCR_CPU_BF16"  # "1" or "0" overrides what the CPU flags say


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


def request_threads(concurrency: int, cgroup: Path = CGROUP) -> int:
    """Math threads for each of `concurrency` requests computed at once."""
    return max(1, available_cpus(cgroup) // max(1, concurrency))


def use_request_threads(concurrency: int) -> int:
    """Set torch's and FAISS's threads for serving (unless OMP_NUM_THREADS says otherwise)."""
    threads = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() \
        else request_threads(concurrency)
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    return threads


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
    on_cpu = torch.device(device).type == "cpu" if device else not torch.cuda.is_available()
    if not on_cpu:
        return {}
    if bf16 is None:
        chosen = os.environ.get(ENV_CPU_BF16)
        bf16 = native_bf16() if chosen not in ("0", "1") else chosen == "1"
    if bf16:
        return {"dtype": "bfloat16"}
    return {"point_int8": True} if name == "ulip" else {}
