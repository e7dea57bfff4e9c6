"""Batched FPS and kNN grouping against the per-cloud reference loop and brute force."""

from __future__ import annotations

import pytest
import torch

from cmcr.models.encoders import fps
from cmcr.models.encoders.fps import (
    farthest_point_sample,
    fps_reference_loop,
    gather_points,
    group_points,
    knn_indices,
    start_indices,
)


def random_clouds(batch: int, num_points: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, num_points, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["first", "farthest"])
def test_batched_fps_equals_reference_loop(mode: str) -> None:
    clouds = random_clouds(3, 600)
    picked = farthest_point_sample(clouds, 64, start=mode)
    starts = start_indices(clouds, mode)
    for cloud, row, start in zip(clouds, picked, starts, strict=True):
        assert torch.equal(row, fps_reference_loop(cloud, 64, int(start)))


@pytest.mark.parametrize("start", ["first", "farthest", torch.tensor([7, 0, 599])])
def test_loop_backend_is_the_reference_loop_one_cloud_at_a_time(start, monkeypatch) -> None:
    clouds = random_clouds(3, 600, seed=5)
    calls = []
    reference = fps.fps_reference_loop

    def counted(*args):
        calls.append(1)
        return reference(*args)

    monkeypatch.setattr(fps, "fps_reference_loop", counted)
    looped = farthest_point_sample(clouds, 40, start=start, backend="loop")
    assert calls == [1, 1, 1]
    assert torch.equal(looped, farthest_point_sample(clouds, 40, start=start, backend="torch"))


def test_explicit_start_indices_are_honoured() -> None:
    clouds = random_clouds(4, 300, seed=1)
    starts = torch.tensor([5, 17, 0, 299])
    picked = farthest_point_sample(clouds, 32, start=starts)
    assert torch.equal(picked[:, 0], starts)
    for cloud, row, start in zip(clouds, picked, starts, strict=True):
        assert torch.equal(row, fps_reference_loop(cloud, 32, int(start)))


def test_random_start_reproduces_the_official_draw_for_a_seed() -> None:
    clouds = random_clouds(5, 400, seed=2)
    official_starts = torch.randint(0, 400, (5,), generator=torch.Generator().manual_seed(7))
    picked = farthest_point_sample(clouds, 16, start="random", generator=torch.Generator().manual_seed(7))
    assert torch.equal(picked[:, 0], official_starts)
    again = farthest_point_sample(clouds, 16, start="random", generator=torch.Generator().manual_seed(8))
    assert not torch.equal(picked[:, 0], again[:, 0])


def test_fps_picks_distinct_points_and_is_deterministic() -> None:
    clouds = random_clouds(2, 256, seed=3)
    picked = farthest_point_sample(clouds, 128)
    assert all(len(set(row.tolist())) == 128 for row in picked)
    assert torch.equal(picked, farthest_point_sample(clouds, 128))


def test_fps_of_a_batch_equals_fps_of_each_cloud() -> None:
    clouds = random_clouds(4, 500, seed=4)
    batched = farthest_point_sample(clouds, 48)
    singles = torch.cat([farthest_point_sample(cloud[None], 48) for cloud in clouds])
    assert torch.equal(batched, singles)


def test_farthest_start_makes_the_sample_independent_of_point_order() -> None:
    cloud = random_clouds(1, 500, seed=5)
    shuffled = cloud[:, torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    first = gather_points(cloud, farthest_point_sample(cloud, 40))
    second = gather_points(shuffled, farthest_point_sample(shuffled, 40))
    assert torch.equal(first, second)


def test_fps_ignores_bfloat16_autocast() -> None:
    clouds = random_clouds(2, 400, seed=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = farthest_point_sample(clouds, 64)
        knn_autocast = knn_indices(clouds, clouds[:, :10], 8)
    assert torch.equal(under_autocast, farthest_point_sample(clouds, 64))
    assert torch.equal(knn_autocast.sort(-1).values, knn_indices(clouds, clouds[:, :10], 8).sort(-1).values)


def brute_force_knn(points: torch.Tensor, centres: torch.Tensor, k: int) -> torch.Tensor:
    distances = ((centres[:, :, None, :] - points[:, None, :, :]) ** 2).sum(-1)
    return distances.argsort(dim=-1)[..., :k]


def test_knn_matches_brute_force() -> None:
    points = random_clouds(3, 300, seed=7)
    centres = random_clouds(3, 20, seed=8)
    found = knn_indices(points, centres, 12).sort(-1).values
    assert torch.equal(found, brute_force_knn(points, centres, 12).sort(-1).values)


def test_knn_in_small_blocks_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    points = random_clouds(2, 200, seed=9)
    centres = random_clouds(2, 50, seed=10)
    whole = knn_indices(points, centres, 8).sort(-1).values
    monkeypatch.setattr(fps, "_KNN_BLOCK_ELEMENTS", 2 * 200 * 7)  # blocks of 7 centres
    assert torch.equal(knn_indices(points, centres, 8).sort(-1).values, whole)


def test_group_points_returns_neighbourhoods_relative_to_their_centres() -> None:
    clouds = random_clouds(2, 400, seed=11)
    neighbourhoods, centres = group_points(clouds, num_groups=32, group_size=16)
    assert neighbourhoods.shape == (2, 32, 16, 3) and centres.shape == (2, 32, 3)
    assert torch.equal(centres, gather_points(clouds, farthest_point_sample(clouds, 32)))
    # each centre is a cloud point, so it is its own nearest neighbour at offset zero
    assert torch.all(neighbourhoods.norm(dim=-1).amin(dim=-1) == 0)
    absolute = (neighbourhoods + centres[:, :, None]).reshape(2, -1, 3)
    expected = gather_points(clouds, knn_indices(clouds, centres, 16)).reshape(2, -1, 3)
    torch.testing.assert_close(absolute, expected)


@pytest.mark.parametrize(
    ("shape", "samples"), [((2, 10, 3), 11), ((2, 10, 3), 0), ((10, 3), 4), ((2, 10, 2), 4)]
)
def test_fps_rejects_impossible_requests(shape: tuple[int, ...], samples: int) -> None:
    with pytest.raises(ValueError):
        farthest_point_sample(torch.zeros(shape), samples)


def test_knn_rejects_more_neighbours_than_points() -> None:
    with pytest.raises(ValueError, match="only 5 points"):
        knn_indices(torch.zeros(1, 5, 3), torch.zeros(1, 2, 3), 6)


def test_unknown_start_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="start mode"):
        farthest_point_sample(random_clouds(1, 10), 4, start="middle")
