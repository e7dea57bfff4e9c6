"""The on-disk format of a space: what config.json must say and how model.safetensors is laid out.

A space is plain data plus tensors, so loading one from the Hub never unpickles anything:
`config.json` (method, encoders, head specs, hyperparameters, metrics, provenance) and
`model.safetensors` whose keys are `<encoder>.<the head's own state-dict key>`, the official key
layout under an encoder prefix. Every reader here refuses what it cannot use with a
`CheckpointError` that names the file and every problem at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cmcr.errors import CheckpointError, InputError

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
METHODS = ("ex-mcr", "c-mcr")
# softmax(scale · cos) turns a space's similarities into probabilities. A space's config.json names
# its own scale (`logit_scale`); spaces saved before it did get 10: what the official demos use, and
# 1/τ for the InfoNCE temperature τ = 0.1 that every space we trained then used.
DEFAULT_LOGIT_SCALE = 10.0


def check_shape(features: Any, in_dim: int, what: str) -> None:
    if isinstance(features, np.ndarray):
        floating = features.dtype.kind == "f"
    elif isinstance(features, torch.Tensor):
        floating = features.is_floating_point()
    else:
        raise InputError(f"{what} features must be a numpy array or a torch tensor, "
                         f"not {type(features).__name__}")
    if not floating:
        raise InputError(f"{what} features must be floating point, got {features.dtype}")
    if features.ndim not in (1, 2) or features.shape[-1] != in_dim:
        raise InputError(
            f"{what} features must have shape (N, {in_dim}) or ({in_dim},), got {tuple(features.shape)}"
        )


def read_config(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: not a saved UnifiedSpace folder")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return config


def config_heads(config: dict) -> dict:
    heads = config.get("heads")
    if not isinstance(heads, dict) or not heads:
        raise CheckpointError("config.json lacks the 'heads' table (encoder → head spec)")
    return heads


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the space has no weights")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc


def check_config(config: dict, heads: dict[str, nn.Module]) -> None:
    """Refuse a config that does not describe these heads; every problem in one message."""
    problems = []
    method, base = config.get("method"), config.get("base")
    encoders = config.get("encoders") if isinstance(config.get("encoders"), dict) else {}
    dim = config.get("dim")
    if config.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version must be {FORMAT_VERSION}")
    if method not in METHODS:
        problems.append(f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "ex-mcr" and (base is None or base in heads or not heads):
        problems.append("an ex-mcr space needs a base encoder without a head and at least one leaf head")
    if method == "c-mcr" and (base is not None or len(heads) != 2):
        problems.append("a c-mcr space has no base and exactly two heads")
    if config.get("leaves") != sorted(heads):
        problems.append(f"leaves {config.get('leaves')!r} must list the heads {sorted(heads)}")
    if sorted(encoders) != sorted(([base] if base else []) + list(heads)):
        problems.append(f"encoders {sorted(encoders)} must be the base plus the heads")
    for name, entry in encoders.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("modalities"), list) \
                or not entry.get("modalities") or not isinstance(entry.get("dim"), int):
            problems.append(f"encoders[{name!r}] needs 'dim' (int) and a non-empty 'modalities' list")
    for name, head in heads.items():
        spec = getattr(head, "spec", None)
        if spec != config.get("heads", {}).get(name):
            problems.append(f"heads[{name!r}] spec {config.get('heads', {}).get(name)!r} != module {spec!r}")
        elif spec["dim_out"] != dim or spec["dim_in"] != encoders.get(name, {}).get("dim"):
            problems.append(f"head {name!r} maps {spec['dim_in']}→{spec['dim_out']}, config says "
                            f"{encoders.get(name, {}).get('dim')}→{dim}")
    scale = config.get("logit_scale", DEFAULT_LOGIT_SCALE)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        problems.append(f"logit_scale must be a positive number, got {scale!r}")
    if base and encoders.get(base, {}).get("dim") != dim:
        problems.append(f"base encoder {base!r} must have the space's dim {dim}")
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"config must be strict JSON (no NaN, only plain data): {exc}")
    if problems:
        raise CheckpointError("invalid UnifiedSpace config: " + "; ".join(problems))


def head_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The tensors of one head, without their `<encoder>.` prefix."""
    prefix = f"{name}."
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def file_tensors(heads: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Every head's tensors under its encoder's prefix, on the CPU, as model.safetensors holds them."""
    return {f"{name}.{key}": tensor.detach().cpu().contiguous()
            for name, head in heads.items() for key, tensor in head.state_dict().items()}
