"""Unequal widths end to end: a 768-d base (CLIP ViT-L/14's width) and a 512-d leaf, trained with both
methods, saved, loaded, and served through SpaceEmbedder with toy encoders of those widths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmcr.evaluation.metrics import retrieval_metrics
from cmcr.evaluation.synthetic import WorldSpec, connect_test_pairs, make_world
from cmcr.models.encoders import build_encoder
from cmcr.models.encoders.profiles import TINY_CLIP_MODEL_CFG
from cmcr.models.space import UnifiedSpace
from cmcr.retrieval.search import SpaceEmbedder
from cmcr.training.config import METHOD_TEMPERATURES, TrainConfig
from cmcr.training.memories import ConnectionMemories
from cmcr.training.spaces import build_spaces, spaces_by_folder
from cmcr.training.trainer import train_connection

BASE, LEAF = 768, 512
WORLD = WorldSpec(latent_dim=8, dim=BASE, leaf_dim=LEAF, intrinsic_dim=64, hidden=64, n_concepts=32,
                  noise_weight=0.25, n_overlap=1200, n_p=1200, n_q=1200, n_test=200)
CONFIG = TrainConfig(hidden=128, epochs=6, batch_size=128, lr=3e-3, val_fraction=0.1,
                     agg_chunk_size=500)  # temperature unset: each method's own, which the space must record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def world():
    memories, test_p, test_q = make_world(WORLD)
    fields = {role: getattr(memories, role) for role in ("o_x", "o_y", "p", "q")}
    return ConnectionMemories(**fields, x="clip", y="clap"), test_p, test_q


@pytest.fixture(scope="module")
def encoders():
    clip = build_encoder("clip", "tiny", device="cpu", dim=BASE, model_cfg={**TINY_CLIP_MODEL_CFG, "embed_dim": BASE})
    return {"clip": clip, "clap": build_encoder("clap", "tiny", device="cpu")}


@pytest.mark.parametrize("method", ["ex-mcr", "c-mcr"])
def test_a_wide_base_and_a_narrow_leaf_train_save_load_and_serve(world, encoders, method, tmp_path):
    memories, test_p, test_q = world
    result = train_connection(memories, CONFIG, method, progress=False)
    q_to_p = retrieval_metrics(*connect_test_pairs(result.heads, method, "clip", "clap", test_p, test_q)[::-1],
                               ks=(1,))["R@1"]
    assert q_to_p > 5 * 100 / len(test_p), f"{method} q→p R@1 {q_to_p:.1f}%"

    ((folder_name, (space, _)),) = spaces_by_folder(build_spaces({"clap→clip": result}, method, CONFIG),
                                                    ["clap→clip"]).items()
    loaded = UnifiedSpace.from_pretrained(space.save_pretrained(tmp_path / folder_name))
    assert loaded.dim == BASE and loaded.config["encoders"]["clap"]["dim"] == LEAF
    assert loaded.config["encoders"]["clip"]["dim"] == BASE
    assert loaded.logit_scale == pytest.approx(1 / METHOD_TEMPERATURES[method])
    with torch.no_grad():
        by_head = result.heads["clap"](torch.from_numpy(test_q)).numpy()
    np.testing.assert_allclose(loaded.project("clap", "audio", test_q), by_head, atol=1e-5)

    embedder = SpaceEmbedder(loaded, encoders)
    sounds = [np.sin(np.linspace(0, 200 * (1 + i), 48000)).astype(np.float32) for i in range(2)]
    audio, text = embedder.embed("audio", sounds), embedder.embed("text", ["a dog barking", "rain"])
    assert audio.shape == text.shape == (2, BASE)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    features = encoders["clap"].embed("audio", sounds)
    assert features.shape == (2, LEAF)
    np.testing.assert_allclose(audio, loaded.project("clap", "audio", features), atol=1e-6)
