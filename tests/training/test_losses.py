"""Losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from cmcr.training.losses import info_nce, intra_alignment, paired_gap


def test_info_nce_matches_a_hand_computed_two_by_two_case():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    tau = 0.5
    # logits = a b^T / tau = [[1.2, 0], [1.6, 2.0]]
    row_losses = [-(1.2 - math.log(math.exp(1.2) + 1.0)),
                  -(2.0 - math.log(math.exp(1.6) + math.exp(2.0)))]
    col_losses = [-(1.2 - math.log(math.exp(1.2) + math.exp(1.6))),
                  -(2.0 - math.log(1.0 + math.exp(2.0)))]
    expected = (sum(row_losses) / 2 + sum(col_losses) / 2) / 2
    assert info_nce(a, b, tau).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_is_symmetric_and_small_for_perfect_pairs():
    x = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    y = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    assert info_nce(x, y, 0.1).item() == pytest.approx(info_nce(y, x, 0.1).item(), rel=1e-6)
    assert info_nce(x, x, 0.01).item() < 0.05 < info_nce(x, y, 0.01).item()


def test_info_nce_of_identical_rows_is_log_batch_size():
    rows = torch.ones(5, 3) / math.sqrt(3)
    assert info_nce(rows, rows, 0.07).item() == pytest.approx(math.log(5), rel=1e-6)


def test_intra_alignment_is_mean_squared_distance():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert intra_alignment(a, b).item() == pytest.approx((2.0 + 0.0) / 2)
    assert intra_alignment(a, a).item() == 0.0


def test_paired_gap_is_a_share_of_the_unpaired_distance_and_ignores_scale_and_offset():
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    # pairs 1 apart; the four rows' squared distances to their mean are 1 + 0.25 each side: spread 2·1.25
    assert paired_gap(a, b).item() == pytest.approx(1.0 / 2.5)
    assert paired_gap(3 * a + 7, 3 * b + 7).item() == pytest.approx(paired_gap(a, b).item())
    assert paired_gap(a, a).item() == 0.0
    rows = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))
    assert paired_gap(rows[:2000], rows[2000:]).item() == pytest.approx(1.0, abs=0.05)  # pairs mean nothing


def test_losses_have_gradients():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3)
    (info_nce(a, b, 0.1) + intra_alignment(a, b) + paired_gap(a, b)).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
