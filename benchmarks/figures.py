"""What a benchmark reports: a measured figure beside its same-run baseline and, where one is set,
its performance target (the targets table of docs/benchmarks.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Target:
    """A performance target the figures are held against."""

    value: float
    unit: str
    text: str


TARGETS: dict[str, Target] = {
    "query_ms": Target(10.0, "ms", "audio→image query, 1M gallery, p50 ≤ 10 ms (H100)"),
    "clouds_per_s": Target(5000.0, "clouds/s", "10k-point clouds embedded ≥ 5,000/s (H100)"),
    "cloud_latency_ms": Target(5.0, "ms", "one 3D query embedded in ≤ 5 ms (H100)"),
    "images_per_s": Target(5000.0, "images/s", "images embedded ≥ 5,000/s from JPEG files (H100)"),
    "train_s": Target(30.0, "s", "projector training on 1M-row memories ≤ 30 s (H100)"),
    "cpu_audio_image_ms": Target(300.0, "ms", "audio→image request, 1,000-item gallery, p50 ≤ 300 ms (2 CPU cores)"),
    "cpu_text_3d_ms": Target(300.0, "ms", "text→3D request, 1,000-item gallery, p50 ≤ 300 ms (2 CPU cores)"),
    "cpu_3d_ms": Target(400.0, "ms", "3D→anything request, 1,000-item gallery, p50 ≤ 400 ms (2 CPU cores)"),
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
    """One measured figure, its same-run baseline and, where one is set, its target.

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
