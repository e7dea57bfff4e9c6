"""Queries of any modality against galleries, through one space.

Every input takes the same road: decode with `cmcr.data.media`, embed with the encoder that owns
the modality (`cmcr.models.registry.MODALITY_ENCODERS`), then `space.project` into the shared
space. Because galleries are embedded on that same road (`SpaceEmbedder` is the `ItemEmbedder`
that `cmcr.retrieval.gallery.ingest` takes), any modality can be searched against any other,
including pairs that never met in training (audio ↔ 3D).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from cmcr.data.media.text import bound_text
from cmcr.data import media
from cmcr.errors import InputError
from cmcr.models.encoders import build_encoder
from cmcr.models.registry import ENCODERS, MODALITY_ENCODERS
from cmcr.models.space import UnifiedSpace, tiny_space
from cmcr.retrieval.gallery import Gallery, Hit, space_identity


LABEL_SETS_KEPT = 32


class SpaceEmbedder:
    """Decode, embed and project inputs of any modality into one space.

    `encoders` maps encoder names to built encoders (`cmcr.models.encoders.build_encoder`); only those
    the space can project are used.
    """

    def __init__(self, space: Any, encoders: Mapping[str, Any]) -> None:
        self.space = space
        self.encoders = dict(encoders)
        self.space_id = space_identity(space, self.encoders)
        # bounded and thread-safe: visitors may send any number of distinct label sets
        self._label_matrix = functools.lru_cache(maxsize=LABEL_SETS_KEPT)(self._compute_label_matrix)

    def encoder_for(self, modality: str) -> str:
        """The encoder this embedder uses for `modality`, or a message saying why there is none."""
        if modality not in MODALITY_ENCODERS:
            raise InputError(f"Unknown modality {modality!r}; choose one of {', '.join(MODALITY_ENCODERS)}.")
        for name in MODALITY_ENCODERS[modality]:
            if name in self.space.encoders and name in self.encoders:
                return name
        raise InputError(
            f"This space cannot place {modality} inputs: it projects {', '.join(self.space.encoders)}, "
            f"and {modality} needs {' or '.join(MODALITY_ENCODERS[modality])}."
        )

    def decode(self, modality: str, source: Any, *, reduced: bool = False) -> Any:
        """A raw input (path, bytes, file object; a string for text) as the encoder's item type.

        Already-decoded items (a PIL image, a sample or point array) are validated, not re-read.
        `reduced`: decode JPEGs at the smallest DCT scale the encoder's input size allows
        (`load_image(min_side=)`): several times faster for photos, pixels within a few levels.
        """
        if modality == "text":
            if not isinstance(source, str) or not source.strip():
                raise InputError("A text query must be a non-empty string.")
            return bound_text(source).text
        if modality == "image":
            if isinstance(source, Image.Image):
                return source.convert("RGB")
            return media.load_image(source, min_side=self._image_side() if reduced else None)
        if modality == "audio":
            return _audio_array(source) if isinstance(source, np.ndarray) else media.load_audio(source)
        if modality == "points":
            if isinstance(source, np.ndarray):
                return media.normalise_points(source, num_points=len(source))
            return media.load_points(source)
        raise InputError(f"Unknown modality {modality!r}; choose one of {', '.join(MODALITY_ENCODERS)}.")

    def _image_side(self) -> int | None:
        preparer = self.encoders[self.encoder_for("image")].preparer("image")
        return None if preparer is None else preparer.min_side

    def prepare(self, modality: str, batch: Sequence) -> Sequence:
        """Decoded items → the encoder's input (`Encoder.prepare`: model-free, thread-safe), which
        `embed` takes like decoded items."""
        return self.encoders[self.encoder_for(modality)].prepare(modality, batch)

    def embed(self, modality: str, batch: Sequence) -> np.ndarray:
        """Decoded (or prepared) items → (N, D) unit rows in the space."""
        encoder = self.encoder_for(modality)
        features = self.encoders[encoder].embed(modality, batch)
        return self.space.project(encoder=encoder, modality=modality, features=features)

    def label_matrix(self, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """(len(labels), D): each label's prompts embedded as text, projected, averaged and
        re-normalised (steadier than any single prompt). The most recent label sets are kept,
        because the app classifies every request against the same few hundred prompts."""
        return self._label_matrix(tuple(labels), tuple(templates))

    def _compute_label_matrix(self, labels: tuple[str, ...], templates: tuple[str, ...]) -> np.ndarray:
        prompts = [template.format(label) for label in labels for template in templates]
        rows = self.embed("text", prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        rows.setflags(write=False)  # shared by every later request with these labels
        return rows

    def embed_inputs(self, modality: str, inputs: Sequence) -> np.ndarray:
        """Raw inputs → (N, D) unit rows in the space."""
        if isinstance(inputs, (str, bytes)) or not len(inputs):
            raise InputError("Pass a non-empty list of inputs.")
        return self.embed(modality, [self.decode(modality, source) for source in inputs])


def load_embedder(space: str | None = None, profile: str = "full", device: str | None = None,
                  revision: str | None = None) -> SpaceEmbedder:
    """A `SpaceEmbedder` for a saved space (folder or Hub repo id) with encoders of `profile`.

    In the tiny profile `space` may be left out: an untrained random space of the right sizes
    is built (results then carry no meaning, but every code path runs offline).
    """
    encoders = {name: build_encoder(name, profile, device=device) for name in ENCODERS}
    if space is not None:
        unified = UnifiedSpace.from_pretrained(space, revision=revision)
    elif profile == "tiny":
        unified = tiny_space(encoders)
    else:
        raise InputError("Name the trained space to embed with (a folder or a Hub repo id).")
    return SpaceEmbedder(unified, {name: encoders[name] for name in unified.encoders if name in encoders})


def _audio_array(samples: np.ndarray) -> np.ndarray:
    wave = np.asarray(samples, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
        raise InputError("Audio samples must be a non-empty 1-D array of finite numbers (mono, 48 kHz).")
    return wave


def query(embedder: SpaceEmbedder, gallery: Gallery, modality: str, inputs: Sequence | None = None,
          *, embeddings: np.ndarray | None = None, k: int = 10,
          target: str | None = None) -> list[list[Hit]]:
    """Top-k gallery items of modality `target` (None: any) for each query, best first.

    Give either raw `inputs` of `modality` or their `embeddings` already in the space.
    """
    rows = query_rows(embedder, modality, inputs, embeddings)
    return gallery.search(rows, space_id=embedder.space_id, k=k, modality=target)


def query_rows(embedder: SpaceEmbedder, modality: str, inputs: Sequence | None,
               embeddings: np.ndarray | None) -> np.ndarray:
    """The query rows in the space: raw `inputs` embedded, or `embeddings` as given (exactly one)."""
    if (inputs is None) == (embeddings is None):
        raise InputError("Give either inputs or embeddings, not both or neither.")
    if embeddings is not None:
        return np.asarray(embeddings, dtype=np.float32)
    return embedder.embed_inputs(modality, inputs)
