"""The shared state of one run: its device, how much work each `--sizes` setting does, and the
encoders (full-size architectures with seeded random weights, built once and shared by every
section)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks.machine import Stopwatch
from cmcr.models.encoders import build_encoder
from cmcr.models.registry import ENCODERS
from cmcr.models.space import tiny_space
from cmcr.retrieval.search import SpaceEmbedder

K = 10  # results per query, as the app shows
EMBED_DIM = ENCODERS["clip"].dim  # galleries and memories as wide as the space the app serves (CLIP's, the base)

# Encoder overrides that give the full-size architecture with seeded random weights, offline.
RANDOM_WEIGHTS: dict[str, dict[str, Any]] = {
    "clip": {"pretrained": None},
    "clap": {"hub_filename": None, "tokenizer_repo": None},
    "ulip": {"checkpoint_repo": None},
}


@dataclass(frozen=True)
class SizePlan:
    """How much work each section does at one `--sizes` setting."""

    profile: str  # encoder profile: "tiny" (toy widths) or "full" (real architectures)
    encoder_batches: tuple[int, ...]
    warmup: int
    repeats: int
    points_per_cloud: int
    points_batch: int
    gallery_sizes: tuple[int, ...]
    search_queries: int
    build_images: int
    build_clouds: int
    build_batch: int
    image_pixels: tuple[int, int]  # (width, height) of the generated JPEG files
    train_rows: tuple[int, ...]
    train_overrides: dict[str, Any]  # TrainConfig fields: CPU sizes cap epochs and widths


SIZE_PLANS: dict[str, SizePlan] = {
    "tiny": SizePlan("tiny", (1, 2), 1, 2, 1024, 2, (1000,), 10, 2, 1, 2, (160, 120), (1000,),
                     {"hidden": 64, "batch_size": 256, "epochs": 2}),
    "small": SizePlan("full", (1, 4), 1, 3, 10_000, 4, (1000, 100_000), 30, 6, 3, 6, (640, 480),
                      (4096,), {"epochs": 2}),
    "full": SizePlan("full", (1, 8, 32, 128, 256), 3, 20, 10_000, 128, (1000, 100_000, 1_000_000),
                     200, 2048, 512, 256, (640, 480), (100_000, 1_000_000), {}),
}


@dataclass
class Bench:
    """One run's device, sizes and lazily built encoders (shared by every section)."""

    device: torch.device
    plan: SizePlan
    progress: Callable[[str], None] = lambda message: None
    seed: int = 0
    _encoders: dict[tuple, Any] = field(default_factory=dict)

    @property
    def stopwatch(self) -> Stopwatch:
        return Stopwatch(self.device, self.plan.warmup, self.plan.repeats)

    @property
    def precisions(self) -> tuple[str, ...]:
        """bf16 autocast only pays on GPUs; on CPUs it is slower, and the encoders skip it."""
        return ("float32", "bfloat16") if self.device.type == "cuda" else ("float32",)

    def encoder(self, name: str, dtype: str = "float32", **overrides: Any) -> Any:
        """A loaded encoder of the plan's profile with random weights (no download); `overrides`
        replace further config fields (the same seed gives the same weights)."""
        key = (name, dtype, *sorted(overrides.items()))
        if key not in self._encoders:
            self.progress(f"building the {self.plan.profile} {name} encoder ({dtype})")
            self._encoders[key] = build_encoder(
                name, self.plan.profile, device=self.device, dtype=dtype, **RANDOM_WEIGHTS[name], **overrides
            ).load()
        return self._encoders[key]

    def embedder(self) -> SpaceEmbedder:
        """The app's request path over every encoder: an untrained tiny space (speed does not
        depend on the heads' weights)."""
        encoders = {name: self.encoder(name) for name in ENCODERS}
        return SpaceEmbedder(tiny_space(encoders).to(self.device), encoders)

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])
