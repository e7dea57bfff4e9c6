"""Files and bytes -> arrays the encoders take; all input validation lives here.

Every loader accepts a path, raw bytes or a binary file object, bounds its size before decoding,
and raises `cmcr.InputError` with a message a visitor can act on for anything unusable.
"""

from cmcr.data.media.audio import AudioClip, decode_audio, load_audio
from cmcr.data.media.image import load_image
from cmcr.data.media.points import load_points, normalise_points
from cmcr.data.media.preview import points_to_preview

__all__ = [
    "AudioClip",
    "decode_audio",
    "load_audio",
    "load_image",
    "load_points",
    "normalise_points",
    "points_to_preview",
]
