"""The official inference example, reproduced: do our encoders and the imported official heads give
the similarity matrices the official READMEs print?

Both official repositories end their `inference.py` with softmax(10 · cos) matrices over three sample
triplets (toilet, BBQ, train: a photo, a sound, a point cloud, and the texts 'a toilet', 'BBQ',
'a train'), with their expected output. `REFERENCE` holds those expected matrices as data to compare
against; everything else here computes our own. Inputs are fed as the official inference feeds them:
images through CLIP's preprocessing, audio at 48 kHz, and point clouds as stored (all 10,000 `xyz`
points, not re-centred), where the app would normalise an upload first (`compare_preprocessing`
measures what that changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.data.media import load_audio, load_image, normalise_points
from cmcr.errors import InputError

SAMPLES = ("toilet", "BBQ", "train")
TEXTS = ("a toilet", "BBQ", "a train")
TOLERANCE = 0.05
# Which encoder embeds each modality in every official space (text through CLIP, as officially).
ENCODER_OF = {"image": "clip", "text": "clip", "audio": "clap", "points": "ulip"}
PAIR_NAMES = {"image": "vision", "text": "text", "audio": "audio", "points": "3D"}

# The expected output printed in MCR-PEFT/Ex-MCR @ 0f2baa5 and MCR-PEFT/C-MCR @ 038dec1, inference.py.
# Rows: the first modality, columns: the second; sample order toilet, BBQ, train.
REFERENCE: dict[str, dict[tuple[str, str], list[list[float]]]] = {
    "official-ex-mcr": {
        ("image", "text"): [[0.5737, 0.2242, 0.2021], [0.2454, 0.4756, 0.2790], [0.2541, 0.2530, 0.4929]],
        ("audio", "text"): [[0.9115, 0.0369, 0.0516], [0.1443, 0.7265, 0.1292], [0.1000, 0.0960, 0.8040]],
        ("points", "image"): [[0.8635, 0.0850, 0.0515], [0.0761, 0.9125, 0.0114], [0.1239, 0.0781, 0.7980]],
        ("audio", "image"): [[0.9060, 0.0329, 0.0611], [0.0743, 0.8742, 0.0515], [0.0648, 0.0227, 0.9126]],
        ("points", "text"): [[0.8052, 0.0909, 0.1039], [0.2447, 0.6035, 0.1518], [0.1757, 0.2094, 0.6149]],
        ("audio", "points"): [[0.9860, 0.0038, 0.0102], [0.0078, 0.9875, 0.0048], [0.0204, 0.0021, 0.9775]],
    },
    "official-c-mcr-clap-clip": {
        ("image", "text"): [[0.9681, 0.0219, 0.0100], [0.0403, 0.9398, 0.0199], [0.0045, 0.0044, 0.9910]],
        ("audio", "text"): [[0.9937, 0.0028, 0.0035], [0.0337, 0.9434, 0.0229], [0.0813, 0.0253, 0.8934]],
        ("audio", "image"): [[0.9712, 0.0079, 0.0208], [0.0628, 0.8966, 0.0406], [0.0322, 0.0062, 0.9616]],
    },
    "official-c-mcr-ulip-clip": {
        ("image", "text"): [[0.7340, 0.1593, 0.1067], [0.2001, 0.5995, 0.2005], [0.1622, 0.1835, 0.6542]],
        ("points", "image"): [[0.6783, 0.1781, 0.1436], [0.1193, 0.7866, 0.0941], [0.1319, 0.2170, 0.6512]],
        ("points", "text"): [[0.7448, 0.1236, 0.1316], [0.2459, 0.5625, 0.1916], [0.2007, 0.2648, 0.5346]],
    },
}


@dataclass
class SampleInputs:
    """The three triplets, decoded the way the official inference decodes them."""

    images: list[Any]
    texts: list[str]
    audio: list[np.ndarray]
    clouds: list[np.ndarray]

    def of(self, modality: str) -> list:
        return {"image": self.images, "text": self.texts, "audio": self.audio, "points": self.clouds}[modality]


def read_samples(folder: str | Path) -> SampleInputs:
    """The official samples from `folder` (assets/official/ ships them), clouds as stored."""
    folder = Path(folder)
    missing = [f"{name}.{suffix}" for name in SAMPLES for suffix in ("jpeg", "wav", "npy")
               if not (folder / f"{name}.{suffix}").is_file()]
    if missing:
        raise InputError(f"{folder} lacks the official samples {', '.join(missing)} (assets/official/ holds them).")
    clouds = [np.load(folder / f"{name}.npy", allow_pickle=False).astype(np.float32) for name in SAMPLES]
    if any(cloud.ndim != 2 or cloud.shape[1] != 3 for cloud in clouds):
        raise InputError(f"the clouds in {folder} must be (N, 3) arrays, as numpy.save writes them")
    return SampleInputs(images=[load_image(folder / f"{name}.jpeg") for name in SAMPLES], texts=list(TEXTS),
                        audio=[load_audio(folder / f"{name}.wav") for name in SAMPLES], clouds=clouds)


def encoder_features(inputs: SampleInputs, encoders: Mapping[str, Any], modalities: set[str]) -> dict[str, np.ndarray]:
    """Each modality's (3, D) encoder embeddings, computed once and shared by every space."""
    return {modality: encoders[ENCODER_OF[modality]].embed(modality, inputs.of(modality)) for modality in modalities}


def similarity_matrices(space: Any, features: Mapping[str, np.ndarray],
                        pairs: list[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """softmax(scale · cos) per pair, rows summing to one, in `space`, at the space's own scale
    (10 for the official spaces, as in the official demos)."""
    projected = {modality: space.project(ENCODER_OF[modality], modality, features[modality])
                 for modality in {m for pair in pairs for m in pair}}
    matrices = {}
    for first, second in pairs:
        logits = space.logit_scale * projected[first] @ projected[second].T
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        matrices[(first, second)] = exp / exp.sum(axis=1, keepdims=True)
    return matrices


@dataclass(frozen=True)
class Comparison:
    space: str
    pair: tuple[str, str]
    got: np.ndarray
    expected: np.ndarray

    @property
    def max_difference(self) -> float:
        return float(np.max(np.abs(self.got - self.expected)))

    @property
    def passed(self) -> bool:
        return self.max_difference <= TOLERANCE

    @property
    def title(self) -> str:
        return f"{self.space}: {PAIR_NAMES[self.pair[0]]} × {PAIR_NAMES[self.pair[1]]}"


def compare(space: str, matrices: Mapping[tuple[str, str], np.ndarray]) -> list[Comparison]:
    """Our matrices against the official expected ones; a pair missing from either is an error."""
    expected = REFERENCE[space]
    if set(matrices) != set(expected):
        raise InputError(f"{space}: computed {sorted(matrices)}, the reference has {sorted(expected)}")
    return [Comparison(space, pair, np.asarray(matrices[pair], dtype=np.float64), np.asarray(expected[pair]))
            for pair in expected]


def render(comparison: Comparison) -> str:
    """Ours beside the official matrix, row by row, and the verdict."""
    verdict = "ok" if comparison.passed else f"DIFFERS (more than {TOLERANCE})"
    lines = [f"{comparison.title}   max |ours - official| = {comparison.max_difference:.4f}   {verdict}",
             f"  {'ours':<24}official"]
    for got, expected in zip(comparison.got, comparison.expected):
        lines.append("  " + " ".join(f"{value:.4f}" for value in got) + "    " +
                     " ".join(f"{value:.4f}" for value in expected))
    return "\n".join(lines)


def compare_preprocessing(inputs: SampleInputs, ulip: Any) -> list[tuple[str, float]]:
    """Cosine between the ULIP embedding of each stored cloud (the official input) and of the same
    cloud as the app prepares an upload (`cmcr.data.media.normalise_points`: re-centred, unit sphere, the
    app's point count)."""
    official = ulip.embed("points", inputs.clouds)
    app = ulip.embed("points", [normalise_points(cloud) for cloud in inputs.clouds])
    return [(name, float(a @ b)) for name, a, b in zip(SAMPLES, official, app)]
