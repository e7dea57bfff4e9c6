"""Trained connections assembled into spaces.

Ex-MCR joins every connection's leaf head onto their shared base encoder X (one unified space);
C-MCR keeps one pairwise space per connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cmcr.data.connections import get_connection
from cmcr.models.space import UnifiedSpace
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import TrainResult


def build_spaces(results: Mapping[str, TrainResult], method: str, config: TrainConfig, *,
                 encoders: dict[str, dict] | None = None) -> UnifiedSpace | dict[str, UnifiedSpace]:
    """Assemble trained connections (name → TrainResult) into spaces.

    Ex-MCR gives one UnifiedSpace (the shared base plus every connection's leaf head); C-MCR gives
    {"clap-clip": space, ...}, one pairwise space per connection. `encoders` adds per-encoder
    facts (weights, revision) to config.json, as `UnifiedSpace.build` describes.
    """
    config = config.for_method(method)
    hyperparameters = config.to_dict()
    metrics = {name: json_safe(result.metrics) for name, result in results.items()}
    scale = 1 / config.temperature  # the sharpness the heads were trained at
    if method == "ex-mcr":
        heads = {leaf: head for result in results.values() for leaf, head in result.heads.items()}
        (base,) = {get_connection(name).x for name in results}
        return UnifiedSpace.build(method, heads, base=base, encoders=encoders,
                                  hyperparameters=hyperparameters, metrics=metrics, logit_scale=scale)
    return {name.replace("→", "-"): UnifiedSpace.build(
        method, result.heads, encoders=encoders, hyperparameters=hyperparameters,
        metrics=metrics[name], logit_scale=scale) for name, result in results.items()}


def spaces_by_folder(spaces: UnifiedSpace | dict[str, UnifiedSpace], connections: list[str]
                     ) -> dict[str, tuple[UnifiedSpace, list[str]]]:
    """What `build_spaces` gave, as {name: (space, the connections it holds)}: Ex-MCR's one space
    is "unified", C-MCR's are named by their folder ("clap-clip")."""
    if isinstance(spaces, UnifiedSpace):
        return {"unified": (spaces, list(connections))}
    return {folder: (space, [name for name in connections if name.replace("→", "-") == folder])
            for folder, space in spaces.items()}


def json_safe(values: Any) -> Any:
    """NaN (e.g. no validation split) becomes None, recursively, so config.json and training.json
    stay strict JSON."""
    if isinstance(values, Mapping):
        return {key: json_safe(value) for key, value in values.items()}
    if isinstance(values, float) and math.isnan(values):
        return None
    return values
