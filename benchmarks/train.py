"""The `train` section: projector training to convergence (early stopping) on synthetic memories."""

from __future__ import annotations

from typing import Any

from benchmarks.bench import EMBED_DIM, Bench
from benchmarks.figures import TARGETS, Figure
from cmcr.evaluation.synthetic import SyntheticWorld, WorldSpec
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import train_connection


def bench_train(bench: Bench) -> list[Figure]:
    """Ex-MCR training to early stopping on N-row synthetic memories (512-d, as real encoders).

    Baseline: the same run without bf16 autocast. Autocast is off on CPUs anyway, so a CPU
    run reports the figure as its own baseline rather than training twice.
    """
    figures = []
    for rows in bench.plan.train_rows:
        bench.progress(f"train: rendering {rows:,}-row memories")
        memories = SyntheticWorld(WorldSpec(dim=EMBED_DIM, n_overlap=rows, n_p=rows, n_q=rows)).memories()

        def run(amp: bool) -> dict[str, Any]:
            bench.progress(f"train: {rows:,} rows, amp={amp}")
            config = TrainConfig(device=str(bench.device), amp=amp, **bench.plan.train_overrides)
            return train_connection(memories, config, "ex-mcr", progress=False).metrics

        ours = run(amp=True)
        fp32 = run(amp=False) if bench.device.type == "cuda" else ours
        figures.append(Figure(
            "train", f"Ex-MCR to early stop, {rows:,}-row memories ({ours['epochs_run']} epochs, "
            f"aggregation {ours['pseudo_seconds']:.1f} s)", "s", ours["seconds"],
            "same run in fp32 (no autocast)", fp32["seconds"], False,
            target=TARGETS["train_s"] if rows >= 1_000_000 else None, note=_train_note(bench)))
    return figures


def _train_note(bench: Bench) -> str:
    notes = []
    if bench.plan.train_overrides:
        settings = ", ".join(f"{key}={value}" for key, value in bench.plan.train_overrides.items())
        notes.append(f"{settings} to fit this size, so not trained to convergence")
    if bench.device.type == "cpu":
        notes.append("CPU run: the baseline is the figure itself")
    return "; ".join(notes)
