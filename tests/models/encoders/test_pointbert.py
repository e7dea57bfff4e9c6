"""PointBERT at toy widths: shapes, names, batch invariance, determinism, attention maths."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cmcr.models.encoders import fps
from cmcr.models.encoders.pointbert import Attention, PointBERT
from cmcr.models.encoders.ulip import TINY_POINT


@pytest.fixture(scope="module")
def model() -> PointBERT:
    torch.manual_seed(0)
    return PointBERT(TINY_POINT).eval()


def clouds(batch: int, num_points: int = 300, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, num_points, 3, generator=torch.Generator().manual_seed(seed))


def test_forward_gives_cls_and_pooled_features(model: PointBERT) -> None:
    with torch.inference_mode():
        features = model(clouds(3))
    assert features.shape == (3, 2 * TINY_POINT.trans_dim) == (3, TINY_POINT.feature_dim)
    assert torch.isfinite(features).all()


def test_parameter_names_follow_the_official_point_encoder(model: PointBERT) -> None:
    names = set(model.state_dict())
    for expected in (
        "cls_token",
        "cls_pos",
        "encoder.first_conv.1.running_var",
        "encoder.second_conv.3.weight",
        "reduce_dim.weight",
        "pos_embed.2.weight",
        f"blocks.blocks.{TINY_POINT.depth - 1}.attn.qkv.weight",
        "blocks.blocks.0.mlp.fc2.bias",
        "norm.bias",
    ):
        assert expected in names
    assert "blocks.blocks.0.attn.qkv.bias" not in names


def test_batch_of_four_equals_four_singles(model: PointBERT) -> None:
    batch = clouds(4, seed=1)
    with torch.inference_mode():
        together = model(batch)
        alone = torch.cat([model(cloud[None]) for cloud in batch])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_eval_forward_is_deterministic_and_ignores_point_order(model: PointBERT) -> None:
    cloud = clouds(1, seed=2)
    shuffled = cloud[:, torch.randperm(cloud.shape[1], generator=torch.Generator().manual_seed(3))]
    with torch.inference_mode():
        first, second, permuted = model(cloud), model(cloud), model(shuffled)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, permuted, rtol=1e-5, atol=1e-5)


def test_different_clouds_give_different_features(model: PointBERT) -> None:
    with torch.inference_mode():
        features = model(torch.cat([clouds(1, seed=4), clouds(1, seed=5) * 0.5]))
    assert not torch.allclose(features[0], features[1], atol=1e-3)


def test_fps_backend_of_the_config_picks_the_sampler_and_keeps_the_embedding(model, monkeypatch) -> None:
    """The speed benchmark's baseline: the same weights with the official per-cloud loop FPS."""
    looped = PointBERT(dataclasses.replace(TINY_POINT, fps_backend="loop")).eval()
    looped.load_state_dict(model.state_dict())
    calls = []
    reference = fps.fps_reference_loop
    monkeypatch.setattr(fps, "fps_reference_loop", lambda *args: calls.append(1) or reference(*args))
    batch = clouds(2, 512, seed=4)
    with torch.inference_mode():
        ours = model(batch)
        assert calls == [], "the default config sampled through the per-cloud loop"
        baseline = looped(batch)
    assert calls == [1, 1]
    torch.testing.assert_close(ours, baseline)


def test_attention_is_softmax_of_scaled_dot_products() -> None:
    torch.manual_seed(1)
    attention = Attention(dim=12, num_heads=3).eval()
    x = torch.randn(2, 5, 12)
    q, k, v = attention.qkv(x).reshape(2, 5, 3, 3, 4).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-2, -1) * 4**-0.5).softmax(-1)
    expected = attention.proj((weights @ v).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attention(x), expected, rtol=1e-5, atol=1e-6)


def test_position_embedding_is_added_before_every_block(model: PointBERT) -> None:
    x = torch.randn(1, 4, TINY_POINT.trans_dim)
    pos = torch.randn(1, 4, TINY_POINT.trans_dim)
    expected = x
    for block in model.blocks.blocks:
        expected = block(expected + pos)
    torch.testing.assert_close(model.blocks(x, pos), expected)


def test_mini_pointnet_computes_the_official_conv1d_pipeline(model: PointBERT) -> None:
    neighbourhoods = torch.randn(2, 8, TINY_POINT.group_size, 3, generator=torch.Generator().manual_seed(6))

    def run(layers: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            is_conv = isinstance(layer, torch.nn.Conv1d)
            x = torch.nn.functional.conv1d(x, layer.weight, layer.bias) if is_conv else layer(x)
        return x

    size = TINY_POINT.group_size
    with torch.inference_mode():
        first = run(model.encoder.first_conv, neighbourhoods.reshape(16, size, 3).transpose(1, 2))
        joined = torch.cat([first.amax(2, keepdim=True).expand(-1, -1, size), first], dim=1)
        expected = run(model.encoder.second_conv, joined).amax(2).reshape(2, 8, -1)
        torch.testing.assert_close(model.encoder(neighbourhoods), expected, rtol=1e-5, atol=1e-5)
