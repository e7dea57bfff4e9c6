"""aggregate() against a dense float64 reference; complete() statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmcr.training.enhance import aggregate, complete, noise_std


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _dense_reference(queries, memory, temperature, values=None, top_k=None):
    values = memory if values is None else values
    scores = queries.astype(np.float64) @ memory.astype(np.float64).T / temperature
    if top_k is not None:
        kth = np.sort(scores, axis=1)[:, -top_k][:, None]
        scores = np.where(scores >= kth, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    mixed = weights @ values.astype(np.float64)
    return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("chunk_size, query_chunk_size", [(7, 5), (64, 1000), (1, 3)])
def test_streaming_softmax_matches_dense_reference(temperature, chunk_size, query_chunk_size):
    rng = np.random.default_rng(0)
    queries, memory = _unit_rows(rng, 23, 16), _unit_rows(rng, 101, 16)
    got = aggregate(queries, memory, temperature, chunk_size=chunk_size,
                    query_chunk_size=query_chunk_size)
    np.testing.assert_allclose(got.numpy(), _dense_reference(queries, memory, temperature),
                               atol=2e-5)


@pytest.mark.parametrize("top_k, chunk_size", [(1, 9), (5, 9), (12, 4), (200, 33)])
def test_streaming_top_k_matches_dense_reference(top_k, chunk_size):
    rng = np.random.default_rng(1)
    queries, memory = _unit_rows(rng, 19, 12), _unit_rows(rng, 97, 12)
    got = aggregate(queries, memory, 0.05, top_k=top_k, chunk_size=chunk_size,
                    query_chunk_size=6)
    want = _dense_reference(queries, memory, 0.05, top_k=min(top_k, 97))
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5)


def test_top_1_returns_the_nearest_memory_row():
    rng = np.random.default_rng(2)
    queries, memory = _unit_rows(rng, 30, 8), _unit_rows(rng, 50, 8)
    got = aggregate(queries, memory, 1.0, top_k=1, chunk_size=7).numpy()
    nearest = memory[np.argmax(queries @ memory.T, axis=1)]
    np.testing.assert_allclose(got, nearest, atol=1e-6)


@pytest.mark.parametrize("top_k", [None, 4])
def test_separate_values_are_mixed_with_weights_from_the_keys(top_k):
    rng = np.random.default_rng(3)
    queries, keys = _unit_rows(rng, 11, 8), _unit_rows(rng, 40, 8)
    values = rng.standard_normal((40, 5))
    got = aggregate(queries, keys, 0.1, values=values, top_k=top_k, chunk_size=6)
    want = _dense_reference(queries, keys, 0.1, values=values, top_k=top_k)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5)


def test_float16_memmap_memory_and_torch_queries(tmp_path):
    rng = np.random.default_rng(4)
    queries, memory = _unit_rows(rng, 17, 32), _unit_rows(rng, 300, 32).astype(np.float16)
    path = tmp_path / "memory.npy"
    np.save(path, memory)
    mapped = np.load(path, mmap_mode="r")
    got = aggregate(torch.from_numpy(queries).float(), mapped, 0.05, chunk_size=128)
    assert got.dtype == torch.float32 and got.shape == (17, 32)
    want = _dense_reference(queries, memory.astype(np.float64), 0.05)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_low_temperature_does_not_overflow():
    rng = np.random.default_rng(5)
    queries, memory = _unit_rows(rng, 10, 8), _unit_rows(rng, 60, 8)
    got = aggregate(queries, memory, 1e-4, chunk_size=16)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.norm(dim=1).numpy(), 1.0, atol=1e-5)


def _round_to_tf32(x: np.ndarray) -> np.ndarray:
    """float32 → the nearest value with TF32's 10-bit mantissa (ties to even), as tensor cores read it."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x0FFF + ((bits >> 13) & 1)) & ~np.uint64(0x1FFF)
    return rounded.astype(np.uint32).view(np.float32)


def test_float16_inputs_are_exact_in_tf32_and_only_they_turn_it_on():
    """Why `aggregate` allows TF32 products for float16 memories (and only for them)."""
    rng = np.random.default_rng(8)
    halves = _unit_rows(rng, 500, 64).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(_round_to_tf32(halves), halves)
    singles = _unit_rows(rng, 500, 64).astype(np.float32)
    assert (_round_to_tf32(singles) != singles).mean() > 0.9  # float32 inputs would be rounded
    from cmcr.training.enhance import _all_float16

    assert _all_float16(halves.astype(np.float16), torch.from_numpy(halves).half(), None)
    assert not _all_float16(halves.astype(np.float16), torch.from_numpy(halves))


def test_tf32_products_are_scoped_and_restored_even_on_error():
    from cmcr.training.enhance import tf32_products

    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    with tf32_products(torch.device("cuda")):
        assert matmul.allow_tf32 is True
    assert matmul.allow_tf32 == before
    with pytest.raises(RuntimeError, match="boom"), tf32_products(torch.device("cuda")):
        raise RuntimeError("boom")
    assert matmul.allow_tf32 == before
    with tf32_products(torch.device("cpu")), tf32_products(torch.device("cuda"), enabled=False):
        assert matmul.allow_tf32 == before


def test_rejects_mismatched_widths_and_bad_temperature():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="same width"):
        aggregate(_unit_rows(rng, 3, 4), _unit_rows(rng, 5, 6), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        aggregate(_unit_rows(rng, 3, 4), _unit_rows(rng, 5, 4), 0.0)


def test_complete_adds_noise_of_the_requested_scale_and_renormalises():
    x = torch.nn.functional.normalize(torch.randn(4000, 64, generator=torch.Generator().manual_seed(0)), dim=1)
    sigma = 0.05
    noisy = complete(x, sigma, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(noisy.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # |x + e|^2 = 1 + D sigma^2 on average, so the cosine with x is about 1/sqrt(1 + D sigma^2).
    expected_cosine = 1 / np.sqrt(1 + 64 * sigma**2)
    assert abs((noisy * x).sum(dim=1).mean().item() - expected_cosine) < 0.01


@pytest.mark.parametrize("cosine", [0.95, 0.8, 0.6])
def test_noise_given_as_a_cosine_means_the_same_at_every_width(cosine):
    measured = []
    for dim in (128, 512, 768):
        x = torch.nn.functional.normalize(torch.randn(2000, dim, generator=torch.Generator().manual_seed(dim)), dim=1)
        noisy = complete(x, noise_std(cosine, dim), generator=torch.Generator().manual_seed(1))
        measured.append((noisy * x).sum(dim=1).mean().item())
    np.testing.assert_allclose(measured, cosine, atol=0.01)
    assert noise_std(1.0, 512) == 0.0
    with pytest.raises(ValueError, match="noise cosine"):
        noise_std(0.0, 512)


def test_complete_draws_fresh_noise_each_call_and_is_seedable():
    x = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    generator = torch.Generator().manual_seed(0)
    first, second = complete(x, 0.1, generator), complete(x, 0.1, generator)
    assert not torch.allclose(first, second)
    again = complete(x, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    assert torch.allclose(complete(x * 3, 0.0), x, atol=1e-6)
