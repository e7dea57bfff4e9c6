"""The `full` and `tiny` settings of the CLIP and CLAP encoders (ULIP keeps its table in ulip.py).

`full` names the official checkpoints (docs/architecture.md, "Encoders"): the weights are fetched through `cmcr.hub`
into the Hugging Face cache. `tiny` keeps every class and code path of `full` but shrinks the
architectures to toy sizes with seeded random weights, so it builds offline with an empty cache
in seconds; its embeddings carry no meaning. Both profiles keep the 512-d output so that heads
and feature memories have the same shapes in tests as in production.

Any field can be overridden per call: `build_encoder("clip", model_cfg=..., checkpoint=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmcr.models.encoders.base import EncoderConfig


@dataclass(frozen=True)
class ClipConfig(EncoderConfig):
    """open_clip architecture + weights source.

    Weights come from `checkpoint` (a local file) if set, else from the Hub file that open_clip's
    pretrained registry lists for (`model_name`, `pretrained`), else are random (seeded). The
    architecture is open_clip's built-in config for `model_name` unless `model_cfg` gives one.
    """

    model_name: str = "ViT-B-32"
    pretrained: str | None = "openai"
    checkpoint: str | None = None
    revision: str | None = None
    model_cfg: dict[str, Any] | None = None
    seed: int = 0


@dataclass(frozen=True)
class ClapConfig(EncoderConfig):
    """laion_clap CLAP (HTSAT audio tower + RoBERTa text tower, feature fusion for long audio).

    Weights come from `checkpoint` (a local file) if set, else from `hub_filename` in `hub_repo`,
    else are random (seeded). The RoBERTa tokenizer comes from `tokenizer_repo` on the Hub, or is
    generated locally when `tokenizer_repo` is None (tiny profile; see cmcr.models.encoders.clap).
    """

    hub_repo: str = "lukewys/laion_clap"
    hub_filename: str | None = "630k-fusion-best.pt"
    checkpoint: str | None = None
    revision: str | None = None
    tokenizer_repo: str | None = "FacebookAI/roberta-base"
    enable_fusion: bool = True
    htsat_embed_dim: int = 96
    htsat_depths: tuple[int, ...] = (2, 2, 6, 2)
    htsat_num_heads: tuple[int, ...] = (4, 8, 16, 32)
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate_size: int = 3072
    text_vocab_size: int = 50265
    max_text_tokens: int = 77
    seed: int = 0


TINY_CLIP_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 512,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

CLIP_PROFILES: dict[str, ClipConfig] = {
    "full": ClipConfig(),
    "tiny": ClipConfig(pretrained=None, model_cfg=TINY_CLIP_MODEL_CFG, batch_size=8),
}

CLAP_PROFILES: dict[str, ClapConfig] = {
    "full": ClapConfig(),
    "tiny": ClapConfig(
        hub_filename=None,
        tokenizer_repo=None,
        htsat_embed_dim=8,
        htsat_depths=(1, 1, 1, 1),
        htsat_num_heads=(1, 1, 2, 2),
        text_layers=1,
        text_intermediate_size=64,
        text_vocab_size=2048,
        batch_size=8,
    ),
}
