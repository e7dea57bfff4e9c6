"""Training curves: loss and held-out R@1 per epoch, as the PNG a space folder carries.

Drawn on a bare `matplotlib.figure.Figure` rather than through pyplot, so saving a curve needs no
display and never switches the backend of the process that trains (a notebook keeps its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def save_training_curve(history: Mapping[str, list[float]], path: str | Path,
                        title: str = "training") -> Path:
    """Loss and validation R@1 per epoch as a PNG."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    figure = Figure(figsize=(9, 3.5))
    loss_axis, metric_axis = figure.subplots(1, 2)
    for name in ("loss", "inter", "intra"):
        loss_axis.plot(epochs, history[name], label=name)
    loss_axis.set(xlabel="epoch", ylabel="loss", title=title)
    loss_axis.legend()
    held_out = [name for name in ("val_overlap_r1", "val_pseudo_r1") if name in history] or ["val_r1"]
    for name in (*held_out, "valid_q2p_r1"):
        if name in history:
            metric_axis.plot(epochs, history[name], label=name)
    metric_axis.set(xlabel="epoch", ylabel="R@1 (%)", title="held-out retrieval")
    metric_axis.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path
