"""The app's CPU settings: threads from the CPUs the process may use, every forward pass in one
compute thread that holds them, and the int8 point tower only on CPUs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from studio import cpu


def cgroup(tmp_path, v2: str | None = None, v1: tuple[str, str] | None = None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0])
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1])
    return tmp_path


@pytest.mark.parametrize(("v2", "v1", "quota"), [
    ("200000 100000", None, 2), ("150000 100000", None, 1), ("50000 100000", None, 1),
    (None, ("400000", "100000"), 4), ("max 100000", None, None), (None, ("-1", "100000"), None), (None, None, None),
])
def test_a_cpu_quota_caps_the_cpus_the_host_shows(tmp_path, monkeypatch, v2, v1, quota):
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(16)))  # a big host
    assert cpu.available_cpus(cgroup(tmp_path, v2, v1)) == (16 if quota is None else quota)


def test_omp_num_threads_wins_over_the_cpus_available(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.serving_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu.serving_threads() == cpu.available_cpus()


@pytest.fixture
def lane():
    before = torch.get_num_threads()
    yield cpu.ComputeLane(threads=2)
    torch.set_num_threads(before)


def test_the_lane_runs_work_in_its_one_thread_with_its_math_threads(lane):
    seen = [lane.run(lambda: (threading.current_thread().name, torch.get_num_threads())) for _ in range(3)]
    assert len(set(seen)) == 1 and seen[0][0].startswith(cpu.ComputeLane.THREAD_NAME) and seen[0][1] == 2
    assert threading.current_thread().name not in seen[0]


def test_the_lane_raises_the_callers_error_and_keeps_serving(lane):
    def fail():
        raise ValueError("a broken input")

    with pytest.raises(ValueError, match="a broken input"):
        lane.run(fail)
    assert lane.run(lambda x: x + 1, 41) == 42


def test_work_from_inside_the_lane_runs_at_once_instead_of_deadlocking(lane):
    assert lane.run(lambda: lane.run(lambda: "inner")) == "inner"


def test_requests_in_flight_queue_in_the_lane_one_at_a_time(lane):
    running, most = [0], [0]
    guard = threading.Lock()

    def forward():
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with guard:
            running[0] -= 1
        return threading.current_thread().name

    with ThreadPoolExecutor(4) as requests:
        names = set(requests.map(lambda _: lane.run(forward), range(8)))
    assert most[0] == 1 and len(names) == 1


def test_only_a_cpu_gets_a_lane():
    assert cpu.compute_lane("cuda") is None
    before = torch.get_num_threads()
    try:
        assert isinstance(cpu.compute_lane("cpu"), cpu.ComputeLane)
    finally:
        torch.set_num_threads(before)


def test_cpus_with_native_bf16_use_it_others_get_the_int8_point_tower_only():
    for name in ("clip", "clap", "ulip"):
        assert cpu.serving_overrides(name, "cpu", bf16=True) == {"dtype": "bfloat16"}
        assert cpu.serving_overrides(name, "cuda", bf16=True) == cpu.serving_overrides(name, "cuda", bf16=False) == {}
    assert cpu.serving_overrides("ulip", "cpu", bf16=False) == {"point_int8": True}
    assert cpu.serving_overrides("clap", "cpu", bf16=False) == cpu.serving_overrides("clip", "cpu", bf16=False) == {}


def test_the_environment_can_choose_the_precision(monkeypatch):
    monkeypatch.setenv("CMCR_CPU_BF16", "0")
    assert cpu.serving_overrides("clip", "cpu") == {} and cpu.serving_overrides("ulip", "cpu") == {"point_int8": True}
    monkeypatch.setenv("CMCR_CPU_BF16", "1")
    assert cpu.serving_overrides("clap", "cpu") == {"dtype": "bfloat16"}


@pytest.mark.parametrize(("flags", "native"), [("fpu avx2 avx512f", False), ("avx512f avx512_bf16", True),
                                               ("amx_bf16 amx_tile", True), (None, False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu.native_bf16(cpuinfo) is native


@pytest.mark.parametrize(("name", "modality"), [("clip", "image"), ("clip", "text"), ("clap", "audio"),
                                                ("clap", "text"), ("ulip", "points")])
def test_bf16_serving_keeps_every_embedding_within_cos_0999(name, modality):
    import numpy as np
    from PIL import Image

    from cmcr.models.encoders import build_encoder

    rng = np.random.default_rng(5)
    inputs = {"image": [Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)) for _ in range(3)],
              "text": ["a wooden chair", "a dog barking in the rain", "a red car"],
              "audio": [(0.1 * rng.standard_normal(48_000)).astype(np.float32) for _ in range(3)],
              "points": [rng.normal(size=(1024, 3)).astype(np.float32) for _ in range(3)]}[modality]
    exact = build_encoder(name, "tiny", device="cpu").embed(modality, inputs)
    served = build_encoder(name, "tiny", device="cpu", **cpu.serving_overrides(name, "cpu", bf16=True))
    cosines = np.sum(exact * served.embed(modality, inputs), axis=1)
    assert served.autocast_dtype == torch.bfloat16 and cosines.min() >= 0.999
