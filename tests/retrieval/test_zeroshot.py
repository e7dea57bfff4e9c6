"""Zero-shot classification through a tiny-profile space: distributions over the default and
given labels, and prompt averaging."""

from __future__ import annotations

import numpy as np
import pytest

from cmcr.errors import InputError
from cmcr.data.vocabulary import MODELNET40
from cmcr.models.space import UnifiedSpace
from cmcr.retrieval.search import SpaceEmbedder
from cmcr.retrieval.zeroshot import ZeroShotClassifier, zero_shot
from tests.paths import ASSETS
from tests.retrieval.samples import QUERIES

pytestmark = pytest.mark.slow


def test_zero_shot_3d_gives_a_distribution_over_modelnet40(tiny_embedder):
    assert len(set(MODELNET40)) == 40
    results = zero_shot(tiny_embedder, "points", [QUERIES["points"], ASSETS / "shapes" / "car.glb"], top=None)
    for labels in results:
        assert [label for label, _ in labels] != [] and {label for label, _ in labels} == set(MODELNET40)
        probabilities = [p for _, p in labels]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert probabilities == sorted(probabilities, reverse=True) and min(probabilities) >= 0


def test_zero_shot_with_own_labels_and_prompt_averaging(tiny_embedder):
    labels = ["rain", "a siren", "a dog barking"]
    top = zero_shot(tiny_embedder, "audio", [QUERIES["audio"]], labels=labels, top=2)[0]
    assert len(top) == 2 and {label for label, _ in top} <= set(labels)
    classifier = ZeroShotClassifier(tiny_embedder, labels, ("the sound of {}.", "{} can be heard."))
    single = [tiny_embedder.embed("text", [t.format(label) for t in ("the sound of {}.", "{} can be heard.")])
              for label in labels]
    averaged = np.stack([rows.mean(axis=0) / np.linalg.norm(rows.mean(axis=0)) for rows in single])
    np.testing.assert_allclose(classifier.matrix, averaged, atol=1e-5)
    with pytest.raises(InputError, match="at least two"):
        zero_shot(tiny_embedder, "image", [QUERIES["image"]], labels=["cat", " cat "])
    with pytest.raises(InputError, match="must contain"):
        ZeroShotClassifier(tiny_embedder, labels, ("no placeholder",))


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_probabilities_are_sharpened_by_the_space_own_logit_scale(tiny_embedder):
    labels, templates = ["rain", "a siren", "a dog barking"], ("the sound of {}.",)
    rows = tiny_embedder.embed("text", ["the sound of a siren.", "rain on a roof."])
    default = ZeroShotClassifier(tiny_embedder, labels, templates)
    assert default.logit_scale == tiny_embedder.space.logit_scale == 10.0  # a space without the field
    np.testing.assert_allclose(default.probabilities(rows), _softmax(10.0 * rows @ default.matrix.T), rtol=1e-5)
    space = tiny_embedder.space
    sharper = SpaceEmbedder(UnifiedSpace({**space.config, "logit_scale": 40.0}, dict(space.heads)),
                            tiny_embedder.encoders)
    sharp = ZeroShotClassifier(sharper, labels, templates)
    np.testing.assert_allclose(sharp.probabilities(rows), _softmax(40.0 * rows @ sharp.matrix.T), rtol=1e-5,
                               atol=1e-7)  # float32 softmax: probabilities near 1e-4 differ in the last bits
    assert (sharp.probabilities(rows).max(axis=1) > default.probabilities(rows).max(axis=1)).all()


def test_label_sets_are_kept_for_the_most_recent_only(tiny_embedder):
    from cmcr.retrieval.search import LABEL_SETS_KEPT

    for index in range(LABEL_SETS_KEPT + 8):
        ZeroShotClassifier(tiny_embedder, [f"thing {index}", f"other {index}"])
    kept = tiny_embedder._label_matrix.cache_info()
    assert kept.currsize == LABEL_SETS_KEPT and kept.maxsize == LABEL_SETS_KEPT
    matrix = tiny_embedder.label_matrix(("thing 0", "other 0"), ("{}",))  # evicted, computed again
    assert matrix.shape[0] == 2 and not matrix.flags.writeable
