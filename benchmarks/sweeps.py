"""Sweeps on the synthetic world, run through `python -m benchmarks.synthetic --sweep NAME`.

- `defaults`: each default changed one at a time, q→p R@1 of both methods at the epoch their own
  model selection keeps; what docs/method.md's defaults table comes from.
- `hubs`: how much of all aggregation weight the most-weighted memory rows receive, with the papers'
  raw scores and with centred queries (`agg_centre`): the modality-gap hubs centring removes.
- `selection`: how well each held-out signal tracks the target. Runs of several settings and world
  seeds train for a fixed number of epochs; every epoch logs the overlap signal (O_Y → O_X R@1),
  the pseudo-pair signal (q̂ → p̂ R@1), their mean, and the true q→p R@1 on test pairs no
  signal sees. A good signal ranks runs (and epochs) as the true R@1 does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from cmcr.evaluation.synthetic import SyntheticWorld, WorldSpec, connect_test_pairs, pair_recalls
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import train_connection

DEFAULT_CHANGES = {
    "none": {},
    "uncentred aggregation": {"agg_centre": False},
    "τ = 0.1": {"temperature": 0.1},
    "τ = 0.05": {"temperature": 0.05},
    "τ = 0.03": {"temperature": 0.03},
    "τ_agg = 0.005": {"agg_temperature": 0.005},
    "τ_agg = 0.02": {"agg_temperature": 0.02},
    "noise cosine = 0.95": {"noise_cosine": 0.95},
    "noise cosine = 0.8": {"noise_cosine": 0.8},
    "λ = 0": {"intra_weight": 0.0},
    "λ = 1": {"intra_weight": 1.0},
}
SELECTION_RUNS = {
    "C-MCR": ("c-mcr", {}),
    "C-MCR, overlap pairs only": ("c-mcr", {"semantic_consistency": False}),
    "C-MCR, λ = 1": ("c-mcr", {"intra_weight": 1.0}),
    "C-MCR, τ = 0.3": ("c-mcr", {"temperature": 0.3}),
    "C-MCR, no completion": ("c-mcr", {"noise_cosine": 1.0}),
    "Ex-MCR": ("ex-mcr", {}),
    "Ex-MCR, overlap pairs only": ("ex-mcr", {"semantic_consistency": False}),
    "Ex-MCR, anchored objective": ("ex-mcr", {"exmcr_objective": "anchored"}),
}
SIGNALS = {"overlap (O_Y → O_X)": "val_overlap_r1", "pseudo (q̂ → p̂)": "val_pseudo_r1"}


def defaults_sweep(spec: WorldSpec, config: TrainConfig) -> str:
    """q→p R@1 (%) of C-MCR and Ex-MCR with each change of `DEFAULT_CHANGES` from `config`."""
    world = SyntheticWorld(spec)
    memories, (test_p, test_q) = world.memories(), world.test_pairs()
    lines = [f"| change from the defaults (q→p R@1, {len(test_p)} test pairs) | C-MCR | Ex-MCR |", "|---|---|---|"]
    for label, change in tqdm(DEFAULT_CHANGES.items(), desc="defaults sweep"):
        cells = []
        for method in ("c-mcr", "ex-mcr"):
            result = train_connection(memories, dataclasses.replace(config, **change), method, progress=False)
            p, q = connect_test_pairs(result.heads, method, "x", "y", test_p, test_q)
            cells.append(f"{pair_recalls(p, q)['q→p R@1']:.1f}")
        lines.append(f"| {label} | {' | '.join(cells)} |")
        tqdm.write(lines[-1])
    return "\n".join(lines)


def hub_report(spec: WorldSpec, config: TrainConfig) -> str:
    """Share of all softmax(score/τ_agg) weight that the top 1 % of P and Q rows receive when every
    overlap row queries them (an even spread gives 1 %), and the most any single row receives."""
    memories = SyntheticWorld(spec).memories()
    lines = ["| aggregation scores | P: weight on its top 1 % of rows | Q: weight on its top 1 % | "
             "most weight on one P row (queries' worth) |", "|---|---|---|---|"]
    for label, centre in (("raw o·m (the papers')", False), ("centred (o − μ_o)·m (`agg_centre`)", True)):
        received = [_weight_received(queries, memory, config.agg_temperature, centre)
                    for queries, memory in ((memories.o_x, memories.p), (memories.o_y, memories.q))]
        shares = [100 * weights.topk(max(1, len(weights) // 100)).values.sum() / weights.sum()
                  for weights in received]
        lines.append(f"| {label} | {shares[0]:.1f} % | {shares[1]:.1f} % | {received[0].max():.1f} |")
    return "\n".join(lines)


def _weight_received(queries: np.ndarray, memory: np.ndarray, temperature: float, centre: bool) -> torch.Tensor:
    """Total aggregation weight each memory row gets over all queries (a dense matrix: toy sizes only)."""
    queries, memory = torch.from_numpy(queries), torch.from_numpy(memory)
    if centre:
        queries = queries - queries.mean(dim=0)
    return torch.softmax(queries @ memory.T / temperature, dim=1).sum(dim=0)


def selection_sweep(spec: WorldSpec, config: TrainConfig, seeds: tuple[int, ...] = (0, 1)) -> str:
    """Per-run signals at the last epoch, and each signal's Spearman correlation with the true
    q→p R@1 across runs, across the epochs of one run (mean over runs), and the true R@1 of
    the epoch each signal would keep."""
    fixed = dataclasses.replace(config, patience=config.epochs)  # every epoch runs: nothing is stopped early
    histories = {}
    for seed in seeds:
        world = SyntheticWorld(dataclasses.replace(spec, seed=seed))
        memories, test_pairs = world.memories(), world.test_pairs()
        for label, (method, change) in tqdm(SELECTION_RUNS.items(), desc=f"selection sweep, world {seed}"):
            result = train_connection(memories, dataclasses.replace(fixed, **change), method, valid=test_pairs,
                                      progress=False)
            histories[f"{label}, world {seed}"] = result.history
    return _selection_report(histories)


def _selection_report(histories: dict[str, dict[str, list[float]]]) -> str:
    signals = {**SIGNALS, "mix (their mean)": None}

    def series(history: dict[str, list[float]], key: str | None) -> np.ndarray:
        if key is None:
            return (np.asarray(history["val_overlap_r1"]) + np.asarray(history["val_pseudo_r1"])) / 2
        return np.asarray(history[key])

    lines = ["| run (last epoch) | " + " | ".join(signals) + " | true q→p R@1 |", "|---" * (len(signals) + 2) + "|"]
    for name, history in histories.items():
        cells = [f"{series(history, key)[-1]:.1f}" for key in signals.values()]
        lines.append(f"| {name} | {' | '.join(cells)} | {history['valid_q2p_r1'][-1]:.1f} |")
    truth_last = [history["valid_q2p_r1"][-1] for history in histories.values()]
    best_possible = np.mean([max(history["valid_q2p_r1"]) for history in histories.values()])
    rows = {"Spearman ρ with true q→p R@1, across runs": [], "Spearman ρ across epochs (mean over runs)": [],
            f"true q→p R@1 of the epoch it keeps (mean; best possible {best_possible:.1f})": []}
    for key in signals.values():
        last = [series(history, key)[-1] for history in histories.values()]
        rows["Spearman ρ with true q→p R@1, across runs"].append(spearmanr(last, truth_last).statistic)
        within = [spearmanr(series(history, key), history["valid_q2p_r1"]).statistic
                  for history in histories.values()]
        rows["Spearman ρ across epochs (mean over runs)"].append(np.nanmean(within))
        kept = [history["valid_q2p_r1"][int(np.argmax(series(history, key)))] for history in histories.values()]
        rows[f"true q→p R@1 of the epoch it keeps (mean; best possible {best_possible:.1f})"].append(np.mean(kept))
    lines += [f"| **{name}** | " + " | ".join(f"{value:.2f}" for value in values) + " | |"
              for name, values in rows.items()]
    return "\n".join(lines)
