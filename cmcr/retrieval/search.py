"""Queries of any modality against galleries, and zero-shot classification, in one space.

Every input takes the same road: decode with `cmcr.data.media`, embed with the encoder that owns the
modality (audio → CLAP, image → CLIP, text → CLIP, points → ULIP), then `space.project` into
the shared space. Because galleries are embedded on that same road (`SpaceEmbedder` is the
`ItemEmbedder` that `cmcr.retrieval.gallery.ingest` takes), any modality can be searched against any
other, including pairs that never met in training (audio ↔ 3D).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import MODALITY_ENCODERS
from cmcr.retrieval.gallery import Gallery, Hit, space_identity

# CLIP's learned logit scale; zero-shot probabilities are softmax(scale * cosine).
LOGIT_SCALE = 100.0

MODELNET40 = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower pot", "glass box", "guitar", "keyboard",
    "lamp", "laptop", "mantel", "monitor", "night stand", "person", "piano", "plant", "radio",
    "range hood", "sink", "sofa", "stairs", "stool", "table", "tent", "toilet", "tv stand", "vase",
    "wardrobe", "xbox",
)
SOUND_LABELS = (
    "rain", "thunder", "wind", "sea waves", "a stream of water", "a dog barking", "a cat meowing",
    "birds chirping", "a rooster crowing", "a cow mooing", "crickets", "a church bell",
    "a siren", "a car engine", "a car horn", "a train", "a train horn", "an airplane", "a helicopter",
    "footsteps", "a door knock", "a clock ticking", "an alarm clock", "applause", "laughter",
    "a crying baby", "speech", "a crowd", "a drum beat", "a guitar", "a piano", "a violin",
    "a vacuum cleaner", "glass breaking", "fireworks", "a keyboard typing",
)
IMAGE_LABELS = (
    "a dog", "a cat", "a bird", "a horse", "a car", "a bicycle", "a train", "an airplane",
    "a boat", "a tree", "a flower", "a mountain", "a beach", "a sunset", "a city street",
    "a house", "a church", "a clock", "a cup of coffee", "a chair", "a table", "a bed",
    "a guitar", "a person", "food", "rain", "snow", "the sky",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "points": ("a point cloud of a {}.", "a 3D model of a {}.", "a 3D rendering of a {}.",
               "a point cloud model of a {}.", "there is a {} in the scene."),
    "audio": ("the sound of {}.", "a recording of {}.", "{} can be heard.", "this is the sound of {}."),
    "image": ("a photo of {}.", "a picture of {}.", "an illustration of {}.", "a drawing of {}."),
}
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "points": MODELNET40, "audio": SOUND_LABELS, "image": IMAGE_LABELS,
}


class SpaceEmbedder:
    """Decode, embed and project inputs of any modality into one space.

    `encoders` maps encoder names to built encoders (`cmcr.models.encoders.build_encoder`); only those
    the space can project are used.
    """

    def __init__(self, space: Any, encoders: Mapping[str, Any]) -> None:
        self.space = space
        self.encoders = dict(encoders)
        self.space_id = space_identity(space, self.encoders)
        self._label_matrices: dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = {}

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
        from cmcr.data import media

        if modality == "text":
            if not isinstance(source, str) or not source.strip():
                raise InputError("A text query must be a non-empty string.")
            return source.strip()
        if modality == "image":
            from PIL import Image

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
        re-normalised (steadier than any single prompt). Kept per label set, because the app
        classifies every request against the same few hundred prompts."""
        key = (tuple(labels), tuple(templates))
        if key not in self._label_matrices:
            prompts = [template.format(label) for label in labels for template in templates]
            rows = self.embed("text", prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
            self._label_matrices[key] = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return self._label_matrices[key]

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
    from cmcr.models.encoders import build_encoder

    encoders = {name: build_encoder(name, profile, device=device) for name in ("clip", "clap", "ulip")}
    if space is not None:
        from cmcr.models.space import UnifiedSpace

        unified = UnifiedSpace.from_pretrained(space, revision=revision)
    elif profile == "tiny":
        from cmcr.models.space import tiny_space

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
    rows = _query_rows(embedder, modality, inputs, embeddings)
    return gallery.search(rows, space_id=embedder.space_id, k=k, modality=target)


def _query_rows(embedder: SpaceEmbedder, modality: str, inputs: Sequence | None,
                embeddings: np.ndarray | None) -> np.ndarray:
    if (inputs is None) == (embeddings is None):
        raise InputError("Give either inputs or embeddings, not both or neither.")
    if embeddings is not None:
        return np.asarray(embeddings, dtype=np.float32)
    return embedder.embed_inputs(modality, inputs)


class ZeroShotClassifier:
    """Labels as averaged prompt embeddings in the space ("a 3D model of a {}." ...); inputs
    are scored against them with CLIP's logit scale."""

    def __init__(self, embedder: SpaceEmbedder, labels: Sequence[str],
                 templates: Sequence[str] = ("{}",)) -> None:
        self.labels = _clean_labels(labels)
        if not templates or any("{}" not in template for template in templates):
            raise InputError("Every prompt template must contain '{}' where the label goes.")
        self.matrix = embedder.label_matrix(self.labels, templates)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, len(labels)) rows summing to one."""
        rows = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        logits = LOGIT_SCALE * (rows @ self.matrix.T)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def classify(self, embeddings: np.ndarray, top: int | None = None) -> list[list[tuple[str, float]]]:
        """Labels with probabilities for each row, most likely first (`top` of them, or all)."""
        results = []
        for row in self.probabilities(embeddings):
            order = np.argsort(-row, kind="stable")[: top or len(self.labels)]
            results.append([(self.labels[i], float(row[i])) for i in order])
        return results


def _clean_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        labels = labels.split(",")
    cleaned = list(dict.fromkeys(str(label).strip() for label in labels if str(label).strip()))
    if len(cleaned) < 2:
        raise InputError("Give at least two distinct labels to choose between.")
    return cleaned


def zero_shot(embedder: SpaceEmbedder, modality: str, inputs: Sequence | None = None, *,
              embeddings: np.ndarray | None = None, labels: Sequence[str] | None = None,
              templates: Sequence[str] | None = None, top: int | None = 5) -> list[list[tuple[str, float]]]:
    """Classify inputs of `modality` among text labels through the space.

    Defaults: 3D → the 40 ModelNet40 classes with point-cloud prompts; audio → common sound
    events; images → common scenes and objects.
    """
    if modality not in DEFAULT_LABELS:
        raise InputError(f"Zero-shot classification takes audio, image or points inputs, not {modality!r}.")
    classifier = ZeroShotClassifier(embedder, labels or DEFAULT_LABELS[modality],
                                    templates or TEMPLATES[modality])
    return classifier.classify(_query_rows(embedder, modality, inputs, embeddings), top)
