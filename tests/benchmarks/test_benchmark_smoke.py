"""The benchmark CLI at its smallest sizes, and the pieces its figures rest on.

Speed is never asserted here (CI machines vary); what is checked is that every section yields
finite figures, each with a same-run baseline, and that the baselines do the same work.
"""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.bench import SIZE_PLANS, Bench
from benchmarks.figures import TARGETS, Figure
from benchmarks.inputs import sample_clouds
from benchmarks.machine import Stopwatch
from benchmarks.points import official_fps_encoder
from benchmarks.report import write_results
from benchmarks.run import SECTIONS, run_benchmarks
from cmcr.errors import InputError
from cmcr.models.encoders import fps
from cmcr.models.encoders.fps import farthest_point_sample
from tests.paths import REPO

ROOT = REPO


@pytest.mark.slow
def test_cli_tiny_run_reports_every_section_with_baselines(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--device", "cpu", "--sizes", "tiny",
         "--threads", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["sections"]) == list(SECTIONS)
    for name, section in result["sections"].items():
        assert section["figures"], f"section {name} produced no figures"
        assert f"### {name}" in completed.stdout
        for figure in section["figures"]:
            _check_figure(figure)
    with_targets = [f for s in result["sections"].values() for f in s["figures"] if f["target"]]
    assert {f["target"]["text"] for f in with_targets} >= {
        TARGETS[key].text for key in ("query_ms", "clouds_per_s", "cloud_latency_ms", "images_per_s")}
    machine = result["machine"]
    assert machine["cpu_cores"] >= 1 and machine["torch"] == torch.__version__ and machine["faiss"]
    assert machine["torch_threads"] == 1 and machine["faiss_threads"] == 1
    assert machine["gpu"] is None and any("GPU column open" in line for line in result["open"])


def _check_figure(figure: dict) -> None:
    label = figure["name"]
    assert figure["baseline_name"], f"{label} has no baseline"
    for key in ("value", "baseline", "speedup"):
        assert math.isfinite(figure[key]) and figure[key] > 0, f"{label}: {key}={figure[key]}"
    for key in ("p95", "baseline_p95"):
        assert figure[key] is None or figure[key] >= 0
    if figure["target"] is not None:
        assert math.isfinite(figure["target_ratio"]) and figure["target_ratio"] > 0
        assert figure["target_met"] == (figure["target_ratio"] >= 1)


def test_ratios_read_the_same_way_for_rates_and_latencies() -> None:
    faster_rate = Figure("s", "rate", "items/s", 200.0, "base", 50.0, higher_is_better=True,
                         target=TARGETS["clouds_per_s"])
    faster_latency = Figure("s", "latency", "ms", 2.0, "base", 8.0, higher_is_better=False,
                            target=TARGETS["cloud_latency_ms"])
    assert faster_rate.speedup == pytest.approx(4.0) and faster_latency.speedup == pytest.approx(4.0)
    assert faster_rate.target_ratio == pytest.approx(200 / 5000)
    assert faster_latency.to_dict()["target_met"] is True
    assert faster_rate.to_dict()["target_met"] is False


def test_loop_baseline_samples_the_same_centres_as_batched_fps() -> None:
    clouds = torch.from_numpy(sample_clouds(np.random.default_rng(3), 3, 700))
    assert torch.equal(farthest_point_sample(clouds, 48, backend="loop"), farthest_point_sample(clouds, 48))


def test_pointbert_with_the_loop_baseline_computes_the_same_embedding(monkeypatch) -> None:
    calls = []
    per_cloud_loop = fps._per_cloud_loop

    def counted_loop(*args, **kwargs):
        calls.append(1)
        return per_cloud_loop(*args, **kwargs)

    monkeypatch.setattr(fps, "_per_cloud_loop", counted_loop)
    bench = Bench(torch.device("cpu"), SIZE_PLANS["tiny"])
    encoder, official = bench.encoder("ulip"), official_fps_encoder(bench)
    clouds = sample_clouds(np.random.default_rng(4), 2, 512)
    ours = encoder.embed("points", clouds)
    assert calls == [], "the benchmarked encoder sampled through the per-cloud loop"
    baseline = official.embed("points", clouds)
    assert calls == [1], "PointBERT did not sample through the per-cloud loop in the baseline encoder"
    assert encoder.config.point.fps_backend is None and official.config.point.fps_backend == "loop"
    np.testing.assert_allclose(ours, baseline, rtol=1e-5, atol=1e-6)


def test_stopwatch_reports_one_sample_per_repeat() -> None:
    calls = []
    timing = Stopwatch(torch.device("cpu"), warmup=2, repeats=5).time(lambda: calls.append(1))
    assert len(calls) == 7 and len(timing.samples_ms) == 5
    assert 0 <= timing.median_ms <= timing.p95_ms


def test_train_rows_replace_the_plans_memory_sizes() -> None:
    """How a GPU session splits the full-size train section over several time slots."""
    result = run_benchmarks("cpu", "tiny", ["train"], threads=1, train_rows=[1200])
    assert list(result["plan"]["train_rows"]) == [1200]
    (figure,) = result["sections"]["train"]["figures"]
    assert "1,200-row memories" in figure["name"]
    _check_figure(figure)


def test_report_merges_split_runs_into_one_targets_table(tmp_path, capsys) -> None:
    """A GPU run is split over device slots; --report turns its JSON files into the docs tables."""
    figure = Figure("train", "Ex-MCR, 1,000,000-row memories", "s", 45.0, "same run in fp32", 90.0, False,
                    target=TARGETS["train_s"])
    other = Figure("search", "CPU FAISS flat, one query, 1,000 rows", "ms", 0.03, "NumPy scan", 0.04, False)
    result = run_benchmarks("cpu", "tiny", ["train"], threads=1, train_rows=[1000])
    result["sections"] = {"train": {"seconds": 1.0, "figures": [figure.to_dict()]},
                          "search": {"seconds": 1.0, "figures": [other.to_dict()]}}
    paths = [write_results(result, tmp_path / "gpu-train.json"), tmp_path / "broken.json"]
    paths[1].write_text('{"schema": 99}')
    script = importlib.import_module("benchmarks.__main__")
    assert script.main(["--report", str(paths[0])]) == 0
    printed = capsys.readouterr().out
    assert "### train" in printed and "### search" in printed
    targets = printed.split("## Targets")[1].strip().splitlines()
    assert len(targets) == 3  # header, rule, and only the figure that has a target
    assert TARGETS["train_s"].text in targets[2] and "0.667×" in targets[2] and targets[2].endswith("| no |")
    assert script.main(["--report", str(paths[1])]) == 2
    assert "not a results file" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [{"sizes": "huge"}, {"only": ["points", "nonsense"]}, {"threads": 0},
                                       {"train_rows": [999]}, {"train_rows": []}])
def test_unknown_choices_are_refused_before_any_work(arguments: dict) -> None:
    with pytest.raises(InputError):
        run_benchmarks("cpu", **arguments)
