"""The app's CPU settings: threads from the CPUs the process may use, split between the requests
computed at once, and the int8 point tower only on CPUs."""

from __future__ import annotations

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


def test_each_request_gets_its_share_of_the_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(16)))
    root = cgroup(tmp_path, "200000 100000")
    assert [cpu.request_threads(n, root) for n in (1, 2, 3)] == [2, 1, 1]


def test_omp_num_threads_wins_and_threads_are_set(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert cpu.use_request_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert cpu.use_request_threads(64) == 1  # more requests than CPUs: one thread each
        assert cpu.use_request_threads(1) == cpu.available_cpus() == torch.get_num_threads()
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
