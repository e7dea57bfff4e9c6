"""Zero-shot classification through a space: text labels, each embedded with several prompts and
averaged, are the classes, and an input of any modality takes the label nearest to it. A space
that places 3D or audio beside CLIP text can thus name what it was never trained to label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cmcr.errors import InputError
from cmcr.retrieval.search import SpaceEmbedder, query_rows

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
    return classifier.classify(query_rows(embedder, modality, inputs, embeddings), top)
