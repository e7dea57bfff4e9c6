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


def test_only_ulip_on_a_cpu_gets_the_int8_point_tower():
    assert cpu.serving_overrides("ulip", "cpu") == {"point_int8": True}
    assert cpu.serving_overrides("ulip", "cuda") == {}
    assert cpu.serving_overrides("clap", "cpu") == cpu.serving_overrides("clip", "cpu") == {}
