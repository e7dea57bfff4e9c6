"""The selection sweep's report: its correlations and kept epochs on histories with known answers, and
both sweeps end to end on a toy world."""

from __future__ import annotations

import re

import pytest
import torch

from benchmarks import synthetic
from benchmarks.sweeps import _selection_report, hub_report
from cmcr.evaluation.synthetic import WorldSpec
from cmcr.training.config import TrainConfig


def _cells(report: str, row: str) -> list[float]:
    (line,) = [line for line in report.splitlines() if line.startswith(f"| {row}")]
    return [float(cell) for cell in re.findall(r"-?\d+\.\d+", line.split("|", 2)[2])]


def test_a_signal_that_tracks_the_truth_scores_one_and_one_that_does_not_scores_below():
    truth = {"a": [10.0, 30.0, 20.0], "b": [5.0, 8.0, 9.0], "c": [1.0, 2.0, 3.0]}
    overlap = {"a": [50.0, 60.0, 70.0], "b": [90.0, 95.0, 99.0], "c": [80.0, 85.0, 88.0]}  # ranks b > c > a
    histories = {name: {"valid_q2p_r1": truth[name], "val_overlap_r1": overlap[name],
                        "val_pseudo_r1": [value / 2 for value in truth[name]]} for name in truth}
    report = _selection_report(histories)
    across = _cells(report, "**Spearman ρ with true q→p R@1, across runs")
    assert across[1] == pytest.approx(1.0) and across[0] == pytest.approx(-0.5)
    within = _cells(report, "**Spearman ρ across epochs")
    assert within[1] == pytest.approx(1.0) and within[0] == pytest.approx((0.5 + 1 + 1) / 3, abs=0.01)
    kept = _cells(report, "**true q→p R@1 of the epoch it keeps (mean; best possible 14.0)")
    assert kept == pytest.approx([(20 + 9 + 3) / 3, (30 + 9 + 3) / 3, (20 + 9 + 3) / 3], abs=0.01)


def test_centred_queries_spread_the_aggregation_weight_that_raw_ones_heap_on_gap_hubs():
    world = WorldSpec(latent_dim=8, dim=64, intrinsic_dim=32, hidden=32, n_concepts=16, n_overlap=800,
                      n_p=800, n_q=800, n_test=100)
    report = hub_report(world, TrainConfig())
    raw, centred = _cells(report, "raw"), _cells(report, "centred")
    assert raw[0] > 2 * centred[0] and raw[1] > 2 * centred[1]  # top 1 % share of P, of Q
    assert centred[0] >= 1.0  # an even spread gives the top 1 % exactly 1 %


@pytest.mark.slow
@pytest.mark.parametrize("sweep", ["selection", "defaults"])
def test_the_sweeps_run_on_a_toy_world(sweep, capsys, monkeypatch):
    runs = {"C-MCR": ("c-mcr", {}), "C-MCR, overlap pairs only": ("c-mcr", {"semantic_consistency": False})}
    monkeypatch.setattr("benchmarks.sweeps.SELECTION_RUNS", runs)
    monkeypatch.setattr("benchmarks.sweeps.DEFAULT_CHANGES", {"none": {}, "λ = 0": {"intra_weight": 0.0}})
    world = ["latent_dim=8", "dim=64", "intrinsic_dim=32", "hidden=32", "n_concepts=16", "n_overlap=400",
             "n_p=400", "n_q=400", "n_test=100"]
    threads = torch.get_num_threads()
    try:
        code = synthetic.main(["--threads", "1", "--sweep", sweep, "--seeds", "0",
                               *[f"--world={item}" for item in world],
                               "--set", "epochs=2", "--set", "hidden=32", "--set", "batch_size=64",
                               "--set", "val_fraction=0.2"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert code == 0
    if sweep == "selection":
        assert "| C-MCR, overlap pairs only, world 0 |" in out and "**Spearman ρ with true q→p R@1, across runs" in out
    else:
        assert re.search(r"\| λ = 0 \| \d+\.\d \| \d+\.\d \|", out)
