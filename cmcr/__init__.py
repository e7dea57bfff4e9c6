"""C-MCR Studio: connect frozen contrastive spaces (CLIP, CLAP, ULIP) with small projectors.

The package, layer by layer (each imports only the layers below it; docs/architecture.md is the map):

    cmcr.pipeline      raw data → features → projectors → evaluation → model card → Hub, end to end
    cmcr.evaluation    metrics (a leaf), the synthetic world, R@k / ModelNet40 protocols, the official check
    cmcr.retrieval     galleries (index, store, ingest, Hub), search and zero-shot classification
    cmcr.training      semantic enhancement, losses, the trainer and its config
    cmcr.data          media decoding (all input validation), sources (folders, Hub datasets), feature
                       memories, extraction, corpus
    cmcr.models        the registry, frozen encoders, projector heads, UnifiedSpace and its model card
    cmcr.hub, config, atomic, cli, errors   the ground floor

The public names below are importable from the package root and load their layer on first use, so
`import cmcr` stays cheap for scripts that only touch feature memories.
"""

from __future__ import annotations

import importlib

from cmcr.errors import CheckpointError, CMCRError, HubUnavailableError, InputError

__version__ = "0.1.0"

_LAZY = {
    "UnifiedSpace": "cmcr.models.space",
    "load_spaces": "cmcr.models.space",
    "list_pretrained": "cmcr.models.registry",
    "build_encoder": "cmcr.models.encoders",
    "FeatureMemory": "cmcr.data.features",
    "Gallery": "cmcr.retrieval.gallery",
    "SpaceEmbedder": "cmcr.retrieval.search",
    "ZeroShotClassifier": "cmcr.retrieval.zeroshot",
    "TrainConfig": "cmcr.training.config",
}

__all__ = ["CMCRError", "CheckpointError", "HubUnavailableError", "InputError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmcr' has no attribute {name!r}")
