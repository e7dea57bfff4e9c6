"""Training objectives: contrastive alignment across MCRs, gap closing within one."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `a` and row i of `b` are positives, other rows negatives.

    Averaging the a→b and b→a cross-entropies keeps either side from collapsing onto the
    other's hubs. Inputs are expected to be L2-normalised.
    """
    logits = a @ b.T / temperature
    targets = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def intra_alignment(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the squared L2 distance ‖a_i − b_i‖² (pulls paired modalities together)."""
    return (a - b).pow(2).sum(dim=1).mean()


def paired_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean ‖a_i − b_i‖² as a fraction of the mean squared distance between unpaired rows
    (0: every pair coincides; about 1: the pairing carries nothing).

    For rows that are not normalised and feed a BatchNorm next (Ex-MCR's linear stage): there a
    plain squared distance has a free minimum, since shrinking the layer or growing its bias
    lowers it while the BatchNorm undoes both. A ratio to the spread cannot be lowered that way.
    """
    both = torch.cat([a, b])
    unpaired = 2 * (both - both.mean(dim=0)).pow(2).sum(dim=1).mean()
    return (a - b).pow(2).sum(dim=1).mean() / unpaired.clamp_min(1e-12)
