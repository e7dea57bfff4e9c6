"""Zero-shot classification through a space: text labels, each embedded with several prompts and
averaged, are the classes, and an input of any modality takes the label nearest to it. A space
that places 3D or audio beside CLIP text can thus name what it was never trained to label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cmcr.data.vocabulary import DEFAULT_LABELS, TEMPLATES
from cmcr.errors import InputError
from cmcr.retrieval.search import SpaceEmbedder, query_rows


class ZeroShotClassifier:
    """Labels as averaged prompt embeddings in the space ("a 3D model of a {}." ...); inputs
    are scored against them as softmax(scale · cos), with the space's own `logit_scale`."""

    def __init__(self, embedder: SpaceEmbedder, labels: Sequence[str],
                 templates: Sequence[str] = ("{}",)) -> None:
        self.labels = _clean_labels(labels)
        if not templates or any("{}" not in template for template in templates):
            raise InputError("Every prompt template must contain '{}' where the label goes.")
        self.matrix = embedder.label_matrix(self.labels, templates)
        self.logit_scale = embedder.space.logit_scale

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, len(labels)) rows summing to one."""
        rows = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        logits = self.logit_scale * (rows @ self.matrix.T)
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
