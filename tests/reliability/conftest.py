"""Shared pieces of the reliability tests: the capped sandbox, small real files, and a record of
what was tried (written as JSON when CMCR_RELIABILITY_REPORT names a file; scripts/stress.py
sets it and prints the table that docs/reliability.md quotes).

CMCR_FUZZ_EXAMPLES scales every hypothesis test here (default: the CI count in each test).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.reliability.bombs import real_samples
from tests.reliability.sandbox import Outcome, Sandbox

REPORT_ENV = "CMCR_RELIABILITY_REPORT"
EXAMPLES_ENV = "CMCR_FUZZ_EXAMPLES"


def fuzz_examples(ci_default: int) -> int:
    """Examples per hypothesis test: CI's bounded default, or the stress run's count."""
    return int(os.environ.get(EXAMPLES_ENV) or ci_default)


def fuzz_settings(ci_default: int) -> settings:
    """Reproducible (derandomised, no example database) and bounded by count, not by a deadline:
    the sandbox's caps bound each case."""
    return settings(max_examples=fuzz_examples(ci_default), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def run_contained(sandbox: Sandbox, record: Record, suite: str, target: str, *args,
                  memory_mb: int = 512, seconds: float = 15, **kwargs) -> Outcome:
    """One sandboxed case, recorded; it must end by itself with a result or one of our errors."""
    outcome = sandbox.run(target, *args, memory_mb=memory_mb, seconds=seconds, **kwargs)
    record.outcome(suite, outcome)
    assert outcome.contained, f"{suite}: {outcome.kind}: {outcome.detail}"
    return outcome


class Record:
    """Counts and worst cases per suite, for the reliability table."""

    def __init__(self) -> None:
        self.suites: dict[str, dict] = defaultdict(
            lambda: {"cases": 0, "kinds": defaultdict(int), "max_seconds": 0.0, "max_peak_mb": 0.0})
        self.figures: dict[str, object] = {}

    def outcome(self, suite: str, outcome: Outcome) -> None:
        entry = self.suites[suite]
        entry["cases"] += 1
        entry["kinds"][outcome.kind] += 1
        entry["max_seconds"] = max(entry["max_seconds"], round(outcome.seconds, 3))
        entry["max_peak_mb"] = max(entry["max_peak_mb"], round(outcome.peak_mb, 1))

    def figure(self, name: str, value: object) -> None:
        self.figures[name] = value

    def dump(self, path: Path) -> None:
        """Merge into `path`: each xdist worker holds some suites and writes its own share."""
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = json.loads(path.read_text()) if path.is_file() else {"suites": {}, "figures": {}}
            for name, entry in self.suites.items():
                known = merged["suites"].setdefault(name, {"cases": 0, "kinds": {}, "max_seconds": 0.0,
                                                           "max_peak_mb": 0.0})
                known["cases"] += entry["cases"]
                for kind, count in entry["kinds"].items():
                    known["kinds"][kind] = known["kinds"].get(kind, 0) + count
                known["max_seconds"] = max(known["max_seconds"], entry["max_seconds"])
                known["max_peak_mb"] = max(known["max_peak_mb"], entry["max_peak_mb"])
            merged["figures"].update(self.figures)
            path.write_text(json.dumps(merged, indent=2) + "\n")


@pytest.fixture(scope="session")
def record() -> Iterator[Record]:
    record = Record()
    yield record
    if os.environ.get(REPORT_ENV):
        record.dump(Path(os.environ[REPORT_ENV]))


@pytest.fixture(scope="session")
def real() -> dict[str, bytes]:
    return real_samples()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(warm=("tests.reliability.bombs:warm_up", "cmcr.data.features", "cmcr.training.trainer",
                        "cmcr.pipeline", "cmcr.models.space", "safetensors.torch"))
    yield box
    box.close()


@pytest.fixture(scope="session")
def studio():
    """A tiny-profile studio on the CPU with the default asset gallery (what a fresh Space serves
    offline)."""
    from studio.service import Studio
    from studio.settings import StudioSettings

    return Studio.load(StudioSettings(profile="tiny", device="cpu"))


@pytest.fixture(scope="module")
def launched(studio):
    """The real app, launched by `studio.ui.serve` on a free loopback port with its production queue
    limit (`studio.ui.QUEUE_LIMIT`): (demo, url)."""
    from studio import ui
    from tests.ports import free_loopback_port

    port = free_loopback_port()
    demo = ui.serve(studio, "127.0.0.1", port, block=False, max_queue=ui.QUEUE_LIMIT)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
