"""A synthetic MCR world with known ground truth.

No real checkpoints are reachable here, so quality is measured on a world built like the real
one: latent items are rendered into two frozen "MCRs" X and Y, of any widths. Inside one MCR
every modality sees the same semantic content (a random nonlinear map of the item's semantic
latent, different for X and Y), plus content only that modality sees (a map of a private latent
of the item, drawn per modality: a photo's framing, a recording's room), a constant modality-gap
offset and per-item noise. So, as in CLIP/CLAP, a matching cross-modal pair inside one MCR has a
low cosine while two items of one modality share the gap offset. X and Y are related only
through the latents, by different nonlinear maps; the overlap modality is one modality seen by
both MCRs, so its private latent is the same in both (a caption's wording, whichever encoder
reads it). The overlap, p and q memories use independent latents; only the test (and
oracle-training) pairs (p, q) share one semantic latent.

Each MCR renders its items in `intrinsic_dim` directions and places them in its full width
through a fixed random isometry, as real embeddings occupy far fewer directions than they have
coordinates. So every cosine, and every retrieval on raw embeddings, is the same at 512 or 768
dimensions as at 128, and only what a method does with the width can change. Rendered at the
full width instead, the world gets easier as it widens (the random parts of two items overlap
by about 1/√D), so much that its 512-d version saturated at ≈ 95 % R@1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cmcr.evaluation.metrics import retrieval_metrics
from cmcr.training.memories import ConnectionMemories

_CENTRING_SAMPLES = 8192


@dataclass(frozen=True)
class WorldSpec:
    """Sizes and difficulty of the world; the defaults are the benchmark world."""

    latent_dim: int = 48  # semantic (and private) detail: enough that no projector learns it all
    n_concepts: int = 1024  # latents cluster around concepts, as real data cluster by category
    concept_spread: float = 0.5  # within-concept standard deviation (concept centres: 1)
    dim: int = 512  # embedding width of the base MCR X (CLIP ViT-B/32: 512, ViT-L/14: 768)
    leaf_dim: int | None = None  # embedding width of the leaf MCR Y (None: the same as X)
    intrinsic_dim: int = 128  # directions the content of each MCR spans (at most its width)
    hidden: int = 256  # width of the random maps
    n_overlap: int = 10000
    n_p: int = 10000
    n_q: int = 10000
    n_test: int = 1000
    shared_weight: float = 0.5  # semantic content common to all modalities of one MCR
    modality_weight: float = 0.3  # private content, seen by one modality only
    gap_weight: float = 0.7  # constant per-modality offset (the modality gap)
    noise_weight: float = 0.35  # per-item noise
    map_gain: float = 1.5  # first-layer gain of the random maps: higher saturates tanh, less linear
    modality_twist: float = 0.0  # rotates each modality's semantic content away from the others'
    leaf_hermite: float = 0.0  # share of Y's semantic input that no linear function of X's predicts
    seed: int = 0


class _RandomMap:
    """A fixed random 2-layer MLP of the latent (tanh then GELU-like), centred, unit rows."""

    def __init__(self, rng: np.random.Generator, spec: WorldSpec, dim: int) -> None:
        self.first = rng.standard_normal((spec.latent_dim, spec.hidden)) * spec.map_gain / np.sqrt(
            spec.latent_dim)
        self.bias = rng.standard_normal(spec.hidden) * 0.5
        self.second = rng.standard_normal((spec.hidden, dim)) / np.sqrt(spec.hidden)
        reference = rng.standard_normal((_CENTRING_SAMPLES, spec.latent_dim))
        self.centre = self._raw(reference).mean(axis=0)

    def _raw(self, latents: np.ndarray) -> np.ndarray:
        hidden = np.tanh(latents @ self.first + self.bias)
        out = hidden @ self.second
        return out * (1 / (1 + np.exp(-1.702 * out)))  # GELU (sigmoid approximation)

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        return _unit(self._raw(latents) - self.centre)


class _HermiteMap:
    """Y's semantic map when `leaf_hermite` > 0: a random map of the latent mixed with its second
    and third Hermite features, which are uncorrelated with every linear function of the latent
    but together determine it. Two encoders trained apart need not be linearly related; this
    turns that relation down without making the item unrecoverable."""

    def __init__(self, rng: np.random.Generator, spec: WorldSpec, dim: int) -> None:
        if not 0 < spec.leaf_hermite <= 1:
            raise ValueError(f"leaf_hermite is a share, in (0, 1], not {spec.leaf_hermite}")
        self.share = spec.leaf_hermite
        # latents are concept centres (unit variance) plus spread: standardised before the features
        self.scale = np.sqrt(1 + spec.concept_spread ** 2)
        self.map = _RandomMap(rng, replace(spec, latent_dim=3 * spec.latent_dim), dim)

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        z = latents / self.scale
        features = np.concatenate([np.sqrt(1 - self.share) * z,
                                   np.sqrt(self.share / 2) * (z ** 2 - 1),
                                   np.sqrt(self.share / 6) * (z ** 3 - 3 * z)], axis=1)
        return self.map(features * self.scale)  # back at the latent's scale, which the gain assumes


class _MCR:
    """One frozen contrastive space rendering its two modalities."""

    def __init__(self, rng: np.random.Generator, spec: WorldSpec, modalities: tuple[str, str],
                 dim: int, placement_rng: np.random.Generator, semantic: type = _RandomMap):
        self.spec = spec
        self.width = min(spec.intrinsic_dim, dim)
        self.shared = semantic(rng, spec, self.width)
        self.own = {m: _RandomMap(rng, spec, self.width) for m in modalities}
        self.gap = {m: _unit(rng.standard_normal(self.width)) for m in modalities}
        # drawn apart from the content, so a twist of 0 leaves every other draw as it was
        self.twist = {m: _near_identity_rotation(placement_rng, self.width, spec.modality_twist)
                      for m in modalities} if spec.modality_twist else None
        # orthonormal rows, drawn apart from the content: a world differs between widths only here,
        # and dot products survive the placement exactly
        self.placement = np.linalg.qr(placement_rng.standard_normal((dim, self.width)))[0].T

    def render(self, modality: str, latents: np.ndarray, private: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Unit rows of `modality` for items with these semantic and private latents."""
        spec = self.spec
        noise = _unit(rng.standard_normal((len(latents), self.width)))
        meaning = self.shared(latents) if self.twist is None else self.shared(latents) @ self.twist[modality]
        mixed = (spec.shared_weight * meaning
                 + spec.modality_weight * self.own[modality](private)
                 + spec.gap_weight * self.gap[modality] + spec.noise_weight * noise)
        return (_unit(mixed) @ self.placement).astype(np.float32)


class SyntheticWorld:
    """Two MCRs over one latent: X embeds (o, p), Y embeds (o, q)."""

    def __init__(self, spec: WorldSpec = WorldSpec()) -> None:
        self.spec = spec
        rng, placement_rng = np.random.default_rng(spec.seed), np.random.default_rng([spec.seed, 0])
        self.x = _MCR(rng, spec, ("o", "p"), spec.dim, placement_rng)
        self.y = _MCR(rng, spec, ("o", "q"), spec.leaf_dim or spec.dim, placement_rng,
                      _HermiteMap if spec.leaf_hermite else _RandomMap)
        self.concepts = rng.standard_normal((spec.n_concepts, spec.latent_dim))

    def latents(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Semantic latents, clustered around the concepts."""
        centres = self.concepts[rng.integers(0, self.spec.n_concepts, count)]
        return centres + self.spec.concept_spread * rng.standard_normal(centres.shape)

    def private(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Private latents: what one modality sees of an item and no other does."""
        return rng.standard_normal((count, self.spec.latent_dim))

    def render(self, mcr: _MCR, modality: str, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` items of their own, of one modality."""
        return mcr.render(modality, self.latents(count, rng), self.private(count, rng), rng)

    def memories(self, seed_offset: int = 1) -> ConnectionMemories:
        """Unpaired training memories: overlap rows row-aligned, p and q from other latents."""
        spec = self.spec
        rng = np.random.default_rng([spec.seed, seed_offset])
        overlap, wording = self.latents(spec.n_overlap, rng), self.private(spec.n_overlap, rng)
        return ConnectionMemories(
            o_x=self.x.render("o", overlap, wording, rng), o_y=self.y.render("o", overlap, wording, rng),
            p=self.render(self.x, "p", spec.n_p, rng), q=self.render(self.y, "q", spec.n_q, rng),
            x="x", y="y")

    def pairs(self, count: int, seed_offset: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """True (p, q) pairs sharing semantic latents: test pairs, or an oracle's training data."""
        rng = np.random.default_rng([self.spec.seed, seed_offset])
        latents = self.latents(count, rng)
        return (self.x.render("p", latents, self.private(count, rng), rng),
                self.y.render("q", latents, self.private(count, rng), rng))

    def test_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs(self.spec.n_test, seed_offset=2)


def make_world(spec: WorldSpec = WorldSpec()) -> tuple[ConnectionMemories, np.ndarray, np.ndarray]:
    """The memories a trainer sees, and the held-out (p, q) test pairs."""
    world = SyntheticWorld(spec)
    test_p, test_q = world.test_pairs()
    return world.memories(), test_p, test_q


def _near_identity_rotation(rng: np.random.Generator, width: int, strength: float) -> np.ndarray:
    """The rotation nearest to I + strength·G/√width (G Gaussian): the modality gap as a change of
    direction of the content, not only a constant offset, which a map fitted on one modality does
    not undo for another."""
    left, _, right = np.linalg.svd(np.eye(width) + strength * rng.standard_normal((width, width)) / np.sqrt(width))
    return left @ right


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --- scoring on the world -------------------------------------------------------------------


BRIDGE_RCOND = 1e-4


def text_bridge(o_y: np.ndarray, o_x: np.ndarray) -> np.ndarray:
    """The naive baseline: a least-squares linear map Y → X fitted on the overlap pairs only.

    Embeddings span fewer directions than their width (the world's content spans
    `intrinsic_dim`), and in the others float32 rows hold only rounding noise, singular values
    ~1e-7 against ~2 for the content. numpy's default cut-off keeps those, so the fit inverts
    rounding noise with weights ~1e6 and every bridged query is swamped by it; singular values
    below `BRIDGE_RCOND` of the largest are dropped instead."""
    mapping, *_ = np.linalg.lstsq(np.asarray(o_y, np.float64), np.asarray(o_x, np.float64),
                                  rcond=BRIDGE_RCOND)
    return mapping.astype(np.float32)


def connect_test_pairs(heads: dict, method: str, x: str, y: str, test_p: np.ndarray,
                       test_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Test p and q in the connected space: Y through its head; X through its head (C-MCR) or
    unchanged (Ex-MCR's frozen base)."""
    with torch.no_grad():
        q = heads[y](torch.from_numpy(test_q)).numpy()
        p = test_p if method == "ex-mcr" else heads[x](torch.from_numpy(test_p)).numpy()
    return p, q


def pair_recalls(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """q→p and p→q R@1/R@5 (percent) over row-aligned test pairs."""
    q_to_p = retrieval_metrics(q, p, ks=(1, 5))
    p_to_q = retrieval_metrics(p, q, ks=(1, 5))
    return {"q→p R@1": q_to_p["R@1"], "q→p R@5": q_to_p["R@5"],
            "p→q R@1": p_to_q["R@1"], "p→q R@5": p_to_q["R@5"]}
