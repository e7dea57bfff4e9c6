"""Names for content: the hashes that de-duplicate items and name their previews, and the
identity of the space a gallery's embeddings come from (so it is never searched with another)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Content hash of a file, read in blocks so large point clouds do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def space_identity(space: Any, encoders: dict[str, Any] | None = None) -> str:
    """A stable name for what a gallery's embeddings depend on: the space's config and head
    weights (two spaces trained with the same settings still differ) and, when given, the
    encoders' settings (the tiny and full profiles of one space do not mix)."""
    digest = hashlib.sha256(json.dumps(space.config, sort_keys=True, default=str).encode())
    heads = getattr(space, "heads", None)
    if heads is not None:
        for name, tensor in sorted(heads.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    for name, encoder in sorted((encoders or {}).items()):
        digest.update(f"{name}:{_weight_settings(encoder)}".encode())
    return "space-sha256:" + digest.hexdigest()[:16]


# Encoder settings that change how fast or where embeddings are made, not what they are.
_RUNTIME_SETTINGS = {"batch_size", "dtype", "cache_dir", "endpoint", "point_int8"}


def _weight_settings(encoder: Any) -> str:
    config = getattr(encoder, "config", None)
    if not dataclasses.is_dataclass(config):
        return repr(config)
    settings = {key: value for key, value in dataclasses.asdict(config).items() if key not in _RUNTIME_SETTINGS}
    return json.dumps(settings, sort_keys=True, default=str)
