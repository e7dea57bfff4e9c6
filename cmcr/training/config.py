"""The hyperparameters of one training run, read from files and `key=value` overrides.

Kept apart from the trainer so that reading and checking a run's configuration (the pipeline's
config, the CLIs) never imports torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cmcr import config as configfile
from cmcr.errors import InputError

LABEL = "training option"
# Ex-MCR objectives: "decoupled" as the paper describes it (λ on the linear stage's intra-space
# alignment); "anchored", the earlier one kept as an ablation (λ pulls final outputs onto base partners).
EXMCR_OBJECTIVES = ("decoupled", "anchored")
# Held-out signals for early stopping and best-epoch choice (docs/method.md measures them).
SELECTION_SIGNALS = ("pseudo", "overlap", "mix")
# C-MCR projector architectures, and the choices for training: one of them, or "official", the one
# each official release uses for its connection (ConnectionMemories.cmcr_projector).
CMCR_ARCHITECTURES = ("two-layer", "one-layer")
CMCR_PROJECTORS = ("official", *CMCR_ARCHITECTURES)
# InfoNCE temperature τ of each method when `temperature` is unset: Ex-MCR's leaf head aligns with a
# frozen base and wants a sharper τ than C-MCR's two trained projectors (docs/method.md, § Defaults).
METHOD_TEMPERATURES = {"c-mcr": 0.05, "ex-mcr": 0.03}


@dataclass
class TrainConfig:
    """Hyperparameters of one training run; defaults chosen on the synthetic benchmark
    (docs/method.md records the sweep that picked them)."""

    agg_temperature: float = 0.01  # τ_agg: softmax temperature of memory aggregation
    agg_centre: bool = True  # aggregation scores queries minus their modality's mean (no gap hubs)
    noise_cosine: float = 0.9  # semantic completion: expected cos(x, x + noise), at any width (1: none)
    top_k: int | None = None  # aggregate over each query's k nearest memory rows only
    semantic_consistency: bool = True  # False: train on overlap pairs only (ablation)
    temperature: float | None = None  # τ: InfoNCE temperature (None: METHOD_TEMPERATURES)
    intra_weight: float = 0.1  # λ: weight of the intra-MCR alignment term
    exmcr_objective: str = "decoupled"  # one of EXMCR_OBJECTIVES
    selection: str = "pseudo"  # model-selection signal, one of SELECTION_SIGNALS
    cmcr_projector: str = "official"  # one of CMCR_PROJECTORS
    hidden: int = 1024  # projector hidden width
    dim_out: int | None = None  # C-MCR connected-space width (None: the X encoder's width)
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.05  # of all steps, linear warm-up before the cosine decay
    seed: int = 0
    val_fraction: float = 0.05  # overlap rows held out for early stopping (0: none)
    val_max_rows: int = 5000
    patience: int = 5  # epochs without a better validation R@1 before stopping
    device: str | None = None  # None: "cuda" when available, else "cpu"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    agg_chunk_size: int = 8192  # memory rows per aggregation block

    @classmethod
    def from_dict(cls, values: Mapping) -> "TrainConfig":
        """Build from a parsed YAML/TOML mapping; unknown keys and wrong types are InputErrors."""
        config = configfile.build(cls, values, LABEL)
        config.check()
        return config

    def check(self) -> None:
        """Reject values that would crash or silently misbehave mid-run."""
        positive = ["agg_temperature", "hidden", "epochs", "batch_size", "lr",
                    "patience", "agg_chunk_size", "val_max_rows"]
        bad = [name for name in positive if not getattr(self, name) > 0]
        bad += [name for name in ("intra_weight", "weight_decay") if getattr(self, name) < 0]
        bad += [] if 0 < self.noise_cosine <= 1 else ["noise_cosine"]
        bad += [name for name in ("val_fraction", "warmup_fraction")
                if not 0 <= getattr(self, name) < 1]
        bad += [name for name in ("top_k", "dim_out")
                if getattr(self, name) is not None and getattr(self, name) < 1]
        bad += [] if self.temperature is None or self.temperature > 0 else ["temperature"]
        if bad:
            raise InputError(f"training option(s) out of range: {', '.join(bad)} "
                             f"(got {[getattr(self, name) for name in bad]})")
        for name, choices in (("exmcr_objective", EXMCR_OBJECTIVES), ("selection", SELECTION_SIGNALS),
                              ("cmcr_projector", CMCR_PROJECTORS)):
            if getattr(self, name) not in choices:
                raise InputError(f"training option {name}={getattr(self, name)!r}: choose one of {choices}")

    def for_method(self, method: str) -> "TrainConfig":
        """This configuration with `temperature` filled in for `method` when unset, so that what a
        run records and saves (config.json, its logit_scale) names the τ it trained at."""
        if self.temperature is not None:
            return self
        if method not in METHOD_TEMPERATURES:
            raise InputError(f"unknown method {method!r}; choose one of {tuple(METHOD_TEMPERATURES)}")
        return dataclasses.replace(self, temperature=METHOD_TEMPERATURES[method])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """A TrainConfig from a YAML/TOML file of field values, then `key=value` overrides
    (values parsed as YAML, so `top_k=null`, `amp=false`, `lr=3e-4` all work)."""
    values = configfile.read_config_file(path) if path else {}
    return TrainConfig.from_dict(configfile.apply_overrides(values, overrides))
