"""Frozen encoders (the MCRs): CLIP (text, image), CLAP (text, audio), ULIP (points, image).

`build_encoder(name, profile="full"|"tiny", device=None, **overrides)` is the entry point; the
encoder modules themselves are imported only when an encoder of theirs is built.
"""

from cmcr.models.encoders.base import (
    BaseEncoder,
    Encoder,
    EncoderConfig,
    build_encoder,
    encoder_class,
    encoder_config,
)

__all__ = [
    "BaseEncoder",
    "Encoder",
    "EncoderConfig",
    "build_encoder",
    "encoder_class",
    "encoder_config",
]
